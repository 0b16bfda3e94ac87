"""nbtrain: a small, fast neural-network trainer for tabular data, with Keras's API and Numba kernels."""
from . import callbacks, layers, losses, metrics, models, optimizers, regularizers, utils
from .errors import InputError, ModelFileError
from .ensemble import Ensemble, load_model
from .model import Sequential, missing_attribute
from .shared_members import SharedMembers
from .sweeps import sweep
from .tabular.apply import load_table_model
from .version import __version__

__all__ = ["Sequential", "Ensemble", "SharedMembers", "layers", "callbacks", "losses", "metrics", "models",
           "optimizers", "regularizers", "utils", "load_model", "load_table_model",
           "InputError", "ModelFileError", "sweep", "__version__"]


def __getattr__(name):
    """keras.Model and the like: one line saying what nbtrain has instead."""
    raise missing_attribute(__name__, name)
