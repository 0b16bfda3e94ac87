"""Scalar math shared by the CPU and CUDA kernels: activations, dropout draws, losses, metrics and
optimizer steps, one element at a time. Written once as @njit functions; CUDA kernels call the same
functions (Numba compiles them as device functions), so both targets compute the same numbers.

Constants are cast to the operand's dtype with `like`, so float32 arithmetic stays float32.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .plan import ACT_RELU, ACT_SIGMOID, LOSS_BCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, METRIC_BINARY_ACCURACY
from .rng import random_uniform

ELEMENT = dict(cache=True, error_model="numpy")
BCE_EPSILON = 1e-7  # Keras's backend epsilon, used to clip probabilities


def like(x, value):
    """`value` as a scalar of the float dtype of `x` (an array or a scalar)."""
    return np.asarray(x).dtype.type(value)


@overload(like)
def _like(x, value):
    scalar = as_dtype(x.dtype if isinstance(x, types.Array) else x).type
    return lambda x, value: scalar(value)


@njit(**ELEMENT)
def sigmoid(v):
    """1 / (1 + e^-v), computed without overflow for large |v|."""
    one = like(v, 1.0)
    if v >= like(v, 0.0):
        return one / (one + math.exp(-v))
    e = math.exp(v)
    return e / (one + e)


@njit(**ELEMENT)
def activation_value(act, v):
    if act == ACT_RELU:
        return max(v, like(v, 0.0))
    if act == ACT_SIGMOID:
        return sigmoid(v)
    return v


@njit(**ELEMENT)
def activation_slope(act, y):
    """The activation's derivative, from its output y: ReLU 1 where y > 0, sigmoid y (1 - y), linear 1."""
    one = like(y, 1.0)
    if act == ACT_RELU:
        return one if y > like(y, 0.0) else like(y, 0.0)
    if act == ACT_SIGMOID:
        return y * (one - y)
    return one


@njit(**ELEMENT)
def dropout_scale(x, rate, seed, stream, step, index):
    """1 / (1 - rate) for a kept unit, 0 for a dropped one; the draw is keyed by (seed, stream, step, index)."""
    if random_uniform(seed, stream, step, index) >= rate:
        return like(x, 1.0 / (1.0 - rate))
    return like(x, 0.0)


@njit(**ELEMENT)
def loss_value(code, param, p, y):
    """One element's loss. For LOSS_BCE_LOGITS, p is the logit z and the loss is computed stably from it."""
    zero, one, half = like(p, 0.0), like(p, 1.0), like(p, 0.5)
    e = p - y
    if code == LOSS_MAE:
        return abs(e)
    if code == LOSS_MSE:
        return e * e
    if code == LOSS_HUBER:
        delta = like(p, param)
        return half * e * e if abs(e) <= delta else delta * (abs(e) - half * delta)
    if code == LOSS_BCE:
        eps = like(p, BCE_EPSILON)
        q = min(max(p, eps), one - eps)
        return -(y * math.log(q) + (one - y) * math.log(one - q))
    return max(p, zero) - p * y + math.log1p(math.exp(-abs(p)))


@njit(**ELEMENT)
def loss_grad(code, param, p, y):
    """d loss_value / d p (for LOSS_BCE_LOGITS: sigmoid(z) - y, the fused sigmoid + cross-entropy gradient)."""
    zero, one = like(p, 0.0), like(p, 1.0)
    e = p - y
    if code == LOSS_MAE:
        return one if e > zero else (-one if e < zero else zero)
    if code == LOSS_MSE:
        return (one + one) * e
    if code == LOSS_HUBER:
        delta = like(p, param)
        return e if abs(e) <= delta else (delta if e > zero else -delta)
    if code == LOSS_BCE:
        eps = like(p, BCE_EPSILON)
        return e / (p * (one - p)) if eps <= p <= one - eps else zero
    return sigmoid(p) - y


@njit(**ELEMENT)
def metric_value(code, param, p, y):
    """One element's metric: binary accuracy (1 when (p > threshold) equals y) or a loss used as a metric."""
    if code == METRIC_BINARY_ACCURACY:
        label = like(y, 1.0) if p > param else like(y, 0.0)
        return 1.0 if label == y else 0.0
    return loss_value(code, param, p, y)


@njit(**ELEMENT)
def adam_alpha(lr, beta_1, beta_2, t):
    """Keras Adam's step size at step t (1-based), with both bias corrections folded in."""
    return lr * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)


@njit(**ELEMENT)
def adam_step(theta, g, m, v, alpha, c1, c2, eps):
    """One element of Keras Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); theta -= alpha m / (sqrt(v) + eps).
    Returns the new (theta, m, v)."""
    m += (g - m) * c1
    v += (g * g - v) * c2
    return theta - alpha * m / (math.sqrt(v) + eps), m, v


@njit(**ELEMENT)
def sgd_step(theta, g, velocity, lr, momentum, nesterov):
    """One element of Keras SGD: v = momentum v - lr g; theta += v (Nesterov: momentum v - lr g).
    Returns the new (theta, velocity)."""
    if momentum == like(lr, 0.0):
        return theta - lr * g, velocity
    velocity = momentum * velocity - lr * g
    return (theta + momentum * velocity - lr * g if nesterov else theta + velocity), velocity
