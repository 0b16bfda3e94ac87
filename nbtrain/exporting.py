"""A Sequential as an ONNX graph (Keras 3's `model.export(path, format="onnx")`), built with the `onnx` package at a
pinned opset: Dense as Gemm, the activations as ONNX operators, BatchNormalization in its inference form,
Normalization as constants, Dropout left out. `network` gives the nodes for other graphs to embed (the command
line's export adds the preprocessing around them)."""
import math

import numpy as np

OPSET = 17  # every operator here exists there; onnxruntime 1.15 and later run it
ELU_ALPHA, LEAKY_SLOPE, NORMALIZATION_EPSILON = 1.0, 0.2, 1e-7  # the engine's constants (elementwise.py)
SELU_ALPHA, SELU_SCALE = 1.67326324, 1.05070098


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'nbtrain[onnx]'") from None
    return onnx


class Graph:
    """Nodes and constant tensors being collected, with fresh names."""

    def __init__(self, prefix):
        self.onnx, self.prefix = _onnx(), prefix
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def constant(self, hint, value, dtype=np.float32):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(self, op, inputs, hint=None, output=None, **attributes):
        """Add one node; its output gets the name `output`, or a fresh one."""
        out = output or self.name(hint or op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], **attributes))
        return out


def _activation(graph, name, x):
    """The ONNX form of one of nbtrain's activations (linear: x itself)."""
    if name == "linear":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
    if name in simple:
        return graph.node(simple[name], [x])
    if name == "softmax":
        return graph.node("Softmax", [x], axis=-1)
    if name == "elu":
        return graph.node("Elu", [x], alpha=ELU_ALPHA)
    if name == "leaky_relu":
        return graph.node("LeakyRelu", [x], alpha=LEAKY_SLOPE)
    if name == "gelu":  # exact: 0.5 x (1 + erf(x / sqrt 2)); opset 17 has no Gelu operator
        erf = graph.node("Erf", [graph.node("Mul", [x, graph.constant("rsqrt2", 1 / math.sqrt(2.0))])])
        half = graph.node("Mul", [x, graph.constant("half", 0.5)])
        return graph.node("Mul", [half, graph.node("Add", [erf, graph.constant("one", 1.0)])])
    if name in ("silu", "swish"):
        return graph.node("Mul", [x, graph.node("Sigmoid", [x])])
    if name == "selu":
        return graph.node("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE)
    if name == "mish":  # x tanh(softplus(x)); ONNX's Mish operator needs opset 18
        return graph.node("Mul", [x, graph.node("Tanh", [graph.node("Softplus", [x])])])
    raise ValueError(f"no ONNX form for activation {name!r}")


def network(model, graph, x):
    """Append the inference-mode nodes of a built Sequential to `graph`, from the float32 (N, n_in) tensor named x;
    returns the name of its (N, n_out) output."""
    for layer in model.layers:
        kind = type(layer).__name__
        weights = [w.astype(np.float32) for w in layer.get_weights()]
        if kind == "Dense":
            kernel = graph.constant("kernel", weights[0])
            bias = graph.constant("bias", weights[1] if layer.use_bias else np.zeros(layer.units, np.float32))
            x = _activation(graph, layer.activation, graph.node("Gemm", [x, kernel, bias], "dense"))
        elif kind == "Activation":
            x = _activation(graph, layer.activation, x)
        elif kind == "BatchNormalization":
            gamma, beta, mean, variance = (graph.constant(n, w) for n, w in zip(("gamma", "beta", "mean", "var"),
                                                                                 weights))
            x = graph.node("BatchNormalization", [x, gamma, beta, mean, variance], "batchnorm",
                           epsilon=layer.epsilon)
        elif kind == "Normalization":
            mean, variance = weights
            scale = np.maximum(np.sqrt(variance.astype(np.float64)), NORMALIZATION_EPSILON).astype(np.float32)
            if layer.invert:
                x = graph.node("Add", [graph.node("Mul", [x, graph.constant("scale", scale)]),
                                       graph.constant("mean", mean)])
            else:
                x = graph.node("Div", [graph.node("Sub", [x, graph.constant("mean", mean)]),
                                       graph.constant("scale", scale)])
        elif kind not in ("Dropout", "InputLayer"):
            raise ValueError(f"no ONNX form for layer {kind}")
    return x


def model_proto(graph, inputs, outputs, doc, domains=()):
    """The ModelProto of `graph` with its inputs and outputs (ValueInfoProtos), at the pinned opset (and the given
    (domain, version) pairs), checked."""
    onnx = graph.onnx
    opsets = [onnx.helper.make_opsetid("", OPSET)] + [onnx.helper.make_opsetid(*pair) for pair in domains]
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "nbtrain", inputs, outputs, graph.initializers, doc_string=doc),
        opset_imports=opsets, producer_name="nbtrain")
    onnx.checker.check_model(proto)
    return proto


def sequential_proto(model):
    """A built Sequential as an ONNX model: float32 input "input" (N, n_in) -> output "output" (N, n_out)."""
    graph = Graph("")
    onnx, float32 = graph.onnx, graph.onnx.TensorProto.FLOAT
    graph.node("Identity", [network(model, graph, "input")], output="output")
    return model_proto(graph, [onnx.helper.make_tensor_value_info("input", float32, [None, model.plan.n_in])],
                       [onnx.helper.make_tensor_value_info("output", float32, [None, model.plan.n_out])],
                       f"nbtrain Sequential {model.name!r}")


def write(proto, path):
    """The serialized model at path, written atomically."""
    from .files import atomic_write

    def save(tmp):
        with open(tmp, "wb") as handle:
            handle.write(proto.SerializeToString())
    atomic_write(path, save)
