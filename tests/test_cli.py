"""The command line, through Typer's CliRunner: fit, predict, evaluate, info for regression, binary and multiclass
tables, help and option errors, progress output, Ctrl-C, a diverging loss, run folders that exist, and every bad
input the issues list (exit code 2, one line on stderr, no traceback, nothing half-written or overwritten).
Fits are tiny (8 hidden units, a few epochs) so the file runs in seconds once Numba's cache is warm."""
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbtrain import Sequential, layers
from nbtrain.model import load_network
from nbtrain.callbacks import EarlyStopping, LambdaCallback, format_metric
from nbtrain.cli import app
from nbtrain.cli.display import EpochBar, EpochLines, progress
from nbtrain.tabular.preprocessing import Preprocessing, split_rows

TINY = ["--layers", "8", "--epochs", "4", "--batch-size", "32"]
BIRDS = Path(__file__).resolve().parent.parent / "data" / "birds.csv"  # the bundled multiclass table
SPECIES = ["finch", "sparrow", "warbler"]


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def help_text(command):
    """`nbtrain COMMAND --help` as a wide terminal shows it."""
    return CliRunner().invoke(app, [command, "--help"], prog_name="nbtrain", env={"COLUMNS": "200"}).stdout


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


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "birds"
    result = run("fit", BIRDS, "--target", "species", "--drop", "bird_id", "--layers", "16", "--epochs", "40",
                 "--batch-size", "64", "--out", out)
    assert result.exit_code == 0, result.output
    return result, out


def validation_rows(path, target, seed=0, val_split=0.2):
    """The rows fit held out: the labelled rows, split as nbtrain.tabular.preprocessing.split_rows does."""
    frame = pd.read_csv(path)
    labelled = frame[frame[target].notna()]
    return labelled.iloc[split_rows(len(labelled), val_split, seed)[1]]


def validation_rows_complement(path, target, seed=0, val_split=0.2):
    """The positions, in the file, of the rows fit trained on."""
    frame = pd.read_csv(path)
    labelled = np.flatnonzero(frame[target].notna())
    return labelled[split_rows(len(labelled), val_split, seed)[0]]


def predictions(model, frame, tmp_path):
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    result = run("predict", model, path)
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


def best_epoch_logs(out):
    history = pd.read_csv(out / "history.csv")
    best = load_network(out / "model.nbt").metadata["training"]["best_epoch"]
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


@pytest.mark.parametrize("command, usage", [("fit", "nbtrain fit [OPTIONS] DATA"),
                                            ("sweep", "nbtrain sweep [OPTIONS] DATA"),
                                            ("predict", "nbtrain predict [OPTIONS] MODEL DATA")])
def test_help_shows_argument_names_and_no_type_on_flags(command, usage):
    text = help_text(command)
    assert f"Usage: {usage}" in text and "<bool>" not in text
    assert re.search(r"--help\s+Show this message", text)
    if command != "predict":
        assert re.search(r"--quiet\s+-q\s+Print only", text) and re.search(r"--overwrite\s+Write into", text)


def test_o_is_where_each_command_writes_as_the_help_says():
    assert re.search(r"--out\s+-o\s+DIR\s+Run folder to create", help_text("fit"))
    assert re.search(r"--out\s+-o\s+DIR\s+Run folder to create", help_text("sweep"))
    assert re.search(r"--output\s+-o\s+FILE\s+CSV file to write", help_text("predict"))


@pytest.mark.parametrize("args, message", [
    (["--loss", "mea"], "Invalid value for '--loss': 'mea' is not one of mae, mse, huber."),
    (["--task", "multi"], "Invalid value for '--task': 'multi' is not one of auto, regression, binary, multiclass."),
    (["--epochs", "0"], "Invalid value for '--epochs': 0 is not in the range x>=1."),
    (["--val-split", "0.95"], "Invalid value for '--val-split': 0.95 is not in the range 0.0<=x<=0.9."),
    (["--epochs", "ten"], "Invalid value for '--epochs': 'ten' is not a valid integer."),
    (["--lr", "fast"], "Invalid value for '--lr': 'fast' is not a valid number."),
])
def test_option_errors_are_one_plain_sentence_with_the_valid_values(args, message):
    result = run("fit", "data.csv", "-t", "y", *args)
    assert result.exit_code == 2 and message in " ".join(result.output.replace("│", " ").split())
    assert "Value error" not in result.output and "Input should" not in result.output


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
    assert ("Features: 3 columns (2 numeric, 1 categorical) -> 5 inputs; scaling robust (median, IQR, "
            "smooth clipping); embeddings piecewise-linear (48 quantile bins per input); dropped 'id', 'bought'") \
        in result.stdout
    assert "Split: 158 training rows, 39 validation rows (seed 0)" in result.stdout
    assert "Note: 3 rows of the data have no 'price' value and were left out" in result.stdout
    epoch_lines = [line.split(" - ")[0] for line in lines if line.startswith("Epoch ")]
    assert epoch_lines == ["Epoch 1/4", "Epoch 2/4", "Epoch 3/4", "Epoch 4/4"]
    assert re.search(r"Training ran all 4 epochs; restoring the weights of epoch \d \(the best val_loss\)\n", result.stdout)
    assert re.search(r"Best epoch \d of 4", result.stdout) and "samples/s" in result.stdout
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    metadata = load_network(out / "model.nbt").metadata
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
    assert logs["val_mae"] == pytest.approx(logs["val_loss"] * load_network(out / "model.nbt").metadata[
        "preprocessing"]["target"]["scale"], rel=1e-5)  # mae loss: the logged metric is the loss in target units


def test_fit_binary_prints_the_label_mapping_and_logs_accuracy(binary_run, shop, tmp_path):
    result, out = binary_run
    counts = pd.read_csv(shop).iloc[validation_rows_complement(shop, "bought")]["bought"].value_counts()
    assert (f"Task: binary classification of 'bought': 'no' -> 0 ({counts['no']} training rows), 'yes' -> 1 "
            f"({counts['yes']}) (loss binary_crossentropy)") in result.stdout
    assert "binary_accuracy" in result.stdout
    logs, _ = best_epoch_logs(out)
    val = validation_rows(shop, "bought")
    predicted = predictions(out / "model.nbt", val, tmp_path)["prediction"]
    assert (predicted.to_numpy() == val["bought"].to_numpy()).mean() == pytest.approx(logs["val_binary_accuracy"])


def test_a_row_id_left_in_gets_a_warning_naming_the_drop_and_is_trained_on(shop, tmp_path):
    result = run("fit", shop, "-t", "price", "--drop", "bought", *TINY, "-q", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert result.stderr == ("Warning: column 'id' looks like a row ID (a different value in each of the 197 rows) "
                             "and is trained on as a feature; leave it out with --drop id\n")
    assert [f["name"] for f in load_network(tmp_path / "run" / "model.nbt").metadata["preprocessing"]["features"]] \
        == ["id", "x1", "x2", "color"]
    dropped = run("fit", shop, "-t", "price", "--drop", "bought", "--drop", "id", *TINY, "-q", "--out", tmp_path / "b")
    assert dropped.exit_code == 0 and dropped.stderr == ""


def test_an_existing_run_folder_is_refused_unless_overwrite(shop, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.nbt").write_text("keep me")
    args = ["fit", shop, "-t", "bought", "--drop", "id", *TINY, "-q", "--out", tmp_path / "run"]
    assert_fails(run(*args), f"the run folder {tmp_path / 'run'} already exists; choose another --out, or pass "
                             "--overwrite to replace it")
    assert (tmp_path / "run" / "model.nbt").read_text() == "keep me"
    assert run(*args, "--overwrite").exit_code == 0
    assert load_network(tmp_path / "run" / "model.nbt").metadata["training"]["options"]["task"] == "auto"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old folder, swapped out, is gone


def test_two_fits_claiming_one_folder_one_gets_it(tmp_path):
    from nbtrain import InputError
    from nbtrain.files import origin
    from nbtrain.tabular.runfolder import claim_run_folder
    claim = claim_run_folder(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing appears before there is something in it
    with pytest.raises(InputError, match="another nbtrain process is writing the run folder"):
        claim_run_folder(tmp_path / "run", overwrite=True)  # the first one's lock is the refusal
    (Path(claim.stage) / "model.nbt").write_text("first")
    claim.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and (tmp_path / "run" / "model.nbt").exists()
    with pytest.raises(InputError, match="already exists"):
        claim_run_folder(tmp_path / "run")
    claim_run_folder(tmp_path / "run", overwrite=True).abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    (tmp_path / ".nbtrain-lock-gone").touch()  # what a killed fit leaves: its lock file, with no process holding it
    (tmp_path / f".nbtrain-999999999-{origin()}-x.tmp").mkdir()  # and its staging folder, its pid gone here
    claim_run_folder(tmp_path / "other").abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_default_run_folder_takes_the_next_free_name(shop, tmp_path, monkeypatch):
    import time
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda format: "20260101-120000")
    (tmp_path / "runs" / "20260101-120000").mkdir(parents=True)
    result = run("fit", shop, "-t", "bought", "--drop", "id", *TINY, "-q")
    assert result.exit_code == 0, result.output
    assert "to runs/20260101-120000-2" in result.stdout and not any((tmp_path / "runs" / "20260101-120000").iterdir())


def test_fit_multiclass_from_a_text_target(multiclass_run, tmp_path):
    result, out = multiclass_run
    counts = pd.read_csv(BIRDS).iloc[validation_rows_complement(BIRDS, "species")]["species"].value_counts()
    assert (f"Task: multiclass classification of 'species': 'finch' -> 0 ({counts['finch']} training rows), "
            f"'sparrow' -> 1 ({counts['sparrow']}), 'warbler' -> 2 ({counts['warbler']}) (loss "
            "sparse_categorical_crossentropy with label smoothing 0.1)") in result.stdout
    assert "Model (default recipe): hidden ReLU layers 16 -> 3 softmax outputs" in result.stdout
    assert "Features: 4 columns (3 numeric, 1 categorical) -> 6 inputs" in result.stdout
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    target = load_network(out / "model.nbt").metadata["preprocessing"]["target"]
    assert (target["labels"], target["counts"]) == (SPECIES, [counts[s] for s in SPECIES])
    logs, _ = best_epoch_logs(out)
    val = validation_rows(BIRDS, "species")
    predicted = predictions(out / "model.nbt", val, tmp_path)["prediction"]
    assert (predicted.to_numpy() == val["species"].to_numpy()).mean() == pytest.approx(logs["val_accuracy"])
    assert logs["val_accuracy"] > 0.8  # always 'finch' scores about 0.47


def test_class_weight_balanced_passes_scikit_learns_weights_to_fit(tmp_path, monkeypatch):
    passed = {}
    fit = Sequential.fit

    def spy(self, *args, **kwargs):
        passed.update(kwargs)
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(Sequential, "fit", spy)
    result = run("fit", BIRDS, "-t", "species", "--drop", "bird_id", *TINY, "--class-weight", "balanced",
                 "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "(loss sparse_categorical_crossentropy with label smoothing 0.1; class weights balanced)" in result.stdout
    counts = pd.read_csv(BIRDS).iloc[validation_rows_complement(BIRDS, "species")]["species"].value_counts()
    expected = {i: counts.sum() / (3 * counts[s]) for i, s in enumerate(SPECIES)}
    assert passed["class_weight"] == pytest.approx(expected)
    assert load_network(tmp_path / "run" / "model.nbt").metadata["training"]["options"]["class_weight"] == "balanced"
    passed.clear()
    assert run("fit", BIRDS, "-t", "species", "--drop", "bird_id", *TINY, "-q", "--out", tmp_path / "b").exit_code == 0
    assert passed["class_weight"] is None


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
    result = run("fit", shop, "-t", "bought", "--val-split", "0", *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Split: 200 training rows, 0 validation rows" in result.stdout
    assert list(pd.read_csv(tmp_path / "run" / "history.csv").columns) == ["epoch", "loss", "binary_accuracy"]


def test_fit_from_parquet(shop, tmp_path):
    pytest.importorskip("pyarrow")
    pd.read_csv(shop).to_parquet(tmp_path / "shop.parquet")
    result = run("fit", tmp_path / "shop.parquet", "-t", "bought", *TINY, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "200 rows x 6 columns" in result.stdout


def test_quiet_prints_only_the_result(shop, tmp_path):
    result = run("fit", shop, "-t", "bought", *TINY, "--quiet", "--out", tmp_path / "run")
    assert result.exit_code == 0
    assert "Epoch" not in result.stdout and "Task:" not in result.stdout
    assert "Best epoch" in result.stdout and (tmp_path / "run" / "model.nbt").exists()


def test_default_run_folder_is_timestamped_under_runs(shop, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("fit", shop, "-t", "bought", *TINY, "-q").exit_code == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}", folder.name) and (folder / "model.nbt").exists()


def test_learning_curves_with_matplotlib(shop, tmp_path):
    pytest.importorskip("matplotlib")
    result = run("fit", shop, "-t", "bought", *TINY, "-q", "--out", tmp_path / "run")
    assert "learning_curves.png" in result.stdout
    assert (tmp_path / "run" / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("run_fixture, metric, label", [("regression_run", "mae", "mae (price units)"),
                                                        ("binary_run", "binary_accuracy", "binary_accuracy")])
def test_learning_curves_plot_the_metric_beside_the_loss_with_labelled_axes(run_fixture, metric, label, request):
    pytest.importorskip("matplotlib")
    from nbtrain.tabular.runfolder import curves_figure
    _, out = request.getfixturevalue(run_fixture)
    model = load_network(out / "model.nbt")
    target = Preprocessing.from_dict(model.metadata["preprocessing"]).target
    history = pd.read_csv(out / "history.csv").drop(columns="epoch").to_dict("list")
    loss, metric_panel = curves_figure(history, 2, target, model.metadata["training"]["options"]["loss"]).axes
    assert loss.get_ylabel().startswith("loss (") and metric_panel.get_ylabel() == label
    assert loss.get_xlabel() == metric_panel.get_xlabel() == "epoch"
    np.testing.assert_allclose(metric_panel.get_lines()[1].get_ydata(), history["val_" + metric])
    assert all(float(t).is_integer() for t in metric_panel.get_xticks())  # whole epochs


def test_without_matplotlib_it_says_how_to_get_the_plot(shop, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    result = run("fit", shop, "-t", "bought", *TINY, "-q", "--out", tmp_path / "run")
    assert result.exit_code == 0
    assert "install matplotlib" in result.stdout and not (tmp_path / "run" / "learning_curves.png").exists()


def fit_with_the_bar(epochs, *extra):
    """A small fit shown by the progress bar on a terminal, stopped early by an EarlyStopping whose monitor never
    improves after epoch 1 (the loss falls, and mode="max" counts only a rise); its plain text after the fit."""
    from rich.console import Console
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=200)
    model = Sequential([layers.Dense(1, input_shape=[2])])
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    stopper = EarlyStopping(monitor="loss", mode="max", patience=2)
    shown = []  # the bar's fields after each epoch (the terminal shows some of these states, as it refreshes)
    with progress(console, quiet=False) as display:
        bar = display(None, stopper)
        assert [type(cb) for cb in bar] == [EpochBar]
        record = LambdaCallback(on_epoch_end=lambda epoch, logs: shown.append(dict(bar[0].progress.tasks[0].fields)))
        model.fit(x, x[:, :1], epochs=epochs, verbose=0, callbacks=[stopper, *bar, record, *extra], seed=0)
    return model, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue()), shown


def test_progress_bar_shows_the_best_epoch_and_patience_and_keeps_its_total_when_stopped_early():
    model, text, shown = fit_with_the_bar(10)
    loss = model.history.history["loss"]
    assert len(loss) == 3  # epoch 1 is the best; 2 epochs without improvement stop the run
    final = text.splitlines()[-1]
    assert re.search(r"Epoch  3/10 ━+╺?━* \d:\d\d:\d\d", final)  # where it stopped, of the 10 it could have run
    assert f"best loss {format_metric(loss[0])} (epoch 1), patience 0 left" in final
    assert [fields["best"] for fields in shown] == [f" | best loss {format_metric(loss[0])} (epoch 1), patience {n} "
                                                    "left" for n in (2, 1, 0)]
    assert [fields["logs"] for fields in shown] == [f"loss: {format_metric(value)}" for value in loss]
    assert [fields["epoch"] for fields in shown] == [" 1", " 2", " 3"]


def test_the_bar_counts_the_epoch_running_and_no_second_interrupt_message():
    """During epoch 1 the bar reads 1/10 (not 0/10); a Ctrl-C leaves it at the epochs that ended, and fit at
    verbose=0 prints no message of its own (the command's last lines say it once)."""
    def interrupt(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt
    model, text, _ = fit_with_the_bar(10, LambdaCallback(on_epoch_end=interrupt))
    assert model.stop_reason == "interrupted after 2 epochs"
    assert "Epoch  1/10" in text and "Epoch  0/10" not in text
    assert "Epoch  2/10" in text.splitlines()[-1] and "interrupted" not in text
def test_a_long_epoch_shows_its_steps_and_a_first_call_without_steps_says_it_compiles(monkeypatch):
    """The hooks as a long epoch calls them (twice a second, with the steps done): lines at most every
    LINE_SECONDS for logs, the bar's share within the epoch on a terminal; the compiling note once the first epoch
    has had no step for COMPILE_SECONDS (both 0 here: every call counts)."""
    from rich.console import Console
    from rich.progress import Progress
    from nbtrain.cli import display
    monkeypatch.setattr(display, "LINE_SECONDS", 0.0)
    monkeypatch.setattr(display, "COMPILE_SECONDS", 0.0)
    console = Console(file=io.StringIO(), width=200)
    lines = EpochLines(console)
    lines.params = {"epochs": 5, "steps": 400}
    lines.on_epoch_begin(0)
    for step in (0, 0, 100):
        lines.on_epoch_progress(0, step)
    lines.on_epoch_begin(1)
    lines.on_epoch_progress(1, 0)  # a later epoch's first report is no compile
    shown = [line.rsplit(" - ", 1)[0] for line in console.file.getvalue().splitlines()]
    assert shown == [f"Epoch 1: {display.COMPILING}", "Epoch 1/5 - step 100/400", "Epoch 2/5 - step 0/400"]
    with Progress(console=Console(file=io.StringIO())) as bar_progress:
        bar = EpochBar(bar_progress, None)
        bar.params = lines.params
        bar.on_train_begin()
        bar.on_epoch_progress(0, 0)
        assert bar_progress.tasks[0].fields["logs"] == display.COMPILING
        bar.on_epoch_progress(0, 100)
        assert bar_progress.tasks[0].completed == 0.25 and bar_progress.tasks[0].fields["logs"] == "step 100/400"


def test_progress_without_a_terminal_or_when_quiet():
    from rich.console import Console
    with progress(Console(file=io.StringIO()), quiet=False) as display:
        assert [type(cb) for cb in display(None, None)] == [EpochLines]
    with progress(Console(file=io.StringIO(), force_terminal=True), quiet=True) as display:
        assert display(None, None) == []


def test_ctrl_c_stops_cleanly_saves_everything_and_exits_130(shop, tmp_path, monkeypatch):
    def interrupt(self, epoch, logs=None):
        if epoch == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(EpochLines, "on_epoch_end", interrupt)
    result = run("fit", shop, "-t", "price", "--drop", "id", "--drop", "bought", "--layers", "8", "--epochs", "50",
                 "--out", tmp_path / "run")
    assert result.exit_code == 130, result.output
    assert "interrupted after 3 epochs" in result.stdout and "Saved model.nbt, history.csv" in result.stdout
    training = load_network(tmp_path / "run" / "model.nbt").metadata["training"]
    # the interrupt came from the display, which runs after EarlyStopping: the best of all 3 recorded epochs is kept
    assert training["status"] == "interrupted after 3 epochs" and training["best_epoch"] <= 3
    logs, _ = best_epoch_logs(tmp_path / "run")  # the restored best weights are what was saved
    val = validation_rows(shop, "price")
    predicted = predictions(tmp_path / "run" / "model.nbt", val, tmp_path)["prediction"]
    assert np.abs(predicted.to_numpy() - val["price"].to_numpy()).mean() == pytest.approx(logs["val_mae"], rel=1e-4)


def blow_up_weights_at(epoch_index):
    """A progress hook that makes the next batch's loss overflow, as a far too high learning rate does."""
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == epoch_index:
            self.model.set_weights([w * 1e30 for w in self.model.get_weights()])
    return on_epoch_begin


def test_diverging_loss_stops_keeps_the_best_weights_and_exits_2(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(EpochLines, "on_epoch_begin", blow_up_weights_at(2))
    result = run("fit", shop, "-t", "price", "--drop", "id", "--drop", "bought", *TINY, "--out", tmp_path / "run")
    assert_fails(result, "the loss became non-finite at epoch 3, batch 1")
    assert "try a lower learning rate" in result.stderr and "has the weights of epoch" in result.stderr
    model = load_network(tmp_path / "run" / "model.nbt")
    assert model.metadata["training"]["status"] == "diverged" and model.metadata["training"]["best_epoch"] <= 2
    assert np.isfinite(predictions(tmp_path / "run" / "model.nbt", make_shop(), tmp_path)["prediction"]).all()


def test_diverging_in_the_first_epoch_saves_nothing(shop, tmp_path, monkeypatch):
    monkeypatch.setattr(EpochLines, "on_epoch_begin", blow_up_weights_at(0))
    result = run("fit", shop, "-t", "price", "--drop", "id", *TINY, "--out", tmp_path / "run")
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


def test_predict_keeps_columns_from_the_input_first(regression_run, shop, tmp_path):
    _, out = regression_run
    result = run("predict", out / "model.nbt", shop, "--keep", "id", "--keep", "color", "-o", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    table, frame = pd.read_csv(tmp_path / "p.csv"), pd.read_csv(shop)
    assert list(table.columns) == ["id", "color", "prediction"]
    pd.testing.assert_frame_equal(table[["id", "color"]], frame[["id", "color"]])
    alone = pd.read_csv(io.StringIO(run("predict", out / "model.nbt", shop).stdout))
    pd.testing.assert_series_equal(table["prediction"], alone["prediction"])
    assert_fails(run("predict", out / "model.nbt", shop, "--keep", "Id"),
                 f"column to keep 'Id' not found in {shop}; did you mean 'id'?")
    frame.assign(prediction=1.0).to_csv(tmp_path / "with_prediction.csv", index=False)
    assert_fails(run("predict", out / "model.nbt", tmp_path / "with_prediction.csv", "--keep", "prediction"),
                 "--keep 'prediction' would clash with the output column of that name")


def test_predict_multiclass_writes_the_label_and_a_probability_per_class(multiclass_run):
    _, out = multiclass_run
    result = run("predict", out / "model.nbt", BIRDS, "--keep", "bird_id")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    columns = [f"probability_{s}" for s in SPECIES]
    assert list(table.columns) == ["bird_id", "prediction", *columns] and len(table) == 600
    np.testing.assert_allclose(table[columns].sum(axis=1), 1.0, atol=1e-5)
    assert (table["prediction"] == np.array(SPECIES)[table[columns].to_numpy().argmax(axis=1)]).all()


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
    # shown to 4 significant digits (format_metric)
    assert table_value(result.stdout, "mae") == pytest.approx(error.abs().mean(), rel=1e-3)
    assert table_value(result.stdout, "rmse") == pytest.approx(np.sqrt((error ** 2).mean()), rel=1e-3)
    assert table_value(result.stdout, "loss") == pytest.approx(error.abs().mean() / load_network(
        out / "model.nbt").metadata["preprocessing"]["target"]["scale"], abs=1e-4)


def check_classifier_report(model, data, target, labels):
    """evaluate's accuracy, log loss, macro F1 and confusion matrix equal those computed here from predict's
    labels and probabilities (written to 6 digits, hence the tolerance)."""
    result = run("evaluate", model, data)
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(io.StringIO(run("predict", model, data).stdout))
    truth = pd.read_csv(data)[target].to_numpy()
    if "probability" in predicted:  # binary: the probability of labels[1]
        chance = np.where(truth == labels[1], predicted["probability"], 1 - predicted["probability"])
    else:
        chance = np.array([predicted[f"probability_{label}"][i] for i, label in enumerate(truth)])
    hits = predicted["prediction"].to_numpy() == truth
    f1 = [2 * (hits & (truth == c)).sum() / ((truth == c).sum() + (predicted["prediction"] == c).sum())
          for c in labels if (truth == c).any() or (predicted["prediction"] == c).any()]
    assert table_value(result.stdout, "accuracy") == pytest.approx(hits.mean(), abs=1e-4)
    assert table_value(result.stdout, "log_loss") == pytest.approx(-np.log(np.maximum(chance, 1e-7)).mean(), abs=1e-4)
    assert table_value(result.stdout, "macro_f1") == pytest.approx(np.mean(f1), abs=1e-4)
    for label in labels:
        row = re.search(rf"^│ {re.escape(str(label))} +│([\d │]+)$", result.stdout, re.MULTILINE).group(1)
        counts = [int(n) for n in row.replace("│", " ").split()]
        assert counts == [int(((truth == label) & (predicted["prediction"] == c)).sum()) for c in labels]
    return result


def test_evaluate_binary_reports_accuracy_log_loss_macro_f1_and_the_confusion_matrix(binary_run, shop):
    result = check_classifier_report(binary_run[1] / "model.nbt", shop, "bought", ["no", "yes"])
    assert "Confusion matrix of 'bought'" in result.stdout and "true \\ predicted" in result.stdout


def test_evaluate_multiclass_reports_accuracy_log_loss_macro_f1_and_the_confusion_matrix(multiclass_run):
    result = check_classifier_report(multiclass_run[1] / "model.nbt", BIRDS, "species", SPECIES)
    assert ": 600 rows" in result.stdout and "Confusion matrix of 'species'" in result.stdout


def test_info_multiclass(multiclass_run):
    text = run("info", multiclass_run[1] / "model.nbt").stdout
    assert re.search(r"Task: multiclass classification of 'species': 'finch' -> 0 \(\d+ training rows\), 'sparrow' "
                     r"-> 1 \(\d+\), 'warbler' -> 2 \(\d+\)", text)
    assert "val_accuracy" in text and re.search(r"\(Dense\)\s+\(None, 3\)\s+51\n", text)  # 16 * 3 + 3


def test_evaluate_unknown_label(binary_run, shop, tmp_path):
    _, out = binary_run
    pd.read_csv(shop).assign(bought="maybe").to_csv(tmp_path / "odd.csv", index=False)
    assert_fails(run("evaluate", out / "model.nbt", tmp_path / "odd.csv"), "values the model was not trained on")


def test_info_describes_the_model(binary_run):
    _, out = binary_run
    result = run("info", out / "model.nbt")
    assert result.exit_code == 0
    text = result.stdout
    assert re.search(r"Task: binary classification of 'bought': 'no' -> 0 \(\d+ training rows\), 'yes' -> 1 \(\d+\)",
                     text)
    assert f"Parameters: {load_network(out / 'model.nbt').count_params():,}" in text
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
        (["fit", shop, "-t", "Price"], "target column 'Price' not found in the data; did you mean 'price'? (its "
                                       "columns are 'id', 'x1', 'x2', 'color', 'price', 'bought')"),
        (["fit", shop, "-t", "weight"], "target column 'weight' not found in the data (its columns are 'id',"),
        (["fit", tmp_path / "one.csv", "-t", "y"], "target column 'y' has only one distinct value ('x')"),
        (["fit", tmp_path / "words.csv", "-t", "y"], "target column 'y' has 3 distinct values in 3 rows"),
        (["fit", tmp_path / "words.csv", "-t", "y", "--task", "regression"], "target column 'y' is not numeric"),
        (["fit", shop, "-t", "bought", "--task", "regression"], "target column 'bought' is not numeric"),
        (["fit", tmp_path / "blank.csv", "-t", "y"], "column 'b' has no values (all missing)"),
        (["fit", shop, "-t", "price", "--drop", "nope"], "column to drop 'nope' not found"),
        (["fit", shop, "-t", "price", "--drop", "ID"], "column to drop 'ID' not found in the data; did you mean 'id'?"),
        (["fit", shop, "-t", "price", "--class-weight", "balanced"], "--class-weight applies to classification"),
        (["fit", shop, "-t", "bought", "--loss", "mse"], "--loss applies to regression"),
        (["fit", shop, "-t", "price", "--layers", "64,x"], "--layers must be comma-separated positive widths"),
        (["fit", shop, "-t", "price", "--lr", "0"], "--lr must be a positive number"),
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
    result = run("fit", wine, "-t", "quality", "--layers", "128,128", "--epochs", "60", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Task: regression of 'quality'" in result.stdout and "Split: 1279 training rows, 320 validation rows" \
        in result.stdout
    logs, _ = best_epoch_logs(tmp_path / "run")
    assert logs["val_mae"] < 0.56  # predicting the training median scores 0.64 on these validation rows
    table = pd.read_csv(io.StringIO(run("predict", tmp_path / "run" / "model.nbt", wine).stdout))
    assert len(table) == 1599 and table["prediction"].between(2, 9).all()
    assert table_value(run("evaluate", tmp_path / "run" / "model.nbt", wine).stdout, "mae") < 0.56


def test_red_wine_quality_as_classes_end_to_end(data_dir, tmp_path):
    wine = data_dir / "red-wine.csv"
    result = run("fit", wine, "-t", "quality", "--task", "multiclass", "--layers", "64,64", "--epochs", "60",
                 "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert re.search(r"Task: multiclass classification of 'quality': 3 -> 0 \(\d+ training rows\), 4 -> 1 \(\d+\), .*"
                     r"8 -> 5 \(\d+\)", result.stdout)
    logs, _ = best_epoch_logs(tmp_path / "run")
    assert logs["val_accuracy"] > 0.5  # always the most common score, 5, gets about 0.43
    table = pd.read_csv(io.StringIO(run("predict", tmp_path / "run" / "model.nbt", wine).stdout))
    assert list(table.columns) == ["prediction", *(f"probability_{q}" for q in range(3, 9))]
    assert set(table["prediction"]) <= set(range(3, 9)) and len(table) == 1599
    check_classifier_report(tmp_path / "run" / "model.nbt", wine, "quality", list(range(3, 9)))


def test_ionosphere_end_to_end(data_dir, tmp_path):
    ion = data_dir / "ion.csv"
    result = run("fit", ion, "-t", "Class", "--layers", "64,64", "--epochs", "100", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert re.search(r"'bad' -> 0 \(\d+ training rows\), 'good' -> 1 \(\d+\)", result.stdout)
    assert "34 columns (34 numeric, 0 categorical)" in result.stdout
    logs, _ = best_epoch_logs(tmp_path / "run")
    assert logs["val_binary_accuracy"] >= 0.85  # always predicting 'good' scores about 0.64
    info = run("info", tmp_path / "run" / "model.nbt").stdout
    assert "│ V34 " in info and "Unnamed" not in info  # the unnamed row index is not a feature
    table = pd.read_csv(io.StringIO(run("predict", tmp_path / "run" / "model.nbt", ion).stdout))
    assert len(table) == 351 and set(table["prediction"]) == {"good", "bad"}
