"""nbtrain.Ensemble: k independent members of one architecture in one compiled call per epoch (issue 29). The tests
use the course's ionosphere network (4-4-1, Adam, binary cross-entropy: bench/workloads.py) and the command-line
test test_cli's binary run's, so the file compiles the members' entry points of two configurations."""

import numpy as np
import pandas as pd
import pytest

import nbtrain
from nbtrain import Ensemble, Sequential, callbacks, layers, optimizers
from nbtrain.ensemble import member_seeds
from nbtrain.errors import InputError, ModelFileError
from nbtrain.tabular.runfolder import load_run

from bench.workloads import ION_4_4_1

FIT = dict(epochs=4, batch_size=32, verbose=0)


def network(learning_rate=0.001):
    model = Sequential([layers.Dense(units, activation=act) for units, act in ION_4_4_1])
    model.compile(optimizers.Adam(learning_rate), "binary_crossentropy", device="cpu")
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(160, 34)).astype(np.float32)
    Y = (X[:, :1] - 0.5 * X[:, 1:2] + 0.3 * rng.normal(size=(160, 1)) > 0).astype(np.float32)
    return (X[:120], Y[:120]), (X[120:], Y[120:])


def bce(p, y):
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(y * np.log(q) + (1 - y) * np.log(1 - q))))


def test_member_j_is_the_model_trained_alone_with_its_seed_and_learning_rate(data):
    (X, Y), val = data
    rates = [0.001, 0.01, 0.03]
    ensemble = Ensemble(network(), members=3, learning_rates=rates)
    history = ensemble.fit(X, Y, validation_data=val, seed=11, **FIT)
    for j, (seed, rate) in enumerate(zip(member_seeds(11, 3), rates)):
        alone = network(rate)
        alone_history = alone.fit(X, Y, validation_data=val, seed=seed, **FIT)
        np.testing.assert_array_equal(ensemble.theta[j], alone.theta)  # bit for bit
        assert history.members[j] == alone_history.history
    assert len(set(map(tuple, ensemble.theta))) == 3  # the members differ from one another
    assert history.history["loss"] == pytest.approx(np.mean([m["loss"] for m in history.members], axis=0))


def test_predict_evaluate_and_validation_score_the_members_average(data):
    (X, Y), (Xv, Yv) = data
    ensemble = Ensemble(network(), members=4)
    history = ensemble.fit(X, Y, validation_data=(Xv, Yv), seed=3, **FIT)
    each = ensemble.predict(Xv, members=True)
    assert each.shape == (4, len(Xv), 1)
    np.testing.assert_allclose(ensemble.predict(Xv), each.mean(axis=0), rtol=1e-6)
    for j in range(4):
        np.testing.assert_array_equal(each[j], ensemble.member(j).predict(Xv))
    averaged = bce(each.mean(axis=0), Yv)  # the loss of the averaged probabilities, not the mean of the losses
    assert ensemble.evaluate(Xv, Yv, verbose=0) == pytest.approx(averaged, rel=1e-5)
    assert history.history["val_loss"][-1] == pytest.approx(averaged, rel=1e-5)
    members = ensemble.evaluate(Xv, Yv, verbose=0, members=True)
    assert members == pytest.approx([m["val_loss"][-1] for m in history.members], rel=1e-6)
    assert averaged != pytest.approx(np.mean(members), rel=1e-4)


def test_early_stopping_restores_each_members_own_best_epoch(data):
    (X, Y), val = data
    snapshots = []
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(ensemble.theta.copy()))
    stop = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    ensemble = Ensemble(network(0.05), members=3)
    history = ensemble.fit(X, Y, validation_data=val, seed=5, callbacks=[keep, stop], epochs=30, batch_size=32,
                           verbose=0)
    assert stop.stopped_epoch > 0  # early stopping happened on the ensemble's val_loss
    for j, best in enumerate(ensemble.best_epochs):
        assert best == int(np.argmin(history.members[j]["val_loss"]))
        np.testing.assert_array_equal(ensemble.theta[j], snapshots[best][j])
    assert len(set(ensemble.best_epochs)) > 1  # the members' best epochs differ: each kept its own


def test_save_load_and_onnx_export_of_the_whole_ensemble(data, tmp_path):
    (X, Y), (Xv, Yv) = data
    ensemble = Ensemble(network(), members=3, weight_decays=[0.0, 0.01, 0.1])
    ensemble.fit(X, Y, seed=2, **FIT)
    ensemble.save(tmp_path / "e.nbt")
    loaded = nbtrain.load_model(tmp_path / "e.nbt", device="cpu")
    assert isinstance(loaded, Ensemble) and loaded.members == 3
    np.testing.assert_array_equal(loaded.predict(Xv), ensemble.predict(Xv))
    assert loaded.weight_decays.tolist() == [0.0, 0.01, 0.1]
    assert loaded.history.history == ensemble.history.history
    ensemble.fit(X, Y, seed=9, **FIT)  # both go on from the same weights and optimizer state
    loaded.fit(X, Y, seed=9, **FIT)
    np.testing.assert_array_equal(loaded.theta, ensemble.theta)
    plain = network()
    plain.fit(X, Y, seed=1, **FIT)
    plain.save(tmp_path / "plain.nbt")
    assert isinstance(nbtrain.load_model(tmp_path / "plain.nbt"), Sequential)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    ensemble.export(tmp_path / "e.onnx")
    session = ort.InferenceSession(str(tmp_path / "e.onnx"))
    np.testing.assert_allclose(session.run(None, {"input": Xv})[0], ensemble.predict(Xv), atol=1e-6)


def test_bad_input_is_refused_in_one_line(data, tmp_path):
    (X, Y), _ = data
    with pytest.raises(InputError, match="learning_rates needs 3 finite positive numbers"):
        Ensemble(network(), members=3, learning_rates=[0.1, 0.2])
    with pytest.raises(InputError, match="members"):
        Ensemble(network(), members=0)
    with pytest.raises(ValueError, match="constant learning rate"):
        schedule = optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
        Ensemble(network(), members=2, learning_rates=[0.1, 0.2]).compile(optimizers.Adam(schedule),
                                                                             "binary_crossentropy")
    with pytest.raises(ValueError, match="shared=False"):
        Ensemble(network(), members=2, shared=True, learning_rates=[0.1, 0.01])
    assert type(Ensemble(network(), members=2, shared=True)).__name__ == "SharedMembers"
    ensemble = Ensemble(network(), members=2)
    ensemble.fit(X, Y, seed=1, **FIT)
    with pytest.raises(InputError, match="expects 34 input features"):
        ensemble.predict(X[:, :3])
    ensemble.save(tmp_path / "e.nbt")
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "e.nbt") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["model"]["members"] = 0
    members["config.json"] = json.dumps(config)
    with zipfile.ZipFile(tmp_path / "bad.nbt", "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    with pytest.raises(ModelFileError, match="member count 0"):
        nbtrain.load_model(tmp_path / "bad.nbt")


@pytest.mark.cuda
def test_cuda_members_equal_the_cpu_members(data):
    pytest.importorskip("numba_cuda")
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and not running under NUMBA_ENABLE_CUDASIM=1")
    (X, Y), (Xv, Yv) = data
    X, Y, Xv, Yv = X[:48], Y[:48], Xv[:16], Yv[:16]  # the simulator runs every GPU thread in Python
    results = []
    for device in ("cpu", "cuda"):
        model = network()
        model.compile(optimizers.Adam(0.01), "binary_crossentropy", device=device)
        ensemble = Ensemble(model, members=2)
        history = ensemble.fit(X, Y, validation_data=(Xv, Yv), seed=4, epochs=2, batch_size=24, verbose=0)
        results.append((ensemble.theta.copy(), history.history["val_loss"], ensemble.predict(Xv, members=True),
                        ensemble.evaluate(Xv, Yv, verbose=0)))
    (theta, val, each, score), (theta_gpu, val_gpu, each_gpu, score_gpu) = results
    np.testing.assert_allclose(theta_gpu, theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(val_gpu, val, rtol=1e-4)
    np.testing.assert_allclose(each_gpu, each, rtol=1e-4, atol=1e-5)
    assert score_gpu == pytest.approx(score, rel=1e-4)


def test_the_command_line_fits_predicts_and_exports_an_ensemble(tmp_path):
    from typer.testing import CliRunner
    from nbtrain.cli import app
    from tests.test_cli import TINY, make_shop  # test_cli's binary run's data and network: its configuration
    make_shop().to_csv(tmp_path / "shop.csv", index=False)

    def run(*args):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output
    out = tmp_path / "run"
    assert "in an ensemble of 3" in run("fit", tmp_path / "shop.csv", "-t", "bought", "--drop", "id", "--drop",
                                        "price", *TINY, "--ensemble", "3", "--out", out)
    model = nbtrain.load_model(out / "model.nbt")
    assert isinstance(model, Ensemble) and model.members == 3
    assert len({tuple(model.theta[j]) for j in range(3)}) == 3
    run("predict", out, tmp_path / "shop.csv", "--output", tmp_path / "p.csv")
    _, preprocessing = load_run(out)
    x = preprocessing.transform(pd.read_csv(tmp_path / "shop.csv"))
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p.csv")["probability"], model.predict(x)[:, 0], atol=1e-5)
    run("export", out, "--onnx", tmp_path / "shop.onnx")  # the members' average in the graph: test_export's checks


def test_two_mpi_ranks_give_the_one_process_ensemble(tmp_path):
    import sys
    from pathlib import Path
    from tests import mpi_ensemble
    from tests.test_mpi import have_mpi, mpiexec
    if not have_mpi():
        pytest.skip("needs the mpi extra: pip install 'nbtrain[mpi]'")
    result = mpiexec((2, [sys.executable, Path(mpi_ensemble.__file__), tmp_path]))
    assert result.returncode == 0, result.stderr[-2000:]
    theta, val_loss = mpi_ensemble.fit()
    for rank in range(2):
        saved = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_allclose(saved["theta"], theta, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(saved["val_loss"], val_loss, rtol=1e-6)
