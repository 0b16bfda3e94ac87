"""Training engines: the layer table (plan), the CPU and CUDA kernels, and the shared random numbers.

`resolve(device)` turns "auto", "cpu" or "cuda" into the target that will run, without importing
numba.cuda unless a GPU can be there; `load(target)` imports that target's kernels; a Device's session puts a
model's arrays where its kernels run for the length of a with-block.
"""
import ctypes.util
import importlib
import importlib.util
import os
import sys

from ..errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


def _simulated():
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _driver_present():
    """Whether an NVIDIA driver is installed, checked without loading it (cheap: no numba.cuda import)."""
    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/usr/lib/wsl/lib/libcuda.so"))
    return ctypes.util.find_library("nvcuda" if sys.platform == "win32" else "cuda") is not None


def _cuda_problem():
    """None when a CUDA device can run nbtrain's kernels here, else what is missing (one line)."""
    if importlib.util.find_spec("numba_cuda") is None:
        return "the numba-cuda package is not installed: pip install 'nbtrain[gpu]'"
    if not _simulated() and not _driver_present():
        return "no NVIDIA driver (libcuda) was found on this machine"
    from numba import cuda
    if not cuda.is_available():
        return "numba.cuda.is_available() is False: no usable CUDA GPU is visible"
    return None


def resolve(device):
    """The target for `device`: "cuda" when asked for (or when "auto" finds a GPU), else "cpu"."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    problem = _cuda_problem()
    if problem is None:
        return "cuda"
    if device == "cuda":
        raise DeviceError(f"device='cuda' cannot be used: {problem}")
    return "cpu"


def load(target):
    """The engine module of a resolved target (its kernels compile on first use)."""
    return importlib.import_module(f"{__name__}.{target}")


class Device:
    """A resolved device: its engine module, and how arrays get there and back. On the CPU the engine works on
    the host arrays themselves; on CUDA on device copies."""

    def __init__(self, name):
        self.name = name
        self.engine = load(name)

    @property
    def on_host(self):
        return self.name == "cpu"

    def put(self, array):
        return array if self.on_host else self.engine.upload(array)

    def fetch(self, array, host):
        """Copy the target's `array` into the host array `host` (in place; nothing to do on the CPU)."""
        if not self.on_host:
            array.copy_to_host(host)

    def send(self, host, array):
        """Copy the host array `host` into the target's `array` (nothing to do on the CPU)."""
        if not self.on_host:
            array.copy_to_device(host)

    def session(self, plan, config, theta, state, capacity, n_targets, optimizer=None):
        """A Session for a model with this plan, configuration (config.configure) and these host weights (see
        Session)."""
        from .session import Session
        return Session(self, plan, config, theta, state, capacity, n_targets, optimizer)
