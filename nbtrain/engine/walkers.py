"""The walks over the op table that both targets share, written once: forward, backward, where the loss reads
from, one training step, and inference over many rows. They are plain functions over names that each target
module defines (rows, matrix, bias, the layer kernels, metric_sum, loss_backward, store) and over the constants of
a model's configuration (config.py: USE_<code> flags, HEAD, OPTIMIZER, ...). `specialize(namespace, config)` makes
a target's copies for one configuration; cpu.py compiles them with its kernels (@njit, cached per configuration),
cuda.py runs them as host code that launches its kernels. Nothing here is called directly.

Branches guarded by a USE_ flag that is False are pruned by Numba before typing, so a model compiles only the
kernels it uses; the dispatchers (activate, score) turn a run-time code into a call with that code as a constant.

Shapes: x is (n, n_in) for a batch of n rows; op i writes its (n, fan_out) output at column offset
table[i, T_A] of ws.acts (laid out for ws.capacity rows) and, in backward, its output's gradient at the same
place of ws.dacts.
"""
import types
from types import SimpleNamespace

import numpy as np

from .elementwise import columns
from .plan import (
    ACT_ELU, ACT_GELU, ACT_LEAKY_RELU, ACT_LINEAR, ACT_MISH, ACT_RELU, ACT_SELU, ACT_SIGMOID, ACT_SILU, ACT_SOFTMAX,
    ACT_SOFTPLUS, ACT_TANH,
    LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE, LOSS_SCE_LOGITS,
    METRIC_AUC, METRIC_BINARY_ACCURACY, METRIC_CATEGORICAL_ACCURACY, METRIC_PRECISION, METRIC_RECALL,
    METRIC_SPARSE_CATEGORICAL_ACCURACY, OP_ACTIVATION, OP_BATCHNORM, OP_DENSE, OP_DROPOUT, OP_NORMALIZE, T_A, T_ACT,
    OP_EMBEDDING, OP_FEATURE_DENSE, OP_PERIODIC, OP_PIECEWISE,
    T_F, T_FP, T_ID, T_IN, T_KIND, T_OUT, T_P, T_P2, T_R, T_S, T_X,
)


# What each target module defines for the walkers (its own kernels and views); unbound here.
TARGET = ("rows", "matrix", "bias", "like", "store", "dense_forward", "dense_backward", "activation_forward",
          "activation_backward", "dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
          "normalize_forward", "normalize_backward", "metric_sum", "loss_backward", "regularize", "Pass",
          "periodic_forward", "periodic_backward", "feature_dense_forward", "feature_dense_backward",
          "embedding_forward", "embedding_backward", "piecewise_forward", "piecewise_backward")
rows = matrix = bias = like = store = dense_forward = dense_backward = activation_forward = None
activation_backward = dropout_forward = dropout_backward = batchnorm_forward = batchnorm_backward = None
normalize_forward = normalize_backward = metric_sum = loss_backward = regularize = Pass = None
periodic_forward = periodic_backward = feature_dense_forward = feature_dense_backward = None
embedding_forward = embedding_backward = piecewise_forward = piecewise_backward = None
WALKERS = ("activate", "activation_step", "score", "forward", "backward", "loss_head", "output", "add_penalties",
           "train_step", "add_metrics", "evaluate_rows", "predict")
# Walkers inlined into their callers: small, and without calls whose branches need pruning first.
INLINE = ("activation_step", "loss_head", "output")


def specialize(namespace, config, entry_points, wrap=None):
    """One configuration's engine: copies of the walkers and of the target's `entry_points` (its own functions that
    call them), as a namespace of functions by name. Their globals are a copy of `namespace` (the target module's,
    which must define every name in TARGET) with the walkers' other globals (the plan's codes, numpy) and
    config.constants added, and their qualified names end in config.key (so Numba caches each configuration apart).
    `wrap(name, copy)` makes each copy what the target runs (cpu: @njit; none: host code); the wrapped copies are
    stored in the globals, so they call one another."""
    missing = [name for name in TARGET if name not in namespace]
    if missing:
        raise NameError(f"{namespace['__name__']} does not define {', '.join(missing)} for the walkers")
    ns = dict(namespace)
    used = {name for walker in WALKERS for name in globals()[walker].__code__.co_names}
    ns.update({name: globals()[name] for name in sorted(used - set(TARGET) - set(WALKERS))
               if name in globals() and name not in ns})
    ns.update(config.constants)
    names = WALKERS + tuple(entry_points)
    for name in names:
        source = globals()[name] if name in WALKERS else namespace[name]
        copy = types.FunctionType(source.__code__, ns, name, source.__defaults__)
        copy.__qualname__ = f"{name}__{config.key}"
        copy.__doc__ = source.__doc__
        ns[name] = copy if wrap is None else wrap(name, copy)
    return SimpleNamespace(**{name: ns[name] for name in names})


def activate(act, x, y, dy, dx, backward):
    """Activation `act` forward (x -> y) or backward (x, y, dy -> dx) with the code a constant in each branch; only
    the model's activations (USE_ACT_ flags) are compiled."""
    if USE_ACT_RELU and act == ACT_RELU:
        return activation_step(ACT_RELU, x, y, dy, dx, backward)
    if USE_ACT_SIGMOID and act == ACT_SIGMOID:
        return activation_step(ACT_SIGMOID, x, y, dy, dx, backward)
    if USE_ACT_SOFTMAX and act == ACT_SOFTMAX:
        return activation_step(ACT_SOFTMAX, x, y, dy, dx, backward)
    if USE_ACT_TANH and act == ACT_TANH:
        return activation_step(ACT_TANH, x, y, dy, dx, backward)
    if USE_ACT_ELU and act == ACT_ELU:
        return activation_step(ACT_ELU, x, y, dy, dx, backward)
    if USE_ACT_GELU and act == ACT_GELU:
        return activation_step(ACT_GELU, x, y, dy, dx, backward)
    if USE_ACT_LEAKY_RELU and act == ACT_LEAKY_RELU:
        return activation_step(ACT_LEAKY_RELU, x, y, dy, dx, backward)
    if USE_ACT_SOFTPLUS and act == ACT_SOFTPLUS:
        return activation_step(ACT_SOFTPLUS, x, y, dy, dx, backward)
    if USE_ACT_SILU and act == ACT_SILU:
        return activation_step(ACT_SILU, x, y, dy, dx, backward)
    if USE_ACT_SELU and act == ACT_SELU:
        return activation_step(ACT_SELU, x, y, dy, dx, backward)
    if USE_ACT_MISH and act == ACT_MISH:
        return activation_step(ACT_MISH, x, y, dy, dx, backward)
    if USE_ACT_LINEAR and act == ACT_LINEAR:
        return activation_step(ACT_LINEAR, x, y, dy, dx, backward)


def activation_step(code, x, y, dy, dx, backward):
    """activation_forward or activation_backward of `code` (both arguments constants at every call)."""
    if backward:
        activation_backward(code, x, y, dy, dx)
    else:
        activation_forward(code, x, y)


def score(code, param, p, y, w, sums, slot):
    """metric_sum of objective `code` (a loss or metric), with the code a constant in each branch; only the model's
    loss and metrics (USE_LOSS_ and USE_METRIC_ flags) are compiled."""
    if USE_LOSS_MAE and code == LOSS_MAE:
        metric_sum(LOSS_MAE, param, p, y, w, sums, slot)
    elif USE_LOSS_MSE and code == LOSS_MSE:
        metric_sum(LOSS_MSE, param, p, y, w, sums, slot)
    elif USE_LOSS_HUBER and code == LOSS_HUBER:
        metric_sum(LOSS_HUBER, param, p, y, w, sums, slot)
    elif USE_LOSS_BCE and code == LOSS_BCE:
        metric_sum(LOSS_BCE, param, p, y, w, sums, slot)
    elif USE_LOSS_BCE_LOGITS and code == LOSS_BCE_LOGITS:
        metric_sum(LOSS_BCE_LOGITS, param, p, y, w, sums, slot)
    elif USE_METRIC_BINARY_ACCURACY and code == METRIC_BINARY_ACCURACY:
        metric_sum(METRIC_BINARY_ACCURACY, param, p, y, w, sums, slot)
    elif USE_METRIC_PRECISION and code == METRIC_PRECISION:
        metric_sum(METRIC_PRECISION, param, p, y, w, sums, slot)
    elif USE_METRIC_RECALL and code == METRIC_RECALL:
        metric_sum(METRIC_RECALL, param, p, y, w, sums, slot)
    elif USE_METRIC_AUC and code == METRIC_AUC:
        metric_sum(METRIC_AUC, param, p, y, w, sums, slot)
    elif USE_LOSS_CCE and code == LOSS_CCE:
        metric_sum(LOSS_CCE, param, p, y, w, sums, slot)
    elif USE_LOSS_CCE_LOGITS and code == LOSS_CCE_LOGITS:
        metric_sum(LOSS_CCE_LOGITS, param, p, y, w, sums, slot)
    elif USE_LOSS_SCE and code == LOSS_SCE:
        metric_sum(LOSS_SCE, param, p, y, w, sums, slot)
    elif USE_LOSS_SCE_LOGITS and code == LOSS_SCE_LOGITS:
        metric_sum(LOSS_SCE_LOGITS, param, p, y, w, sums, slot)
    elif USE_METRIC_CATEGORICAL_ACCURACY and code == METRIC_CATEGORICAL_ACCURACY:
        metric_sum(METRIC_CATEGORICAL_ACCURACY, param, p, y, w, sums, slot)
    elif USE_METRIC_SPARSE_CATEGORICAL_ACCURACY and code == METRIC_SPARSE_CATEGORICAL_ACCURACY:
        metric_sum(METRIC_SPARSE_CATEGORICAL_ACCURACY, param, p, y, w, sums, slot)


def forward(net, weights, ws, x, ps):
    """Run every op on the batch x; op i writes its output to its rows of ws.acts. ps (a Pass) says whether this
    is training, the dropout draw's seed and step, and where x sits in the global batch of ps.total rows."""
    table, fparams, theta, state = net.table, net.fparams, weights.theta, weights.state
    n = x.shape[0]
    for i in range(table.shape[0]):
        kind, fan_in, fan_out = table[i, T_KIND], table[i, T_IN], table[i, T_OUT]
        inp = x if i == 0 else rows(ws.acts, table[i - 1, T_A], ws.capacity, n, fan_in)
        out = rows(ws.acts, table[i, T_A], ws.capacity, n, fan_out)
        p, fp = table[i, T_P], table[i, T_FP]
        if USE_OP_DENSE and kind == OP_DENSE:
            dense_forward(inp, matrix(theta, p, fan_in, fan_out), bias(theta, table[i, T_P2], fan_out), out)
        elif USE_OP_ACTIVATION and kind == OP_ACTIVATION:
            activate(table[i, T_ACT], inp, out, out, out, False)
        elif USE_OP_DROPOUT and kind == OP_DROPOUT:
            mask = rows(ws.aux, table[i, T_X], ws.capacity, n, fan_out)
            dropout_forward(inp, fparams[fp], ps.seed, table[i, T_ID], ps.step, ps.row0, ps.train, mask, out)
        elif USE_OP_BATCHNORM and kind == OP_BATCHNORM:
            s, f, q = table[i, T_S], table[i, T_F], table[i, T_P2]
            batchnorm_forward(inp, theta[p:p + fan_out], theta[q:q + fan_out], state[s:s + fan_out],
                              state[s + fan_out:s + 2 * fan_out], fparams[fp], fparams[fp + 1], ps.train,
                              ws.feat[f:f + 2 * fan_out], rows(ws.aux, table[i, T_X], ws.capacity, n, fan_out),
                              out, ps.total, ps.comm)
        elif USE_OP_NORMALIZE and kind == OP_NORMALIZE:
            s = table[i, T_S]
            normalize_forward(inp, state[s:s + fan_out], state[s + fan_out:s + 2 * fan_out], fparams[fp] != 0.0, out)
        elif USE_OP_PERIODIC and kind == OP_PERIODIC:
            periodic_forward(inp, matrix(theta, p, fan_in, fan_out // (2 * fan_in)), out)
        elif USE_OP_FEATURE_DENSE and kind == OP_FEATURE_DENSE:
            m = np.int64(fparams[fp])
            feature_dense_forward(inp, matrix(theta, p, fan_in, fan_out // m),
                                  matrix(theta, table[i, T_P2], m, fan_out // m), out)
        elif USE_OP_EMBEDDING and kind == OP_EMBEDDING:
            embedding_forward(inp, theta[p:], fparams[fp:fp + 1 + 3 * fan_in], out)
        elif USE_OP_PIECEWISE and kind == OP_PIECEWISE:
            piecewise_forward(inp, matrix(state, table[i, T_S], fan_in, fan_out // fan_in + 1), out)


def backward(net, weights, ws, x, start, ps):
    """Backpropagate from d(output of op `start`), held in ws.dacts, down to the first op with parameters.
    Every parameter gradient is overwritten, so ws.grad holds exactly this batch's gradient afterwards."""
    table, theta, grad = net.table, weights.theta, ws.grad
    n = x.shape[0]
    first = table.shape[0]
    for i in range(table.shape[0]):
        op = table[i, T_KIND]
        if (op == OP_DENSE or op == OP_BATCHNORM or op == OP_PERIODIC or op == OP_FEATURE_DENSE
                or op == OP_EMBEDDING):
            first = min(first, i)
    for i in range(start, first - 1, -1):
        kind, fan_in, fan_out = table[i, T_KIND], table[i, T_IN], table[i, T_OUT]
        inp = x if i == 0 else rows(ws.acts, table[i - 1, T_A], ws.capacity, n, fan_in)
        out = rows(ws.acts, table[i, T_A], ws.capacity, n, fan_out)
        dy = rows(ws.dacts, table[i, T_A], ws.capacity, n, fan_out)
        # no input gradient below the first op with parameters: dx then has no columns (any rows: a rank's
        # share of a batch may have none, and batchnorm must still take part in the reductions)
        dx = rows(ws.dacts, table[i - 1, T_A] if i > 0 else 0, ws.capacity, n, fan_in if i > first else 0)
        p = table[i, T_P]
        if USE_OP_DENSE and kind == OP_DENSE:
            dense_backward(inp, matrix(theta, p, fan_in, fan_out), dy, matrix(grad, p, fan_in, fan_out),
                           bias(grad, table[i, T_P2], fan_out), dx)
        elif USE_OP_ACTIVATION and kind == OP_ACTIVATION:
            activate(table[i, T_ACT], inp, out, dy, dx, True)
        elif USE_OP_DROPOUT and kind == OP_DROPOUT:
            dropout_backward(rows(ws.aux, table[i, T_X], ws.capacity, n, fan_out), dy, dx)
        elif USE_OP_BATCHNORM and kind == OP_BATCHNORM:
            f, q = table[i, T_F], table[i, T_P2]
            batchnorm_backward(dy, rows(ws.aux, table[i, T_X], ws.capacity, n, fan_out), theta[p:p + fan_out],
                               ws.feat[f:f + 2 * fan_out], grad[p:p + fan_out], grad[q:q + fan_out], dx, ps.total,
                               ps.comm)
        elif USE_OP_NORMALIZE and kind == OP_NORMALIZE:
            s = table[i, T_S]
            normalize_backward(weights.state[s + fan_out:s + 2 * fan_out], net.fparams[table[i, T_FP]] != 0.0, dy, dx)
        elif USE_OP_PERIODIC and kind == OP_PERIODIC:
            k = fan_out // (2 * fan_in)
            periodic_backward(inp, matrix(theta, p, fan_in, k), out, dy, matrix(grad, p, fan_in, k), dx)
        elif USE_OP_FEATURE_DENSE and kind == OP_FEATURE_DENSE:
            m, q = np.int64(net.fparams[table[i, T_FP]]), table[i, T_P2]
            feature_dense_backward(inp, matrix(theta, p, fan_in, fan_out // m), dy,
                                   matrix(grad, p, fan_in, fan_out // m), matrix(grad, q, m, fan_out // m), dx)
        elif USE_OP_EMBEDDING and kind == OP_EMBEDDING:
            fp = table[i, T_FP]
            embedding_backward(inp, net.fparams[fp:fp + 1 + 3 * fan_in], dy, grad[p:], dx)
        elif USE_OP_PIECEWISE and kind == OP_PIECEWISE:
            piecewise_backward(inp, matrix(weights.state, table[i, T_S], fan_in, fan_out // fan_in + 1), dy, dx)


def loss_head(net, x, ws):
    """Where the loss reads from: (array, op index that wrote it, -1 for the input x). HEAD is the code the loss is
    computed with; HEAD_FUSED says it reads the last op's input: a model ending in a sigmoid trained with binary
    cross-entropy, or in a softmax trained with a categorical cross-entropy, is scored on the logits with the stable
    log-sum-exp form, and its gradient is the fused p - y (config.head)."""
    table = net.table
    n, index = x.shape[0], table.shape[0] - 1
    if HEAD_FUSED:
        index -= 1
    if index < 0:
        return x, index
    return rows(ws.acts, table[index, T_A], ws.capacity, n, table[index, T_OUT]), index


def output(net, ws, n):
    """The model's output for the last batch of n rows: the last op's rows of ws.acts, (n, n_out)."""
    last = net.table.shape[0] - 1
    return rows(ws.acts, net.table[last, T_A], ws.capacity, n, net.table[last, T_OUT])


def add_penalties(net, weights, grad, count, scale, sums, slot):
    """The Dense layers' weight penalties: sums[slot] gains count times their sum (count rows each carry the
    batch's penalty, so the engine's sums stay per row); grad gains scale times their gradient (scale 0: none)."""
    if not PENALTIES:
        return
    table, fparams, theta = net.table, net.fparams, weights.theta
    for i in range(table.shape[0]):
        r = table[i, T_R]
        if r >= 0:
            p, q, n = table[i, T_P], table[i, T_P2], table[i, T_IN] * table[i, T_OUT]
            regularize(theta[p:p + n], fparams[r], fparams[r + 1], count, scale, grad[p:p + n], sums, slot)
            if q >= 0:
                m = table[i, T_OUT]
                regularize(theta[q:q + m], fparams[r + 2], fparams[r + 3], count, scale, grad[q:q + m], sums, slot)


def train_step(net, weights, ws, objective, x, y, w, ps, sums):
    """Forward, loss and backward for the rows of x (n, n_in), y (n, k) and their weights w (n,): ws.grad receives
    this share's part of the gradient of the global batch's loss (sum of w times the row losses over ps.total
    rows, as Keras reduces it, plus the weight penalties), sums[0] gains the share's weighted loss sum (with n times
    the penalties)."""
    forward(net, weights, ws, x, ps)
    z, index = loss_head(net, x, ws)
    metric_sum(HEAD, objective.loss_param, z, y, w, sums, np.int64(0))
    if index >= 0:
        dz = rows(ws.dacts, net.table[index, T_A], ws.capacity, z.shape[0], z.shape[1])
        scale = like(weights.theta, 1.0 / (ps.total * columns(HEAD, y.shape[1])))
        loss_backward(HEAD, objective.loss_param, z, y, w, scale, dz)
        backward(net, weights, ws, x, index, ps)
    # each rank adds its share of the penalty's gradient: the all-reduce of the gradient adds the shares up
    add_penalties(net, weights, ws.grad, x.shape[0], x.shape[0] / ps.total, sums, np.int64(0))


def add_metrics(objective, p, y, w, sums, offset):
    """sums[offset + metric_slots[j]:] gains metric j's weighted sum (or counts) over the batch."""
    for j in range(objective.metric_codes.size):
        score(objective.metric_codes[j], objective.metric_params[j], p, y, w, sums, offset + objective.metric_slots[j])


def evaluate_rows(net, weights, ws, objective, X, Y, W, start, stop, sums, offset):
    """Inference over rows start..stop of (X, Y, W), ws.capacity at a time: sums[offset] gains the weighted loss
    sum and sums[offset + metric_slots[j]:] metric j's."""
    for a in range(start, stop, ws.capacity):
        b = min(a + ws.capacity, stop)
        xb, yb, wb = X[a:b], Y[a:b], W[a:b]
        forward(net, weights, ws, xb, Pass(False, 0, 0, 0, b - a, None))
        z, _ = loss_head(net, xb, ws)
        metric_sum(HEAD, objective.loss_param, z, yb, wb, sums, offset)
        add_penalties(net, weights, ws.grad, b - a, 0.0, sums, offset)
        add_metrics(objective, output(net, ws, b - a), yb, wb, sums, offset)


def predict(net, weights, ws, X, out):
    """Inference-mode outputs for all rows of X (n, n_in) into out (n, n_out), ws.capacity rows at a time."""
    for a in range(0, X.shape[0], ws.capacity):
        b = min(a + ws.capacity, X.shape[0])
        forward(net, weights, ws, X[a:b], Pass(False, 0, 0, 0, b - a, None))
        store(out, a, output(net, ws, b - a))
