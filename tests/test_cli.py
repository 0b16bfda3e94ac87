"""The command line, through Typer's CliRunner: fit, predict, evaluate, info, progress output, Ctrl-C, a diverging
loss and every bad input the issue lists (exit code 2, one line on stderr, no traceback, nothing half-written).
Fits are tiny (8 hidden units, a few epochs) so the file runs in seconds once Numba's cache is warm."""
import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbtrain import Sequential, layers, load_model
from nbtrain.cli import app
from nbtrain.cli.display import EpochBar, EpochLines, progress
from nbtrain.tabular.preprocessing import split_rows

TINY = ["--layers", "8", "--epochs", "4", "--batch-size", "32"]


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_fails(result, message):
    """Exit code 2, the message on one stderr line, no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def make_shop(n=200, seed=0):
    """A table as users have them: an ID, numbers with gaps, a text category with gaps, rows with no target,
    a numeric target (price) and a yes/no one (bought)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(0, 10, n)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    price = 50 + 10 * x1 + 3 * x2 + np.select([color == "red", color == "blue"], [5.0, -5.0], 0.0) + rng.normal(0, 1, n)
    bought = np.where(price > np.median(price), "yes", "no")
    x1[rng.random(n) < 0.1] = np.nan
    color[rng.random(n) < 0.05] = None
    price[[3, 7, 11]] = np.nan
    return pd.DataFrame({"id": np.arange(1000, 1000 + n), "x1": x1, "x2": x2, "color": color, "price": price,
                         "bought": bought})


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shop.csv"
    make_shop().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def regression_run(shop, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "price"
    result = run("fit", shop, "--target", "price", "--drop", "id", "--drop", "bought", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return result, out


@pytest.fixture(scope="module")
def binary_run(shop, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bought"
    result = run("fit", shop, "-t", "bought", "--drop", "id", "--drop", "price", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return result, out


def validation_rows(path, target, seed=0, val_split=0.2):
    """The rows fit held out: the labelled rows, split as nbtrain.tabular.preprocessing.split_rows does."""
    frame = pd.read_csv(path)
    labelled = frame[frame[target].notna()]
    return labelled.iloc[split_rows(len(labelled), val_split, seed)[1]]


def predictions(model, frame, tmp_path):
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    result = run("predict", model, path)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


def best_epoch_logs(out):
    history = pd.read_csv(out / "history.csv")
    best = load_model(out / "model.nbt").metadata["training"]["best_epoch"]
    return history.iloc[best - 1], best


# ------------------------------------------------------------------------------------------------ help and version
def test_version():
    result = run("--version")
    assert result.exit_code == 0 and re.fullmatch(r"nbtrain \d+\.\d+\.\d+\s*", result.stdout)


@pytest.mark.parametrize("command, option", [("fit", "--val-split"), ("predict", "--output"), ("evaluate", "MODEL"),
                                             ("info", "MODEL")])
def test_every_command_has_help_with_examples(command, option):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert option in result.stdout and "Examples" in result.stdout and f"nbtrain {command} " in result.stdout


def test_help_and_version_do_not_import_numba_or_pandas():
    code = ("import sys; from nbtrain.cli import app\n"
            "for argv in (['--help'], ['--version'], ['fit', '--help']):\n"
            "    try: app(argv)\n"
            "    except SystemExit: pass\n"
            "print('LOADED', [m for m in ('numba', 'pandas', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out


# ------------------------------------------------------------------------------------------------ fit
def test_fit_regression_reports_and_writes_the_run(regression_run):
    result, out = regression_run
    lines = result.stdout.splitlines()
    assert "Task: regression of 'price' (loss mae; trained on the standardized target" in result.stdout
    assert "Features: 3 columns (2 numeric, 1 categorical) -> 5 inputs; scaling standard; dropped 'id', 'bought'" \
        in result.stdout
    assert "Split: 158 training rows, 39 validation rows (seed 0)" in result.stdout
    assert "Note: 3 rows of the data have no 'price' value and were left out" in result.stdout
    epoch_lines = [line.split(" - ")[0] for line in lines if line.startswith("Epoch ")]
    assert epoch_lines == ["Epoch 1/4", "Epoch 2/4", "Epoch 3/4", "Epoch 4/4"]
    assert re.search(r"Training ended: all epochs done; the model keeps the weights of epoch \d\n", result.stdout)
    assert re.search(r"Best epoch \d of 4", result.stdout) and "samples/s" in result.stdout
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    metadata = load_model(out / "model.nbt").metadata
    assert metadata["preprocessing"]["target"]["task"] == "regression"
    assert [f["name"] for f in metadata["preprocessing"]["features"]] == ["x1", "x2", "color"]
    assert metadata["training"]["train_rows"] == 158 and metadata["training"]["options"]["layers"] == "8"


def test_fit_regression_metrics_are_in_target_units_and_the_best_weights_are_saved(regression_run, shop, tmp_path):
    # val_mae of the best epoch, as logged, equals the MAE of the saved model's predictions on the held-out
    # rows: the target was scaled and unscaled consistently and the best weights are the ones saved
    _, out = regression_run
    logs, _ = best_epoch_logs(out)
    val = validation_rows(shop, "price")
    predicted = predictions(out / "model.nbt", val, tmp_path)["prediction"]
    assert np.abs(predicted.to_numpy() - val["price"].to_numpy()).mean() == pytest.approx(logs["val_mae"], rel=1e-4)
    assert logs["val_mae"] == pytest.approx(logs["val_loss"] * load_model(out / "model.nbt").metadata[
        "preprocessing"]["target"]["scale"], rel=1e-5)  # mae loss: the logged metric is the loss in target units


def test_fit_binary_prints_the_label_mapping_and_logs_accuracy(binary_run, shop, tmp_path):
    result, out = binary_run
    assert "Task: binary classification of 'bought': 'no' -> 0, 'yes' -> 1 (loss binary_crossentropy)" in result.stdout
    assert "binary_accuracy" in result.stdout
    logs, _ = best_epoch_logs(out)
    val = validation_rows(shop, "bought")
    predicted = predictions(out / "model.nbt", val, tmp_path)["prediction"]
    assert (predicted.to_numpy() == val["bought"].to_numpy()).mean() == pytest.approx(logs["val_binary_accuracy"])


def test_fit_is_reproducible_with_a_seed(shop, tmp_path):
    args = ["fit", shop, "-t", "price", "--drop", "id", "--drop", "bought", *TINY, "--quiet", "--seed", "5"]
    run(*args, "--out", tmp_path / "a"), run(*args, "--out", tmp_path / "b")
    first, second = (pd.read_csv(tmp_path / name / "history.csv") for name in "ab")
    pd.testing.assert_frame_equal(first, second)


def test_fit_with_a_validation_file_and_semicolons_from_stdin(tmp_path):
    frame = make_shop(seed=1).drop(columns=["id", "bought"])
    frame.iloc[:50].to_csv(tmp_path / "val.csv", sep=";", index=False)
    text = frame.iloc[50:].to_csv(sep=";", index=False)
    result = run("fit", "-", "-t", "price", "--val", tmp_path / "val.csv", *TINY, "--out", tmp_path / "run",
                 input=text)
    assert result.exit_code == 0, result.output
    assert "Data: standard input: 150 rows x 4 columns" in result.stdout
    assert "Split: 150 training rows, 47 validation rows" in result.stdout  # 3 validation rows have no price


def test_fit_without_validation_monitors_the_training_loss(shop, tmp_path):
    result = run("fit", shop, "-t", "bought", "--val-split", "0", *TINY, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Split: 200 training rows, 0 validation rows" in result.stdout
    assert list(pd.read_csv(tmp_path / "history.csv").columns) == ["epoch", "loss", "binary_accuracy"]


def test_fit_from_parquet(shop, tmp_path):
    pytest.importorskip("pyarrow")
    pd.read_csv(shop).to_parquet(tmp_path / "shop.parquet")
    result = run("fit", tmp_path / "shop.parquet", "-t", "bought", *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "200 rows x 6 columns" in result.stdout


def test_quiet_prints_only_the_result(shop, tmp_path):
    result = run("fit", shop, "-t", "bought", *TINY, "--quiet", "--out", tmp_path)
    assert result.exit_code == 0
    assert "Epoch" not in result.stdout and "Task:" not in result.stdout
    assert "Best epoch" in result.stdout and (tmp_path / "model.nbt").exists()


def test_default_run_folder_is_timestamped_under_runs(shop, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("fit", shop, "-t", "bought", *TINY, "-q").exit_code == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}", folder.name) and (folder / "model.nbt").exists()


def test_learning_curves_with_matplotlib(shop, tmp_path):
    pytest.importorskip("matplotlib")
    result = run("fit", shop, "-t", "bought", *TINY, "-q", "--out", tmp_path)
    assert "learning_curves.png" in result.stdout
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_it_says_how_to_get_the_plot(shop, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    result = run("fit", shop, "-t", "bought", *TINY, "-q", "--out", tmp_path)
    assert result.exit_code == 0
    assert "install matplotlib" in result.stdout and not (tmp_path / "learning_curves.png").exists()


def test_progress_bar_on_a_terminal():
    from rich.console import Console
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120)
    model = Sequential([layers.Dense(1, input_shape=[2])])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    with progress(console, quiet=False) as display:
        model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=display, seed=0)
    assert [type(cb) for cb in display] == [EpochBar]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert re.search(r"Epoch 3/3 ━+ ", text) and f"loss: {model.history.history['loss'][-1]:.4f}" in text


def test_ctrl_c_stops_cleanly_and_saves_everything(shop, tmp_path, monkeypatch):
    def interrupt(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(EpochLines, "on_epoch_end", interrupt)
    result = run("fit", shop, "-t", "price", "--drop", "id", "--drop", "bought", "--layers", "8", "--epochs", "50",
                 "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "interrupted after 3 epochs" in result.stdout
    training = load_model(tmp_path / "model.nbt").metadata["training"]
    # the interrupt came from the display, which runs after EarlyStopping: the best of all 3 recorded epochs is kept
    assert training["status"] == "interrupted after 3 epochs" and training["best_epoch"] <= 3
    logs, _ = best_epoch_logs(tmp_path)  # the restored best weights are what was saved
    val = validation_rows(shop, "price")
    predicted = predictions(tmp_path / "model.nbt", val, tmp_path)["prediction"]
    assert np.abs(predicted.to_numpy() - val["price"].to_numpy()).mean() == pytest.approx(logs["val_mae"], rel=1e-4)


def blow_up_weights_at(epoch_index):
    """A progress hook that makes the next batch's loss overflow, as a far too high learning rate does."""
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == epoch_index:
            self.model.set_weights([w * 1e30 for w in self.model.get_weights()])
    return on_epoch_begin


def test_diverging_loss_stops_keeps_the_best_weights_and_exits_2(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(EpochLines, "on_epoch_begin", blow_up_weights_at(2))
    result = run("fit", shop, "-t", "price", "--drop", "id", "--drop", "bought", *TINY, "--out", tmp_path)
    assert_fails(result, "the loss became non-finite at epoch 3, batch 1")
    assert "try a lower learning rate" in result.stderr and "has the weights of epoch" in result.stderr
    model = load_model(tmp_path / "model.nbt")
    assert model.metadata["training"]["status"] == "diverged" and model.metadata["training"]["best_epoch"] <= 2
    assert np.isfinite(predictions(tmp_path / "model.nbt", make_shop(), tmp_path)["prediction"]).all()


def test_diverging_in_the_first_epoch_saves_nothing(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(EpochLines, "on_epoch_begin", blow_up_weights_at(0))
    result = run("fit", shop, "-t", "price", *TINY, "--out", tmp_path / "run")
    assert_fails(result, "no epoch ended with a finite loss, so nothing was saved")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ predict
def test_predict_regression_to_stdout_and_file(regression_run, shop, tmp_path):
    _, out = regression_run
    to_stdout = run("predict", out / "model.nbt", shop)
    assert to_stdout.exit_code == 0
    table = pd.read_csv(io.StringIO(to_stdout.stdout))
    assert list(table.columns) == ["prediction"] and len(table) == 200
    to_file = run("predict", out / "model.nbt", shop, "-o", tmp_path / "preds.csv")
    assert to_file.exit_code == 0 and "Wrote 200 predictions" in to_file.stderr
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "preds.csv"), table)


def test_predict_handles_unseen_categories_missing_values_and_other_columns(regression_run, tmp_path):
    _, out = regression_run
    rows = pd.DataFrame({"note": ["a", "b", "c"], "color": ["purple", None, "red"], "x2": [1.0, 2.0, None],
                         "x1": [0.5, None, 0.5]})
    predicted = predictions(out / "model.nbt", rows, tmp_path)["prediction"]
    assert np.isfinite(predicted).all() and len(predicted) == 3
    assert predicted[0] != predicted[2]  # 'purple' is all zeros, not 'red'


def test_predict_binary_gives_label_and_probability_from_stdin(binary_run, shop):
    _, out = binary_run
    result = run("predict", out / "model.nbt", "-", input=shop.read_text())
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table.columns) == ["prediction", "probability"]
    assert table["probability"].between(0, 1).all()
    assert (table["prediction"] == np.where(table["probability"] > 0.5, "yes", "no")).all()


def test_predict_missing_feature_column(regression_run, shop, tmp_path):
    _, out = regression_run
    pd.read_csv(shop).drop(columns="x1").to_csv(tmp_path / "no_x1.csv", index=False)
    assert_fails(run("predict", out / "model.nbt", tmp_path / "no_x1.csv"), "lacks the feature column 'x1'")


# ------------------------------------------------------------------------------------------------ evaluate and info
def table_value(text, name):
    return float(re.search(rf"│ {name}\s+│\s+([-\d.e]+) │", text).group(1))


def test_evaluate_regression_metrics_come_from_predictions_in_target_units(regression_run, shop, tmp_path):
    _, out = regression_run
    result = run("evaluate", out / "model.nbt", shop)
    assert result.exit_code == 0, result.output
    assert "Note: 3 rows of" in result.stdout and ": 197 rows" in result.stdout
    frame = pd.read_csv(shop)
    error = pd.read_csv(io.StringIO(run("predict", out / "model.nbt", shop).stdout))["prediction"] - frame["price"]
    assert table_value(result.stdout, "mae") == pytest.approx(error.abs().mean(), abs=3e-4)
    assert table_value(result.stdout, "rmse") == pytest.approx(np.sqrt((error ** 2).mean()), abs=3e-4)
    assert table_value(result.stdout, "loss") == pytest.approx(error.abs().mean() / load_model(
        out / "model.nbt").metadata["preprocessing"]["target"]["scale"], abs=1e-4)


def test_evaluate_binary_accuracy(binary_run, shop):
    _, out = binary_run
    result = run("evaluate", out / "model.nbt", shop)
    predicted = pd.read_csv(io.StringIO(run("predict", out / "model.nbt", shop).stdout))["prediction"]
    accuracy = (predicted == pd.read_csv(shop)["bought"]).mean()
    assert table_value(result.stdout, "binary_accuracy") == pytest.approx(accuracy, abs=1e-4)


def test_evaluate_unknown_label(binary_run, shop, tmp_path):
    _, out = binary_run
    pd.read_csv(shop).assign(bought="maybe").to_csv(tmp_path / "odd.csv", index=False)
    assert_fails(run("evaluate", out / "model.nbt", tmp_path / "odd.csv"), "values the model was not trained on")


def test_info_describes_the_model(binary_run):
    _, out = binary_run
    result = run("info", out / "model.nbt")
    assert result.exit_code == 0
    text = result.stdout
    assert "Task: binary classification of 'bought': 'no' -> 0, 'yes' -> 1" in text
    assert f"Parameters: {load_model(out / 'model.nbt').count_params():,}" in text
    assert re.search(r"│ color\s+│ categorical │ \w+\s+│ one-hot: blue, green, red", text)
    assert re.search(r"│ x1\s+│ numeric\s+│", text) and "Dropped at training: 'id', 'price'" in text
    assert "best epoch" in text and "val_binary_accuracy" in text


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_data_files(shop, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "one.csv").write_text("a,y\n1,x\n2,x\n")
    (tmp_path / "blank.csv").write_text("a,b,y\n1,,1\n2,,2\n3,,3\n")
    (tmp_path / "words.csv").write_text("a,y\n1,low\n2,mid\n3,high\n")
    for args, message in [
        (["fit", tmp_path / "nope.csv", "-t", "y"], "file not found"),
        (["fit", tmp_path / "empty.csv", "-t", "y"], "empty.csv is empty"),
        (["fit", tmp_path / "binary.csv", "-t", "y"], "is a binary file, not a CSV table"),
        (["fit", shop, "-t", "Price"], "target column 'Price' not found in the data; its columns are 'id', 'x1', "
                                       "'x2', 'color', 'price', 'bought'"),
        (["fit", tmp_path / "one.csv", "-t", "y"], "target column 'y' has only one distinct value ('x')"),
        (["fit", tmp_path / "words.csv", "-t", "y"], "target column 'y' is not numeric"),
        (["fit", shop, "-t", "bought", "--task", "regression"], "target column 'bought' is not numeric"),
        (["fit", tmp_path / "blank.csv", "-t", "y"], "column 'b' has no values (all missing)"),
        (["fit", shop, "-t", "price", "--drop", "nope"], "column 'nope' to drop not found"),
        (["fit", shop, "-t", "bought", "--loss", "mse"], "--loss applies to regression"),
        (["fit", shop, "-t", "price", "--layers", "64,x"], "--layers must be comma-separated positive widths"),
        (["fit", shop, "-t", "price", "--lr", "0"], "--lr must be positive"),
    ]:
        result = run(*args, "--out", tmp_path / "run")
        assert_fails(result, message)
        assert not (tmp_path / "run").exists()  # nothing written


def test_cuda_without_a_gpu_is_a_one_line_error(shop, tmp_path, monkeypatch):
    pytest.importorskip("numba_cuda")
    from nbtrain import engine
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    monkeypatch.setattr(engine, "_driver_present", lambda: False)
    result = run("fit", shop, "-t", "price", *TINY, "--device", "cuda", "--out", tmp_path / "run")
    assert_fails(result, "device='cuda' cannot be used: no NVIDIA driver")
    assert not (tmp_path / "run").exists()


def test_usage_errors_exit_2():
    result = run("fit", "data.csv", "--target", "y", "--loss", "hinge")
    assert result.exit_code == 2 and "hinge" in result.output
    assert run("fit", "data.csv").exit_code == 2  # --target is required


def test_unwritable_output_directory_fails_before_training(shop, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = run("fit", shop, "-t", "price", *TINY, "--out", tmp_path / "file" / "run")
    assert_fails(result, "cannot write to the output directory")
    assert "Epoch" not in result.stdout


def newer_model_file(source, path):
    """A copy of a model file that claims a newer format version."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(path, "w") as new:
        for name in old.namelist():
            content = old.read(name)
            if name == "config.json":
                content = json.dumps({**json.loads(content), "format_version": 99})
            new.writestr(name, content)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate", "info"])
def test_bad_model_files(command, shop, tmp_path):
    (tmp_path / "corrupt.nbt").write_bytes(b"PK\x03\x04 truncated")
    bare = Sequential([layers.Dense(1, input_shape=[2])])
    bare.build()
    bare.save(tmp_path / "bare.nbt")
    data = [] if command == "info" else [shop]
    for model, message in [
        (tmp_path / "missing.nbt", "model file not found"),
        (tmp_path / "corrupt.nbt", "is not a readable nbtrain model file"),
        (newer_model_file(tmp_path / "bare.nbt", tmp_path / "newer.nbt"), "by a newer nbtrain (model format 99"),
        (tmp_path / "bare.nbt", "has no preprocessing: it was not written by `nbtrain fit`"),
    ]:
        assert_fails(run(command, model, *data), message)


def test_predict_output_that_cannot_be_written_leaves_nothing(regression_run, shop, tmp_path):
    _, out = regression_run
    assert_fails(run("predict", out / "model.nbt", shop, "-o", tmp_path / "no" / "preds.csv"), "No such file")
    assert not (tmp_path / "no").exists()


# ------------------------------------------------------------------------------------------------ the course data
def test_red_wine_end_to_end(data_dir, tmp_path):
    wine = data_dir / "red-wine.csv"
    result = run("fit", wine, "-t", "quality", "--layers", "128,128", "--epochs", "60", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "Task: regression of 'quality'" in result.stdout and "Split: 1279 training rows, 320 validation rows" \
        in result.stdout
    logs, _ = best_epoch_logs(tmp_path)
    assert logs["val_mae"] < 0.56  # predicting the training median scores 0.64 on these validation rows
    table = pd.read_csv(io.StringIO(run("predict", tmp_path / "model.nbt", wine).stdout))
    assert len(table) == 1599 and table["prediction"].between(2, 9).all()
    assert table_value(run("evaluate", tmp_path / "model.nbt", wine).stdout, "mae") < 0.56


def test_ionosphere_end_to_end(data_dir, tmp_path):
    ion = data_dir / "ion.csv"
    result = run("fit", ion, "-t", "Class", "--layers", "64,64", "--epochs", "100", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "'bad' -> 0, 'good' -> 1" in result.stdout and "34 columns (34 numeric, 0 categorical)" in result.stdout
    logs, _ = best_epoch_logs(tmp_path)
    assert logs["val_binary_accuracy"] >= 0.85  # always predicting 'good' scores about 0.64
    info = run("info", tmp_path / "model.nbt").stdout
    assert "│ V34 " in info and "Unnamed" not in info  # the unnamed row index is not a feature
    table = pd.read_csv(io.StringIO(run("predict", tmp_path / "model.nbt", ion).stdout))
    assert len(table) == 351 and set(table["prediction"]) == {"good", "bad"}
