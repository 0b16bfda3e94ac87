"""Every CUDA kernel compiles for the real target (an H100's sm_90) with NVVM, no GPU needed.

The simulator runs kernels as Python and accepts code that NVVM rejects; this catches that. It runs in
the plain (non-simulator) pytest call and needs the gpu extra's NVVM/NVRTC wheels."""
import os

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip("PTX compilation needs the real CUDA target, not the simulator", allow_module_level=True)
pytest.importorskip("numba_cuda", reason="needs the gpu extra: pip install 'nbtrain[gpu]'")

from numba import cuda  # noqa: E402

from nbtrain.engine import cuda as engine  # noqa: E402

F1, F2, D1, I1 = "float32[::1]", "float32[:, ::1]", "float64[::1]", "int64[::1]"
SIGNATURES = {
    "_matmul": (F2, F2, F2, "boolean", "boolean", F1),
    "_column_sums": (F2, F2, F1, F1),
    "_score": ("int64", "float64", F2, F2, F1, D1, "int64"),
    "_count": ("int64", "float64", F2, F2, F1, D1, "int64"),
    "_regularize": (F1, "float64", "float64", "int64", "float64", F1, D1, "int64"),
    "_activation_forward": ("int64", F2, F2),
    "_softmax_forward": (F2, F2),
    "_activation_backward": ("int64", F2, F2, F2, F2),
    "_softmax_backward": (F2, F2, F2),
    "_dropout_forward": (F2, "float64", "int64", "int64", "int64", "int64", F2, F2),
    "_multiply": (F2, F2, F2),
    "_normalize": (F2, F1, F1, "boolean", "boolean", F2),
    "_batchnorm_statistics": ("int64", "float64", "float64", "boolean", F1, F1, F1, F1),
    "_batchnorm_mean": (F1, "int64"),
    "_batchnorm_center": (F2, F1, F2),
    "_batchnorm_scale": (F2, F1, F1, F1, F2),
    "_batchnorm_dx": (F2, F2, F1, F1, F1, F1, F2),
    "_loss_backward": ("int64", "float64", F2, F2, F1, "float32", F2),
    "_sgd": (F1, F1, F1, "float32", "float32", "float32", "boolean", I1),
    "_adam": (F1, F1, F1, F1, "float32", "float32", "float32", "float32", "float32", I1),
    "_rmsprop": (F1, F1, F1, F1, "float32", "float32", "float32", "float32", "float32", "boolean", I1),
    "_halt_if_not_finite": (D1, "int64", I1, "int64"),
    "_gather": (F2, F2, F1, I1, "int64", F2, F2, F1),
    "_periodic_forward": (F2, F2, F2),
    "_periodic_dc": (F2, F2, F2, F2, F2),
    "_periodic_dx": (F2, F2, F2, F2),
    "_feature_dense_forward": (F2, F2, F2, F2),
    "_feature_dense_dw": (F2, F2, F2, F2),
    "_feature_dense_dx": (F2, F2, F2),
    "_embedding_forward": (F2, F1, D1, F2),
    "_zero": (F1,),
    "_embedding_backward": (F2, D1, F2, F1, F2),
    "_piecewise_forward": (F2, F2, F2),
    "_piecewise_backward": (F2, F2, F2, F2),
}


class _TargetDevice:
    """Stands in for the GPU when Numba compiles a device function: it only asks for the compute capability."""

    compute_capability = (9, 0)


def test_every_kernel_is_listed():
    kernels = {name for name, value in vars(engine).items() if hasattr(value, "py_func") and name.startswith("_")
               and type(value).__name__ == "CUDADispatcher" and not value.targetoptions.get("device")}
    assert kernels == set(SIGNATURES)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_kernel_compiles_for_sm90(name, monkeypatch):
    monkeypatch.setattr("numba.cuda.dispatcher.get_current_device", lambda: _TargetDevice())
    signature = "(" + ", ".join(SIGNATURES[name]) + ",)"  # a tuple, one argument or more
    ptx, _ = cuda.compile_ptx(getattr(engine, name).py_func, signature, cc=(9, 0))
    assert ".target sm_90" in ptx and ".entry" in ptx
