"""The command line against hostile input, signals and full disks (issue 16), every case built here: each bad
input ends in exit 2 with one line and no traceback, writes nothing outside its target and leaves earlier runs as
they were; SIGTERM to a real `nbtrain fit` saves the run and exits 143; a run folder is whole or absent."""
import errno
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nbtrain import load_model, load_table_model
from nbtrain.model import load_network
from nbtrain.callbacks import EarlyStopping
from nbtrain.model import PreprocessingWarning
from nbtrain.cli import app
from nbtrain.tabular import recipe, runfolder
from nbtrain.tabular.options import FitOptions

TINY = ["--layers", "8", "--epochs", "3", "--batch-size", "32", "-q"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_fails(result, message):
    """Exit code 2, the message on one stderr line, no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output and ".nbtrain-" not in result.output


def listing(folder):
    """Every path under `folder` with its bytes: what a test compares before and after."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    path = tmp_path_factory.mktemp("data") / "table.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "kind": rng.choice(["p", "q"], 300),
                  "y": x @ [1.0, -2.0, 0.5] + rng.normal(0, 0.1, 300)}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(table, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "run"
    result = run("fit", table, "-t", "y", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def doctored(model, folder, change):
    """A copy of the model file with change(metadata) applied to its metadata.json."""
    path = folder / "doctored.nbt"
    with zipfile.ZipFile(model) as source, zipfile.ZipFile(path, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "metadata.json":
                metadata = json.loads(data)
                change(metadata)
                data = json.dumps(metadata)
            target.writestr(name, data)
    return path


def set_field(*keys, value):
    def change(metadata):
        node = metadata
        for key in keys[:-1]:
            node = node[key]
        if value is KeyError:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return change


# ------------------------------------------------------------------------------------------ model-file metadata
@pytest.mark.parametrize("change, message", [
    (set_field("preprocessing", "features", 0, "center", value="0.5"),
     "preprocessing.features[0].center must be a finite number, got '0.5'"),
    (set_field("preprocessing", "features", 2, "categories", value="p,q"),
     "preprocessing.features[2].categories must be a list, got 'p,q'"),
    (set_field("preprocessing", "features", 1, "scale", value=0.0), "preprocessing.features[1].scale must be"),
    (set_field("preprocessing", "features", 0, "fill", value="median"), "is numeric but has the fill 'median'"),
    (set_field("preprocessing", "target", "task", value="ranking"), "preprocessing.target.task must be one of"),
    (set_field("preprocessing", "target", "scale", value=float("nan")), "preprocessing.target.scale must be"),
    (set_field("preprocessing", "features", value=[]), "its preprocessing makes 0 inputs"),
    (set_field("training", "best", value="0.1"), "training.best must be an object, got '0.1'"),
    (set_field("training", "best", "loss", value="low"), "training.best.loss must be a number, got 'low'"),
    (set_field("training", "best_epoch", value=True), "training.best_epoch must be an integer, got True"),
    (set_field("training", "train_rows", value=KeyError), "training lacks train_rows"),
])
@pytest.mark.parametrize("command", ["info", "predict"])
def test_metadata_of_the_wrong_type_or_range_is_the_model_file_error(fitted, table, tmp_path, change, message,
                                                                     command):
    model = doctored(fitted / "model.nbt", tmp_path, change)
    before = listing(tmp_path)
    result = run(command, model, *([table] if command == "predict" else []))
    assert_fails(result, message)
    assert listing(tmp_path) == before


def test_a_table_model_predicts_what_predict_writes(fitted, table, tmp_path):
    result = run("predict", fitted / "model.nbt", table, "-o", tmp_path / "preds.csv", "--keep", "a")
    assert result.exit_code == 0, result.output
    table_model = load_table_model(fitted / "model.nbt")
    frame = table_model.predict(pd.read_csv(table), keep=["a"])
    assert list(frame.columns) == ["a", "prediction"] and table_model.preprocessing.target.name == "y"
    written = pd.read_csv(tmp_path / "preds.csv")
    np.testing.assert_allclose(frame["prediction"], written["prediction"], rtol=1e-5)
    with pytest.warns(PreprocessingWarning, match="load_table_model"):  # the bare network: said, not silent
        assert table_model.model.count_params() == load_model(fitted / "model.nbt").count_params()


# ------------------------------------------------------------------------------------------ arguments and tables
@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "-1 is not in the range 0<=x<=4294967295."),
    (["--seed", str(2**32)], "is not in the range 0<=x<=4294967295."),
    (["--lr", "nan"], "nan is not a finite number."),
    (["--lr", "inf"], "inf is not a finite number."),
    (["--min-delta", "inf"], "inf is not a finite number."),
    (["--dropout", "nan"], "nan is not in the range 0.0<=x<=0.9."),
])
def test_bad_option_values_are_refused_before_any_work(table, tmp_path, args, message):
    result = run("fit", table, "-t", "y", *TINY, "--out", tmp_path / "run", *args)
    assert_fails(result, f"Invalid value for '{args[0]}'")  # one line on stderr: the option, what is wrong
    assert message in result.stderr and list(tmp_path.iterdir()) == []


def test_layers_too_wide_for_the_memory_are_one_line(table, tmp_path):
    result = run("fit", table, "-t", "y", "--layers", "2000000,2000000", "--out", tmp_path / "run")
    assert_fails(result, "--layers 2000000,2000000 on 4 inputs needs about")
    assert "GiB of memory available; use narrower or fewer layers" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_memory_estimate_counts_weights_slots_and_activations():
    options = FitOptions(layers=(1000,), batch_size=100)
    params = (10 + 1) * 1000 + (1000 + 1) * 1
    activations = (10 + 1000 + 1) * 2 * 3 * max(100, 50)
    assert recipe.fit_bytes(10, options, 1, 50) == 4 * (recipe.COPIES * params + activations)


@pytest.mark.parametrize("header", ["y,a,y", "a,b,a,y"])
def test_a_repeated_column_name_is_refused_naming_it(tmp_path, header):
    path = tmp_path / "dup.csv"
    repeated = "y" if header.count("y") > 1 else "a"
    width = len(header.split(","))
    path.write_text(header + "\n" + "\n".join(",".join(str(i + j) for j in range(width)) for i in range(30)) + "\n")
    assert_fails(run("fit", path, "-t", "y", *TINY, "--out", tmp_path / "run"),
                 f"has more than one column named {repeated!r}; column names must be unique")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.csv"]


def predict_targets(tmp_path):
    """Where `predict -o` cannot write: a folder, a file in a folder that does not exist, a read-only place."""
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o500)
    unwritable = Path("/sys/preds.csv") if os.geteuid() == 0 else read_only / "preds.csv"  # root writes anywhere else
    return [(tmp_path, "Is a directory"), (tmp_path / "missing" / "preds.csv", "No such file or directory"),
            (unwritable, "Permission denied")]


def test_predict_errors_name_the_users_path(fitted, table, tmp_path):
    for target, reason in predict_targets(tmp_path):
        before = listing(tmp_path)
        assert_fails(run("predict", fitted / "model.nbt", table, "-o", target), f"{reason}: {target}")
        assert listing(tmp_path) == before


# ------------------------------------------------------------------------------------------ the best epoch
def test_the_saved_model_is_the_best_epoch_even_within_min_delta(table, tmp_path, monkeypatch):
    """val_loss 0.03739 -> 0.03678 -> 0.03649 with min_delta 0.001: the last is the lowest, so epoch 3 is saved,
    though no step beat the best by min_delta (which EarlyStopping would have kept: epoch 1)."""
    script = [0.03739, 0.03678, 0.03649]

    def scripted(self, epoch, logs=None):  # TargetUnits runs first of all callbacks: every later one sees these
        logs["val_loss"] = script[epoch]
    monkeypatch.setattr(recipe.TargetUnits, "on_epoch_end", scripted)
    out = tmp_path / "run"
    result = run("fit", table, "-t", "y", "--layers", "8", "--epochs", "3", "--patience", "5", "--min-delta", "0.001",
                 "--out", out)
    assert result.exit_code == 0, result.output
    assert "restoring the weights of epoch 3" in result.stdout
    assert load_network(out / "model.nbt").metadata["training"]["best_epoch"] == 3


def test_min_delta_counts_patience_only():
    class Weights:
        metrics = ()
        stop_training = False

        def __init__(self):
            self.epoch, self.restored = 0, None

        def get_weights(self):
            return [np.array(self.epoch)]

        def set_weights(self, weights):
            self.restored = int(weights[0])
    model, stopper = Weights(), EarlyStopping(monitor="val_loss", min_delta=0.001, patience=2)
    best = recipe.BestEpoch(stopper)
    for callback in (stopper, best):
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, value in enumerate([0.03739, 0.03678, 0.03649]):
        model.epoch = epoch
        for callback in (stopper, best):
            callback.on_epoch_end(epoch, {"val_loss": value})
    best.on_train_end()
    assert (best.best_epoch, model.restored, best.wait) == (2, 2, 2)
    assert stopper.best_epoch == 0 and model.stop_training  # Keras's rule: no improvement by min_delta, patience out


# ------------------------------------------------------------------------------------------ run folders whole
def full_disk_after_the_model(monkeypatch):
    """history.csv, written after model.nbt, fails as a full disk does."""
    def no_space(history):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(runfolder, "history_frame", no_space)


def test_a_full_disk_mid_save_leaves_the_earlier_run_as_it_was(fitted, table, tmp_path, monkeypatch):
    out = tmp_path / "run"
    result = run("fit", table, "-t", "y", *TINY, "--out", out)
    assert result.exit_code == 0
    before = listing(tmp_path)
    full_disk_after_the_model(monkeypatch)
    result = run("fit", table, "-t", "y", *TINY, "--seed", "5", "--out", out, "--overwrite")
    assert_fails(result, f"could not save {out} (No space left on device), so nothing of this run was saved; the "
                         f"earlier one in {out} is as it was")
    assert listing(tmp_path) == before


def test_a_full_disk_mid_save_leaves_no_folder(table, tmp_path, monkeypatch):
    full_disk_after_the_model(monkeypatch)
    assert_fails(run("fit", table, "-t", "y", *TINY, "--out", tmp_path / "runs" / "new"),
                 "No space left on device), so nothing of this run was saved")
    assert list(tmp_path.iterdir()) == []  # not even the parent folder it made


def test_a_crash_mid_save_leaves_the_earlier_run_as_it_was(fitted, table, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert run("fit", table, "-t", "y", *TINY, "--out", out).exit_code == 0
    before = listing(tmp_path)

    def crash(*args):
        raise RuntimeError("crash")
    monkeypatch.setattr(runfolder, "plot_curves", crash)
    result = run("fit", table, "-t", "y", *TINY, "--seed", "5", "--out", out, "--overwrite")
    assert isinstance(result.exception, RuntimeError)
    assert listing(tmp_path) == before


def test_ctrl_c_before_the_first_epoch_ends_saves_nothing_and_says_so(table, tmp_path, monkeypatch):
    from nbtrain.cli.display import EpochLines

    def interrupt(self, epoch, logs=None):
        raise KeyboardInterrupt
    monkeypatch.setattr(EpochLines, "on_epoch_begin", interrupt)
    result = run("fit", table, "-t", "y", "--layers", "8", "--epochs", "3", "--out", tmp_path / "run")
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == "Training interrupted before the first epoch ended: nothing was saved"
    assert "keeping" not in result.output and "Training interrupted" not in result.stdout  # one line, a true one
    assert "no epoch ended with a finite loss" not in result.output and list(tmp_path.iterdir()) == []


def test_sigterm_mid_fit_saves_the_run_and_exits_143(table, tmp_path):
    out = tmp_path / "run"
    fit = subprocess.Popen([sys.executable, "-m", "nbtrain", "fit", str(table), "-t", "y", "--layers", "8",
                            "--epochs", "100000", "--patience", "0", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in fit.stdout:  # the first epoch has ended: there is something to save
        if line.startswith("Epoch 1/"):
            break
    fit.send_signal(signal.SIGTERM)
    stdout, stderr = fit.communicate(timeout=120)
    assert fit.returncode == 143, stderr
    assert "Training terminated after" in stdout and "Saved model.nbt, history.csv" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing beside it: no staging folder, no lock
    epochs = load_network(out / "model.nbt").metadata["training"]["epochs_run"]
    assert 1 <= epochs < 100000 and len(pd.read_csv(out / "history.csv")) == epochs


def test_schema_errors_name_the_field_and_what_it_must_be():
    from nbtrain import schema
    counts = schema.record({"n": schema.number(low=1, integer=True), "names": schema.list_of(schema.text())})
    with pytest.raises(schema.SchemaError, match=r"^x.n must be an integer >= 1, got 0$"):
        schema.check({"n": 0, "names": []}, counts, "x")
    with pytest.raises(schema.SchemaError, match=r"^x.names\[1\] must be a string, got 2$"):
        schema.check({"n": 1, "names": ["a", 2]}, counts, "x")
    with pytest.raises(schema.SchemaError, match=r"^x has unknown fields extra$"):
        schema.check({"n": 1, "names": [], "extra": 0}, counts, "x")
    assert schema.check({"n": 3, "names": ["a"]}, counts, "x") == {"n": 3, "names": ["a"]}
