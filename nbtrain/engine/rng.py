"""Counter-based random numbers: the same bits for the same (seed, a, b, c) on every target.

Dropout masks and epoch shuffles are pure functions of their coordinates, so a run can be replayed,
split across processes, or moved to another device and draw exactly the same numbers.
"""
import numpy as np
from numba import njit

from . import cache  # noqa: F401  (first: the kernels below cache in the per-user folder)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)
_INV24 = 1.0 / 16777216.0


@njit(cache=True)
def random_bits(seed, a, b, c):
    """64 well-mixed bits from four integer coordinates (SplitMix64 finalizer applied per coordinate)."""
    h = np.uint64(seed)
    for k in range(3):
        coord = np.uint64(a) if k == 0 else (np.uint64(b) if k == 1 else np.uint64(c))
        h = h + _GOLDEN + coord * _GOLDEN
        h = (h ^ (h >> _S30)) * _MIX1
        h = (h ^ (h >> _S27)) * _MIX2
        h = h ^ (h >> _S31)
    return h


@njit(cache=True)
def random_uniform(seed, a, b, c):
    """A uniform number in [0, 1) with 24 random bits, exactly representable in float32."""
    return np.float64(random_bits(seed, a, b, c) >> _S40) * _INV24


@njit(cache=True)
def permutation(n, seed, key, shuffle, members=1):
    """A shuffle of range(n) (Fisher-Yates), each swap drawn from (seed, stream 0, key, position); range(n)
    itself when not shuffle. members > 1: that many shuffles one after another (members * n entries), member j's
    from stream -j (member 0's is the one shuffle's; negative streams are no dropout op's)."""
    order = np.empty(n * members, np.int64)
    for m in range(members):
        block = order[m * n:(m + 1) * n]
        for i in range(n):
            block[i] = i
        for i in range(n - 1 if shuffle else 0, 0, -1):
            j = np.int64(random_bits(seed, np.int64(-m), key, i) % np.uint64(i + 1))  # an int64, not a literal
            block[i], block[j] = block[j], block[i]
    return order
