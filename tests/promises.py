"""The reproducibility promise README.md makes, as the tolerances the tests hold it to.

Bit-identical: the same machine, BLAS thread count, batch size, seed, data and model (tests compare exactly).
Otherwise (another batch partition, another OpenBLAS kernel such as Haswell against SkylakeX, another machine)
sgemm sums in another order, and results agree to float32 rounding: a few units in the last place.
"""
FLOAT32_ROUNDING = dict(rtol=2e-6, atol=2e-7)
