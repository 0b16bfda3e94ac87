"""nbtrain: a small, fast neural-network trainer for tabular data, with Keras's API and Numba kernels."""
from . import callbacks, layers, losses, metrics, optimizers, utils
from .errors import InputError, ModelFileError
from .io import load_model
from .model import Sequential
from .sweep import sweep

__version__ = "0.1.0"
__all__ = ["Sequential", "layers", "callbacks", "losses", "metrics", "optimizers", "utils", "load_model",
           "InputError", "ModelFileError", "sweep", "__version__"]
