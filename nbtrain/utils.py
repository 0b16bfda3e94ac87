"""Process-wide settings: global seeding, as keras.utils.set_random_seed (weight initialization, shuffles and
dropout masks of fits that pass no seed of their own), and the BLAS thread count."""
import os

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


def available_cores():
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def limit_blas_threads(threads):
    """Limit every BLAS library loaded here to `threads` threads (threadpoolctl), the SciPy BLAS that np.dot in
    compiled code calls included: several processes on one machine with default thread pools oversubscribe
    its cores (two on two cores made a 3x512 epoch hundreds of times slower). Returns the limiter: the limit
    lasts for its `with` block, or for good."""
    import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS that the compiled kernels call, so it is limited)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=threads, user_api="blas")
