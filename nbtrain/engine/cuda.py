"""numba.cuda kernels with the CPU engine's names and contracts, and the host loop that walks the op table.

The functions named like those in cpu.py take device arrays (views of flat device buffers) and launch
kernels on the default stream; nothing comes back to the host until an epoch ends. The element math
(activations, dropout draws, losses, metrics, optimizer steps) is the @njit code of elementwise.py, which
Numba compiles for the GPU, so both targets compute the same numbers. CUDA kernels are float32 only.

Import this module only when CUDA is asked for: importing numba.cuda costs about 0.2 s.
"""
import math

import numpy as np
from numba import config, cuda

from . import cache  # noqa: F401  (first: the kernels below cache in the per-user folder)

from . import walkers
from .bundles import DONE, STOP, Pass
from .elementwise import (
    activation_slope, activation_value, adam_alpha, adam_step, dropout_scale, learning_rate, loss_grad,
    count_slot, metric_value, normalization_scale, rmsprop_step, row_loss_grad, row_metric, sgd_step, softmax_row, softmax_row_backward,
)
from .elementwise import piecewise_value
from .plan import ACT_SOFTMAX, COUNTING_CODES, OPT_ADAM, OPT_RMSPROP, ROW_CODES
from .rng import permutation

# The simulator runs every GPU thread as a Python thread: keep its blocks small.
SIMULATED = bool(config.ENABLE_CUDASIM)
TILE = 4 if SIMULATED else 16  # edge of the square shared-memory tiles of the matrix product
THREADS = 32 if SIMULATED else 256  # threads per block of element-wise kernels (a power of two)
MAX_BLOCKS = 2 if SIMULATED else 2048
COLS, LANES = (4, 4) if SIMULATED else (32, 8)  # column-reduction blocks: columns x row lanes


if SIMULATED:
    def _native(a):
        """The simulator's in-kernel array as the NumPy array it wraps, which the @njit row functions take."""
        return a._item._ary
else:
    @cuda.jit(device=True, inline=True)
    def _native(a):
        """On the GPU an in-kernel array is what the row functions take already."""
        return a


def _grid(count):
    """(blocks, threads) for a grid-stride kernel over `count` elements."""
    return min(max((count + THREADS - 1) // THREADS, 1), MAX_BLOCKS), THREADS


def rows(buf, col, capacity, n, width):
    """The (n, width) view at column offset `col` of a buffer laid out for `capacity` rows."""
    start = col * capacity
    return buf[start:start + n * width].reshape((n, width))


def matrix(theta, offset, fan_in, fan_out):
    """The (fan_in, fan_out) kernel stored at `offset` of a flat parameter (or gradient) vector."""
    return theta[offset:offset + fan_in * fan_out].reshape((fan_in, fan_out))


def like(x, value):
    """`value` as a float32 scalar: the CUDA kernels are float32 only."""
    return np.float32(value)


def store(out, a, rows_out):
    """out[a:a + len(rows_out)] = rows_out, device to device."""
    out[a:a + rows_out.shape[0]].copy_to_device(rows_out)


def bias(theta, offset, width):
    """The bias slice of theta, or an empty slice for a layer without one."""
    return theta[:0] if offset < 0 else theta[offset:offset + width]


# ---------------------------------------------------------------- kernels shared by several operations
@cuda.jit
def _matmul(a, b, c, trans_a, trans_b, bias_row):
    """c = op(a) @ op(b) (+ bias_row broadcast over rows), op transposing when asked; shared-memory tiles."""
    sa = cuda.shared.array((TILE, TILE), np.float32)
    sb = cuda.shared.array((TILE, TILE), np.float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row, col = cuda.blockIdx.y * TILE + ty, cuda.blockIdx.x * TILE + tx
    m, n = c.shape
    depth = a.shape[0] if trans_a else a.shape[1]
    acc = np.float32(0.0)
    for t in range((depth + TILE - 1) // TILE):
        ka, kb = t * TILE + tx, t * TILE + ty
        if row < m and ka < depth:
            sa[ty, tx] = a[ka, row] if trans_a else a[row, ka]
        else:
            sa[ty, tx] = np.float32(0.0)
        if col < n and kb < depth:
            sb[ty, tx] = b[col, kb] if trans_b else b[kb, col]
        else:
            sb[ty, tx] = np.float32(0.0)
        cuda.syncthreads()
        for q in range(TILE):
            acc += sa[ty, q] * sb[q, tx]
        cuda.syncthreads()
    if row < m and col < n:
        c[row, col] = acc + bias_row[col] if bias_row.size else acc


def _gemm(a, b, c, trans_a=False, trans_b=False, bias_row=None):
    m, n = c.shape
    grid = ((n + TILE - 1) // TILE, (m + TILE - 1) // TILE)
    _matmul[grid, (TILE, TILE)](a, b, c, trans_a, trans_b, c[:0, 0] if bias_row is None else bias_row)


@cuda.jit
def _column_sums(a, b, sums, products):
    """sums[j] = sum_i a[i, j] and products[j] = sum_i a[i, j] b[i, j], each when it has elements."""
    part_s = cuda.shared.array((LANES, COLS), np.float32)
    part_p = cuda.shared.array((LANES, COLS), np.float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    j = cuda.blockIdx.x * COLS + tx
    s = np.float32(0.0)
    p = np.float32(0.0)
    if j < a.shape[1]:
        for i in range(ty, a.shape[0], LANES):
            s += a[i, j]
            if products.size:
                p += a[i, j] * b[i, j]
    part_s[ty, tx] = s
    part_p[ty, tx] = p
    cuda.syncthreads()
    if ty == 0 and j < a.shape[1]:
        for lane in range(1, LANES):
            s += part_s[lane, tx]
            p += part_p[lane, tx]
        if sums.size:
            sums[j] = s
        if products.size:
            products[j] = p


def _reduce_columns(a, b, sums, products):
    _column_sums[((a.shape[1] + COLS - 1) // COLS,), (COLS, LANES)](a, b, sums, products)


@cuda.jit(device=True, inline=True)
def _block_add(acc, total, slot):
    """Each thread's float64 acc summed over the block (tree reduction), then one atomic add into total[slot]."""
    part = cuda.shared.array(THREADS, np.float64)
    tid = cuda.threadIdx.x
    part[tid] = acc
    cuda.syncthreads()
    half = THREADS // 2
    while half > 0:
        if tid < half:
            part[tid] += part[tid + half]
        cuda.syncthreads()
        half //= 2
    if tid == 0:
        cuda.atomic.add(total, slot, part[0])


@cuda.jit
def _score(code, param, p, y, w, total, slot):
    """total[slot] += sum over rows i of w[i] times metric_value of row i's elements (row_metric of the row, for
    per-row codes)."""
    acc = 0.0
    if code >= ROW_CODES:
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            acc += w[i] * row_metric(code, param, _native(p), _native(y), i)
    else:
        m = p.shape[1]
        for e in range(cuda.grid(1), p.size, cuda.gridsize(1)):
            acc += w[e // m] * metric_value(code, param, p[e // m, e % m], y[e // m, e % m])
    _block_add(acc, total, slot)


@cuda.jit
def _regularize(w, l1, l2, count, scale, g, total, slot):
    acc = 0.0
    a, b, s = np.float32(l1), np.float32(2.0 * l2), np.float32(scale)
    for i in range(cuda.grid(1), w.size, cuda.gridsize(1)):
        v = w[i]
        acc += l1 * abs(v) + l2 * v * v
        if scale != 0.0:
            sign = np.float32(1.0) if v > 0 else (np.float32(-1.0) if v < 0 else np.float32(0.0))
            g[i] += s * (a * sign + b * v)
    _block_add(acc * count, total, slot)


def regularize(w, l1, l2, count, scale, g, total, slot):
    """A weight penalty: total[slot] += count * (l1 sum|w| + l2 sum w^2); g += scale * its gradient (scale 0:
    none)."""
    if w.size:
        _regularize[_grid(w.size)](w, l1, l2, count, scale, g, total, slot)


# ---------------------------------------------------------------- dense: y = x W + b
def dense_forward(x, w, b, y):
    _gemm(x, w, y, bias_row=b)


def dense_backward(x, w, dy, dw, db, dx):
    """dW = x^T dy and db = column sums of dy (overwritten); dx = dy W^T unless dx has no columns."""
    _gemm(x, dy, dw, trans_a=True)
    if db.size:
        _reduce_columns(dy, dy, db, db[:0])
    if dx.shape[1]:
        _gemm(dy, w, dx, trans_b=True)


# ---------------------------------------------------------------- activations (derivatives from outputs)
@cuda.jit
def _activation_forward(act, x, y):
    m = x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[e // m, e % m] = activation_value(act, x[e // m, e % m])


@cuda.jit
def _softmax_forward(x, y):
    for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        softmax_row(_native(x), i, _native(y))


def activation_forward(act, x, y):
    if act == ACT_SOFTMAX:
        _softmax_forward[_grid(x.shape[0])](x, y)
    else:
        _activation_forward[_grid(x.size)](act, x, y)


@cuda.jit
def _activation_backward(act, x, y, dy, dx):
    m = dx.shape[1]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        dx[i, j] = dy[i, j] * activation_slope(act, x[i, j], y[i, j])


@cuda.jit
def _softmax_backward(y, dy, dx):
    for i in range(cuda.grid(1), dx.shape[0], cuda.gridsize(1)):
        softmax_row_backward(_native(y), _native(dy), i, _native(dx))


def activation_backward(act, x, y, dy, dx):
    if not dx.size:
        return
    if act == ACT_SOFTMAX:
        _softmax_backward[_grid(dx.shape[0])](y, dy, dx)
    else:
        _activation_backward[_grid(dx.size)](act, x, y, dy, dx)


# ---------------------------------------------------------------- inverted dropout
@cuda.jit
def _dropout_forward(x, rate, seed, stream, step, row0, mask, y):
    m = x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        scale = dropout_scale(x[i, j], rate, seed, stream, step, (row0 + i) * m + j)
        mask[i, j] = scale
        y[i, j] = x[i, j] * scale


def dropout_forward(x, rate, seed, stream, step, row0, train, mask, y):
    """Same draws as the CPU kernel: unit j of global row row0 + r uses index (row0 + r) * width + j."""
    if train:
        _dropout_forward[_grid(x.size)](x, rate, seed, stream, step, row0, mask, y)
    else:
        _multiply[_grid(x.size)](x, x[:0], y)


@cuda.jit
def _multiply(a, b, out):
    """out = a * b element by element (out = a when b is empty)."""
    m = a.shape[1]
    for e in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        out[i, j] = a[i, j] * b[i, j] if b.size else a[i, j]


def dropout_backward(mask, dy, dx):
    if dx.size:
        _multiply[_grid(dx.size)](dy, mask, dx)


# ---------------------------------------------------------------- batch normalization
@cuda.jit
def _batchnorm_statistics(n, momentum, epsilon, train, moving_mean, moving_var, mean, inv_std):
    """Per column: training turns sums (mean) and squared deviations (inv_std) into the batch mean and
    inverse standard deviation and updates the moving statistics; inference copies the moving ones."""
    for j in range(cuda.grid(1), mean.size, cuda.gridsize(1)):
        if train:
            var = inv_std[j] / np.float32(n)
            inv_std[j] = np.float32(1.0) / math.sqrt(var + np.float32(epsilon))
            moving_mean[j] = moving_mean[j] * np.float32(momentum) + mean[j] * (np.float32(1.0) - np.float32(momentum))
            moving_var[j] = moving_var[j] * np.float32(momentum) + var * (np.float32(1.0) - np.float32(momentum))
        else:
            mean[j] = moving_mean[j]
            inv_std[j] = np.float32(1.0) / math.sqrt(moving_var[j] + np.float32(epsilon))


@cuda.jit
def _batchnorm_center(x, mean, xhat):
    m = x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        xhat[i, j] = x[i, j] - mean[j]


@cuda.jit
def _batchnorm_mean(sums, n):
    for j in range(cuda.grid(1), sums.size, cuda.gridsize(1)):
        sums[j] /= np.float32(n)


@cuda.jit
def _batchnorm_scale(xhat, inv_std, gamma, beta, y):
    m = xhat.shape[1]
    for e in range(cuda.grid(1), xhat.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        h = xhat[i, j] * inv_std[j]
        xhat[i, j] = h
        y[i, j] = gamma[j] * h + beta[j]


def batchnorm_forward(x, gamma, beta, moving_mean, moving_var, momentum, epsilon, train, stats, xhat, y, total, comm):
    """Training: batch mean and biased variance, moving statistics updated as Keras does; inference:
    moving statistics. stats[:m] receives the mean used, stats[m:] the inverse standard deviation.
    One process only: comm must be None and total the rows of x."""
    n, m = x.shape
    mean, inv_std = stats[:m], stats[m:2 * m]
    if train:
        _reduce_columns(x, x, mean, mean[:0])
        _batchnorm_mean[_grid(m)](mean, n)
        _batchnorm_center[_grid(x.size)](x, mean, xhat)
        _reduce_columns(xhat, xhat, mean[:0], inv_std)
        _batchnorm_statistics[_grid(m)](n, momentum, epsilon, True, moving_mean, moving_var, mean, inv_std)
    else:
        _batchnorm_statistics[_grid(m)](n, momentum, epsilon, False, moving_mean, moving_var, mean, inv_std)
        _batchnorm_center[_grid(x.size)](x, mean, xhat)
    _batchnorm_scale[_grid(x.size)](xhat, inv_std, gamma, beta, y)


@cuda.jit
def _batchnorm_dx(dy, xhat, gamma, inv_std, dgamma, dbeta, dx):
    n, m = dx.shape
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        coef = gamma[j] * inv_std[j] / np.float32(n)
        dx[i, j] = coef * (np.float32(n) * dy[i, j] - dbeta[j] - xhat[i, j] * dgamma[j])


def batchnorm_backward(dy, xhat, gamma, stats, dgamma, dbeta, dx, total, comm):
    m = dy.shape[1]
    _reduce_columns(dy, xhat, dbeta, dgamma)
    if dx.shape[1]:
        _batchnorm_dx[_grid(dx.size)](dy, xhat, gamma, stats[m:2 * m], dgamma, dbeta, dx)


# ---------------------------------------------------------------- normalization with fixed statistics
@cuda.jit
def _normalize(x, mean, variance, invert, backward, y):
    """Forward: y = (x - mean) / s (invert: mean + x s); backward (x is dy): y = x / s (invert: x s)."""
    m = x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        s = normalization_scale(variance[j])
        if backward:
            y[i, j] = x[i, j] * s if invert else x[i, j] / s
        else:
            y[i, j] = mean[j] + x[i, j] * s if invert else (x[i, j] - mean[j]) / s


def normalize_forward(x, mean, variance, invert, y):
    _normalize[_grid(x.size)](x, mean, variance, invert, False, y)


def normalize_backward(variance, invert, dy, dx):
    if dx.size:
        _normalize[_grid(dx.size)](dy, variance, variance, invert, True, dx)


# ---------------------------------------------------------------- per-feature embeddings
TWO_PI = np.float32(2.0 * math.pi)


@cuda.jit
def _periodic_forward(x, c, y):
    m, k = c.shape
    for e in range(cuda.grid(1), x.shape[0] * m * k, cuda.gridsize(1)):
        i, f, j = e // (m * k), e % (m * k) // k, e % k
        v = TWO_PI * c[f, j] * x[i, f]
        y[i, 2 * k * f + j] = math.cos(v)
        y[i, 2 * k * f + k + j] = math.sin(v)


def periodic_forward(x, c, y):
    _periodic_forward[_grid(x.shape[0] * c.size)](x, c, y)


@cuda.jit
def _periodic_dc(x, c, y, dy, dc):
    """dc[f, j] = sum over rows of d/dv times 2 pi x (one thread per frequency)."""
    m, k = c.shape
    for e in range(cuda.grid(1), m * k, cuda.gridsize(1)):
        f, j = e // k, e % k
        a, b = 2 * k * f + j, 2 * k * f + k + j
        acc = np.float32(0.0)
        for i in range(x.shape[0]):
            acc += TWO_PI * (dy[i, b] * y[i, a] - dy[i, a] * y[i, b]) * x[i, f]
        dc[f, j] = acc


@cuda.jit
def _periodic_dx(c, y, dy, dx):
    """dx[i, f] = sum over frequencies of d/dv times 2 pi c (one thread per input element)."""
    m, k = c.shape
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, f = e // m, e % m
        acc = np.float32(0.0)
        for j in range(k):
            a, b = 2 * k * f + j, 2 * k * f + k + j
            acc += TWO_PI * (dy[i, b] * y[i, a] - dy[i, a] * y[i, b]) * c[f, j]
        dx[i, f] = acc


def periodic_backward(x, c, y, dy, dc, dx):
    _periodic_dc[_grid(c.size)](x, c, y, dy, dc)
    if dx.shape[1]:
        _periodic_dx[_grid(dx.size)](c, y, dy, dx)


@cuda.jit
def _feature_dense_forward(x, w, b, y):
    m, o = b.shape
    a = w.shape[0] // m
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        i, f, q = e // (m * o), e % (m * o) // o, e % o
        acc = b[f, q]
        for p in range(a):
            acc += x[i, f * a + p] * w[f * a + p, q]
        y[i, f * o + q] = acc


def feature_dense_forward(x, w, b, y):
    _feature_dense_forward[_grid(y.size)](x, w, b, y)


@cuda.jit
def _feature_dense_dw(x, dy, dw, db):
    """dw[f*a + p, q] = sum over rows of x dy (one thread per weight); the threads of p = 0 also sum db."""
    m, o = db.shape
    a = dw.shape[0] // m
    for e in range(cuda.grid(1), dw.size, cuda.gridsize(1)):
        r, q = e // o, e % o
        f = r // a
        acc, bias = np.float32(0.0), np.float32(0.0)
        for i in range(x.shape[0]):
            acc += x[i, r] * dy[i, f * o + q]
            bias += dy[i, f * o + q]
        dw[r, q] = acc
        if r % a == 0:
            db[f, q] = bias


@cuda.jit
def _feature_dense_dx(w, dy, dx):
    o = w.shape[1]
    a = w.shape[0] * o // dy.shape[1]
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, r = e // dx.shape[1], e % dx.shape[1]
        f = r // a
        acc = np.float32(0.0)
        for q in range(o):
            acc += dy[i, f * o + q] * w[r, q]
        dx[i, r] = acc


def feature_dense_backward(x, w, dy, dw, db, dx):
    _feature_dense_dw[_grid(dw.size)](x, dy, dw, db)
    if dx.shape[1]:
        _feature_dense_dx[_grid(dx.size)](w, dy, dx)


_layouts = {}  # an Embedding op's layout (host float64) -> (its device copy, its tables' size)


def _layout(layout):
    """The device copy of an Embedding layout (uploaded once) and the number of values in its tables."""
    key = layout.tobytes()
    if key not in _layouts:
        d, cells = int(layout[0]), layout[1:].reshape(-1, 3)
        used = cells[cells[:, 0] >= 0]
        _layouts[key] = (cuda.to_device(np.ascontiguousarray(layout)), int((used[:, 0] + used[:, 1]).max()) * d)
    return _layouts[key]


@cuda.jit
def _embedding_forward(x, tables, layout, y):
    d, m = int(layout[0]), x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        start, size, to = int(layout[1 + 3 * j]), int(layout[2 + 3 * j]), int(layout[3 + 3 * j])
        if start < 0:
            y[i, to] = x[i, j]
        else:
            row = (start + min(max(int(x[i, j]), 0), size - 1)) * d
            for q in range(d):
                y[i, to + q] = tables[row + q]


def embedding_forward(x, tables, layout, y):
    _embedding_forward[_grid(x.size)](x, tables, _layout(layout)[0], y)


@cuda.jit
def _zero(a):
    for e in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[e] = np.float32(0.0)


@cuda.jit
def _embedding_backward(x, layout, dy, dtables, dx):
    """Scatter-add of each code's output gradients into its row (atomic adds); dx: dy of the columns passed
    through, 0 for the codes."""
    d, m = int(layout[0]), x.shape[1]
    for e in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        start, size, to = int(layout[1 + 3 * j]), int(layout[2 + 3 * j]), int(layout[3 + 3 * j])
        if start < 0:
            if dx.shape[1]:
                dx[i, j] = dy[i, to]
        else:
            if dx.shape[1]:
                dx[i, j] = np.float32(0.0)
            row = (start + min(max(int(x[i, j]), 0), size - 1)) * d
            for q in range(d):
                cuda.atomic.add(dtables, row + q, dy[i, to + q])


def embedding_backward(x, layout, dy, dtables, dx):
    device_layout, size = _layout(layout)
    _zero[_grid(size)](dtables[:size])
    _embedding_backward[_grid(x.size)](x, device_layout, dy, dtables, dx)


@cuda.jit(device=True)
def _bins(edges, f):
    k = 0
    while k < edges.shape[1] - 1 and edges[f, k + 1] > edges[f, k]:
        k += 1
    return k


@cuda.jit
def _piecewise_forward(x, edges, y):
    m, b = edges.shape[0], edges.shape[1] - 1
    for e in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        i, f, t = e // (m * b), e % (m * b) // b, e % b
        y[i, f * b + t] = piecewise_value(x[i, f], edges[f, t], edges[f, t + 1], t, _bins(edges, f))[0]


def piecewise_forward(x, edges, y):
    _piecewise_forward[_grid(y.size)](x, edges, y)


@cuda.jit
def _piecewise_backward(x, edges, dy, dx):
    m, b = edges.shape[0], edges.shape[1] - 1
    for e in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        i, f = e // m, e % m
        k = _bins(edges, f)
        acc = np.float32(0.0)
        for t in range(k):
            acc += dy[i, f * b + t] * piecewise_value(x[i, f], edges[f, t], edges[f, t + 1], t, k)[1]
        dx[i, f] = acc


def piecewise_backward(x, edges, dy, dx):
    if dx.shape[1]:
        _piecewise_backward[_grid(dx.size)](x, edges, dy, dx)


# ---------------------------------------------------------------- losses and metrics (weighted sums over rows)
@cuda.jit
def _count(code, param, p, y, w, total, slot):
    """A counting metric's weighted counts into its slots from `slot` on (one float64 atomic per element and slot)."""
    m = p.shape[1]
    for e in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        at, first, second = count_slot(code, param, p[i, j], y[i, j])
        cuda.atomic.add(total, slot + at, np.float64(w[i] * first))
        cuda.atomic.add(total, slot + at + 1, np.float64(w[i] * second))


def metric_sum(code, param, p, y, w, total, slot):
    """total[slot] += one loss or metric's weighted sum over the batch, or a counting metric's counts into its slots
    (on the device: nothing comes back until the epoch ends)."""
    if code in COUNTING_CODES:
        _count[_grid(p.size)](code, param, p, y, w, total, slot)
    else:
        _score[_grid(p.shape[0] if code >= ROW_CODES else p.size)](code, param, p, y, w, total, slot)


@cuda.jit
def _loss_backward(code, param, p, y, w, scale, dp):
    if code >= ROW_CODES:
        for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
            row_loss_grad(code, param, _native(p), _native(y), i, scale * w[i], _native(dp))
        return
    m = p.shape[1]
    for e in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        i, j = e // m, e % m
        dp[i, j] = scale * w[i] * loss_grad(code, param, p[i, j], y[i, j])


def loss_backward(code, param, p, y, w, scale, dp):
    count = p.shape[0] if code >= ROW_CODES else p.size
    _loss_backward[_grid(count)](code, param, p, y, w, np.float32(scale), dp)


# ---------------------------------------------------------------- optimizers over the whole flat vector
# Keras 3's decoupled weight decay first (decay = wd * lr), then the step, as on the CPU.
@cuda.jit
def _sgd(theta, grad, velocity, decay, lr, momentum, nesterov, halted):
    if halted[0]:
        return
    for i in range(cuda.grid(1), theta.size, cuda.gridsize(1)):
        theta[i], velocity[i] = sgd_step(theta[i] - theta[i] * decay, grad[i], velocity[i], lr, momentum, nesterov)


@cuda.jit
def _adam(theta, grad, m, v, decay, alpha, c1, c2, eps, halted):
    if halted[0]:
        return
    for i in range(cuda.grid(1), theta.size, cuda.gridsize(1)):
        theta[i], m[i], v[i] = adam_step(theta[i] - theta[i] * decay, grad[i], m[i], v[i], alpha, c1, c2, eps)


@cuda.jit
def _rmsprop(theta, grad, velocity, second, decay, lr, rho, momentum, eps, centered, halted):
    if halted[0]:
        return
    for i in range(cuda.grid(1), theta.size, cuda.gridsize(1)):
        theta[i], velocity[i], second[i] = rmsprop_step(theta[i] - theta[i] * decay, grad[i], velocity[i], second[i],
                                                        lr, rho, momentum, eps, centered)


def optimizer_update(code, schedule, opt, t, theta, grad, halted):
    """Step t (1-based) of optimizer `code` on theta with the bundle `opt`, skipped on the device once `halted` is
    set; the learning rate (schedule of kind `schedule`) is computed on the host by the CPU's function."""
    if not theta.size:
        return
    hp, f = opt.hp, np.float32
    lr = learning_rate(schedule, opt.schedule, hp[0], t - 1)
    decay, grid = f(hp[1] * lr), _grid(theta.size)
    if code == OPT_ADAM:
        _adam[grid](theta, grad, opt.slot1, opt.slot2, decay, f(adam_alpha(lr, hp[2], hp[3], t)), f(1.0 - hp[2]),
                    f(1.0 - hp[3]), f(hp[4]), halted)
    elif code == OPT_RMSPROP:
        _rmsprop[grid](theta, grad, opt.slot1, opt.slot2, decay, f(lr), f(hp[2]), f(hp[3]), f(hp[4]), bool(hp[5]),
                       halted)
    else:
        _sgd[grid](theta, grad, opt.slot1, decay, f(lr), f(hp[2]), bool(hp[3]), halted)


@cuda.jit
def _halt_if_not_finite(total, slot, halted, step):
    """Set halted to step + 1 the first time total[slot] is NaN or infinite."""
    if cuda.grid(1) == 0 and halted[0] == 0:
        value = total[slot]
        if value != value or value - value != 0.0:
            halted[0] = step + 1


@cuda.jit
def _gather(X, Y, W, order, start, xb, yb, wb):
    """xb, yb, wb = the rows order[start:start + len(xb)] of X, Y, W."""
    n_in, k = X.shape[1], Y.shape[1]
    width = n_in + k + 1
    for e in range(cuda.grid(1), xb.shape[0] * width, cuda.gridsize(1)):
        r, c = e // width, e % width
        src = order[start + r]
        if c < n_in:
            xb[r, c] = X[src, c]
        elif c < n_in + k:
            yb[r, c - n_in] = Y[src, c - n_in]
        else:
            wb[r] = W[src]


# ---------------------------------------------------------------- entry points: walkers.py's walks, as host code
# Written once, bound per configuration by kernels(): they read its constants (e.g. OPTIMIZER and SCHEDULE) and
# call its copies of the walkers (train_step, evaluate_rows, add_metrics and output are not this module's names).
def evaluate(net, weights, ws, objective, X, Y, W, logs, comm):
    """Inference-mode loss and metrics over all rows of (X, Y) weighted by W: logs = [loss, *metrics] as weighted
    sums."""
    _one_process(comm)
    total = cuda.to_device(np.zeros(logs.size, np.float64))
    evaluate_rows(net, weights, ws, objective, X, Y, W, 0, X.shape[0], total, 0)
    logs[:] = total.copy_to_host()


def train_epoch(net, weights, opt, ws, objective, data, loop, step0, logs, comm):
    """cpu.train_epoch on the GPU: same arguments (device arrays for data, weights and buffers; host arrays
    for the table, hyperparameters and logs), same shuffle and dropout draws, same result contract.

    The shuffle order is computed on the host (the same function as on the CPU) and uploaded; the losses
    and metrics accumulate on the device and come back once. A non-finite batch loss halts the optimizer
    on the device, so that batch's update and all later ones are skipped, as on the CPU; loop.control is read and
    written on the host after each step's launches."""
    _one_process(comm)
    X, Y, W = data.X, data.Y, data.W
    n, n_in = X.shape
    k = Y.shape[1]
    order = cuda.to_device(permutation(n, loop.seed, step0, loop.shuffle))
    width = objective.metric_slots[-1]
    total = cuda.to_device(np.zeros(logs.size, np.float64))
    halted = cuda.to_device(np.zeros(1, np.int64))
    steps = (n + loop.batch_size - 1) // loop.batch_size
    loop.control[DONE] = 0
    stopped_at = steps
    for s in range(steps):
        a = s * loop.batch_size
        nb = min(loop.batch_size, n - a)
        xb, yb, wb = ws.xin[:nb * n_in].reshape((nb, n_in)), ws.yin[:nb * k].reshape((nb, k)), ws.win[:nb]
        _gather[_grid(nb * (n_in + k + 1))](X, Y, W, order, a, xb, yb, wb)
        step = step0 + s
        train_step(net, weights, ws, objective, xb, yb, wb, Pass(True, loop.seed, step, 0, nb, None), total)
        _halt_if_not_finite[1, 1](total, 0, halted, s)
        add_metrics(objective, output(net, ws, nb), yb, wb, total, 0)
        optimizer_update(OPTIMIZER, SCHEDULE, opt, step + 1, weights.theta, ws.grad, halted)
        loop.control[DONE] = s + 1
        if loop.control[STOP] and s + 1 < steps:
            stopped_at = s + 1
            break
    if data.Xv.shape[0] and stopped_at == steps:
        evaluate_rows(net, weights, ws, objective, data.Xv, data.Yv, data.Wv, 0, data.Xv.shape[0], total, width)
    stopped = int(halted.copy_to_host()[0])
    if stopped:
        logs[:] = np.nan
        return stopped - 1
    logs[:] = total.copy_to_host()
    if not data.Xv.shape[0] or stopped_at < steps:
        logs[width:] = np.nan
    return stopped_at


def _one_process(comm):
    if comm is not None:
        raise ValueError("the CUDA engine trains in one process: data-parallel training over MPI runs on the CPU")


def upload(array):
    """A device copy of a host array (copied once per fit)."""
    return cuda.to_device(np.ascontiguousarray(array))


# ---------------------------------------------------------------- one configuration's engine
ENTRY_POINTS = ("train_epoch", "evaluate")  # this module's functions that call the walkers
_bound = {}


def kernels(config):
    """The walkers and entry points (train_epoch, evaluate, predict, ...) of one configuration (config.Config), as
    host code that launches this module's kernels; the same object for the same configuration within a process."""
    if config.key not in _bound:
        _bound[config.key] = walkers.specialize(globals(), config, ENTRY_POINTS)
    return _bound[config.key]
