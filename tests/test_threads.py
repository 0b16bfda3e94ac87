"""The BLAS thread policy (nbtrain.threads): set by hand or from the free cores around fit, evaluate and predict
only, followed between epochs, restored after; the same count gives the same bits."""
import os
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits
from typer.testing import CliRunner

from nbtrain import InputError, Sequential, callbacks, layers, threads
from nbtrain import model as model_module
from nbtrain.cli import app


def blas_counts():
    """{library file: threads} of every BLAS loaded here (SciPy's, which the kernels call, and NumPy's)."""
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def kernels_blas(counts):
    """The thread count of SciPy's OpenBLAS, the one np.dot in the compiled kernels calls."""
    return next(n for path, n in counts.items() if "scipy_openblas-" in path)


class Recorder(callbacks.Callback):
    """Keeps the BLAS thread counts seen at each epoch's end."""

    def on_train_begin(self, logs=None):
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(blas_counts())


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((300, 12)).astype(np.float32), rng.standard_normal((300, 1)).astype(np.float32)


def network():
    model = Sequential([layers.Dense(64, activation="relu"), layers.Dense(64, activation="relu"), layers.Dense(1)])
    model.build((None, 12), seed=3)
    model.compile(optimizer="adam", loss="mae", device="cpu")
    return model


@pytest.mark.parametrize("count", [1, 2])
def test_the_same_thread_count_gives_bit_identical_weights(data, count):
    X, y = data
    runs = []
    for _ in range(2):
        model = network()
        history = model.fit(X, y, batch_size=32, epochs=3, verbose=0, seed=7, threads=count)
        runs.append((model.get_weights(), history.history["loss"], model.predict(X, threads=count)))
    (w1, loss1, p1), (w2, loss2, p2) = runs
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert loss1 == loss2 and np.array_equal(p1, p2)


def test_fit_evaluate_and_predict_set_the_count_and_restore_the_callers(data):
    X, y = data
    model, recorder = network(), Recorder()
    with threadpool_limits(limits=1, user_api="blas"):  # the user's own setting outside nbtrain
        before = blas_counts()
        model.fit(X, y, batch_size=32, epochs=2, verbose=0, threads=2, callbacks=[recorder])
        assert blas_counts() == before
        model.evaluate(X, y, verbose=0, threads=2)
        model.predict(X, threads=2)
        assert blas_counts() == before
    # inside the fit every BLAS had the count asked for, the kernels' own included
    assert [kernels_blas(seen) for seen in recorder.seen] == [2, 2]
    assert all(set(seen.values()) == {2} for seen in recorder.seen)


def test_the_environment_variable_sets_the_count(data, monkeypatch):
    X, y = data
    monkeypatch.setenv(threads.VARIABLE, "1")
    model, recorder = network(), Recorder()
    model.fit(X, y, batch_size=32, epochs=1, verbose=0, callbacks=[recorder])
    assert kernels_blas(recorder.seen[0]) == 1
    recorder = Recorder()
    model.fit(X, y, batch_size=32, epochs=1, verbose=0, callbacks=[recorder], threads=2)  # the argument wins
    assert kernels_blas(recorder.seen[0]) == 2


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_a_bad_count_is_a_one_line_error(data, monkeypatch, value):
    X, y = data
    model = network()
    if value:
        monkeypatch.setenv(threads.VARIABLE, value)
        with pytest.raises(InputError, match=f"^NBTRAIN_THREADS must be a positive whole number .*got '{value}'$"):
            model.fit(X, y, epochs=1, verbose=0)
    for bad in (0, True, "x"):
        with pytest.raises(InputError, match=r"^threads must be a positive whole number"):
            model.predict(X, threads=bad)
    assert model.optimizer.iterations == 0  # nothing ran


def test_the_automatic_count_is_the_free_cores_followed_between_epochs(data, monkeypatch):
    """Other processes running on every core: one thread; the cores free again: the caller's count, at most."""
    X, y = data
    ceiling = kernels_blas(blas_counts())
    busy = iter([0, 64, 64, 0, 0])  # other runnable threads seen at the fit's start and before each epoch
    monkeypatch.setattr(threads, "others_running", lambda: next(busy))
    monkeypatch.setattr(threads, "PROBE_SECONDS", 0.0)
    monkeypatch.setitem(threads._shared, "read", None)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    model, recorder = network(), Recorder()
    model.fit(X, y, batch_size=300, epochs=4, verbose=0, callbacks=[recorder])  # 300 rows x 5,121 parameters
    assert [kernels_blas(seen) for seen in recorder.seen] == [1, 1, min(2, ceiling), min(2, ceiling)]
    assert kernels_blas(blas_counts()) == ceiling


def test_work_that_blas_runs_on_one_thread_anyway_leaves_it_alone(data, monkeypatch):
    """OpenBLAS runs products of at most 262,144 multiply-adds on one thread: a fit of 32-row batches of this
    network, or predict on one row, reads no load and sets nothing."""
    X, y = data
    monkeypatch.setattr(threads, "others_running", lambda: pytest.fail("the load was read"))
    monkeypatch.setitem(threads._shared, "read", None)
    monkeypatch.setattr(threads, "_controller", lambda: pytest.fail("BLAS was set"))
    model = network()
    model.fit(X, y, batch_size=32, epochs=1, verbose=0)
    model.predict(X[:1])
    assert 32 * model.count_params() <= threads.ONE_THREAD_WORK


def test_others_running_counts_busy_processes_and_not_this_ones_threads():
    children = [subprocess.Popen([sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
                                 stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for child in children:
            assert child.stdout.readline() == "spinning\n"  # from here on it is always runnable
        assert threads.others_running() >= 2
        assert threads.free_cores() <= max(1, os.cpu_count() - 2)
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_blocks_at_once_in_threads_share_the_setting_and_the_last_out_restores_it():
    before = blas_counts()
    first, second = threads.BlasThreads(1), threads.BlasThreads(1)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert kernels_blas(blas_counts()) == 1  # the second block still runs
    second.__exit__(None, None, None)
    assert blas_counts() == before


HOUSES = Path(__file__).resolve().parent.parent / "data" / "houses.csv"


class Given(threads.BlasThreads):
    """Records the count each fit, evaluate and predict was given by hand."""
    counts = []

    def __init__(self, threads=None, work=None):
        super().__init__(threads, work)
        Given.counts.append(self.fixed)


def test_nbtrain_fit_threads_reaches_the_fit(monkeypatch, tmp_path):
    monkeypatch.setattr(model_module, "BlasThreads", Given)
    Given.counts = []
    result = CliRunner().invoke(app, ["fit", str(HOUSES), "-t", "price_k", "--layers", "8", "--epochs", "2",
                                      "--threads", "1", "-o", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 0, result.output
    assert Given.counts[0] == 1  # the fit (evaluations of the saved model follow it)


def test_nbtrain_sweep_threads_reaches_every_trial(monkeypatch):
    from nbtrain.sweeps import api
    seen = []

    def run_sweep(options, *args, **kwargs):  # records the count, then stops the sweep before any trial
        seen.append(options.fit.threads)
        raise InputError("stopped by the test")
    monkeypatch.setattr(api, "run_sweep", run_sweep)
    result = CliRunner().invoke(app, ["sweep", str(HOUSES), "-t", "price_k", "--threads", "2"])
    assert result.exit_code == 2 and "stopped by the test" in result.output, result.output
    assert seen == [2]


def test_a_trials_options_give_its_fit_the_count(data):
    from nbtrain.tabular.options import FitOptions
    from nbtrain.tabular.recipe import build_model, train
    X, y = data
    options = FitOptions(layers=(16,), epochs=2, threads=1, loss="mae", device="cpu")
    recorder = Recorder()
    train(build_model(12, "regression", options, 0), X, y, X[:50], y[:50], options, "regression", 1.0, 0,
          extra_callbacks=lambda history, best: [recorder])
    assert [kernels_blas(seen) for seen in recorder.seen] == [1, 1]


@pytest.mark.parametrize("args, env, message", [
    (["--threads", "0"], {}, "--threads"),
    ([], {threads.VARIABLE: "many"}, "Error: NBTRAIN_THREADS must be a positive whole number of BLAS threads"),
])
def test_a_bad_count_on_the_command_line_is_a_one_line_error(tmp_path, args, env, message):
    result = CliRunner().invoke(app, ["fit", str(HOUSES), "-t", "price_k", "--drop", "house_id", "--epochs", "1",
                                      "-o", str(tmp_path / "run"), *args], env=env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_count_stops_a_sweep_before_any_trial(monkeypatch):
    from nbtrain.sweeps import api
    monkeypatch.setenv(threads.VARIABLE, "0")
    monkeypatch.setattr(api, "_table", lambda path: pytest.fail("the data was read"))
    with pytest.raises(InputError, match="^NBTRAIN_THREADS must be a positive whole number"):
        api.sweep(str(HOUSES), "price_k", trials=2, verbose=0)


def test_the_estimators_threads_reach_fit_and_predict(data, monkeypatch):
    from nbtrain.sklearn import NBTrainRegressor
    X, y = data
    monkeypatch.setattr(model_module, "BlasThreads", Given)
    Given.counts = []
    NBTrainRegressor(hidden_layer_sizes=(8,), max_iter=1, threads=1, random_state=0).fit(X, y[:, 0]).predict(X)
    assert Given.counts == [1, 1]
    with pytest.raises(ValueError, match="^threads must be a positive whole number"):
        NBTrainRegressor(threads=-2).fit(X, y[:, 0])


def test_after_a_fit_other_threads_can_set_the_blas_threads(data):
    """threadpoolctl lets one Python thread at a time set a pthreads OpenBLAS: a fit hands that back when it ends."""
    import threading
    X, y = data
    network().fit(X, y, epochs=1, verbose=0, threads=2)
    seen = []

    def elsewhere():
        with threadpool_limits(limits=1, user_api="blas"):
            seen.append(kernels_blas(blas_counts()))
    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert seen == [1]
