"""Scalar math shared by the CPU and CUDA kernels: activations, dropout draws, losses, metrics and
optimizer steps, one element (or, for softmax and the categorical losses, one row) at a time. Written once as @njit functions; CUDA kernels call the same
functions (Numba compiles them as device functions), so both targets compute the same numbers.

Constants are cast to the operand's dtype with `like`, so float32 arithmetic stays float32.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from . import cache  # noqa: F401  (first: the kernels below cache in the per-user folder)

from . import plan
from .plan import (
    ACT_ELU, ACT_GELU, ACT_LEAKY_RELU, ACT_MISH, ACT_RELU, ACT_SELU, ACT_SIGMOID, ACT_SILU, ACT_SOFTPLUS, ACT_TANH,
    ELU_ALPHA, LEAKY_SLOPE, LOSS_BCE, LOSS_CCE, NORMALIZATION_EPSILON, SELU_ALPHA, SELU_SCALE, LOSS_CCE_LOGITS,
    LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE_LOGITS, METRIC_AUC, METRIC_BINARY_ACCURACY,
    METRIC_CATEGORICAL_ACCURACY, METRIC_PRECISION, METRIC_SPARSE_CATEGORICAL_ACCURACY, SCHEDULE_COSINE,
    SCHEDULE_EXPONENTIAL, SCHEDULE_PIECEWISE,
)
from .rng import random_uniform

# Compiled once per machine and called, not inlined: inlined into the kernels of every configuration they cost
# about 30% more compile time on README's first model (CPU seconds, measured side by side), and a configuration's
# kernels already prune the codes it does not use before they call these.
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
def normalization_scale(variance):
    """max(sqrt(variance), 1e-7): what a Normalization layer divides by (multiplies by, inverted)."""
    return max(math.sqrt(variance), like(variance, NORMALIZATION_EPSILON))




@njit(**ELEMENT)
def piecewise_value(v, left, right, t, k):
    """Bin t, [left, right), of a feature's k bins in the piecewise-linear encoding of v: (value, d value / d v).
    (v - left) / (right - left), clipped to [0, 1] but for the first bin's lower and the last bin's upper side
    (rtdl's PiecewiseLinearEncoding); 0 for t >= k (a feature with fewer bins than the layer's)."""
    zero = like(v, 0.0)
    if t >= k:
        return zero, zero
    z, slope = (v - left) / (right - left), like(v, 1.0) / (right - left)
    if t > 0 and z < zero:
        return zero, zero
    if t < k - 1 and z > like(v, 1.0):
        return like(v, 1.0), zero
    return z, slope


@njit(**ELEMENT)
def activation_value(act, v):
    """One element of an activation, Keras's formulas and defaults: elu alpha 1, leaky_relu negative slope 0.2,
    gelu exact (erf), softplus log(1 + e^v) without overflow; silu (swish) v sigmoid(v), selu Keras's constants,
    mish v tanh(softplus(v))."""
    zero, one = like(v, 0.0), like(v, 1.0)
    if act == ACT_RELU:
        return max(v, zero)
    if act == ACT_SIGMOID:
        return sigmoid(v)
    if act == ACT_TANH:
        return math.tanh(v)
    if act == ACT_ELU:
        return v if v > zero else like(v, ELU_ALPHA) * math.expm1(v)
    if act == ACT_GELU:
        return like(v, 0.5) * v * (one + math.erf(v * like(v, 1.0 / math.sqrt(2.0))))
    if act == ACT_LEAKY_RELU:
        return v if v > zero else like(v, LEAKY_SLOPE) * v
    if act == ACT_SOFTPLUS:
        return max(v, zero) + math.log1p(math.exp(-abs(v)))
    if act == ACT_SILU:
        return v * sigmoid(v)
    if act == ACT_SELU:
        return like(v, SELU_SCALE) * (v if v > zero else like(v, SELU_ALPHA) * math.expm1(v))
    if act == ACT_MISH:
        return v * math.tanh(max(v, zero) + math.log1p(math.exp(-abs(v))))
    return v


@njit(**ELEMENT)
def activation_slope(act, x, y):
    """The activation's derivative at input x with output y (whichever is cheaper): ReLU 1 where y > 0, sigmoid
    y (1 - y), tanh 1 - y^2, elu y + alpha below 0, gelu Phi(x) + x phi(x), leaky_relu its slope, softplus
    sigmoid(x), silu, selu and mish their own, linear 1."""
    zero, one = like(y, 0.0), like(y, 1.0)
    if act == ACT_RELU:
        return one if y > zero else zero
    if act == ACT_SIGMOID:
        return y * (one - y)
    if act == ACT_TANH:
        return one - y * y
    if act == ACT_ELU:
        return one if x > zero else y + like(y, ELU_ALPHA)
    if act == ACT_GELU:
        cdf = like(y, 0.5) * (one + math.erf(x * like(y, 1.0 / math.sqrt(2.0))))
        return cdf + x * math.exp(like(y, -0.5) * x * x) * like(y, 1.0 / math.sqrt(2.0 * math.pi))
    if act == ACT_LEAKY_RELU:
        return one if x > zero else like(y, LEAKY_SLOPE)
    if act == ACT_SOFTPLUS:
        return sigmoid(x)
    if act == ACT_SILU:  # s (1 + x (1 - s)), s = sigmoid(x)
        s = sigmoid(x)
        return s * (one + x * (one - s))
    if act == ACT_SELU:
        return like(y, SELU_SCALE) if x > zero else y + like(y, SELU_SCALE * SELU_ALPHA)
    if act == ACT_MISH:  # tanh(softplus(x)) + x sigmoid(x) (1 - tanh(softplus(x))^2)
        t = math.tanh(max(x, zero) + math.log1p(math.exp(-abs(x))))
        return t + x * sigmoid(x) * (one - t * t)
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


columns = njit(**ELEMENT)(plan.columns)  # the plan's rule, compiled for the kernels


# ---------------------------------------------------------------- row-wise: softmax and the categorical objectives
# p, y and the outputs are (n, k) matrices (y (n, 1) for the sparse codes); each function works on row i only, so
# the CPU runs them in a loop over rows and CUDA one thread per row.

@njit(**ELEMENT)
def softmax_row(x, i, y):
    """y[i] = exp(x[i] - max) / sum(exp(x[i] - max)): no overflow whatever the scale of x."""
    k = x.shape[1]
    top = x[i, 0]
    for j in range(1, k):
        top = max(top, x[i, j])
    total = like(x, 0.0)
    for j in range(k):
        y[i, j] = math.exp(x[i, j] - top)
        total += y[i, j]
    for j in range(k):
        y[i, j] /= total


@njit(**ELEMENT)
def softmax_row_backward(y, dy, i, dx):
    """dx[i] = y[i] * (dy[i] - <dy[i], y[i]>): the softmax Jacobian applied to dy, from the stored output y."""
    dot = like(y, 0.0)
    for j in range(y.shape[1]):
        dot += dy[i, j] * y[i, j]
    for j in range(y.shape[1]):
        dx[i, j] = y[i, j] * (dy[i, j] - dot)


@njit(**ELEMENT)
def _log_sum_exp(z, i):
    top = z[i, 0]
    for j in range(1, z.shape[1]):
        top = max(top, z[i, j])
    total = like(z, 0.0)
    for j in range(z.shape[1]):
        total += math.exp(z[i, j] - top)
    return top + math.log(total)


@njit(**ELEMENT)
def _target(code, y, i, j, k, smoothing):
    """Row i's target probability of class j: y[i, j] (label-smoothed) for the one-hot codes, and for the sparse
    ones 1 where j is the class index in y[i, 0]."""
    if code == LOSS_CCE or code == LOSS_CCE_LOGITS:
        return y[i, j] * like(y, 1.0 - smoothing) + like(y, smoothing / k)
    return like(y, 1.0) if j == int(y[i, 0]) else like(y, 0.0)


@njit(**ELEMENT)
def _row_sum(p, i):
    total = like(p, 0.0)
    for j in range(p.shape[1]):
        total += p[i, j]
    return total


@njit(**ELEMENT)
def row_loss(code, param, p, y, i):
    """Row i's categorical cross-entropy. On probabilities (Keras, from_logits=False): p normalized to sum 1, clipped
    to [eps, 1 - eps], -sum y log p. On logits z: sum y (logsumexp(z) - z), stable for any z."""
    k = p.shape[1]
    total = like(p, 0.0)
    if code == LOSS_CCE_LOGITS or code == LOSS_SCE_LOGITS:
        lse = _log_sum_exp(p, i)
        for j in range(k):
            total += _target(code, y, i, j, k, param) * (lse - p[i, j])
        return total
    eps, one, scale = like(p, BCE_EPSILON), like(p, 1.0), _row_sum(p, i)
    for j in range(k):
        t = _target(code, y, i, j, k, param)
        if t != like(p, 0.0):
            total -= t * math.log(min(max(p[i, j] / scale, eps), one - eps))
    return total


@njit(**ELEMENT)
def row_loss_grad(code, param, p, y, i, scale, dp):
    """dp[i] = scale * d row_loss / d p[i]. Logits: softmax(z) sum(y) - y, the fused softmax + cross-entropy
    gradient. Probabilities: through the normalization q = p / sum(p), with no gradient where q was clipped."""
    k = p.shape[1]
    if code == LOSS_CCE_LOGITS or code == LOSS_SCE_LOGITS:
        lse, mass = _log_sum_exp(p, i), like(p, 0.0)
        for j in range(k):
            mass += _target(code, y, i, j, k, param)
        for j in range(k):
            dp[i, j] = scale * (math.exp(p[i, j] - lse) * mass - _target(code, y, i, j, k, param))
        return
    eps, one, total = like(p, BCE_EPSILON), like(p, 1.0), _row_sum(p, i)
    # d/dp_j of -sum_c t_c log q_c = (g_j - sum_c g_c q_c) / total, with g_c = -t_c / q_c where q_c is not clipped
    dot = like(p, 0.0)
    for j in range(k):
        q = p[i, j] / total
        g = -_target(code, y, i, j, k, param) / q if eps <= q <= one - eps else like(p, 0.0)
        dp[i, j] = g
        dot += g * q
    for j in range(k):
        dp[i, j] = scale * (dp[i, j] - dot) / total


@njit(**ELEMENT)
def _argmax(a, i):
    best = 0
    for j in range(1, a.shape[1]):
        if a[i, j] > a[i, best]:
            best = j
    return best


@njit(**ELEMENT)
def row_metric(code, param, p, y, i):
    """Row i's metric: categorical accuracy (argmax p equals argmax y), sparse categorical accuracy (argmax p
    equals the index y[i, 0]), or a categorical cross-entropy used as a metric."""
    if code == METRIC_CATEGORICAL_ACCURACY:
        return 1.0 if _argmax(p, i) == _argmax(y, i) else 0.0
    if code == METRIC_SPARSE_CATEGORICAL_ACCURACY:
        return 1.0 if _argmax(p, i) == int(y[i, 0]) else 0.0
    return float(row_loss(code, param, p, y, i))


@njit(**ELEMENT)
def learning_rate(code, schedule, constant, step):
    """The learning rate of the update after `step` earlier ones (Keras's optimizer.iterations): `constant`, or
    schedule = [code, parameters...] evaluated as Keras's ExponentialDecay, CosineDecay (with its linear warm-up)
    or PiecewiseConstantDecay does (code: schedule[0], a constant where the caller knows it)."""
    if code == SCHEDULE_EXPONENTIAL:
        p = step / schedule[2]
        if schedule[4]:  # staircase
            p = float(math.floor(p))
        return schedule[1] * schedule[3] ** p
    if code == SCHEDULE_COSINE:
        init, decay_steps, alpha, target, warmup = schedule[1], schedule[2], schedule[3], schedule[4], schedule[5]
        if target != target:  # no warm-up
            done = min(step, decay_steps) / decay_steps
            return init * ((1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * done)) + alpha)
        at = min(float(step), decay_steps + warmup)
        if at < warmup:
            return (target - init) * at / warmup + init
        done = (at - warmup) / decay_steps
        return target * ((1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * done)) + alpha)
    if code == SCHEDULE_PIECEWISE:
        n = int(schedule[1])
        for i in range(n):
            if step <= schedule[2 + i]:
                return schedule[2 + n + i]
        return schedule[2 + 2 * n]
    return constant


AUC_EPSILON = 1e-7  # Keras's AUC puts its first and last thresholds this far outside [0, 1]


@njit(**ELEMENT)
def auc_bucket(p, thresholds):
    """How many of Keras's AUC thresholds (-eps, 1/(T-1), ..., (T-2)/(T-1), 1 + eps) lie below p: the prediction
    counts as positive at exactly those."""
    count = 0
    if p > -AUC_EPSILON:
        count += 1
    if p > 0.0:
        count += min(thresholds - 2, int(math.ceil(p * (thresholds - 1))) - 1)
    if p > 1.0 + AUC_EPSILON:
        count += 1
    return count


@njit(**ELEMENT)
def count_slot(code, param, p, y):
    """Where one element of a counting metric adds, as (slot offset, amount for the first slot, amount for the
    second); the amounts are multiplied by the row's weight. Precision [tp, predicted positives], recall [tp,
    positives], AUC [positives, negatives] at 2 x the prediction's bucket."""
    one, zero = like(y, 1.0), like(y, 0.0)
    if code == METRIC_AUC:
        return 2 * auc_bucket(p, int(param)), y, one - y
    hit = one if p > param else zero
    if code == METRIC_PRECISION:
        return 0, hit * y, hit
    return 0, hit * y, y


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


@njit(**ELEMENT)
def rmsprop_step(theta, g, velocity, second, lr, rho, momentum, eps, centered):
    """One element of Keras RMSprop: velocity = rho velocity + (1 - rho) g^2; the step lr g / sqrt(velocity
    (- mean_g^2 when centered) + eps), through a momentum accumulator when momentum > 0. `second` is the mean
    gradient (centered) or the momentum accumulator. Returns the new (theta, velocity, second)."""
    one = like(lr, 1.0)
    velocity = rho * velocity + (one - rho) * g * g
    denominator = velocity + eps
    if centered:
        second = rho * second + (one - rho) * g
        denominator = velocity - second * second + eps
    increment = lr * g / math.sqrt(denominator)
    if momentum > like(lr, 0.0):
        second = momentum * second + increment
        return theta - second, velocity, second
    return theta - increment, velocity, second
