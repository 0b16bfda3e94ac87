"""A model from `nbtrain fit` as one ONNX graph with its preprocessing: the raw table's columns as named inputs
(numbers as float64 with NaN for missing, text as strings with "" for missing), the imputation, scaling and one-hot
encoding, the network, and what `nbtrain predict` returns (the value in the target's units, or the label and the
probabilities). Any ONNX runtime can then serve it without nbtrain or Numba."""
import numpy as np

from ..exporting import Graph, model_proto, network, write
from .preprocessing import _as_text, _numbers

ML_OPSET = 3  # ai.onnx.ml, for LabelEncoder (text categories to codes)


def _feature(graph, feature):
    """The float32 (N, width) block of one column's model inputs, from its input tensor of the same name."""
    x = feature.name
    if feature.kind == "numeric":
        filled = graph.node("Where", [graph.node("IsNaN", [x]), graph.constant("fill", feature.fill, np.float64), x])
        scaled = graph.node("Div", [graph.node("Sub", [filled, graph.constant("center", feature.center, np.float64)]),
                                    graph.constant("scale", feature.scale, np.float64)])
        if feature.clip:  # x / sqrt(1 + (x / clip)^2), as Feature.scaled
            ratio = graph.node("Div", [scaled, graph.constant("clip", feature.clip, np.float64)])
            root = graph.node("Sqrt", [graph.node("Add", [graph.constant("one", 1.0, np.float64),
                                                          graph.node("Mul", [ratio, ratio])])])
            scaled = graph.node("Div", [scaled, root])
        return graph.node("Cast", [scaled], to=graph.onnx.TensorProto.FLOAT)
    categories = list(feature.categories)
    keys, values = categories + [""], list(range(len(categories))) + [categories.index(feature.fill)]
    codes = graph.node("LabelEncoder", [x], "codes", domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                       default_int64=-1)  # unseen text: -1, no one-hot input set
    hits = graph.node("Equal", [codes, graph.constant("classes", np.arange(len(categories)), np.int64)])
    return graph.node("Cast", [hits], to=graph.onnx.TensorProto.FLOAT)


def _labels(labels):
    """The target's labels as a constant tensor: float64 when all are numbers, else text as predict writes it."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return np.array(labels, np.float64)
    return np.array([str(v) for v in labels], dtype=object)


def table_proto(model, pre):
    """The ONNX model of a fitted table model: inputs named by the feature columns; outputs "prediction" (N,) and,
    for a classifier, "probability" (N,) of the label coded 1 (binary) or "probabilities" (N, classes) in the
    order of the labels (multiclass)."""
    graph = Graph("")
    helper, types = graph.onnx.helper, graph.onnx.TensorProto
    inputs = [helper.make_tensor_value_info(f.name, types.DOUBLE if f.kind == "numeric" else types.STRING, [None, 1])
              for f in pre.features]
    x = graph.node("Concat", [_feature(graph, f) for f in pre.features], "inputs", axis=1)
    out = network(model, graph, x)
    target, flat = pre.target, graph.constant("flat", [-1], np.int64)
    outputs = []
    if target.task == "regression":
        value = graph.node("Cast", [out], to=types.DOUBLE)
        value = graph.node("Add", [graph.node("Mul", [value, graph.constant("scale", target.scale, np.float64)]),
                                   graph.constant("center", target.center, np.float64)])
        if target.low is not None:  # clamped to the training range, as Target.decode
            value = graph.node("Min", [graph.node("Max", [value, graph.constant("low", target.low, np.float64)]),
                                       graph.constant("high", target.high, np.float64)])
        graph.node("Reshape", [value, flat], output="prediction")
        outputs.append(helper.make_tensor_value_info("prediction", types.DOUBLE, [None]))
    else:
        if target.task == "binary":
            graph.node("Reshape", [out, flat], output="probability")
            chances = graph.node("Concat", [graph.node("Sub", [graph.constant("one", 1.0), out]), out], axis=1)
            outputs.append(helper.make_tensor_value_info("probability", types.FLOAT, [None]))
        else:
            chances = graph.node("Identity", [out], output="probabilities")
            outputs.append(helper.make_tensor_value_info("probabilities", types.FLOAT, [None, len(target.labels)]))
        labels = _labels(target.labels)
        index = graph.node("ArgMax", [chances], axis=1, keepdims=0)
        graph.node("Gather", [graph.constant("labels", labels, labels.dtype), index], output="prediction")
        kind = types.DOUBLE if labels.dtype == np.float64 else types.STRING
        outputs.insert(0, helper.make_tensor_value_info("prediction", kind, [None]))
    return model_proto(graph, inputs, outputs, f"nbtrain table model for {target.name!r} ({target.task})",
                       [("ai.onnx.ml", ML_OPSET)])


def write_table_model(model, pre, path):
    """The table model with its preprocessing as an ONNX file at path, written atomically."""
    write(table_proto(model, pre), path)


def onnx_inputs(frame, pre):
    """The exported graph's inputs for a DataFrame: each feature column as (N, 1), numbers as float64 (NaN for
    missing), text as strings in nbtrain's form ("" for missing)."""
    feed = {}
    for f in pre.features:
        column = frame[f.name]
        if f.kind == "numeric":
            feed[f.name] = _numbers(column, f.name, "the table").reshape(-1, 1)
        else:
            feed[f.name] = _as_text(column).fillna("").to_numpy(dtype=object).reshape(-1, 1)
    return feed
