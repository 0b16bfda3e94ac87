"""Weight initializers with Keras's names and formulas (fan_in, fan_out from the kernel shape): the variance-scaling
family (Glorot, He, LeCun; uniform or truncated normal) written once, and the constants."""
import numpy as np

TRUNCATED_STD = 0.87962566103423978  # the std of a unit normal truncated to [-2, 2], as Keras divides by it


def _fans(shape):
    return (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])


def _truncated_normal(rng, std, shape, limit=2.0):
    """Normal draws with standard deviation std, redrawn until within `limit` of it (Keras's TruncatedNormal: 2)."""
    values = rng.normal(0.0, std, size=shape)
    outside = np.abs(values) > limit * std
    while outside.any():
        values[outside] = rng.normal(0.0, std, size=int(outside.sum()))
        outside = np.abs(values) > limit * std
    return values


def truncated_normal(std, limit):
    """Normal draws with standard deviation std within `limit` of them (torch's trunc_normal_ at +-limit std)."""
    return lambda shape, rng: _truncated_normal(rng, std, shape, limit)


def uniform(limit):
    """Uniform draws in [-limit, limit) (Keras's RandomUniform(-limit, limit))."""
    return lambda shape, rng: rng.uniform(-limit, limit, size=shape)


def variance_scaling(scale, mode, distribution):
    """Keras's VarianceScaling: variance scale / n, n the fan in, or the mean of both fans for mode "fan_avg"."""
    def initialize(shape, rng):
        fan_in, fan_out = _fans(shape)
        n = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2.0
        if distribution == "uniform":
            limit = np.sqrt(3.0 * scale / n)
            return rng.uniform(-limit, limit, size=shape)
        return _truncated_normal(rng, np.sqrt(scale / n) / TRUNCATED_STD, shape)
    return initialize


INITIALIZERS = {
    "glorot_uniform": variance_scaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": variance_scaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": variance_scaling(2.0, "fan_in", "uniform"),
    "he_normal": variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": variance_scaling(1.0, "fan_in", "uniform"),
    "lecun_normal": variance_scaling(1.0, "fan_in", "truncated_normal"),
    "zeros": lambda shape, rng: np.zeros(shape),
    "ones": lambda shape, rng: np.ones(shape),
    "uniform": uniform(0.05),  # Keras's "uniform" and "random_uniform": RandomUniform(-0.05, 0.05)
    "random_uniform": uniform(0.05),
}
