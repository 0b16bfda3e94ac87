"""A Sequential as an ONNX graph (Keras 3's `model.export(path, format="onnx")`), built with the `onnx` package at a
pinned opset: Dense as Gemm, the activations as ONNX operators, BatchNormalization in its inference form,
Normalization as constants, Dropout left out. `network` gives the nodes for other graphs to embed (the command
line's export adds the preprocessing around them)."""
import math

import numpy as np


OPSET = 17  # every operator here exists there; onnxruntime 1.15 and later run it
from .engine.plan import ELU_ALPHA, LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE


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

    def activation(self, name, x):
        """The ONNX form of one of nbtrain's activations after x (linear: x itself)."""
        if name == "linear":
            return x
        simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
        if name in simple:
            return self.node(simple[name], [x])
        if name == "softmax":
            return self.node("Softmax", [x], axis=-1)
        if name == "elu":
            return self.node("Elu", [x], alpha=ELU_ALPHA)
        if name == "leaky_relu":
            return self.node("LeakyRelu", [x], alpha=LEAKY_SLOPE)
        if name == "gelu":  # exact: 0.5 x (1 + erf(x / sqrt 2)); opset 17 has no Gelu operator
            erf = self.node("Erf", [self.node("Mul", [x, self.constant("rsqrt2", 1 / math.sqrt(2.0))])])
            half = self.node("Mul", [x, self.constant("half", 0.5)])
            return self.node("Mul", [half, self.node("Add", [erf, self.constant("one", 1.0)])])
        if name in ("silu", "swish"):
            return self.node("Mul", [x, self.node("Sigmoid", [x])])
        if name == "selu":
            return self.node("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE)
        if name == "mish":  # x tanh(softplus(x)); ONNX's Mish operator needs opset 18
            return self.node("Mul", [x, self.node("Tanh", [self.node("Softplus", [x])])])
        raise ValueError(f"no ONNX form for activation {name!r}")


def network(model, graph, x):
    """Append the inference-mode nodes of a built Sequential to `graph`, from the float32 (N, n_in) tensor named x;
    returns the name of its (N, n_out) output. Each layer writes its own nodes (Layer.onnx). An Ensemble's output is
    the mean of its members'. Shared-weight members (plan.members > 1): every row goes through every member (the rows
    tiled member-major, as the engine stacks them) and the output is the members' mean."""
    if hasattr(model, "each_member"):
        members = model.each_member()
        total = graph.node("Sum", [network(member, graph, x) for member in members])
        return graph.node("Mul", [total, graph.constant("mean", 1.0 / len(members))])
    members = model.plan.members
    if members > 1:
        x = graph.node("Tile", [x, graph.constant("members", [members, 1], np.int64)])
    for layer in model.layers:
        x = layer.onnx(graph, x)
    if members > 1:
        x = graph.node("Reshape", [x, graph.constant("by_member", [members, -1, model.plan.n_out], np.int64)])
        x = graph.node("ReduceMean", [x], axes=[0], keepdims=0)
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
                       f"nbtrain {type(model).__name__} {model.name!r}")


def write(proto, path):
    """The serialized model at path, written atomically."""
    from .files import atomic_write

    def save(tmp):
        with open(tmp, "wb") as handle:
            handle.write(proto.SerializeToString())
    atomic_write(path, save)
