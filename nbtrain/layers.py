"""Layers: configuration and weight shapes only; the arithmetic lives in the engine.

After the model is built, each layer's `weights` are live views into the model's flat parameter vectors.
"""
import numpy as np

from . import regularizers
from .engine.plan import (
    ACTIVATIONS, NORMALIZATION_EPSILON, OP_ADAPTER, OP_BATCHNORM, OP_DENSE, OP_DROPOUT, OP_NORMALIZE,
)
from .errors import missing, unknown
from .initializers import INITIALIZERS

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


class Adapter(Layer):
    """The per-member elementwise scale (and bias) of `members` shared-weight members (TabM's BatchEnsemble
    adapters): member j's rows are multiplied by scale[j] (and shifted by bias[j]). The scale starts as ones or as
    random signs +-1 (TabM's first adapter, which makes the members differ from the first step); the bias at zeros.
    Used by SharedMembers, whose batches stack the members' rows (member-major)."""

    SCALES = ("ones", "random_signs")

    def __init__(self, members, scale="ones", use_bias=False, **kwargs):
        super().__init__(**kwargs)
        if int(members) != members or members < 1:
            raise ValueError(f"Adapter members must be a positive integer, got {members!r}")
        if scale not in self.SCALES:
            raise ValueError(unknown("adapter scale", scale, list(self.SCALES)))
        self.members, self.scale, self.use_bias = int(members), scale, bool(use_bias)

    def variable_specs(self, n_in):
        signs = lambda shape, rng: rng.choice(np.array([-1.0, 1.0]), size=shape)  # noqa: E731
        specs = [("scale", (self.members, n_in), True, signs if self.scale == "random_signs" else "ones")]
        if self.use_bias:
            specs.append(("bias", (self.members, n_in), True, "zeros"))
        return specs

    def add_ops(self, builder, index, width):
        if builder.members not in (1, self.members):
            raise ValueError(f"adapters of {builder.members} and {self.members} members in one model")
        builder.members = self.members
        offsets = builder.add_variables(index, self.variable_specs(width))
        builder.op(OP_ADAPTER, width, width, T_P=offsets[0], T_P2=offsets[1] if self.use_bias else -1)
        return width

    def onnx(self, graph, x):
        """The (members * N, width) rows as (members, N, width), scaled (and shifted) per member, and back."""
        scale, *bias = self.get_weights()
        width = scale.shape[1]
        y = graph.node("Reshape", [x, graph.constant("by_member", [self.members, -1, width], np.int64)])
        y = graph.node("Mul", [y, graph.constant("scale", scale[:, None, :])])
        if bias:
            y = graph.node("Add", [y, graph.constant("bias", bias[0][:, None, :])])
        return graph.node("Reshape", [y, graph.constant("rows", [-1, width], np.int64)])

    def get_config(self):
        return {**super().get_config(), "members": self.members, "scale": self.scale, "use_bias": self.use_bias}


LAYERS = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, Dropout, BatchNormalization, Normalization,
                                        Adapter)}


def deserialize(entry):
    """A layer from {"class_name": ..., "config": {...}} as written by Sequential.get_config."""
    cls = LAYERS.get(entry.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown layer class {entry.get('class_name')!r}")
    return cls.from_config(entry["config"])


def __getattr__(name):
    """A Keras layer nbtrain lacks (LayerNormalization, Conv1D, Embedding, ...): one line naming the layers it has,
    those of dense networks for tabular data."""
    raise missing(__name__, "layer", name, [*LAYERS, "Input"])
