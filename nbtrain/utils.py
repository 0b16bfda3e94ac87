"""Global seeding, as keras.utils.set_random_seed: makes weight initialization, shuffles and dropout
masks reproducible for fits that do not pass their own seed."""
import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Seed nbtrain's global generator (also seeds NumPy's legacy global one, as Keras does)."""
    global _generator
    _generator = np.random.default_rng(seed)
    np.random.seed(seed)


def generator():
    return _generator


def draw_seed():
    """A fresh 63-bit seed from the global generator."""
    return int(_generator.integers(0, 2**63 - 1))
