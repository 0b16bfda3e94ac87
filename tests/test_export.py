"""ONNX export of a Sequential, run in onnxruntime: the same outputs as predict, for every layer and activation."""
import numpy as np
import pytest

from nbtrain import Sequential, layers

onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra (the test extra installs it)")
ort = pytest.importorskip("onnxruntime", reason="the export is checked in onnxruntime (the test extra installs it)")


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("activations", [("relu", "tanh", "sigmoid"), ("gelu", "elu", "softmax"),
                                         ("leaky_relu", "softplus", "linear"), ("silu", "selu", "mish"),
                                         ("swish", "mish", "selu")])
def test_exported_graph_gives_predict_outputs(tmp_path, activations):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5)).astype(np.float32) * 3 + 1
    norm = layers.Normalization()
    norm.adapt(X)
    model = Sequential([layers.Input(shape=(5,)), norm, layers.Dense(8, activation=activations[0]),
                        layers.BatchNormalization(), layers.Dropout(0.3), layers.Dense(6, use_bias=False),
                        layers.Activation(activations[1]), layers.Dense(3, activation=activations[2])])
    model.compile(loss="mse")
    model.fit(X, rng.normal(size=(64, 3)), epochs=3, verbose=0, seed=0)  # moving statistics away from 0 and 1
    model.export(tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 17 and not any(n.op_type == "Dropout" for n in proto.graph.node)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", X), model.predict(X), rtol=1e-5, atol=1e-5)


def test_export_refuses_other_formats_and_unbuilt_models(tmp_path):
    with pytest.raises(ValueError, match="format='onnx'"):
        Sequential([layers.Dense(1, input_shape=[2])]).export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(ValueError, match="build or fit"):
        Sequential([layers.Dense(1)]).export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- a model from `nbtrain fit`, preprocessing included
@pytest.mark.parametrize("table, target, drop", [("houses.csv", "price_k", "house_id"), ("churn.csv", None, None),
                                                 ("birds.csv", "species", "bird_id")])
def test_a_table_model_exports_with_its_preprocessing(tmp_path, table, target, drop):
    """`nbtrain export`'s graph on the raw table's columns returns what `nbtrain predict` writes (to its CSV's six
    significant digits), for regression, binary and multiclass models on the bundled data (missing cells, text
    categories, an unseen category)."""
    import pandas as pd
    from pathlib import Path

    from typer.testing import CliRunner

    from nbtrain.cli import app
    from nbtrain.tabular.export import onnx_inputs
    from nbtrain.tabular.fit import fit_table
    from nbtrain.tabular.options import FitOptions
    from nbtrain.tabular.runfolder import load_run

    data = Path(__file__).resolve().parent.parent / "data" / table
    frame = pd.read_csv(data)
    target = target or frame.columns[-1]
    options = FitOptions(data=str(data), target=target, drop=(drop,) if drop else (), layers=(16,), epochs=3, seed=0,
                         device="cpu")
    fit_table(options, tmp_path / "run")
    model, pre = load_run(tmp_path / "run" / "model.nbt")
    rows = frame.head(40).copy()
    text = [f.name for f in pre.features if f.kind == "categorical"]
    if text:
        rows.loc[rows.index[0], text[0]] = "never seen in training"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(tmp_path / "run" / "model.nbt"), str(tmp_path / "rows.csv"),
                                 "-o", str(tmp_path / "preds.csv")])
    assert result.exit_code == 0, result.output
    expected = pd.read_csv(tmp_path / "preds.csv", keep_default_na=False)
    result = runner.invoke(app, ["export", str(tmp_path / "run" / "model.nbt"), "--onnx", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0 and "Wrote" in result.output, result.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, onnx_inputs(rows, pre))))
    if pre.target.task == "regression":
        np.testing.assert_allclose(got["prediction"], expected["prediction"], rtol=1e-5)
    else:
        assert [str(v) for v in got["prediction"]] == [str(v) for v in expected["prediction"]]
        if pre.target.task == "binary":
            np.testing.assert_allclose(got["probability"], expected["probability"], rtol=1e-5, atol=1e-6)
        else:
            columns = [c for c in expected.columns if c.startswith("probability_")]
            np.testing.assert_allclose(got["probabilities"], expected[columns].to_numpy(), rtol=1e-5, atol=1e-6)
