"""Training engines: the layer table (plan), the Numba CPU kernels, and the shared random numbers."""
