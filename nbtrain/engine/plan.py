"""Compile a built layer stack into a Plan: an int64 op table, float hyperparameters and flat buffer sizes.

Each layer describes itself to a Builder (its `add_ops` method); the engine calls that one method and otherwise
sees only the plan's arrays. Each row of `table` is one operation (a Dense layer with an activation becomes a
DENSE row and an ACTIVATION row); its columns say where the operation's parameters live in the flat `theta`
vector, where its output lives in the activation buffer, and so on.
"""
from dataclasses import dataclass, field

import numpy as np

from .bundles import Net, Workspace

# Operation kinds.
OP_DENSE, OP_ACTIVATION, OP_DROPOUT, OP_BATCHNORM, OP_NORMALIZE = 0, 1, 2, 3, 4
# Per-feature ops for numerical and categorical embeddings (layers.PeriodicEmbedding, layers.Embedding):
# PERIODIC (n, F) -> (n, F*2K), per feature K cosines then K sines of 2 pi c x, c (F, K) at T_P;
# FEATURE_DENSE (n, F*a) -> (n, F*b), one dense map per feature: kernel (F*a, b) at T_P, bias (F, b) at T_P2,
# fparams[T_FP] = F; EMBEDDING (n, m) -> (n, out), tables at T_P, fparams from T_FP: the width d, then per input
# column (first table row of its table or -1 when passed through, its table's rows, its first output column);
# PIECEWISE (n, F) -> (n, F*B), the piecewise-linear encoding over bin edges (F, B + 1) in state at T_S.
OP_PERIODIC, OP_FEATURE_DENSE, OP_EMBEDDING, OP_PIECEWISE = 5, 6, 7, 8
# Activation codes.
ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX = 0, 1, 2, 3  # softmax works on a whole row
ACT_TANH, ACT_ELU, ACT_GELU, ACT_LEAKY_RELU, ACT_SOFTPLUS = 4, 5, 6, 7, 8
ACT_SILU, ACT_SELU, ACT_MISH = 9, 10, 11
ACTIVATIONS = {"linear": ACT_LINEAR, "relu": ACT_RELU, "sigmoid": ACT_SIGMOID, "softmax": ACT_SOFTMAX,
               "tanh": ACT_TANH, "elu": ACT_ELU, "gelu": ACT_GELU, "leaky_relu": ACT_LEAKY_RELU,
               "softplus": ACT_SOFTPLUS, "silu": ACT_SILU, "swish": ACT_SILU, "selu": ACT_SELU, "mish": ACT_MISH}
# The activations' and Normalization's constants, Keras's defaults (elementwise.py computes with them; exporting.py
# writes them into ONNX graphs).
ELU_ALPHA = 1.0
LEAKY_SLOPE = 0.2
SELU_ALPHA, SELU_SCALE = 1.67326324, 1.05070098
NORMALIZATION_EPSILON = 1e-7  # the floor under a Normalization layer's standard deviation
# Loss codes; metrics reuse them and add their own after. Codes below ROW_CODES are per element (a row's value is
# the mean over its columns, as Keras's regression losses and binary cross-entropy); from ROW_CODES on, per row (the
# categorical cross-entropies and accuracies, over the row's classes). Sparse codes read a class index in y[:, 0].
LOSS_MAE, LOSS_MSE, LOSS_HUBER, LOSS_BCE, LOSS_BCE_LOGITS = 0, 1, 2, 3, 4
METRIC_BINARY_ACCURACY = 5
# Counting metrics of 0/1 targets, per element, over several log slots (the API turns the counts into the value):
# precision [true positives, predicted positives], recall [true positives, positives], AUC [positives, negatives]
# per bucket of the prediction between the thresholds (its parameter: the number of thresholds).
METRIC_PRECISION, METRIC_RECALL, METRIC_AUC = 6, 7, 8
COUNTING_CODES = (METRIC_PRECISION, METRIC_RECALL, METRIC_AUC)
ROW_CODES = 9
LOSS_CCE, LOSS_CCE_LOGITS, LOSS_SCE, LOSS_SCE_LOGITS = 9, 10, 11, 12
METRIC_CATEGORICAL_ACCURACY, METRIC_SPARSE_CATEGORICAL_ACCURACY = 13, 14
SPARSE_CODES = (LOSS_SCE, LOSS_SCE_LOGITS, METRIC_SPARSE_CATEGORICAL_ACCURACY)


def slots(code, param):
    """How many log slots a loss or metric takes: 2 for precision and recall, 2 per threshold bucket for AUC, else 1."""
    if code == METRIC_AUC:
        return 2 * (int(param) + 1)
    return 2 if code == METRIC_PRECISION or code == METRIC_RECALL else 1


def columns(code, k):
    """How many of a row's k values make its one loss or metric value: k for per-element codes (the row's value is
    their mean), 1 for per-row codes. The kernels scale gradients by it; the API divides the engine's sums by it."""
    return 1 if code >= ROW_CODES else k


# Optimizer codes. Their hyperparameters: [learning_rate, weight_decay, then SGD momentum, nesterov; Adam beta_1,
# beta_2, epsilon; RMSprop rho, momentum, epsilon, centered], float64, zero-padded to HYPERPARAMETERS.
OPT_SGD, OPT_ADAM, OPT_RMSPROP = 0, 1, 2
HYPERPARAMETERS = 6
# Learning-rate schedule codes, the first entry of a schedule vector (schedules.py); constant: hp[0].
SCHEDULE_CONSTANT, SCHEDULE_EXPONENTIAL, SCHEDULE_COSINE, SCHEDULE_PIECEWISE = 0, 1, 2, 3

# Columns of the op table.
T_KIND = 0  # operation kind
T_IN = 1  # input width
T_OUT = 2  # output width
T_ACT = 3  # activation code (ACTIVATION rows)
T_P = 4  # theta offset: Dense kernel, BatchNormalization gamma
T_P2 = 5  # theta offset: Dense bias, BatchNormalization beta; -1 when absent
T_S = 6  # state offset: BatchNormalization moving mean, Normalization mean (the variance follows each)
T_A = 7  # column offset of the output in the activation buffers (times capacity = element offset)
T_X = 8  # column offset in the aux buffer: dropout mask, BatchNormalization x-hat; -1 when unused
T_F = 9  # offset in the per-feature scratch vector: BatchNormalization batch mean, then inverse std
T_FP = 10  # offset in fparams: dropout rate; BatchNormalization momentum, epsilon; Normalization invert
T_ID = 11  # stream id for random numbers (op index + 1; stream 0 is the shuffle)
T_R = 12  # offset in fparams of a Dense op's penalties [kernel l1, kernel l2, bias l1, bias l2]; -1 when none
N_COLUMNS = 13
COLUMNS = {name: value for name, value in globals().items() if name.startswith("T_")}  # Builder.op's column names


@dataclass
class Variable:
    """One weight array of a layer, as a slice of the flat theta (trainable) or state vector."""

    layer: int
    name: str
    shape: tuple
    offset: int
    trainable: bool
    initializer: object  # a name in initializers.INITIALIZERS, or a function (shape, rng) -> values

    @property
    def size(self):
        return int(np.prod(self.shape))


@dataclass
class Plan:
    """Everything the kernels need to know about a model's structure, as plain arrays and sizes."""

    table: np.ndarray
    fparams: np.ndarray
    n_in: int
    n_out: int
    n_params: int
    n_state: int
    act_width: int
    aux_width: int
    feat_size: int
    variables: list = field(default_factory=list)


class Builder:
    """What a layer adds to a plan (each layer class's `add_ops(builder, index, width)` says it, so a new layer
    is its class, its kernels and their tests): weights as slices of theta or state, op rows, float parameters and
    scratch columns. Offsets are handed out in call order."""

    def __init__(self):
        self.rows, self.fparams, self.variables = [], [], []
        self.sizes = {"theta": 0, "state": 0, "act": 0, "aux": 0, "feat": 0}

    def take(self, key, n):
        """n entries of the flat buffer `key` (theta, state, act, aux or feat); their first offset."""
        start = self.sizes[key]
        self.sizes[key] += n
        return start

    def params(self, values):
        """Float parameters of an op, appended to fparams; their first offset (T_FP or T_R)."""
        start = len(self.fparams)
        self.fparams.extend(float(v) for v in values)
        return start

    def add_variables(self, layer, specs):
        """The weights (name, shape, trainable, initializer) of layer number `layer`, in order; their offsets."""
        offsets = []
        for name, shape, trainable, init in specs:
            size = int(np.prod(shape))
            offset = self.take("theta" if trainable else "state", size)
            self.variables.append(Variable(layer, name, tuple(shape), offset, trainable, init))
            offsets.append(offset)
        return offsets

    def op(self, kind, fan_in, fan_out, **columns):
        """One op row of `kind` from fan_in to fan_out columns; columns by their T_ name, e.g. T_P=offset."""
        row = [0] * N_COLUMNS
        row[T_KIND], row[T_IN], row[T_OUT] = kind, fan_in, fan_out
        row[T_P2] = row[T_X] = row[T_R] = -1
        row[T_A] = self.take("act", fan_out)
        row[T_ID] = len(self.rows) + 1
        for name, value in columns.items():
            row[COLUMNS[name]] = value
        self.rows.append(row)

    def activation(self, width, name):
        """An ACTIVATION op for activation `name` (none for linear); an unknown name is an error here."""
        if name not in ACTIVATIONS:
            raise ValueError(f"the engine has no activation {name!r}: it has {', '.join(sorted(ACTIVATIONS))}")
        if name != "linear":
            self.op(OP_ACTIVATION, width, width, T_ACT=ACTIVATIONS[name])


def compile_plan(layers, n_in):
    """Lay out the ops, parameters and buffers of `layers` applied to inputs of width `n_in`: each layer adds its
    own (`layer.add_ops(builder, index, width)` returns its output width)."""
    builder = Builder()
    width = n_in
    for index, layer in enumerate(layers):
        width = layer.add_ops(builder, index, width)
    if not builder.rows:
        raise ValueError("the model has no layer that computes anything: add a Dense layer")
    sizes = builder.sizes
    return Plan(
        table=np.array(builder.rows, dtype=np.int64),
        fparams=np.array(builder.fparams + [0.0], dtype=np.float64),
        n_in=n_in,
        n_out=width,
        n_params=sizes["theta"],
        n_state=sizes["state"],
        act_width=sizes["act"],
        aux_width=sizes["aux"],
        feat_size=sizes["feat"],
        variables=builder.variables,
    )


def workspace(plan, capacity, n_targets, dtype=np.float32):
    """Allocate the buffers (a bundles.Workspace) for batches of up to `capacity` rows with `n_targets` target
    columns."""
    return Workspace(
        capacity=int(capacity),
        xin=np.zeros(capacity * plan.n_in, dtype),
        yin=np.zeros(capacity * n_targets, dtype),
        win=np.ones(capacity, dtype),
        acts=np.zeros(capacity * plan.act_width, dtype),
        dacts=np.zeros(capacity * plan.act_width, dtype),
        aux=np.zeros(max(capacity * plan.aux_width, 1), dtype),
        feat=np.zeros(max(plan.feat_size, 1), dtype),
        grad=np.zeros(max(plan.n_params, 1), dtype),
    )


def net(plan):
    """The plan as the kernels take it (a bundles.Net)."""
    return Net(plan.table, plan.fparams)
