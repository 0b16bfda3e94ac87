"""No surprises on the command line (issue 26): an honest test score (fit --test-split, and evaluate counting the
rows a model was fitted on), a progress display and final lines that read true (Keras's words for early stopping,
numbers for their scale, one Ctrl-C message, a bar that fits the terminal), capped sweep trials flagged, a run folder
wherever a model file goes, unseen categories counted, and every --help example run on the bundled data."""
import base64
import importlib.util
import io
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import nbtrain
from nbtrain.callbacks import format_metric
from nbtrain.cli import app
from nbtrain.cli.display import progress
from nbtrain.model import load_network
from nbtrain.tabular import recipe
from nbtrain.tabular.apply import load_table_model
from nbtrain.tabular.fingerprint import SKETCH_ROWS, fingerprint, overlap, row_hashes

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
FIXTURE = ROOT / "tests" / "fixtures" / "houses-v0.1.0.nbt"  # written before models had a fingerprint
TINY = ["--layers", "8", "--epochs", "3", "--batch-size", "64"]


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def houses_run(tmp_path_factory):
    """A houses fit with a 20% test split: 720 training, 240 validation, 240 test rows."""
    out = tmp_path_factory.mktemp("runs") / "houses"
    result = ok(run("fit", DATA / "houses.csv", "-t", "price_k", "--drop", "house_id", *TINY, "--test-split", "0.2",
                    "--out", out))
    return result, out


# ------------------------------------------------------------------------------------------ an honest test score
def test_fit_holds_out_a_test_split_and_reports_it_beside_training_and_validation(houses_run, tmp_path):
    result, out = houses_run
    assert "Split: 720 training rows, 240 validation rows, 240 test rows (seed 0)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if "metric" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == ["metric", "training", "validation", "test"]
    training = load_network(out / "model.nbt").metadata["training"]
    assert training["test_rows"] == 240 and set(training["test"]) == {"loss", "mae", "rmse"}
    assert training["options"]["test_split"] == 0.2
    # the test rows are the rows of the file that the model neither trained nor validated on, and evaluate on them
    # gives the recorded test scores, without a warning
    frame = pd.read_csv(DATA / "houses.csv")
    seen = load_network(out / "model.nbt").metadata["fingerprint"]
    model = load_table_model(out)
    x, y = model.preprocessing.transform(frame), model.preprocessing.target.encode(frame["price_k"], "the data")
    unseen = ~np.isin(row_hashes(x, y), np.concatenate([np.frombuffer(base64.b64decode(seen[split]["hashes"]), "<u8")
                                                        for split in ("train", "validation")]))
    assert unseen.sum() == 240
    frame[unseen].to_csv(tmp_path / "test.csv", index=False)
    evaluated = ok(run("evaluate", out, tmp_path / "test.csv"))
    assert "Warning" not in evaluated.stderr and ": 240 rows" in evaluated.stdout
    assert table_value(evaluated.stdout, "mae") == pytest.approx(training["test"]["mae"], rel=1e-3)
    assert f"Test (240 held-out rows): loss {format_metric(training['test']['loss'])}" in ok(run("info", out)).stdout


def test_val_and_test_splits_are_shares_of_the_whole_table_and_must_leave_rows_to_train_on(tmp_path):
    result = run("fit", DATA / "houses.csv", "-t", "price_k", "--val-split", "0.5", "--test-split", "0.5",
                 "--out", tmp_path / "run")
    assert result.exit_code == 2 and "leave no rows to train on" in result.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_counts_the_rows_the_model_was_fitted_and_validated_on(houses_run):
    _, out = houses_run
    result = ok(run("evaluate", out / "model.nbt", DATA / "houses.csv"))
    assert ("Warning: 720 of these 1,200 rows were used in training and 240 for validation: these scores are "
            "optimistic; hold out a test file or use fit --test-split") in result.stderr


def test_a_model_without_a_fingerprint_still_loads_and_evaluates_without_a_count():
    result = ok(run("evaluate", FIXTURE, DATA / "houses.csv"))
    assert "Warning" not in result.stderr and ": 1200 rows" in result.stdout


def test_a_big_split_keeps_a_sample_of_its_hashes_and_evaluate_estimates_the_count(monkeypatch):
    from nbtrain.tabular import fingerprint as module
    monkeypatch.setattr(module, "SKETCH_ROWS", 500)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 1))
    entry = fingerprint(x[:3000], y[:3000], x[3000:3500], y[3000:3500])
    assert len(base64.b64decode(entry["train"]["hashes"])) == 8 * 500
    seen = overlap(entry, x[2000:], y[2000:])  # 1000 training rows, 500 validation rows, 500 new ones
    assert not seen.exact and seen.rows == 2000
    assert 800 <= seen.train <= 1200 and seen.validation == 500  # the validation split fits whole: exact
    assert seen.warning().startswith("about 1,")
    assert SKETCH_ROWS == 1 << 17  # California housing's 16,512 training rows are kept whole


# ------------------------------------------------------------------------------------------ the final lines
def scripted_fit(monkeypatch, table, val_losses, *options):
    """A fit of `table` whose val_loss per epoch is `val_losses` (TargetUnits runs before every other callback)."""
    def scripted(self, epoch, logs=None):
        logs["val_loss"] = val_losses[epoch]
    monkeypatch.setattr(recipe.TargetUnits, "on_epoch_end", scripted)
    return ok(run("fit", table, "-t", "price_k", "--drop", "house_id", "--layers", "4", *options))


def test_early_stopping_is_told_in_keras_words(monkeypatch, tmp_path):
    """val_loss falls each epoch, but by less than min_delta: EarlyStopping stops at epoch 3 while the best
    (strictly lowest) epoch is the last one, so "no improvement in 2 epochs" would be false."""
    result = scripted_fit(monkeypatch, DATA / "houses.csv", [1.0, 0.9995, 0.999, 0.5], "--epochs", "4",
                          "--patience", "2", "--min-delta", "0.01", "--out", tmp_path / "run")
    assert ("Training stopped at epoch 3: no val_loss improvement of more than min_delta 0.01 in 2 epochs; "
            "restoring the weights of epoch 3 (the best val_loss)") in result.stdout


def test_numbers_are_shown_for_their_scale(tmp_path):
    frame = pd.read_csv(DATA / "houses.csv").assign(price=lambda f: f["price_k"] * 1000).drop(columns="price_k")
    frame.to_csv(tmp_path / "dollars.csv", index=False)
    result = ok(run("fit", tmp_path / "dollars.csv", "-t", "price", "--drop", "house_id", *TINY, "-q",
                    "--out", tmp_path / "run"))
    mae = re.search(r"│ mae\s+│\s+(\S+) │\s+(\S+) │", result.stdout).groups()
    assert all(re.fullmatch(r"\d{1,3}(,\d{3})+", cell) for cell in mae), mae  # 215,337: no 4 decimals of dollars
    assert [format_metric(v) for v in (0.14621, 13.4143, 1234.5, 33052.4, 0.0001234)] == \
        ["0.1462", "13.41", "1234", "33,052", "1.234e-04"]


def test_ctrl_c_is_told_once(tmp_path, monkeypatch):
    from nbtrain.cli.display import EpochLines
    shown = EpochLines.on_epoch_end

    def interrupt(self, epoch, logs=None):
        shown(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(EpochLines, "on_epoch_end", interrupt)
    result = run("fit", DATA / "houses.csv", "-t", "price_k", "--drop", "house_id", "--layers", "4", "--epochs", "9",
                 "--out", tmp_path / "run")
    assert result.exit_code == 130, result.output
    assert result.output.count("interrupted") == 1, result.output
    assert "Training interrupted after 2 epochs; restoring the weights of epoch" in result.stdout


def test_the_progress_bar_fits_the_terminal_width():
    """Long logs on an 80-column terminal: one line per state, the counter and the bar whole, the logs cut."""
    from nbtrain import Sequential, layers
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=80)
    model = Sequential([layers.Dense(1, input_shape=[2])])
    model.compile("adam", "mse", ["mae"])
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32) * 1000
    stopper = nbtrain.callbacks.EarlyStopping(patience=50)
    with progress(console, quiet=False) as display:
        model.fit(x, x[:, :1], epochs=3, verbose=0, validation_data=(x, x[:, :1]), seed=0,
                  callbacks=[stopper, *display(None, recipe.BestEpoch(stopper))])
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue()).replace("\r", "\n").strip().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[-1].startswith("Epoch 3/3 " + "━" * 20 + " ") and lines[-1].endswith("…")


def test_history_csv_counts_epochs_from_1_as_the_epoch_lines_and_best_epoch_do(houses_run):
    result, out = houses_run
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]
    printed = [int(m) for m in re.findall(r"^Epoch (\d+)/3", result.stdout, re.M)]
    assert printed == history["epoch"].tolist()


# ------------------------------------------------------------------------------------------ run folders
def test_a_run_folder_is_accepted_wherever_a_model_file_is(houses_run, tmp_path):
    _, out = houses_run
    by_file = ok(run("predict", out / "model.nbt", DATA / "houses.csv")).stdout
    assert ok(run("predict", out, DATA / "houses.csv")).stdout == by_file
    assert "Evaluated on" in ok(run("evaluate", out, DATA / "houses.csv")).stdout
    assert "Task: regression of 'price_k'" in ok(run("info", out)).stdout
    if importlib.util.find_spec("onnx"):
        ok(run("export", out, "--onnx", tmp_path / "houses.onnx"))
    assert len(load_table_model(out).predict(pd.read_csv(DATA / "houses.csv"))) == 1200
    sweep_folder = tmp_path / "sweep"
    shutil.copytree(out, sweep_folder / "best")  # a sweep's folder keeps its best trial's run folder in best/
    assert ok(run("predict", sweep_folder, DATA / "houses.csv")).stdout == by_file
    result = run("info", tmp_path)
    assert result.exit_code == 2 and "is a folder without a model.nbt" in result.stderr


# ------------------------------------------------------------------------------------------ unseen categories
def test_an_unseen_category_is_counted(houses_run, tmp_path, monkeypatch):
    _, out = houses_run
    frame = pd.read_csv(DATA / "houses.csv")
    frame.loc[:2, "district"] = "harbour"
    frame.to_csv(tmp_path / "new.csv", index=False)
    monkeypatch.chdir(tmp_path)
    note = "Note: 3 rows of new.csv had a 'district' not seen in training ('harbour'): encoded as all zeros"
    assert note in ok(run("predict", out, "new.csv")).stderr
    assert note in ok(run("evaluate", out, "new.csv")).stdout
    with pytest.warns(UserWarning, match="3 rows of the DataFrame had a 'district' not seen in training"):
        load_table_model(out).predict(frame)


# ------------------------------------------------------------------------------------------ sweeps
def test_a_sweep_flags_trials_cut_by_the_epoch_cap_and_its_plot_lists_only_what_happened(tmp_path):
    """Three epochs with patience 20: every trial runs to the cap, still improving."""
    pytest.importorskip("matplotlib")
    from nbtrain.sweeps import report
    shown = []
    original = report.sweep_figure

    def keep(board, leaderboard):
        figure = original(board, leaderboard)
        shown.append(figure)
        return figure
    report.sweep_figure = keep
    try:
        result = ok(run("sweep", DATA / "houses.csv", "-t", "price_k", "--drop", "house_id", "--trials", "2",
                        "--workers", "1", "--epochs", "3", "--out", tmp_path / "sweep"))
    finally:
        report.sweep_figure = original
    board = pd.read_csv(tmp_path / "sweep" / "leaderboard.csv")
    assert board["reason"].str.startswith("capped: ran all 3 epochs").all()
    assert "Note: 2 trials ran all 3 epochs without early stopping (marked 'cap'" in result.stdout
    assert "3 (cap)" in result.stdout
    labels = {text.get_text() for axes in shown[0].axes for legend in [axes.get_legend()] if legend
              for text in legend.get_texts()}
    assert labels == {"done", "best"}


def test_nbtrain_sweep_from_python_is_quiet_unless_asked(capsys):
    board = nbtrain.sweep(DATA / "houses.csv", "price_k", trials=1, workers=1, epochs=2, drop=["house_id"],
                          space={"layers": 1, "units": 4})
    assert len(board) == 1
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------------------------------ --help examples
def help_examples(command):
    """The example command lines of `nbtrain COMMAND --help`."""
    text = CliRunner().invoke(app, [command, "--help"], prog_name="nbtrain", env={"COLUMNS": "300"}).stdout
    examples = text[text.index("Examples"):]
    return [line.strip() for line in examples.splitlines() if re.match(r"\s+(nbtrain|cat) ", line)]


# the examples' options, made quick (the last value of an option counts): each example still runs as written
QUICK = {"fit": ["--layers", "8", "--epochs", "3"], "sweep": ["--trials", "2", "--epochs", "2", "--workers", "1"]}


def run_example(line, folder):
    """One example line, run as the shell would in `folder`: `cat FILE | nbtrain ...` feeds FILE to standard
    input, `> FILE` writes standard output there."""
    words = shlex.split(line)
    data = None
    if words[0] == "cat":
        data, words = (folder / words[1]).read_text(), words[3:]
    target = None
    if ">" in words:
        words, target = words[:words.index(">")], words[words.index(">") + 1]
    assert words[0] == "nbtrain"
    result = CliRunner().invoke(app, words[1:] + QUICK.get(words[1], []), input=data)
    assert result.exit_code == 0, f"{line}: {result.output}"
    if target:
        (folder / target).write_text(result.stdout)
    return result


@pytest.fixture
def project(tmp_path, monkeypatch):
    shutil.copytree(DATA, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_help_example_runs_on_the_bundled_data(project):
    ran = []
    for command in ("fit", "predict", "evaluate", "info", "export", "sweep"):
        for line in help_examples(command):
            if "--backend ray" in line or (command == "export" and not importlib.util.find_spec("onnx")):
                continue  # the Ray example has its own test
            run_example(line, project)
            ran.append(command)
    assert {"fit", "predict", "evaluate", "info", "sweep"} <= set(ran) and ran.count("fit") == 4
    assert (project / "preds.csv").read_text().startswith("prediction,probability")


@pytest.mark.skipif(not (importlib.util.find_spec("ray") and importlib.util.find_spec("optuna")),
                    reason="needs Ray Tune and Optuna (pip install 'nbtrain[ray]' optuna)")
def test_the_ray_sweep_help_example_runs_on_the_bundled_data(project):
    [line] = [line for line in help_examples("sweep") if "--backend ray" in line]
    run_example(line, project)


def table_value(text, name):
    return float(re.search(rf"│ {name}\s+│\s+([-\d.e,]+) │", text).group(1).replace(",", ""))
