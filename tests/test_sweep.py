"""`nbtrain sweep` and nbtrain.sweep(): the local pool end to end on the course data, a reproducible leaderboard,
the best model saved for `predict`, failed trials, Ctrl-C, errors before any trial starts, one BLAS thread per
worker, and the Ray backend against a local Ray (skipped where ray is not installed). Trials are tiny."""
import importlib.util
import io
import multiprocessing
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import nbtrain
from nbtrain.model import load_network
from nbtrain.callbacks import format_metric
from nbtrain.cli import app
from nbtrain.monitor import Monitor
from nbtrain.sweeps.board import Board
from nbtrain.sweeps.pool import _start_worker
from nbtrain.sweeps.report import Display
from nbtrain.sweeps.trial import SweepData, run_trial
from nbtrain.tabular.options import FitOptions
from nbtrain.tabular.preprocessing import prepare
from nbtrain.tabular.reading import read_table

HOUSES = Path(__file__).resolve().parent.parent / "data" / "houses.csv"
BIRDS = HOUSES.parent / "birds.csv"  # multiclass: species
TINY_SPACE = """
layers = [1, 2]
units = [8, 16, 32]
lr = { log_uniform = [1e-3, 1e-2] }
batch_size = [32, 64]
dropout = { uniform = [0.0, 0.2] }
"""
ION = ["-t", "Class", "--trials", "4", "--epochs", "20", "--patience", "5", "--workers", "2"]
TIMING = ["seconds"]  # the only columns that differ between two runs of the same sweep


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_fails(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "space.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="module")
def ion_sweep(data_dir, space_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ion"
    result = run("sweep", data_dir / "ion.csv", *ION, "--space", space_file, "--out", out)
    assert result.exit_code == 0, result.output
    return result, out


def test_local_sweep_end_to_end(ion_sweep, data_dir):
    result, out = ion_sweep
    assert "Sweep: 4 trials on 2 local worker processes with 1 BLAS thread each" in result.stdout
    assert "Space: layers 1|2; units 8|16|32; lr log-uniform 0.001..0.01; batch_size 32|64; dropout uniform 0..0.2" \
        in result.stdout
    assert result.stdout.count("Trial ") >= 4 and "Sweep done: 4 trials" in result.stdout
    board = pd.read_csv(out / "leaderboard.csv")
    assert sorted(board["trial"]) == [0, 1, 2, 3] and set(board["status"]) == {"done"}
    assert board["val_loss"].is_monotonic_increasing  # best first
    assert {"val_binary_accuracy", "layers", "units", "lr", "batch_size", "dropout", "seed"} <= set(board.columns)
    assert (out / "sweep.png").stat().st_size > 0
    best = board.iloc[0]
    assert f"Best: trial {best['trial']}, val_loss {format_metric(best['val_loss'])}" in result.stdout
    # the saved model is the best trial's, at its best epoch: it scores the leaderboard's val_loss on the
    # validation rows, which the sweep split off with the preprocessing fitted on the training rows only
    model = load_network(out / "best" / "model.nbt")
    prep = prepare(read_table(data_dir / "ion.csv"), "Class", seed=0)
    assert model.evaluate(prep.x_val, prep.y_val, verbose=0, return_dict=True)["loss"] == \
        pytest.approx(best["val_loss"], rel=1e-5)
    assert model.count_params() == 34 * best["units"] + best["units"] + (best["layers"] - 1) * (
        best["units"] ** 2 + best["units"]) + best["units"] + 1
    training = model.metadata["training"]
    assert training["best_epoch"] == best["best_epoch"] and training["options"]["batch_size"] == best["batch_size"]
    predictions = pd.read_csv(io.StringIO(run("predict", out / "best" / "model.nbt", data_dir / "ion.csv").stdout))
    assert len(predictions) == 351 and set(predictions["prediction"]) <= {"good", "bad"}


def test_the_same_sweep_gives_the_same_leaderboard(ion_sweep, data_dir, space_file):
    _, out = ion_sweep
    first = pd.read_csv(out / "leaderboard.csv").drop(columns=TIMING)
    again = nbtrain.sweep(data_dir / "ion.csv", "Class", trials=4, space=space_file, workers=2, epochs=20,
                          patience=5, verbose=0)
    again = pd.read_csv(io.StringIO(again.to_csv(index=False))).drop(columns=TIMING)  # as the CSV holds it
    pd.testing.assert_frame_equal(first, again)
    other = nbtrain.sweep(data_dir / "ion.csv", "Class", trials=4, space=space_file, workers=2, epochs=20,
                          patience=5, seed=1, verbose=0)
    assert not np.array_equal(other.sort_values("trial")["lr"], again.sort_values("trial")["lr"])


def test_failed_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    space = {"layers": 1, "units": 8, "optimizer": "sgd", "lr": [0.001, 10.0], "batch_size": 32, "loss": "mse"}
    board = nbtrain.sweep(HOUSES, "price_k", trials=4, space=space, drop=["house_id"], epochs=5, workers=2,
                          out=tmp_path / "run", verbose=0)
    failed, done = board[board["status"] == "failed"], board[board["status"] == "done"]
    assert len(failed) and len(done) and len(board) == 4
    assert (failed["lr"] == 10.0).all() and (done["lr"] == 0.001).all()
    assert failed["reason"].str.contains("the loss became non-finite at epoch").all()
    assert failed["val_loss"].isna().all() and list(board["status"]) == ["done"] * len(done) + ["failed"] * len(failed)
    assert (tmp_path / "run" / "best" / "model.nbt").exists()


def test_a_multiclass_sweep_ranks_by_accuracy_and_saves_a_usable_best(space_file, tmp_path):
    out = tmp_path / "run"
    result = run("sweep", BIRDS, "-t", "species", "--drop", "bird_id", "--trials", "3", "--workers", "1", "--space",
                 space_file, "--epochs", "15", "--metric", "val_accuracy", "--out", out)
    assert result.exit_code == 0, result.output
    assert "multiclass classification of 'species' ('finch' -> 0 (" in result.stdout
    assert "Sweep: 3 trials on 1 local worker process with 1 BLAS thread each" in result.stdout
    assert "ranked by val_accuracy (higher is better)" in result.stdout
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns[2:6]) == ["val_accuracy", "loss", "accuracy", "val_loss"]
    assert set(board["status"]) == {"done"}, board["reason"]
    assert board["val_accuracy"].is_monotonic_decreasing
    model = load_network(out / "best" / "model.nbt")
    prep = prepare(read_table(BIRDS), "species", drop=["bird_id"], seed=0)
    assert model.evaluate(prep.x_val, prep.y_val, verbose=0, return_dict=True)["accuracy"] == \
        pytest.approx(board["val_accuracy"].iloc[0], abs=1e-6)
    predicted = pd.read_csv(io.StringIO(run("predict", out / "best" / "model.nbt", BIRDS).stdout))
    assert list(predicted.columns) == ["prediction", "probability_finch", "probability_sparrow", "probability_warbler"]


def test_an_existing_sweep_folder_is_refused_unless_overwrite(space_file, tmp_path):
    (tmp_path / "run").mkdir()
    args = ["sweep", HOUSES, "-t", "price_k", "--drop", "house_id", "--trials", "1", "--workers", "1", "--space",
            space_file, "--epochs", "2", "--out", tmp_path / "run"]
    assert_fails(run(*args), f"the run folder {tmp_path / 'run'} already exists; choose another --out, or pass "
                             "--overwrite")
    assert not any((tmp_path / "run").iterdir())
    result = run(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert "Sweep done: 1 trial in" in result.stdout and (tmp_path / "run" / "leaderboard.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the old folder swapped out and removed


def test_a_sweep_folder_that_cannot_be_saved_whole_is_not_saved(space_file, tmp_path, monkeypatch):
    import errno
    from nbtrain.sweeps import report

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(report, "plot", no_space)  # after leaderboard.csv was written
    result = run("sweep", HOUSES, "-t", "price_k", "--drop", "house_id", "--trials", "1", "--workers", "1",
                 "--space", space_file, "--epochs", "2", "--out", tmp_path / "run")
    assert_fails(result, f"could not save {tmp_path / 'run'} (No space left on device), so nothing of this run was "
                         "saved")
    assert list(tmp_path.iterdir()) == []


def test_sweep_png_has_plain_ticks_and_whole_numbers_on_integer_axes():
    pytest.importorskip("matplotlib")
    from nbtrain.sweeps.report import sweep_figure
    data = SweepData(np.zeros((4, 1)), None, np.zeros((2, 1)), None, "regression", 1.0,
                     FitOptions(epochs=10, patience=5, min_delta=0.0), Monitor("val_loss"))
    board = Board(data, 6, ["layers", "lr", "units"])
    for index, (depth, lr, units) in enumerate([(1, 1.2e-4, 16), (2, 3e-4, 64), (3, 9e-4, 512), (1, 2e-3, 32),
                                                (2, 5e-3, 256), (3, 9e-3, 128)]):
        board.queue({"index": index, "seed": index, "params": {"layers": depth, "lr": lr, "units": units}})
        board.finish(index, {"status": "done", "val_loss": 1.0 / (index + 1), "epochs": 5, "best_epoch": 3,
                             "seconds": 1.0})
    figure = sweep_figure(board, board.leaderboard())
    figure.draw_without_rendering()
    layers_axes, lr_axes, units_axes = figure.axes[:3]

    def labels(axes, minor=False):
        ticks = axes.xaxis.get_minorticklabels() if minor else axes.get_xticklabels()
        return [t.get_text() for t in ticks if t.get_text()]
    assert list(layers_axes.get_xticks()) == [1, 2, 3] and labels(layers_axes) == ["1", "2", "3"]
    assert lr_axes.get_xscale() == "log" and labels(lr_axes, minor=True) == []
    assert "0.001" in labels(lr_axes) and all(re.fullmatch(r"[0.]*1|1e-\d+", t) for t in labels(lr_axes))
    assert labels(units_axes) == ["16", "32", "64", "128", "256", "512"] and labels(units_axes, minor=True) == []


def test_an_exception_in_a_trial_is_its_failure():
    prep = prepare(read_table(HOUSES), "price_k", drop=["house_id"])
    data = SweepData(prep.x, prep.y, prep.x_val, prep.y_val, "regression", 1.0,
                     FitOptions(epochs=3, patience=0, min_delta=0.0), Monitor("val_loss"))
    params = {"layers": 1, "units": 4, "lr": None, "batch_size": 32, "dropout": 1.0, "batchnorm": False,
              "optimizer": "adam", "loss": "mae"}
    row, history, model = run_trial(data, {"index": 0, "seed": 0, "params": params})
    assert row["status"] == "failed" and row["reason"] == "ValueError: Dropout rate must be in [0, 1), got 1.0"
    assert model is None and history == {}


def test_a_metric_to_maximize_ranks_highest_first(data_dir, space_file):
    board = nbtrain.sweep(data_dir / "ion.csv", "Class", trials=3, space=space_file, workers=2, epochs=10,
                          metric="val_binary_accuracy", verbose=0)
    assert board["val_binary_accuracy"].is_monotonic_decreasing


def test_ctrl_c_stops_the_sweep_and_keeps_what_finished(tmp_path):
    """A real SIGINT to the process group, as a terminal sends it: the workers ignore it, the sweep stops
    submitting, terminates them, still writes the leaderboard and the best model, and exits 130."""
    space = tmp_path / "space.toml"
    space.write_text("layers = 1\nunits = 8\nbatch_size = 32\nlr = [0.001, 0.002]\n")
    out = tmp_path / "run"
    command = [sys.executable, "-c", "from nbtrain.cli import app; app()", "sweep", str(HOUSES), "-t", "price_k",
               "--drop", "house_id", "--trials", "50", "--workers", "2", "--space", str(space), "--epochs", "400",
               "--patience", "0", "--out", str(out)]
    # a terminal's foreground job: SIGINT at its default, even where this test runs with it ignored (a shell
    # starts background jobs so, and a process keeps an ignored SIGINT ignored)
    sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in sweep.stdout:
        if line.startswith("Trial "):  # a trial ended: interrupt while the next ones run
            os.killpg(sweep.pid, signal.SIGINT)
            break
    rest, errors = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, errors  # as fit exits after Ctrl-C
    assert "Sweep interrupted after" in rest and "Traceback" not in errors
    board = pd.read_csv(out / "leaderboard.csv")
    assert 1 <= (board["status"] == "done").sum() < 50 and len(board) < 50
    assert set(board["status"]) <= {"done", "interrupted"}
    assert (out / "best" / "model.nbt").exists()


@pytest.mark.parametrize("args, message", [
    (["--space", "{space}"], "unknown key 'width'; the keys are layers"),
    (["--metric", "val_mae"], "the metric 'val_mae' is not logged here; choose one of loss, binary_accuracy"),
    (["--address", "auto"], "--address needs --backend ray"),
    (["--search", "tpe"], "--search tpe needs --backend ray"),
])
def test_errors_come_before_any_trial(tmp_path, args, message):
    space = tmp_path / "space.toml"
    space.write_text("width = [8, 16]\n")
    table = tmp_path / "shop.csv"
    pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20}).to_csv(table, index=False)
    result = run("sweep", table, "-t", "y", "--out", tmp_path / "run", *[a.format(space=space) for a in args])
    assert_fails(result, message)
    assert not (tmp_path / "run").exists()


def test_a_varied_loss_needs_a_comparable_metric(tmp_path):
    result = run("sweep", HOUSES, "-t", "price_k", "--out", tmp_path / "run", "--space", tmp_path / "s.toml")
    assert_fails(result, "space file not found")
    (tmp_path / "s.toml").write_text('loss = ["mae", "mse"]\n')
    result = run("sweep", HOUSES, "-t", "price_k", "--out", tmp_path / "run", "--space", tmp_path / "s.toml")
    assert_fails(result, "the space varies 'loss', so val_loss is not comparable between trials; rank them with "
                         "--metric val_mae")


def test_class_weights_are_for_classifiers_and_checked_before_any_trial(tmp_path):
    assert_fails(run("sweep", HOUSES, "-t", "price_k", "--class-weight", "balanced", "--out", tmp_path / "run"),
                 "--class-weight applies to classification; the target is a regression target")
    assert not (tmp_path / "run").exists()


def test_ray_backend_without_ray_says_how_to_get_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert_fails(run("sweep", HOUSES, "-t", "price_k", "--backend", "ray"),
                 "--backend ray needs Ray Tune: pip install 'nbtrain[ray]'")


def test_workers_use_one_blas_thread():
    """The pool initializer holds every BLAS library (NumPy's and the SciPy one Numba's np.dot calls) to one
    thread, so 2 workers on 2 cores do not run 4 BLAS threads."""
    from threadpoolctl import threadpool_info
    with multiprocessing.get_context("spawn").Pool(1, _start_worker, (None, None, os.getpid())) as pool:
        blas = [lib for lib in pool.apply(threadpool_info) if lib["user_api"] == "blas"]
    assert any("scipy_openblas-" in lib["filepath"] for lib in blas)  # SciPy's, which the kernels call
    assert len(blas) >= 2 and all(lib["num_threads"] == 1 for lib in blas)


def test_the_live_table_shows_running_done_and_pruned_trials_and_the_best():
    from rich.console import Console
    data = SweepData(np.zeros((4, 1)), None, np.zeros((2, 1)), None, "regression", 1.0,
                     FitOptions(epochs=10, patience=5, min_delta=0.0), Monitor("val_loss"))
    board = Board(data, 5, ["units"])
    for index in range(4):
        board.queue({"index": index, "seed": index, "params": {"units": 8 * (index + 1)}})
        board.start(index)
    board.finish(0, {"status": "done", "val_loss": 0.5, "epochs": 7, "best_epoch": 3, "seconds": 1.0})
    board.finish(1, {"status": "done", "val_loss": 0.25, "epochs": 9, "best_epoch": 5, "seconds": 1.0})
    board.progress(2, {"epochs": 10, "best_epoch": 10, "val_loss": 0.75})
    board.prune(2)
    board.progress(3, {"epochs": 4, "best_epoch": 2, "val_loss": 0.1})
    display = Display(board, 2)
    display.console = Console(file=io.StringIO(), width=100, height=40)
    display.console.print(display._table())
    text = display.console.file.getvalue()
    lines = [line for line in text.splitlines() if "│" in line]
    assert [line.split("│")[2].strip() for line in lines] == ["running", "done", "done", "pruned"]
    assert "1 *" in lines[1] and "0.25" in lines[1]  # the best so far is marked, and a running trial is not it
    assert "3 of 5 trials ended, 1 running, 2 done, 1 pruned; best so far: trial 1, val_loss 0.25" in \
        " ".join(text.split())


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'nbtrain[ray]')")
def test_ray_backend_runs_the_same_trials_with_asha(data_dir, space_file, ion_sweep, tmp_path):
    """Random search on Ray takes the sweep's seeded sample: the same configurations and fit seeds as the local
    pool, so a trial that ASHA lets finish has the very metrics it had there. The best model is fitted again in
    the sweep's process, with the same seed, and scores what the leaderboard says."""
    board = nbtrain.sweep(data_dir / "ion.csv", "Class", trials=4, space=space_file, backend="ray", workers=2,
                          epochs=20, patience=5, out=tmp_path / "run", verbose=0)
    local = pd.read_csv(ion_sweep[1] / "leaderboard.csv").set_index("trial")
    board = board.set_index("trial").sort_index()
    assert set(board["status"]) <= {"done", "pruned"} and (board["status"] == "done").any()
    params = ["layers", "units", "lr", "batch_size", "dropout", "seed"]
    pd.testing.assert_frame_equal(board[params], local.sort_index()[params], check_dtype=False)
    done = board[board["status"] == "done"]
    assert done["val_loss"].to_numpy() == pytest.approx(local.loc[done.index, "val_loss"].to_numpy(), rel=1e-6)
    pruned = board[board["status"] == "pruned"]
    assert (pruned["epochs"] == 10).all() and pruned["reason"].str.startswith("stopped by ASHA").all()
    model = load_network(tmp_path / "run" / "best" / "model.nbt")
    prep = prepare(read_table(data_dir / "ion.csv"), "Class", seed=0)
    best = done["val_loss"].min()
    assert model.evaluate(prep.x_val, prep.y_val, verbose=0, return_dict=True)["loss"] == pytest.approx(best, rel=1e-5)
