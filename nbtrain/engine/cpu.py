"""Numba CPU kernels, in network order with each forward beside its backward, and the fused epoch.

Every kernel works for float32 (training) and float64 (gradient checks): constants are cast to the
array dtype with `like`, so float32 arithmetic stays float32. Buffers are flat 1-D arrays; an op's
output is a C-contiguous (rows, width) view made by `rows`, so matrix products go straight to BLAS.
The walks over the op table are walkers.py's, compiled here with these kernels; the entry points that
Python calls (train_epoch, evaluate, predict) take the bundles of bundles.py.
"""
import math

import numpy as np
from numba import njit

from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from . import cache  # noqa: F401  (first: the kernels below cache in the per-user folder)

from . import walkers
from .bundles import DONE, STOP, Pass
from .collective import allreduce_sum, share
from .elementwise import (
    activation_slope, activation_value, adam_alpha, adam_step, dropout_scale, learning_rate, like, loss_grad,
    count_slot, metric_value, normalization_scale, rmsprop_step, row_loss_grad, row_metric, sgd_step, softmax_row, softmax_row_backward,
)
from .elementwise import piecewise_value
from .plan import ACT_SOFTMAX, METRIC_AUC, METRIC_PRECISION, METRIC_RECALL, OPT_ADAM, OPT_RMSPROP, ROW_CODES
from .rng import permutation

KERNEL = dict(cache=True, error_model="numpy", nogil=True)
# Kernels that take a code: inlined into the walkers of a configuration, where the code is a constant, so Numba
# prunes the other codes' branches before typing (the element math they call is compiled once and called).
BY_CODE = dict(KERNEL, inline="always")


@intrinsic
def _view(typingctx, buf, start, n, width):
    """The (n, width) C-contiguous view of buf[start:start + n * width] (buf 1-D, C-contiguous; the caller keeps
    the range inside buf). Numba's reshape would do, at the cost of compiling its error path's string
    formatting, seconds of every first run."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        return None
    result = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, args[0])
        view = make_array(result)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(buf.dtype)))
        populate_array(view, data=builder.gep(source.data, [args[1]]),
                       shape=cgutils.pack_array(builder, [args[2], args[3]]),
                       strides=cgutils.pack_array(builder, [builder.mul(args[3], itemsize), itemsize]),
                       itemsize=itemsize, meminfo=source.meminfo, parent=None)
        return impl_ret_borrowed(context, builder, result, view._getvalue())
    return result(buf, types.intp, types.intp, types.intp), codegen


@njit(**KERNEL)
def rows(buf, col, capacity, n, width):
    """The (n, width) view at column offset `col` of a buffer laid out for `capacity` rows."""
    return _view(buf, col * capacity, n, width)


@njit(**KERNEL)
def matrix(theta, offset, fan_in, fan_out):
    """The (fan_in, fan_out) kernel stored at `offset` of a flat parameter (or gradient) vector."""
    return _view(theta, offset, fan_in, fan_out)


@njit(**KERNEL)
def bias(theta, offset, width):
    """The bias slice of theta, or an empty slice for a layer without one."""
    if offset < 0:
        return theta[:0]
    return theta[offset:offset + width]


# ---------------------------------------------------------------- dense: y = x W + b
@njit(**KERNEL)
def dense_forward(x, w, b, y):
    """x (n, i), w (i, o), b (o,) or (0,) without a bias -> y (n, o) = x w + b."""
    np.dot(x, w, y)
    if b.size:
        for i in range(y.shape[0]):
            for j in range(y.shape[1]):
                y[i, j] += b[j]


@njit(**KERNEL)
def dense_backward(x, w, dy, dw, db, dx):
    """x (n, i), w (i, o), dy (n, o) -> dw (i, o) = x^T dy and db (o,) = column sums of dy (overwritten, not
    accumulated); dx (n, i) = dy w^T unless dx is (n, 0) (the first layer needs no input gradient)."""
    np.dot(x.T, dy, dw)
    if db.size:
        db[:] = 0
        for i in range(dy.shape[0]):
            for j in range(dy.shape[1]):
                db[j] += dy[i, j]
    if dx.shape[1]:
        np.dot(dy, w.T, dx)


# ---------------------------------------------------------------- activations (derivatives from outputs)
@njit(**BY_CODE)
def activation_forward(act, x, y):
    """x (n, w) -> y (n, w) = act(x), element by element (softmax: row by row)."""
    if act == ACT_SOFTMAX:
        for i in range(x.shape[0]):
            softmax_row(x, i, y)
        return
    code = np.int64(act)  # not a literal: the element math compiles once for every code, not once per code
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[i, j] = activation_value(code, x[i, j])


@njit(**BY_CODE)
def activation_backward(act, x, y, dy, dx):
    """x, y, dy (n, w) -> dx (n, w) = dy times the activation's slope at the stored input x and output y (softmax:
    its Jacobian, row by row)."""
    if act == ACT_SOFTMAX:
        for i in range(dx.shape[0]):
            softmax_row_backward(y, dy, i, dx)
        return
    code = np.int64(act)
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = dy[i, j] * activation_slope(code, x[i, j], y[i, j])


# ---------------------------------------------------------------- inverted dropout
@njit(**KERNEL)
def dropout_forward(x, rate, seed, stream, step, row0, train, mask, y):
    """x (n, m) -> y (n, m), mask (n, m) (training only: each unit's scale). Training: zero each unit with
    probability `rate`, scale the kept ones by 1/(1 - rate).

    The draw for row r, unit j of step `step` is random_uniform(seed, stream, step, (row0 + r) * width + j),
    where row0 is the batch's first row within the global batch. Inference: identity.
    """
    n, m = x.shape
    if not train:
        for i in range(n):
            for j in range(m):
                y[i, j] = x[i, j]
        return
    for i in range(n):
        for j in range(m):
            scale = dropout_scale(x[i, j], rate, seed, stream, step, (row0 + i) * m + j)
            mask[i, j] = scale
            y[i, j] = x[i, j] * scale


@njit(**KERNEL)
def dropout_backward(mask, dy, dx):
    """mask, dy (n, m) -> dx (n, m) = dy * mask: the forward's scales applied to the gradient."""
    n, m = dx.shape
    for i in range(n):
        for j in range(m):
            dx[i, j] = dy[i, j] * mask[i, j]


# ---------------------------------------------------------------- batch normalization
@njit(**KERNEL)
def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, momentum, epsilon, train, stats, xhat, y, total, comm):
    """x (n, m), gamma, beta, moving_mean, moving_var (m,) -> y (n, m), xhat (n, m), stats (2m,). Training:
    normalize with the batch's mean and (biased) variance and update the moving statistics as Keras does (moving =
    moving * momentum + batch * (1 - momentum)); inference: use the moving ones.

    The batch is `total` rows over all ranks (x holds this rank's share; the sums are reduced over comm).
    stats[:m] receives the mean used, stats[m:] the inverse standard deviation; xhat the normalized x.
    """
    n, m = x.shape
    mean, inv_std = stats[:m], stats[m:2 * m]
    eps, mom, one, count = like(x, epsilon), like(x, momentum), like(x, 1.0), like(x, total)
    if train:
        mean[:] = 0
        inv_std[:] = 0
        for i in range(n):
            for j in range(m):
                mean[j] += x[i, j]
        allreduce_sum(mean, comm)
        mean /= count
        for i in range(n):
            for j in range(m):
                d = x[i, j] - mean[j]
                inv_std[j] += d * d
        allreduce_sum(inv_std, comm)
        for j in range(m):
            var = inv_std[j] / count
            inv_std[j] = one / math.sqrt(var + eps)
            moving_mean[j] = moving_mean[j] * mom + mean[j] * (one - mom)
            moving_var[j] = moving_var[j] * mom + var * (one - mom)
    else:
        for j in range(m):
            mean[j] = moving_mean[j]
            inv_std[j] = one / math.sqrt(moving_var[j] + eps)
    for i in range(n):
        for j in range(m):
            h = (x[i, j] - mean[j]) * inv_std[j]
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]


@njit(**KERNEL)
def batchnorm_backward(dy, xhat, gamma, stats, dgamma, dbeta, dx, total, comm):
    """dy, xhat (n, m), gamma (m,), stats (2m,) -> dgamma, dbeta (m,), dx (n, m) or (n, 0). Gradients of
    training-mode batch normalization; the batch statistics' own gradients are included:
    dx = gamma * inv_std / total * (total dy - dbeta - xhat dgamma), with dbeta and dgamma summed over all
    ranks. dgamma and dbeta keep this rank's share (the gradient all-reduce adds the shares up)."""
    n, m = dy.shape
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(n):
        for j in range(m):
            dbeta[j] += dy[i, j]
            dgamma[j] += dy[i, j] * xhat[i, j]
    if dx.shape[1]:
        sums = np.empty(2 * m, dy.dtype)
        for j in range(m):
            sums[j], sums[m + j] = dbeta[j], dgamma[j]
        allreduce_sum(sums, comm)
        inv_std, count = stats[m:2 * m], like(dy, total)
        for i in range(n):
            for j in range(m):
                dx[i, j] = gamma[j] * inv_std[j] / count * (count * dy[i, j] - sums[j] - xhat[i, j] * sums[m + j])


# ---------------------------------------------------------------- normalization with fixed statistics
@njit(**KERNEL)
def normalize_forward(x, mean, variance, invert, y):
    """x (n, m), mean, variance (m,) -> y (n, m) = (x - mean) / s, or with invert mean + x s; s = max(sqrt(variance),
    1e-7)."""
    for j in range(x.shape[1]):
        s = normalization_scale(variance[j])
        for i in range(x.shape[0]):
            y[i, j] = mean[j] + x[i, j] * s if invert else (x[i, j] - mean[j]) / s


@njit(**KERNEL)
def normalize_backward(variance, invert, dy, dx):
    """dy (n, m) -> dx (n, m) = dy / s (invert: dy s)."""
    for j in range(dx.shape[1]):
        s = normalization_scale(variance[j])
        for i in range(dx.shape[0]):
            dx[i, j] = dy[i, j] * s if invert else dy[i, j] / s


# ---------------------------------------------------------------- per-feature embeddings
@njit(**KERNEL)
def periodic_forward(x, c, y):
    """x (n, F), c (F, K) -> y (n, F*2K): feature f's 2K columns are cos v then sin v, v = 2 pi c[f] x[:, f]."""
    m, k = c.shape
    two_pi = like(x, 2.0 * math.pi)
    for i in range(x.shape[0]):
        for f in range(m):
            for j in range(k):
                v = two_pi * c[f, j] * x[i, f]
                y[i, 2 * k * f + j] = math.cos(v)
                y[i, 2 * k * f + k + j] = math.sin(v)


@njit(**KERNEL)
def periodic_backward(x, c, y, dy, dc, dx):
    """x (n, F), c (F, K), y and dy (n, F*2K) -> dc (F, K) (overwritten) and dx (n, F) unless dx is (n, 0): the
    slope of cos v is -sin v and of sin v is cos v, both read from y."""
    m, k = c.shape
    two_pi = like(x, 2.0 * math.pi)
    dc[:] = 0
    if dx.shape[1]:
        dx[:] = 0
    for i in range(x.shape[0]):
        for f in range(m):
            for j in range(k):
                a, b = 2 * k * f + j, 2 * k * f + k + j
                g = two_pi * (dy[i, b] * y[i, a] - dy[i, a] * y[i, b])  # d/dv, times 2 pi
                dc[f, j] += g * x[i, f]
                if dx.shape[1]:
                    dx[i, f] += g * c[f, j]


@njit(**KERNEL)
def _columns(x, start, width, out):
    """out (n, width) = x[:, start:start + width], contiguous for BLAS."""
    for i in range(x.shape[0]):
        for p in range(width):
            out[i, p] = x[i, start + p]


@njit(**KERNEL)
def feature_dense_forward(x, w, b, y):
    """x (n, F*a), w (F*a, o), b (F, o) -> y (n, F*o): feature f's columns y[:, f*o:(f+1)*o] = x[:, f*a:(f+1)*a]
    w[f*a:(f+1)*a] + b[f], a dense map of its own per feature (one matrix product each)."""
    m, o = b.shape
    a, n = w.shape[0] // m, x.shape[0]
    part, out = np.empty((n, a), x.dtype), np.empty((n, o), x.dtype)
    for f in range(m):
        _columns(x, f * a, a, part)
        np.dot(part, np.ascontiguousarray(w[f * a:(f + 1) * a]), out)
        for i in range(n):
            for q in range(o):
                y[i, f * o + q] = out[i, q] + b[f, q]


@njit(**KERNEL)
def feature_dense_backward(x, w, dy, dw, db, dx):
    """x (n, F*a), w (F*a, o), dy (n, F*o) -> dw (F*a, o), db (F, o) (overwritten) and dx (n, F*a) unless dx is
    (n, 0)."""
    m, o = db.shape
    a, n = w.shape[0] // m, x.shape[0]
    part, g, back = np.empty((a, n), x.dtype), np.empty((n, o), x.dtype), np.empty((n, a), x.dtype)
    grad, wt = np.empty((a, o), x.dtype), np.empty((o, a), x.dtype)
    for f in range(m):
        for i in range(n):
            for p in range(a):
                part[p, i] = x[i, f * a + p]
        _columns(dy, f * o, o, g)
        np.dot(part, g, grad)
        dw[f * a:(f + 1) * a] = grad
        db[f] = 0
        for i in range(n):
            for q in range(o):
                db[f, q] += g[i, q]
        if dx.shape[1]:
            for p in range(a):
                for q in range(o):
                    wt[q, p] = w[f * a + p, q]
            np.dot(g, wt, back)
            for i in range(n):
                for p in range(a):
                    dx[i, f * a + p] = back[i, p]


@njit(**KERNEL)
def embedding_forward(x, tables, layout, y):
    """x (n, m) with category codes, tables (flat rows of width d = layout[0]), layout (1 + 3m,) -> y (n, out):
    input column j with layout[1 + 3j] = r >= 0 writes row r + code of the tables (code clipped to its table's
    layout[2 + 3j] rows; the API refuses codes outside them) at output columns layout[3 + 3j] on; a column with
    r < 0 is copied to output column layout[3 + 3j]."""
    d = int(layout[0])
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            start, size, to = int(layout[1 + 3 * j]), int(layout[2 + 3 * j]), int(layout[3 + 3 * j])
            if start < 0:
                y[i, to] = x[i, j]
            else:
                row = (start + min(max(int(x[i, j]), 0), size - 1)) * d
                for q in range(d):
                    y[i, to + q] = tables[row + q]


@njit(**KERNEL)
def embedding_backward(x, layout, dy, dtables, dx):
    """x (n, m), layout as in embedding_forward, dy (n, out) -> dtables (the tables' rows, overwritten: each
    code's row gains the gradients of the outputs it gave) and dx (n, m) unless dx is (n, 0): dy of the columns
    passed through, 0 for the codes."""
    d = int(layout[0])
    for j in range(x.shape[1]):
        start, size = int(layout[1 + 3 * j]), int(layout[2 + 3 * j])
        if start >= 0:
            dtables[start * d:(start + size) * d] = 0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            start, size, to = int(layout[1 + 3 * j]), int(layout[2 + 3 * j]), int(layout[3 + 3 * j])
            if start < 0:
                if dx.shape[1]:
                    dx[i, j] = dy[i, to]
            else:
                if dx.shape[1]:
                    dx[i, j] = 0
                row = (start + min(max(int(x[i, j]), 0), size - 1)) * d
                for q in range(d):
                    dtables[row + q] += dy[i, to + q]


@njit(**KERNEL)
def _bins(edges, f):
    """How many of feature f's bins are real: its leading ones of positive width (adapt pads with the last edge)."""
    k = 0
    while k < edges.shape[1] - 1 and edges[f, k + 1] > edges[f, k]:
        k += 1
    return k


@njit(**KERNEL)
def piecewise_forward(x, edges, y):
    """x (n, F), edges (F, B + 1) -> y (n, F*B): rtdl's piecewise-linear encoding, (x - e_t) / (e_t+1 - e_t) for
    bin t of feature f, clipped to [0, 1] but for the first bin's lower and the last bin's upper side. A feature's
    bins are its leading ones of positive width; the others output 0."""
    m, b = edges.shape[0], edges.shape[1] - 1
    for f in range(m):
        k = _bins(edges, f)
        for i in range(x.shape[0]):
            for t in range(b):
                y[i, f * b + t] = piecewise_value(x[i, f], edges[f, t], edges[f, t + 1], t, k)[0]


@njit(**KERNEL)
def piecewise_backward(x, edges, dy, dx):
    """x (n, F), edges (F, B + 1), dy (n, F*B) -> dx (n, F) = the sum of dy times each bin's slope (1 / its width
    where unclipped, else 0), unless dx is (n, 0)."""
    if not dx.shape[1]:
        return
    m, b = edges.shape[0], edges.shape[1] - 1
    for f in range(m):
        k = _bins(edges, f)
        for i in range(x.shape[0]):
            acc = like(x, 0.0)
            for t in range(k):
                acc += dy[i, f * b + t] * piecewise_value(x[i, f], edges[f, t], edges[f, t + 1], t, k)[1]
            dx[i, f] = acc


# ---------------------------------------------------------------- losses and metrics (weighted sums over rows)
@njit(**BY_CODE)
def loss_backward(code, param, p, y, w, scale, dp):
    """dp (n, k) = scale * w[i] * d loss / d p for p (n, k), y (n, k) or (n, 1) (sparse codes), w (n,); scale =
    1 / (rows in the global batch * columns(code, k)) makes the loss Keras's weighted sum over the batch size."""
    kind = np.int64(code)  # not a literal: the element math compiles once for every code, not once per code
    for i in range(p.shape[0]):
        s = scale * w[i]
        if code >= ROW_CODES:
            row_loss_grad(kind, param, p, y, i, s, dp)
        else:
            for j in range(p.shape[1]):
                dp[i, j] = s * loss_grad(kind, param, p[i, j], y[i, j])


@njit(**BY_CODE)
def metric_sum(code, param, p, y, w, total, slot):
    """total[slot] += the sum over rows i of w[i] times the loss or metric of row i's elements (or of the row, for
    per-row codes), accumulated in float64; a counting metric adds its counts to its slots from `slot` on."""
    kind = np.int64(code)  # not a literal: the element math compiles once for every code, not once per code
    if code == METRIC_PRECISION or code == METRIC_RECALL or code == METRIC_AUC:  # counting metrics
        for i in range(p.shape[0]):
            for j in range(p.shape[1]):
                at, first, second = count_slot(kind, param, p[i, j], y[i, j])
                total[slot + at] += w[i] * first
                total[slot + at + 1] += w[i] * second
        return
    acc = 0.0
    for i in range(p.shape[0]):
        if code >= ROW_CODES:
            acc += w[i] * row_metric(kind, param, p, y, i)
        else:
            for j in range(p.shape[1]):
                acc += w[i] * metric_value(kind, param, p[i, j], y[i, j])
    total[slot] += acc


@njit(**KERNEL)
def regularize(w, l1, l2, count, scale, g, total, slot):
    """A weight penalty: total[slot] += count * (l1 sum|w| + l2 sum w^2) (float64); g += scale * (l1 sign(w) +
    2 l2 w), skipped when scale is 0. w, g (n,)."""
    acc = 0.0
    a, b, s = like(w, l1), like(w, 2.0 * l2), like(w, scale)
    for i in range(w.size):
        v = w[i]
        acc += l1 * abs(v) + l2 * v * v
        if scale != 0.0:
            g[i] += s * (a * np.sign(v) + b * v)
    total[slot] += count * acc


# ---------------------------------------------------------------- optimizers over the whole flat vector
# Each first applies Keras 3's decoupled weight decay, theta -= theta * weight_decay * lr (decay = wd * lr, 0 for
# none), then its step, in one pass over theta.
@njit(**KERNEL)
def _sgd(theta, grad, velocity, decay, lr, momentum, nesterov):
    """theta, grad, velocity (P,): Keras SGD, in place."""
    decay, lr, momentum = like(theta, decay), like(theta, lr), like(theta, momentum)
    for i in range(theta.size):
        theta[i], velocity[i] = sgd_step(theta[i] - theta[i] * decay, grad[i], velocity[i], lr, momentum, nesterov)


@njit(**KERNEL)
def _adam(theta, grad, m, v, decay, t, lr, beta_1, beta_2, epsilon):
    """theta, grad, m, v (P,): Keras Adam at step t (1-based), in place."""
    alpha = like(theta, adam_alpha(lr, beta_1, beta_2, t))
    c1, c2, eps, decay = like(theta, 1.0 - beta_1), like(theta, 1.0 - beta_2), like(theta, epsilon), like(theta, decay)
    for i in range(theta.size):
        theta[i], m[i], v[i] = adam_step(theta[i] - theta[i] * decay, grad[i], m[i], v[i], alpha, c1, c2, eps)


@njit(**KERNEL)
def _rmsprop(theta, grad, velocity, second, decay, lr, rho, momentum, epsilon, centered):
    """theta, grad, velocity, second (P,): Keras RMSprop, in place."""
    decay, lr, rho, momentum, eps = (like(theta, decay), like(theta, lr), like(theta, rho), like(theta, momentum),
                                     like(theta, epsilon))
    for i in range(theta.size):
        theta[i], velocity[i], second[i] = rmsprop_step(theta[i] - theta[i] * decay, grad[i], velocity[i], second[i],
                                                        lr, rho, momentum, eps, centered)


@njit(**BY_CODE)
def optimizer_update(code, schedule, opt, t, theta, grad):
    """Step t (1-based) of optimizer `code` (opt.code's kind) on theta with the bundle `opt`: the learning rate from
    the schedule of kind `schedule` (opt.schedule's) at t - 1 earlier steps (or hp[0]), hp = [lr, weight_decay, the
    optimizer's own hyperparameters in Keras order]."""
    hp = opt.hp
    lr = learning_rate(np.int64(schedule), opt.schedule, hp[0], t - 1)
    if code == OPT_ADAM:
        _adam(theta, grad, opt.slot1, opt.slot2, hp[1] * lr, t, lr, hp[2], hp[3], hp[4])
    elif code == OPT_RMSPROP:
        _rmsprop(theta, grad, opt.slot1, opt.slot2, hp[1] * lr, lr, hp[2], hp[3], hp[4], hp[5] != 0.0)
    else:
        _sgd(theta, grad, opt.slot1, hp[1] * lr, lr, hp[2], hp[3] != 0.0)


# ---------------------------------------------------------------- the network: walkers.py's walks, compiled here
@njit(**KERNEL)
def store(out, a, rows_out):
    """out[a:a + len(rows_out)] = rows_out (predictions into the caller's array)."""
    for i in range(rows_out.shape[0]):
        for j in range(rows_out.shape[1]):
            out[a + i, j] = rows_out[i, j]


# ---------------------------------------------------------------- entry points (called from Python with bundles)
# Written once, compiled per configuration by kernels(): they read its constants (e.g. OPTIMIZER and SCHEDULE) and
# call its copies of the walkers (train_step, evaluate_rows, add_metrics and output are not this module's names).
def evaluate(net, weights, ws, objective, X, Y, W, logs, comm):
    """Inference-mode loss and metrics over all rows of (X, Y) weighted by W: logs = [loss, *metrics] as weighted
    sums (the API divides them). Each rank of comm scores its share of the rows; the sums are reduced."""
    logs[:] = 0.0
    start, stop = share(X.shape[0], comm)
    evaluate_rows(net, weights, ws, objective, X, Y, W, start, stop, logs, np.int64(0))
    allreduce_sum(logs, comm)


def train_epoch(net, weights, opt, ws, objective, data, loop, step0, logs, comm):
    """One epoch: shuffle, then for every batch forward, loss, backward and update; then validation.

    step0 is the optimizer's step count at the start of the epoch; it keys the epoch's shuffle and, with
    the step within the epoch, the dropout masks, so every epoch of every fit draws fresh ones.
    Under MPI (comm an array [rank, size]) every rank holds all rows and takes its share of each batch of
    the one global shuffle; gradients, batch statistics and logs are summed over the ranks, so every rank
    applies the same update and the result is the single-process one.

    logs receives [loss, *metrics, val_loss, *val_metrics] as weighted sums over the rows (validation NaN when
    absent); the API turns them into Keras's means. Returns the number of steps taken: fewer than the epoch's
    when a batch's loss was not finite, in which case that batch's update was not applied and logs are NaN, or
    when loop.control[STOP] was set on any rank before the last step, in which case the epoch ended after that
    step's update (no validation; logs hold the partial sums). loop.control[DONE] counts the steps as they end."""
    X, Y, W = data.X, data.Y, data.W
    n, n_in = X.shape
    k = Y.shape[1]
    order = permutation(n, loop.seed, step0, loop.shuffle)
    width = objective.metric_slots[-1]
    logs[:] = 0.0
    batch_loss = np.zeros(2)  # [loss, stop requests]: one all-reduce agrees on both
    steps = (n + loop.batch_size - 1) // loop.batch_size
    loop.control[DONE] = 0
    for s in range(steps):
        a = s * loop.batch_size
        nb = min(loop.batch_size, n - a)
        lo, hi = share(nb, comm)
        xb, yb, wb = _view(ws.xin, 0, hi - lo, n_in), _view(ws.yin, 0, hi - lo, k), ws.win[:hi - lo]
        for r in range(hi - lo):
            source = order[a + lo + r]
            for c in range(n_in):
                xb[r, c] = X[source, c]
            for c in range(k):
                yb[r, c] = Y[source, c]
            wb[r] = W[source]
        step = step0 + s
        batch_loss[0] = 0.0
        train_step(net, weights, ws, objective, xb, yb, wb, Pass(True, loop.seed, step, lo, nb, comm), batch_loss)
        logs[0] += batch_loss[0]
        batch_loss[1] = 1.0 if loop.control[STOP] else 0.0
        allreduce_sum(batch_loss, comm)
        if not math.isfinite(batch_loss[0]):
            logs[:] = np.nan
            return s
        allreduce_sum(ws.grad, comm)
        add_metrics(objective, output(net, ws, hi - lo), yb, wb, logs, np.int64(0))
        optimizer_update(OPTIMIZER, SCHEDULE, opt, step + 1, weights.theta, ws.grad)
        loop.control[DONE] = s + 1
        if batch_loss[1] > 0.0 and s + 1 < steps:  # asked to stop (on any rank), before the epoch's end
            allreduce_sum(logs[:width], comm)
            logs[width:] = np.nan
            return s + 1
    allreduce_sum(logs[:width], comm)
    if data.Xv.shape[0]:
        evaluate(net, weights, ws, objective, data.Xv, data.Yv, data.Wv, logs[width:], comm)
    else:
        logs[width:] = np.nan
    return steps


# ---------------------------------------------------------------- one configuration's compiled engine
ENTRY_POINTS = ("train_epoch", "evaluate")  # this module's functions that call the walkers
_compiled = {}


def kernels(config):
    """The walkers and entry points (train_epoch, evaluate, predict, ...) of one configuration (config.Config),
    compiled with its constants on first use and cached on disk per configuration; the same object for the same
    configuration within a process."""
    if config.key not in _compiled:
        _compiled[config.key] = walkers.specialize(
            globals(), config, ENTRY_POINTS, lambda name, f: njit(**(BY_CODE if name in walkers.INLINE else KERNEL))(f))
    return _compiled[config.key]
