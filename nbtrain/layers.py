"""Layers: configuration and weight shapes only; the arithmetic lives in the engine.

After the model is built, each layer's `weights` are live views into the model's flat parameter vectors.
"""
import math

import numpy as np

from . import regularizers
from .engine.plan import (
    ACTIVATIONS, NORMALIZATION_EPSILON, OP_BATCHNORM, OP_DENSE, OP_DROPOUT, OP_EMBEDDING, OP_FEATURE_DENSE,
    OP_NORMALIZE, OP_PERIODIC, OP_PIECEWISE,
)
from .errors import InputError, missing, unknown
from .initializers import INITIALIZERS, truncated_normal, uniform

_name_counts = {}


def _unique_name(base):
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def _snake(name):
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def _activation_name(activation):
    name = "linear" if activation is None else activation
    if name not in ACTIVATIONS:
        raise ValueError(unknown("activation", activation, list(ACTIVATIONS)))
    return name


def _shape(shape, what):
    if shape is None:
        return None
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shape) != 1 or shape[0] < 1:
        raise ValueError(f"{what} must be one positive width such as [11], got {shape}")
    return shape


class Layer:
    """Base class: a name, an optional input shape, weight specs and (once built) weight views."""

    def __init__(self, name=None, input_shape=None, input_dim=None):
        self.name = name or _unique_name(_snake(type(self).__name__))
        if input_dim is not None:
            input_shape = (input_dim,)
        self.input_shape = _shape(input_shape, "input_shape")
        self.weights = []

    def variable_specs(self, n_in):
        """(name, shape, trainable, initializer) of each weight, in Keras's get_weights order."""
        return []

    def output_width(self, n_in):
        return n_in

    def add_ops(self, builder, index, width):
        """Describe this layer to the engine (plan.Builder): its weights, ops and parameters, for inputs of `width`
        columns; returns its output width. Layer number `index` in the model."""
        raise TypeError(f"nbtrain cannot compile a layer of type {type(self).__name__}")

    def check_input(self, x):
        """Refuse model inputs x (rows x features) this layer cannot take, with a one-line InputError; most layers
        take any finite numbers (the model calls it before the engine runs)."""

    def onnx(self, graph, x):
        """Append this layer's inference-mode ONNX nodes to `graph` (exporting.Graph) after the tensor named x;
        returns its output's name."""
        raise ValueError(f"no ONNX form for layer {type(self).__name__}")

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        if len(weights) != len(self.weights):
            raise ValueError(f"layer {self.name} expects {len(self.weights)} weight arrays, got {len(weights)}")
        for view, value in zip(self.weights, weights):
            value = np.asarray(value)
            if value.shape != view.shape:
                raise ValueError(f"layer {self.name}: weight shape {value.shape} does not match {view.shape}")
            view[...] = value

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_config(self):
        config = {"name": self.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"

    def __call__(self, *args, **kwargs):
        """Keras's functional API calls a layer on a tensor; nbtrain has Sequential alone, so it says so."""
        raise TypeError(f"nbtrain has no functional API: a layer is not called on a tensor; list the layers in "
                        f"Sequential([layers.Input(shape=(n,)), layers.{type(self).__name__}(...), ...])")


class InputLayer(Layer):
    """Declares the input width; computes nothing (keras.Input / keras.layers.InputLayer)."""

    def __init__(self, shape=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=shape if shape is not None else input_shape)
        if self.input_shape is None:
            raise ValueError("InputLayer needs shape=[n_features]")

    def add_ops(self, builder, index, width):
        return width

    def onnx(self, graph, x):
        return x


def Input(shape, name=None):
    """keras.Input(shape=(n,)): usable as the first entry of a Sequential model."""
    return InputLayer(shape=shape, name=name)


class Dense(Layer):
    """Fully connected layer: activation(x @ kernel + bias), kernel of shape (inputs, units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        if int(units) != units or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        for init in (kernel_initializer, bias_initializer):
            if init not in INITIALIZERS:
                raise ValueError(f"unknown initializer {init!r}: use one of {', '.join(sorted(INITIALIZERS))}")
        self.units = int(units)
        self.activation = _activation_name(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def variable_specs(self, n_in):
        specs = [("kernel", (n_in, self.units), True, self.kernel_initializer)]
        if self.use_bias:
            specs.append(("bias", (self.units,), True, self.bias_initializer))
        return specs

    def output_width(self, n_in):
        return self.units

    def add_ops(self, builder, index, width):
        offsets = builder.add_variables(index, self.variable_specs(width))
        penalties = {} if self.penalties() is None else {"T_R": builder.params(self.penalties())}
        builder.op(OP_DENSE, width, self.units, T_P=offsets[0], T_P2=offsets[1] if self.use_bias else -1, **penalties)
        builder.activation(self.units, self.activation)
        return self.units

    def onnx(self, graph, x):
        kernel, *bias = self.get_weights()
        kernel = graph.constant("kernel", kernel)
        bias = graph.constant("bias", bias[0] if bias else np.zeros(self.units, np.float32))
        return graph.activation(self.activation, graph.node("Gemm", [x, kernel, bias], "dense"))

    def get_config(self):
        config = {**super().get_config(), "units": self.units, "activation": self.activation,
                  "use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                  "bias_initializer": self.bias_initializer}
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:  # absent when unused: older readers see the config they know
                config[key] = getattr(self, key).get_config()
        return config

    def penalties(self):
        """[kernel l1, kernel l2, bias l1, bias l2] for the engine, or None without regularizers."""
        if self.kernel_regularizer is None and self.bias_regularizer is None:
            return None
        k, b = self.kernel_regularizer, self.bias_regularizer
        return [k.l1 if k else 0.0, k.l2 if k else 0.0, b.l1 if b else 0.0, b.l2 if b else 0.0]


class Activation(Layer):
    """Applies an activation function: "relu", "sigmoid", "softmax" (over each row) or "linear"."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activation_name(activation)

    def add_ops(self, builder, index, width):
        builder.activation(width, self.activation)
        return width

    def onnx(self, graph, x):
        return graph.activation(self.activation, x)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Dropout(Layer):
    """Inverted dropout: in training, zeroes units with probability `rate` and scales the rest by
    1/(1 - rate); identity at inference."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def add_ops(self, builder, index, width):
        if self.rate > 0:
            builder.op(OP_DROPOUT, width, width, T_X=builder.take("aux", width), T_FP=builder.params([self.rate]))
        return width

    def onnx(self, graph, x):
        return x  # identity at inference

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class BatchNormalization(Layer):
    """Normalizes with batch statistics in training and moving statistics at inference (Keras defaults:
    momentum=0.99, epsilon=1e-3). As a first layer it acts as an adaptive input scaler."""

    def __init__(self, momentum=0.99, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= momentum < 1 or epsilon <= 0:
            raise ValueError("BatchNormalization needs 0 <= momentum < 1 and epsilon > 0")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def variable_specs(self, n_in):
        return [("gamma", (n_in,), True, "ones"), ("beta", (n_in,), True, "zeros"),
                ("moving_mean", (n_in,), False, "zeros"), ("moving_variance", (n_in,), False, "ones")]

    def add_ops(self, builder, index, width):
        gamma, beta, mean, _ = builder.add_variables(index, self.variable_specs(width))
        builder.op(OP_BATCHNORM, width, width, T_P=gamma, T_P2=beta, T_S=mean, T_X=builder.take("aux", width),
                   T_F=builder.take("feat", 2 * width), T_FP=builder.params([self.momentum, self.epsilon]))
        return width

    def onnx(self, graph, x):
        inputs = [graph.constant(n, w) for n, w in zip(("gamma", "beta", "mean", "var"), self.get_weights())]
        return graph.node("BatchNormalization", [x, *inputs], "batchnorm", epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


class Normalization(Layer):
    """Keras's Normalization: (x - mean) / max(sqrt(variance), 1e-7) per feature (invert=True: the reverse), with
    the statistics given, or learnt from data by adapt(); they are non-trainable weights, saved with the model."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(f"Normalization works along the features (axis=-1), got axis={axis!r}")
        if (mean is None) != (variance is None):
            raise ValueError("Normalization needs both mean and variance, or neither (then adapt it)")
        self.axis, self.invert = axis, bool(invert)
        self.given = None if mean is None else (np.atleast_1d(np.asarray(mean, np.float64)),
                                                np.atleast_1d(np.asarray(variance, np.float64)))
        self.adapted = None

    def adapt(self, data):
        """Learn each feature's mean and (population) variance from data (rows x features), as Keras's adapt."""
        from .arrays import as_matrix
        if self.given is not None:
            raise ValueError("this Normalization was given its mean and variance; it cannot adapt")
        x = as_matrix(data, "adapt data").astype(np.float64)
        self.adapted = (x.mean(axis=0), x.var(axis=0))
        if self.weights:  # built: the model's state views take the statistics at once
            if self.weights[0].shape != self.adapted[0].shape:
                raise ValueError(f"adapt data has {x.shape[1]} features but the layer was built for "
                                 f"{self.weights[0].shape[0]}")
            self.set_weights(list(self.adapted))

    def _statistic(self, which, default):
        """An initializer: the given or adapted statistic, broadcast to the width, or the default constant."""
        def initialize(shape, rng):
            known = self.given or self.adapted
            if known is None:
                return np.full(shape, default)
            values = np.broadcast_to(known[which], shape) if known[which].size == 1 else known[which]
            if values.shape != tuple(shape):
                raise ValueError(f"Normalization statistics have {values.shape[0]} features, the input has "
                                 f"{shape[0]}")
            return values
        return initialize

    def variable_specs(self, n_in):
        return [("mean", (n_in,), False, self._statistic(0, 0.0)),
                ("variance", (n_in,), False, self._statistic(1, 1.0))]

    def add_ops(self, builder, index, width):
        mean, _ = builder.add_variables(index, self.variable_specs(width))
        builder.op(OP_NORMALIZE, width, width, T_S=mean, T_FP=builder.params([float(self.invert)]))
        return width

    def onnx(self, graph, x):
        mean, variance = self.get_weights()
        scale = graph.constant("scale", np.maximum(np.sqrt(variance.astype(np.float64)), NORMALIZATION_EPSILON))
        if self.invert:
            return graph.node("Add", [graph.node("Mul", [x, scale]), graph.constant("mean", mean)])
        return graph.node("Div", [graph.node("Sub", [x, graph.constant("mean", mean)]), scale])

    def get_config(self):
        config = {**super().get_config(), "axis": self.axis, "invert": self.invert}
        if self.given is not None:
            config.update(mean=self.given[0].tolist(), variance=self.given[1].tolist())
        return config


def _positive(value, what):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class Flatten(Layer):
    """Keras's Flatten: the rows are flat already (Embedding's output included), so it computes nothing; there so
    that Keras code Embedding(...) then Flatten() runs unchanged."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)

    def add_ops(self, builder, index, width):
        return width

    def onnx(self, graph, x):
        return x


class PeriodicEmbedding(Layer):
    """Periodic embeddings of numerical features (rtdl_num_embeddings' PeriodicEmbeddings, lite=False; Gorishniy et
    al. 2022): per feature f, v = 2 pi c[f] x_f with trainable frequencies c (F, n_frequencies) drawn N(0,
    frequency_init_scale) within 3 of it, then [cos v, sin v] through a dense map of the feature's own (2K ->
    embedding_dim, with bias) and the activation. Input (n, F), output (n, F * embedding_dim), feature by feature."""

    def __init__(self, n_frequencies=48, frequency_init_scale=0.01, embedding_dim=24, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.n_frequencies = _positive(n_frequencies, "PeriodicEmbedding n_frequencies")
        self.embedding_dim = _positive(embedding_dim, "PeriodicEmbedding embedding_dim")
        if not frequency_init_scale > 0:
            raise ValueError(f"PeriodicEmbedding frequency_init_scale must be positive, got {frequency_init_scale!r}")
        self.frequency_init_scale = float(frequency_init_scale)
        self.activation = _activation_name(activation)

    def variable_specs(self, n_in):
        return [("frequencies", (n_in, self.n_frequencies), True, truncated_normal(self.frequency_init_scale, 3.0)),
                *_feature_dense_specs(n_in, 2 * self.n_frequencies, self.embedding_dim)]

    def output_width(self, n_in):
        return n_in * self.embedding_dim

    def add_ops(self, builder, index, width):
        frequencies, kernel, bias = builder.add_variables(index, self.variable_specs(width))
        builder.op(OP_PERIODIC, width, width * 2 * self.n_frequencies, T_P=frequencies)
        return _feature_dense_ops(builder, kernel, bias, width, 2 * self.n_frequencies, self.embedding_dim,
                                  self.activation)

    def onnx(self, graph, x):
        c, kernel, bias = self.get_weights()
        m, k = c.shape
        v = graph.node("Mul", [graph.node("Reshape", [x, graph.constant("shape", [0, m, 1], np.int64)]),
                               graph.constant("frequencies", np.float32(2 * math.pi) * c)])  # (N, F, K)
        waves = graph.node("Concat", [graph.node("Cos", [v]), graph.node("Sin", [v])], axis=2)  # (N, F, 2K)
        return graph.activation(self.activation, _feature_dense_onnx(graph, waves, kernel, bias))

    def get_config(self):
        return {**super().get_config(), "n_frequencies": self.n_frequencies,
                "frequency_init_scale": self.frequency_init_scale, "embedding_dim": self.embedding_dim,
                "activation": self.activation}


def _feature_dense_specs(features, a, b):
    """The weights of a per-feature dense map from a to b values per feature, drawn as rtdl's (uniform within
    1 / sqrt(a))."""
    limit = 1.0 / math.sqrt(a)
    return [("kernel", (features, a, b), True, uniform(limit)), ("bias", (features, b), True, uniform(limit))]


def _feature_dense_ops(builder, kernel, bias, features, a, b, activation):
    """A FEATURE_DENSE op from a to b values per feature and its activation; its output width."""
    builder.op(OP_FEATURE_DENSE, features * a, features * b, T_P=kernel, T_P2=bias, T_FP=builder.params([features]))
    builder.activation(features * b, activation)
    return features * b


def _feature_dense_onnx(graph, x, kernel, bias):
    """The ONNX nodes of a per-feature dense map (FEATURE_DENSE) of x, any shape whose rows hold F groups of a
    values, with kernel (F, a, b) and bias (F, b): (N, F*b)."""
    m, a, b = kernel.shape
    grouped = graph.node("Reshape", [x, graph.constant("shape", [0, m, 1, a], np.int64)])
    y = graph.node("MatMul", [grouped, graph.constant("kernel", kernel)])  # (N, F, 1, b)
    flat = graph.node("Reshape", [y, graph.constant("shape", [0, m * b], np.int64)])
    return graph.node("Add", [flat, graph.constant("bias", bias.reshape(-1))])


class Embedding(Layer):
    """Keras's Embedding for integer category codes carried as float values in x: each code becomes a trainable
    row of output_dim values. columns=None embeds every input column (output (n, L * output_dim): Keras's (n, L,
    output_dim) followed by Flatten); columns=[i, ...] embeds those columns and passes the others on unchanged, so
    numeric and categorical columns go side by side: the output holds the passed-through columns first (in input
    order), then each embedded column's output_dim values (in the order of `columns`). input_dim: one table shared
    by the embedded columns (as Keras), or a list, one table size per embedded column. Codes must be whole numbers
    in [0, input_dim); it must be the model's first computing layer, as it reads the model's input columns."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", columns=None, **kwargs):
        super().__init__(**kwargs)
        sizes = input_dim if isinstance(input_dim, (list, tuple)) else [input_dim]
        self.sizes = [_positive(size, "Embedding input_dim") for size in sizes]
        self.input_dim = self.sizes if isinstance(input_dim, (list, tuple)) else self.sizes[0]
        self.output_dim = _positive(output_dim, "Embedding output_dim")
        if embeddings_initializer not in INITIALIZERS:
            raise ValueError(unknown("initializer", embeddings_initializer, list(INITIALIZERS)))
        self.embeddings_initializer = embeddings_initializer
        if columns is not None:
            columns = [int(c) for c in ([columns] if np.isscalar(columns) else columns)]
            if not columns or min(columns) < 0 or len(set(columns)) != len(columns):
                raise ValueError(f"Embedding columns must be distinct input column numbers from 0, got {columns!r}")
            if len(self.sizes) > 1 and len(self.sizes) != len(columns):
                raise ValueError(f"Embedding has {len(self.sizes)} input_dim sizes for {len(columns)} columns")
        self.columns = columns
        self.width = None  # the input width, once built

    def _embedded(self, width):
        """The embedded columns of an input `width` columns wide, in order, and for each the first row of its table
        in the tables stacked and the table's rows."""
        columns = list(range(width)) if self.columns is None else self.columns
        if max(columns) >= width:
            raise ValueError(f"Embedding column {max(columns)} is not among the input's {width} columns")
        if len(self.sizes) > 1 and len(self.sizes) != len(columns):
            raise ValueError(f"Embedding has {len(self.sizes)} input_dim sizes for {len(columns)} input columns")
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        tables = [t if len(self.sizes) > 1 else 0 for t in range(len(columns))]
        return columns, [int(starts[t]) for t in tables], [self.sizes[t] for t in tables]

    def variable_specs(self, n_in):
        if not isinstance(self.input_dim, list):
            return [("embeddings", (self.input_dim, self.output_dim), True, self.embeddings_initializer)]
        return [(f"embeddings_{t}", (size, self.output_dim), True, self.embeddings_initializer)
                for t, size in enumerate(self.sizes)]

    def output_width(self, n_in):
        columns = self._embedded(n_in)[0]
        return n_in - len(columns) + len(columns) * self.output_dim

    def add_ops(self, builder, index, width):
        if builder.rows:
            raise ValueError("Embedding must be the model's first computing layer: it reads category codes from the "
                             "model's input columns")
        columns, starts, sizes = self._embedded(width)
        offsets = builder.add_variables(index, self.variable_specs(width))
        layout, passed, first = [self.output_dim], 0, width - len(columns)  # first: the embeddings' first column
        for j in range(width):
            if j in columns:
                n = columns.index(j)
                layout += [starts[n], sizes[n], first + n * self.output_dim]
            else:
                layout += [-1, 0, passed]
                passed += 1
        out, self.width = self.output_width(width), width
        builder.op(OP_EMBEDDING, width, out, T_P=offsets[0], T_FP=builder.params(layout))
        return out

    def check_input(self, x):
        columns, _, sizes = self._embedded(x.shape[1])
        for j, size in zip(columns, sizes):
            codes = x[:, j]
            bad = np.flatnonzero((codes != np.floor(codes)) | (codes < 0) | (codes >= size))
            if bad.size:
                raise InputError(f"{self.name}: input column {j} has {codes[bad[0]]:g} at row {bad[0]} "
                                 f"({bad.size} such rows): category codes must be whole numbers in "
                                 f"[0, {size}) (input_dim)")

    def onnx(self, graph, x):
        columns, starts, _ = self._embedded(self.width)
        codes = graph.node("Cast", [graph.node("Gather", [x, graph.constant("columns", columns, np.int64)], axis=1)],
                           to=graph.onnx.TensorProto.INT64)
        rows = graph.node("Add", [codes, graph.constant("starts", starts, np.int64)])  # rows of the tables, stacked
        vectors = graph.node("Gather", [graph.constant("embeddings", np.concatenate(self.get_weights())), rows],
                             axis=0)  # (N, E, d)
        embedded = graph.node("Reshape", [vectors, graph.constant("shape", [0, len(columns) * self.output_dim],
                                                                  np.int64)])
        passed = [j for j in range(self.width) if j not in columns]
        if not passed:
            return embedded
        kept = graph.node("Gather", [x, graph.constant("columns", passed, np.int64)], axis=1)
        return graph.node("Concat", [kept, embedded], axis=1)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": self.embeddings_initializer, "columns": self.columns}


class PiecewiseLinearEncoding(Layer):
    """rtdl_num_embeddings' PiecewiseLinearEncoding over quantile bins (Gorishniy et al. 2022): adapt(data) takes
    n_bins + 1 quantiles of each feature as its bin edges (fewer bins where a feature has fewer distinct
    quantiles); bin t of a feature encodes x as (x - e_t) / (e_t+1 - e_t) clipped to [0, 1], the first bin
    unclipped below and the last above. Input (n, F), output (n, F * n_bins), feature after feature; a feature's
    unused bins output 0. The edges are a non-trainable weight (F, n_bins + 1), saved with the model; until
    adapted, n_bins equal bins over [-1, 1]."""

    def __init__(self, n_bins=48, **kwargs):
        super().__init__(**kwargs)
        self.n_bins = _positive(n_bins, f"{type(self).__name__} n_bins")
        self.adapted = None

    def adapt(self, data):
        """Each feature's bin edges from the quantiles of data (rows x features), as rtdl's compute_bins; features
        with fewer distinct quantiles get fewer bins, padded with their last edge."""
        from .arrays import as_matrix
        x = as_matrix(data, "adapt data").astype(np.float64)
        quantiles = np.quantile(x, np.linspace(0.0, 1.0, self.n_bins + 1), axis=0).astype(np.float32)
        edges = np.empty((x.shape[1], self.n_bins + 1), np.float32)
        for f in range(x.shape[1]):
            distinct = np.unique(quantiles[:, f])  # in float32, the engine's precision: no bin of width 0
            edges[f] = np.r_[distinct, np.repeat(distinct[-1], self.n_bins + 1 - distinct.size)]
        self.adapted = edges
        if self.weights:  # built: the model's state view takes the edges at once
            if self.weights[0].shape != edges.shape:
                raise ValueError(f"adapt data has {x.shape[1]} features but the layer was built for "
                                 f"{self.weights[0].shape[0]}")
            self.weights[0][...] = edges

    def _edges(self, shape, rng):
        """The adapted edges, or n_bins equal bins over [-1, 1] for every feature."""
        if self.adapted is None:
            return np.broadcast_to(np.linspace(-1.0, 1.0, self.n_bins + 1), shape)
        if self.adapted.shape != tuple(shape):
            raise ValueError(f"{type(self).__name__} was adapted to {self.adapted.shape[0]} features, the input has "
                             f"{shape[0]}")
        return self.adapted

    def variable_specs(self, n_in):
        return [("edges", (n_in, self.n_bins + 1), False, self._edges)]

    def output_width(self, n_in):
        return n_in * self.n_bins

    def add_ops(self, builder, index, width):
        edges, *dense = builder.add_variables(index, self.variable_specs(width))
        builder.op(OP_PIECEWISE, width, width * self.n_bins, T_S=edges)
        if not dense:
            return width * self.n_bins
        return _feature_dense_ops(builder, *dense, width, self.n_bins, self.embedding_dim, self.activation)

    def onnx(self, graph, x):
        return graph.node("Reshape", [self._encoding_onnx(graph, x),
                                      graph.constant("shape", [0, self.weights[0].shape[0] * self.n_bins], np.int64)])

    def _encoding_onnx(self, graph, x):
        """The encoding as (N, F, n_bins): (x - left) / width, clipped between per-bin bounds, 0 in unused bins."""
        edges = self.weights[0].astype(np.float64)
        left, width = edges[:, :-1], np.diff(edges, axis=1)
        used = width > 0
        counts = used.sum(axis=1, keepdims=True)
        t = np.arange(self.n_bins)[None]
        low = np.where((t > 0) & (counts > 1), 0.0, -np.inf)
        high = np.where(t < counts - 1, 1.0, np.inf)
        m = edges.shape[0]
        z = graph.node("Div", [graph.node("Sub", [graph.node("Reshape", [x, graph.constant("shape", [0, m, 1],
                                                                                          np.int64)]),
                                                  graph.constant("left", left)]),
                               graph.constant("width", np.where(used, width, 1.0))])
        clipped = graph.node("Min", [graph.node("Max", [z, graph.constant("low", low)]), graph.constant("high", high)])
        return graph.node("Mul", [clipped, graph.constant("used", used)])

    def get_config(self):
        return {**super().get_config(), "n_bins": self.n_bins}


class PiecewiseLinearEmbedding(PiecewiseLinearEncoding):
    """rtdl_num_embeddings' PiecewiseLinearEmbeddings: the piecewise-linear encoding (adapt it as
    PiecewiseLinearEncoding), then a dense map of each feature's own from its n_bins values to embedding_dim (with
    bias), then the activation. Input (n, F), output (n, F * embedding_dim)."""

    def __init__(self, n_bins=48, embedding_dim=24, activation="relu", **kwargs):
        super().__init__(n_bins, **kwargs)
        self.embedding_dim = _positive(embedding_dim, "PiecewiseLinearEmbedding embedding_dim")
        self.activation = _activation_name(activation)

    def variable_specs(self, n_in):
        return super().variable_specs(n_in) + _feature_dense_specs(n_in, self.n_bins, self.embedding_dim)

    def output_width(self, n_in):
        return n_in * self.embedding_dim

    def onnx(self, graph, x):
        _, kernel, bias = self.get_weights()
        return graph.activation(self.activation, _feature_dense_onnx(graph, self._encoding_onnx(graph, x), kernel,
                                                                     bias))

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "activation": self.activation}


LAYERS = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, Dropout, BatchNormalization, Normalization,
                                        Flatten, PeriodicEmbedding, Embedding, PiecewiseLinearEncoding,
                                        PiecewiseLinearEmbedding)}


def deserialize(entry):
    """A layer from {"class_name": ..., "config": {...}} as written by Sequential.get_config."""
    cls = LAYERS.get(entry.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown layer class {entry.get('class_name')!r}")
    return cls.from_config(entry["config"])


def __getattr__(name):
    """A Keras layer nbtrain lacks (LayerNormalization, Conv1D, LSTM, ...): one line naming the layers it has,
    those of dense networks for tabular data."""
    raise missing(__name__, "layer", name, [*LAYERS, "Input"])
