"""Numba CPU kernels, in network order with each forward beside its backward, and the fused loops.

Every kernel works for float32 (training) and float64 (gradient checks): constants are cast to the
array dtype with `like`, so float32 arithmetic stays float32. Buffers are flat 1-D arrays; an op's
output is a C-contiguous (rows, width) view made by `rows`, so matrix products go straight to BLAS.
"""
import math

import numpy as np
from numba import njit

from .elementwise import (
    activation_slope, activation_value, adam_alpha, adam_step, dropout_scale, like, loss_grad, metric_value,
    sgd_step,
)
from .plan import (
    ACT_SIGMOID, LOSS_BCE, LOSS_BCE_LOGITS, OP_ACTIVATION, OP_BATCHNORM, OP_DENSE, OP_DROPOUT, OPT_ADAM, T_A,
    T_ACT, T_F, T_FP, T_ID, T_IN, T_KIND, T_OUT, T_P, T_P2, T_S, T_X,
)
from .collective import allreduce_sum, share
from .rng import permutation

KERNEL = dict(cache=True, error_model="numpy", nogil=True)


@njit(**KERNEL)
def rows(buf, col, capacity, n, width):
    """The (n, width) view at column offset `col` of a buffer laid out for `capacity` rows."""
    start = col * capacity
    return buf[start:start + n * width].reshape((n, width))


@njit(**KERNEL)
def bias(theta, offset, width):
    """The bias slice of theta, or an empty slice for a layer without one."""
    if offset < 0:
        return theta[:0]
    return theta[offset:offset + width]


# ---------------------------------------------------------------- dense: y = x W + b
@njit(**KERNEL)
def dense_forward(x, w, b, y):
    np.dot(x, w, y)
    if b.size:
        for i in range(y.shape[0]):
            for j in range(y.shape[1]):
                y[i, j] += b[j]


@njit(**KERNEL)
def dense_backward(x, w, dy, dw, db, dx):
    """dW = x^T dy and db = column sums of dy (overwritten, not accumulated); dx = dy W^T unless dx has no
    columns (the first layer needs no input gradient)."""
    np.dot(x.T, dy, dw)
    if db.size:
        db[:] = 0
        for i in range(dy.shape[0]):
            for j in range(dy.shape[1]):
                db[j] += dy[i, j]
    if dx.shape[1]:
        np.dot(dy, w.T, dx)


# ---------------------------------------------------------------- activations (derivatives from outputs)
@njit(**KERNEL)
def activation_forward(act, x, y):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[i, j] = activation_value(act, x[i, j])


@njit(**KERNEL)
def activation_backward(act, y, dy, dx):
    """dx = dy times the activation's slope, read from the stored output y."""
    for i in range(dx.shape[0]):
        for j in range(dx.shape[1]):
            dx[i, j] = dy[i, j] * activation_slope(act, y[i, j])


# ---------------------------------------------------------------- inverted dropout
@njit(**KERNEL)
def dropout_forward(x, rate, seed, stream, step, row0, train, mask, y):
    """Training: zero each unit with probability `rate`, scale the kept ones by 1/(1 - rate).

    The draw for row r, unit j of step `step` is random_uniform(seed, stream, step, (row0 + r) * width + j),
    where row0 is the batch's first row within the global batch. Inference: identity.
    """
    if not train:
        y[:] = x
        return
    n, m = x.shape
    for i in range(n):
        for j in range(m):
            scale = dropout_scale(x[i, j], rate, seed, stream, step, (row0 + i) * m + j)
            mask[i, j] = scale
            y[i, j] = x[i, j] * scale


@njit(**KERNEL)
def dropout_backward(mask, dy, dx):
    n, m = dx.shape
    for i in range(n):
        for j in range(m):
            dx[i, j] = dy[i, j] * mask[i, j]


# ---------------------------------------------------------------- batch normalization
@njit(**KERNEL)
def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, momentum, epsilon, train, stats, xhat, y, total, comm):
    """Training: normalize with the batch's mean and (biased) variance and update the moving statistics
    as Keras does (moving = moving * momentum + batch * (1 - momentum)); inference: use the moving ones.

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
    """Gradients of training-mode batch normalization; the batch statistics' own gradients are included:
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
        sums = np.concatenate((dbeta, dgamma))
        allreduce_sum(sums, comm)
        inv_std, count = stats[m:2 * m], like(dy, total)
        for i in range(n):
            for j in range(m):
                dx[i, j] = gamma[j] * inv_std[j] / count * (count * dy[i, j] - sums[j] - xhat[i, j] * sums[m + j])


# ---------------------------------------------------------------- losses (per element; the model's loss is their mean)
@njit(**KERNEL)
def loss_forward(code, param, p, y):
    """Sum of the element losses over the batch, accumulated in float64 (a loss is also a metric)."""
    return metric_sum(code, param, p, y)


@njit(**KERNEL)
def loss_backward(code, param, p, y, scale, dp):
    """dp = scale * d loss / d p, where scale = 1 / (elements in the batch) makes the loss a mean."""
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            dp[i, j] = scale * loss_grad(code, param, p[i, j], y[i, j])


@njit(**KERNEL)
def metric_sum(code, param, p, y):
    """Sum over the batch of one metric (binary accuracy, or a loss used as a metric), in float64."""
    total = 0.0
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            total += metric_value(code, param, p[i, j], y[i, j])
    return total


# ---------------------------------------------------------------- optimizers over the whole flat vector
@njit(**KERNEL)
def sgd_update(theta, grad, velocity, lr, momentum, nesterov):
    lr, momentum = like(theta, lr), like(theta, momentum)
    for i in range(theta.size):
        theta[i], velocity[i] = sgd_step(theta[i], grad[i], velocity[i], lr, momentum, nesterov)


@njit(**KERNEL)
def adam_update(theta, grad, m, v, t, lr, beta_1, beta_2, epsilon):
    """Keras Adam at step t (1-based)."""
    alpha = like(theta, adam_alpha(lr, beta_1, beta_2, t))
    c1, c2, eps = like(theta, 1.0 - beta_1), like(theta, 1.0 - beta_2), like(theta, epsilon)
    for i in range(theta.size):
        theta[i], m[i], v[i] = adam_step(theta[i], grad[i], m[i], v[i], alpha, c1, c2, eps)


@njit(**KERNEL)
def optimizer_update(opt_code, hp, t, theta, grad, slot1, slot2):
    """One step of the compiled optimizer; hp holds its hyperparameters in Keras order."""
    if opt_code == OPT_ADAM:
        adam_update(theta, grad, slot1, slot2, t, hp[0], hp[1], hp[2], hp[3])
    else:
        sgd_update(theta, grad, slot1, hp[0], hp[1], hp[2] != 0.0)


# ---------------------------------------------------------------- the network: walk the op table
@njit(**KERNEL)
def forward(table, fparams, theta, state, x, acts, aux, feat, capacity, train, seed, step, row0, total, comm):
    """Run every op on the batch x; op i writes its output to its rows of `acts`.

    x is rows row0 .. row0 + len(x) of a batch of `total` rows spread over the ranks of comm (None: all here)."""
    n = x.shape[0]
    for i in range(table.shape[0]):
        kind, fan_in, fan_out = table[i, T_KIND], table[i, T_IN], table[i, T_OUT]
        inp = x if i == 0 else rows(acts, table[i - 1, T_A], capacity, n, fan_in)
        out = rows(acts, table[i, T_A], capacity, n, fan_out)
        p, fp = table[i, T_P], table[i, T_FP]
        if kind == OP_DENSE:
            w = theta[p:p + fan_in * fan_out].reshape((fan_in, fan_out))
            dense_forward(inp, w, bias(theta, table[i, T_P2], fan_out), out)
        elif kind == OP_ACTIVATION:
            activation_forward(table[i, T_ACT], inp, out)
        elif kind == OP_DROPOUT:
            mask = rows(aux, table[i, T_X], capacity, n, fan_out)
            dropout_forward(inp, fparams[fp], seed, table[i, T_ID], step, row0, train, mask, out)
        elif kind == OP_BATCHNORM:
            s, f, q = table[i, T_S], table[i, T_F], table[i, T_P2]
            batchnorm_forward(inp, theta[p:p + fan_out], theta[q:q + fan_out], state[s:s + fan_out],
                              state[s + fan_out:s + 2 * fan_out], fparams[fp], fparams[fp + 1], train,
                              feat[f:f + 2 * fan_out], rows(aux, table[i, T_X], capacity, n, fan_out), out, total,
                              comm)


@njit(**KERNEL)
def backward(table, theta, grad, x, acts, dacts, aux, feat, capacity, start, total, comm):
    """Backpropagate from d(output of op `start`), held in dacts, down to the first op with parameters.

    Every parameter gradient is overwritten, so grad holds exactly this batch's gradient afterwards."""
    n = x.shape[0]
    first = table.shape[0]
    for i in range(table.shape[0]):
        if table[i, T_KIND] == OP_DENSE or table[i, T_KIND] == OP_BATCHNORM:
            first = min(first, i)
    for i in range(start, first - 1, -1):
        kind, fan_in, fan_out = table[i, T_KIND], table[i, T_IN], table[i, T_OUT]
        inp = x if i == 0 else rows(acts, table[i - 1, T_A], capacity, n, fan_in)
        out = rows(acts, table[i, T_A], capacity, n, fan_out)
        dy = rows(dacts, table[i, T_A], capacity, n, fan_out)
        # no input gradient below the first op with parameters: dx then has no columns (any rows: a rank's
        # share of a batch may have none, and batchnorm must still take part in the reductions)
        dx = rows(dacts, table[i - 1, T_A] if i > 0 else 0, capacity, n, fan_in if i > first else 0)
        p = table[i, T_P]
        if kind == OP_DENSE:
            q = p + fan_in * fan_out
            w = theta[p:q].reshape((fan_in, fan_out))
            dw = grad[p:q].reshape((fan_in, fan_out))
            dense_backward(inp, w, dy, dw, bias(grad, table[i, T_P2], fan_out), dx)
        elif kind == OP_ACTIVATION:
            activation_backward(table[i, T_ACT], out, dy, dx)
        elif kind == OP_DROPOUT:
            dropout_backward(rows(aux, table[i, T_X], capacity, n, fan_out), dy, dx)
        elif kind == OP_BATCHNORM:
            f, q = table[i, T_F], table[i, T_P2]
            batchnorm_backward(dy, rows(aux, table[i, T_X], capacity, n, fan_out), theta[p:p + fan_out],
                               feat[f:f + 2 * fan_out], grad[p:p + fan_out], grad[q:q + fan_out], dx, total, comm)


@njit(**KERNEL)
def loss_head(table, loss_code, x, acts, capacity):
    """Where the loss reads from: (array, loss code, op index that wrote it).

    A model ending in a sigmoid trained with binary cross-entropy is scored on the sigmoid's input
    (the logits) with the stable log-sum-exp form, and its gradient is the fused p - y."""
    n, last = x.shape[0], table.shape[0] - 1
    if loss_code == LOSS_BCE and table[last, T_KIND] == OP_ACTIVATION and table[last, T_ACT] == ACT_SIGMOID:
        if last == 0:
            return x, LOSS_BCE_LOGITS, -1
        return rows(acts, table[last - 1, T_A], capacity, n, table[last - 1, T_OUT]), LOSS_BCE_LOGITS, last - 1
    return rows(acts, table[last, T_A], capacity, n, table[last, T_OUT]), loss_code, last


@njit(**KERNEL)
def train_step(table, fparams, theta, grad, state, x, y, acts, dacts, aux, feat, capacity, loss_code, loss_param,
               seed, step, row0, total, comm):
    """Forward, loss and backward for rows row0 .. row0 + len(x) of a batch of `total` rows (the rest are on
    the other ranks of comm; None: none): fills grad with this share's part of the batch-mean gradient and
    returns this share's summed loss."""
    forward(table, fparams, theta, state, x, acts, aux, feat, capacity, True, seed, step, row0, total, comm)
    z, code, index = loss_head(table, loss_code, x, acts, capacity)
    loss = loss_forward(code, loss_param, z, y)
    if index >= 0:
        dz = rows(dacts, table[index, T_A], capacity, z.shape[0], z.shape[1])
        loss_backward(code, loss_param, z, y, like(theta, 1.0 / (total * y.shape[1])), dz)
        backward(table, theta, grad, x, acts, dacts, aux, feat, capacity, index, total, comm)
    return loss


@njit(**KERNEL)
def add_metrics(metric_codes, metric_params, p, y, logs):
    for j in range(metric_codes.size):
        logs[1 + j] += metric_sum(metric_codes[j], metric_params[j], p, y)


@njit(**KERNEL)
def evaluate(table, fparams, theta, state, X, Y, acts, aux, feat, capacity, loss_code, loss_param, metric_codes,
             metric_params, logs, comm):
    """Inference-mode loss and metrics over all rows of (X, Y): logs = [loss, *metrics] as element means.
    Each rank of comm scores its share of the rows; the sums are reduced over the ranks."""
    logs[:] = 0.0
    start, stop = share(X.shape[0], comm)
    last = table.shape[0] - 1
    for a in range(start, stop, capacity):
        xb, yb = X[a:min(a + capacity, stop)], Y[a:min(a + capacity, stop)]
        forward(table, fparams, theta, state, xb, acts, aux, feat, capacity, False, 0, 0, 0, xb.shape[0], None)
        z, code, _ = loss_head(table, loss_code, xb, acts, capacity)
        logs[0] += loss_forward(code, loss_param, z, yb)
        add_metrics(metric_codes, metric_params,
                    rows(acts, table[last, T_A], capacity, xb.shape[0], table[last, T_OUT]), yb, logs)
    allreduce_sum(logs, comm)
    logs /= max(Y.size, 1)


@njit(**KERNEL)
def predict(table, fparams, theta, state, X, acts, aux, feat, capacity, out):
    """Inference-mode outputs for all rows of X, `capacity` rows at a time."""
    last = table.shape[0] - 1
    for a in range(0, X.shape[0], capacity):
        xb = X[a:a + capacity]
        forward(table, fparams, theta, state, xb, acts, aux, feat, capacity, False, 0, 0, 0, xb.shape[0], None)
        out[a:a + xb.shape[0]] = rows(acts, table[last, T_A], capacity, xb.shape[0], table[last, T_OUT])


@njit(**KERNEL)
def train_epoch(table, fparams, theta, grad, slot1, slot2, state, X, Y, Xv, Yv, xin, yin, acts, dacts, aux, feat,
                capacity, batch_size, shuffle, seed, step0, loss_code, loss_param, metric_codes,
                metric_params, opt_code, opt_hp, logs, comm):
    """One epoch: shuffle, then for every batch forward, loss, backward and update; then validation.

    step0 is the optimizer's step count at the start of the epoch; it keys the epoch's shuffle and, with
    the step within the epoch, the dropout masks, so every epoch of every fit draws fresh ones.
    Under MPI (comm an array [rank, size]) every rank holds all rows and takes its share of each batch of
    the one global shuffle; gradients, batch statistics and logs are summed over the ranks, so every rank
    applies the same update and the result is the single-process one.

    logs receives [loss, *metrics, val_loss, *val_metrics] (element means; validation NaN when absent).
    Returns the number of steps taken: fewer than the epoch's when a batch's loss was not finite, in which
    case that batch's update was not applied and logs[0] is NaN."""
    n, n_in = X.shape
    k = Y.shape[1]
    order = permutation(n, seed, step0) if shuffle else np.arange(n)
    width = 1 + metric_codes.size
    logs[:] = 0.0
    batch_loss = np.zeros(1)
    last = table.shape[0] - 1
    steps = (n + batch_size - 1) // batch_size
    for s in range(steps):
        a = s * batch_size
        nb = min(batch_size, n - a)
        lo, hi = share(nb, comm)
        xb = xin[:(hi - lo) * n_in].reshape((hi - lo, n_in))
        yb = yin[:(hi - lo) * k].reshape((hi - lo, k))
        for r in range(hi - lo):
            xb[r] = X[order[a + lo + r]]
            yb[r] = Y[order[a + lo + r]]
        step = step0 + s
        batch_loss[0] = train_step(table, fparams, theta, grad, state, xb, yb, acts, dacts, aux, feat, capacity,
                                   loss_code, loss_param, seed, step, lo, nb, comm)
        logs[0] += batch_loss[0]
        allreduce_sum(batch_loss, comm)
        if not np.isfinite(batch_loss[0]):
            logs[:] = np.nan
            return s
        allreduce_sum(grad, comm)
        add_metrics(metric_codes, metric_params, rows(acts, table[last, T_A], capacity, hi - lo, table[last, T_OUT]),
                    yb, logs)
        optimizer_update(opt_code, opt_hp, step + 1, theta, grad, slot1, slot2)
    allreduce_sum(logs[:width], comm)
    logs[:width] /= n * k
    if Xv.shape[0]:
        evaluate(table, fparams, theta, state, Xv, Yv, acts, aux, feat, capacity, loss_code, loss_param,
                 metric_codes, metric_params, logs[width:], comm)
    else:
        logs[width:] = np.nan
    return steps
