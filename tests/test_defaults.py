"""The command line's defaults (issue 27): robust scaling with smooth clipping, the same in prepare() and the streamed
fit (tests/test_streaming.py compares them on whole tables), and a regression target clamped to its training range,
both kept in the model file and applied by predict and by the ONNX export; the default recipe's choices in
`nbtrain fit`'s summary, and `--recipe course` training exactly the course's model."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbtrain.cli import app
from nbtrain.errors import ModelFileError
from nbtrain.tabular.options import COURSE, FitOptions
from nbtrain.tabular.preprocessing import CLIP, Feature, Preprocessing, prepare, quantile, robust_scale, split_rows

HOUSES = Path(__file__).resolve().parent.parent / "data" / "houses.csv"


def test_robust_scaling_is_the_median_and_interquartile_range_then_smooth_clipping():
    values = pd.Series([1.0, 2, 3, 4, 100, np.nan])
    feature = Feature.fit(values, "x", "robust")
    assert (feature.fill, feature.center, feature.scale, feature.clip) == (3.0, 3.0, 2.0, CLIP)
    z = (np.array([1, 2, 3, 4, 100, 3.0]) - 3) / 2  # the gap filled with the median
    np.testing.assert_allclose(feature.transform(values, "x")[:, 0], z / np.sqrt(1 + (z / 3) ** 2))
    assert np.abs(feature.transform(pd.Series([-1e30, 1e30]), "x")).max() <= CLIP
    assert (Feature.fit(pd.Series([0.0] * 7 + [8]), "y", "robust").scale,
            Feature.fit(pd.Series([5.0] * 4), "z", "robust").scale) == (4.0, 1.0)  # half the range; constant: 1
    assert Feature.fit(values, "x", "standard").clip == 0.0


@pytest.mark.parametrize("n", [1, 2, 5, 8, 101])
def test_quantiles_from_order_statistics_are_numpys(n):
    values = np.sort(np.random.default_rng(n).normal(size=n))
    for q in (0.25, 0.5, 0.75):
        assert quantile(values.__getitem__, n, q) == pytest.approx(np.quantile(values, q), rel=1e-12, abs=1e-12)
    center, spread = robust_scale(values.__getitem__, n)
    assert center == pytest.approx(np.median(values))
    assert spread == pytest.approx(np.subtract(*np.quantile(values, [0.75, 0.25])) or
                                   (values[-1] - values[0]) / 2 or 1.0)


def test_a_regression_is_clamped_to_its_training_range_and_kept_in_the_model_file():
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.linspace(10, 50, 40)})
    pre = prepare(frame, "y", scaling="robust").preprocessing
    target = pre.target
    training = frame.y.iloc[split_rows(len(frame), 0.2, 0)[0]]  # prepare's default split
    assert (target.low, target.high) == (training.min(), training.max())
    outputs = (np.array([[-100.0], [30.0], [100.0]]) - target.center) / target.scale
    assert target.decode(outputs)["prediction"].tolist() == pytest.approx([target.low, 30.0, target.high])
    again = Preprocessing.from_dict(pre.to_dict())
    assert again == pre and again.to_dict()["format"] == 3
    older = pre.to_dict()
    older.update(format=2, target={k: v for k, v in older["target"].items() if k not in ("low", "high")},
                 features=[{k: v for k, v in f.items() if k != "clip"} for f in older["features"]])
    old = Preprocessing.from_dict(older)  # a model file from before: not clamped, not clipped
    assert old.target.low is None and old.features[0].clip == 0.0
    assert old.target.decode([[1e6]])["prediction"][0] > target.high


@pytest.mark.parametrize("change, message", [
    (lambda d: d["features"][0].update(clip=-1.0), "clip"),
    (lambda d: d["target"].update(low=5.0, high=1.0), "range"),
    (lambda d: d["target"].update(high=None), "range"),
])
def test_a_model_file_with_a_bad_clip_or_range_is_refused(change, message):
    data = prepare(pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) ** 2}), "y", scaling="robust") \
        .preprocessing.to_dict()
    change(data)
    with pytest.raises(ModelFileError, match=message):
        Preprocessing.from_dict(data)


def test_the_onnx_export_clips_and_clamps_as_predict(tmp_path):
    onnx = pytest.importorskip("onnxruntime", reason="the export is checked in onnxruntime (the test extra has it)")
    from nbtrain.tabular.apply import predictions
    from nbtrain.tabular.export import onnx_inputs, write_table_model
    from nbtrain.tabular.fit import fit_table
    result = fit_table(FitOptions(data=str(HOUSES), target="price_k", drop=("house_id",), layers=(16,), epochs=3,
                                  device="cpu"), tmp_path / "run")
    model, pre = result.model, result.prep.preprocessing
    assert pre.scaling == "robust" and all(f.clip == CLIP for f in pre.features if f.kind == "numeric")
    frame = pd.read_csv(HOUSES).head(60)
    frame.loc[0, "area_m2"] = 1e9  # far outside the training rows: clipped
    middle = float(np.median(predictions(model, pre, frame, "rows")["prediction"]))
    pre.target.high = middle  # half the rows clamped
    expected = predictions(model, pre, frame, "rows")["prediction"].to_numpy()
    assert (expected == middle).sum() >= 30
    write_table_model(model, pre, tmp_path / "m.onnx")
    session = onnx.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["prediction"], onnx_inputs(frame, pre))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_summary_names_the_recipe_scaling_embeddings_and_architecture(tmp_path):
    runner = CliRunner()
    default = runner.invoke(app, ["fit", str(HOUSES), "-t", "price_k", "--drop", "house_id", "--epochs", "1",
                                  "-o", str(tmp_path / "a")])
    assert default.exit_code == 0, default.output
    for text in ("scaling robust (median, IQR, smooth clipping); embeddings piecewise-linear (48 quantile bins per "
                 "input)",
                 "Model (default recipe): hidden ReLU layers 256-256-256", "adam (beta_2 0.95) lr ", " cosine to 0",
                 "no early stopping, best epoch kept"):
        assert text in default.output
    course = runner.invoke(app, ["fit", str(HOUSES), "-t", "price_k", "--drop", "house_id", "--epochs", "1",
                                 "--recipe", "course", "-o", str(tmp_path / "b")])
    assert course.exit_code == 0, course.output
    for text in ("scaling standard; embeddings none", "Model (course recipe): hidden ReLU layers 512-512-512",
                 "adam (beta_2 0.999) lr 0.001, batch 256", "early stopping on val_loss (patience 20)"):
        assert text in course.output


def test_the_course_recipe_trains_the_course_model_exactly(tmp_path):
    """`--recipe course` is nbtrain fit as it was: standard scaling, and the weights of the course's 3x512 network
    with Keras's Adam and a constant learning rate fitted on its arrays by hand."""
    from nbtrain import Sequential, layers, optimizers
    from nbtrain.tabular.fit import fit_table
    result = fit_table(FitOptions(data=str(HOUSES), target="price_k", drop=("house_id",), recipe="course", epochs=1),
                       tmp_path / "run")
    prep = result.prep
    assert prep.preprocessing.scaling == "standard" and result.options.layers == COURSE.layers == (512, 512, 512)
    assert all(f.clip == 0.0 for f in prep.preprocessing.features)
    numeric = next(f for f in prep.preprocessing.features if f.kind == "numeric")
    column = pd.read_csv(HOUSES)[numeric.name]
    assert numeric.scale != pytest.approx(np.subtract(*column.quantile([0.75, 0.25])))
    model = Sequential([layers.Dense(512, activation="relu") for _ in range(3)] + [layers.Dense(1)])
    model.build((None, prep.x.shape[1]), seed=0)
    model.compile(optimizers.Adam(), "mae", ["mae"])
    model.fit(prep.x, prep.y, validation_data=(prep.x_val, prep.y_val), batch_size=256, epochs=1, seed=0, verbose=0)
    for mine, theirs in zip(result.model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
