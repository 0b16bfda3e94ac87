"""TabM-style shared-weight members (SharedMembers, the engine's OP_ADAPTER and stacked batches): the adapter's
gradients, the objective (the mean of the members' losses), each member's own batch order, averaged predictions,
saving, and CPU-CUDA parity. Every fit here uses one configuration (two ReLU/sigmoid Dense layers with adapters,
binary cross-entropy, Adam), so the module compiles once."""
import os

import numpy as np
import pytest

import nbtrain
from nbtrain import SharedMembers, Sequential, layers, optimizers
from nbtrain.engine import cpu
from nbtrain.engine.rng import permutation

from test_gradients import assert_close, numeric_grad

MEMBERS = 3


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=n) > 0).astype(np.float32)[:, None]
    return X, y


def shared(members=MEMBERS, learning_rate=0.01, device="cpu"):
    base = Sequential([layers.Dense(8, activation="relu", input_shape=[4]), layers.Dense(1, activation="sigmoid")])
    model = SharedMembers(base, members=members)
    model.build(seed=5)
    model.compile(optimizers.Adam(learning_rate), "binary_crossentropy", device=device)
    return model


def bce(p, y):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.mark.parametrize("row0, per, bias", [(0, 2, True), (1, 3, False)])
def test_adapter_gradients_against_finite_differences(row0, per, bias):
    """float64: dr, db and dx of the adapter, on a whole stacked batch and on an MPI rank's share of one."""
    rng = np.random.default_rng(1)
    n, m = 5, 4
    x, r, dy = rng.normal(size=(n, m)), rng.normal(size=(MEMBERS, m)), rng.normal(size=(n, m))
    b = rng.normal(size=MEMBERS * m) if bias else np.zeros(0)
    y = np.zeros((n, m))

    def f():
        cpu.adapter_forward(x, r, b, row0, per, y)
        return np.sum(dy * y)

    f()
    member = (row0 + np.arange(n)) // per
    expected = x * r[member] + (b.reshape(MEMBERS, m)[member] if bias else 0)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    dr, db, dx = np.zeros_like(r), np.zeros_like(b), np.zeros_like(x)
    cpu.adapter_backward(x, r, dy, row0, per, dr, db, dx)
    for analytic, wrt in ((dr, r), (db, b), (dx, x)) if bias else ((dr, r), (dx, x)):
        assert_close(analytic, numeric_grad(f, wrt))


def test_each_member_has_its_own_shuffle():
    """Member 0's shuffle is the single model's; the others are other permutations of the same rows."""
    orders = permutation(50, 7, 3, True, MEMBERS).reshape(MEMBERS, 50)
    np.testing.assert_array_equal(orders[0], permutation(50, 7, 3, True))
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert len({tuple(order) for order in orders}) == MEMBERS
    np.testing.assert_array_equal(permutation(50, 7, 3, False, MEMBERS), np.tile(np.arange(50), MEMBERS))


def test_members_see_different_batches():
    """Members made equal (input scales all ones) stay equal when their batches are the same (no shuffle) and part
    when each draws its own order."""
    X, y = data()
    spread = {}
    for shuffle in (False, True):
        model = shared()
        model.layers[0].set_weights([np.ones((MEMBERS, 4))])
        model.fit(X, y, batch_size=8, epochs=2, shuffle=shuffle, verbose=0)  # set weights: no seed for them
        each = model.predict(X, members=True)
        spread[shuffle] = float(np.abs(each - each[0]).max())
    assert spread[False] < 1e-6 < 1e-3 < spread[True]


def test_stacked_members_on_the_same_batches_train_as_one_unstacked_member():
    """Members given the same weights and batches (no shuffle) each follow the one member trained alone, which runs
    the single model's code (one member: nothing stacked), to float32 rounding: the stacked batch, its gradient
    (the mean of identical members') and each member's adapter update are the single model's (Adam is blind to
    the adapters' gradients being 1/members of it)."""
    X, y = data()
    alone, stacked = shared(members=1), shared()
    stacked.set_weights([np.repeat(w, MEMBERS, axis=0) if w.shape != v.shape else w
                         for w, v in zip(alone.get_weights(), stacked.get_weights())])
    for model in (alone, stacked):
        model.fit(X, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    each = stacked.predict(X, members=True)
    for member in each:
        np.testing.assert_allclose(member, alone.predict(X), rtol=1e-4, atol=1e-5)


def test_the_objective_is_the_mean_of_the_members_losses_and_predictions_average_probabilities():
    """With a learning rate near zero the logged training loss is the mean over members of each member's loss over the
    epoch, and the validation loss (like evaluate) is the loss of the members' mean probability."""
    X, y = data()
    model = shared(learning_rate=1e-12)
    history = model.fit(X, y, batch_size=16, epochs=1, verbose=0, seed=4, validation_data=(X[:20], y[:20]))
    each = model.predict(X, members=True)
    assert each.shape == (MEMBERS, len(X), 1)
    assert float(np.abs(each - each[0]).max()) > 1e-3  # the random-sign input scales make the members differ
    np.testing.assert_allclose(history.history["loss"][0], np.mean([bce(p, y) for p in each]), rtol=1e-5)
    mean = model.predict(X)
    np.testing.assert_allclose(mean, each.mean(axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history.history["val_loss"][0], bce(mean[:20], y[:20]), rtol=1e-5)
    np.testing.assert_allclose(model.evaluate(X, y, verbose=0), bce(mean, y), rtol=1e-5)
    assert bce(mean, y) != pytest.approx(np.mean([bce(p, y) for p in each]), rel=1e-3)


def test_saved_and_loaded_back_as_shared_members(tmp_path):
    X, y = data()
    model = shared()
    model.fit(X, y, batch_size=16, epochs=2, verbose=0, seed=1)
    path = os.fspath(tmp_path / "members.nbt")
    model.save(path)
    loaded = nbtrain.load_model(path, device="cpu")
    assert isinstance(loaded, SharedMembers) and loaded.members == MEMBERS and loaded.adapters == "first"
    np.testing.assert_array_equal(loaded.predict(X, members=True), model.predict(X, members=True))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_onnx_export_gives_the_members_mean(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="the export is checked in onnxruntime (the test extra installs it)")
    X, y = data()
    model = shared()
    model.fit(X, y, batch_size=16, epochs=1, verbose=0, seed=1)
    model.export(tmp_path / "members.onnx")
    session = ort.InferenceSession(str(tmp_path / "members.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": X})[0], model.predict(X), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused_in_one_line():
    base = Sequential([layers.Dense(2, input_shape=[3])])
    with pytest.raises(ValueError, match="adapters must be one of first, all"):
        SharedMembers(base, adapters="every")
    with pytest.raises(ValueError, match="members must be a positive integer"):
        SharedMembers(base, members=0)
    with pytest.raises(ValueError, match="needs a model with a Dense layer"):
        SharedMembers(Sequential([layers.Activation("relu", input_shape=[3])]))


@pytest.mark.cuda
def test_cuda_equals_cpu():
    """The same seed and data on both targets: the same history, weights and member predictions."""
    pytest.importorskip("numba_cuda", reason="needs the gpu extra: pip install 'nbtrain[gpu]'")
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and not running under NUMBA_ENABLE_CUDASIM=1")
    X, y = data(24)
    results = {}
    for device in ("cpu", "cuda"):
        model = shared(device=device)
        history = model.fit(X, y, batch_size=6, epochs=2, verbose=0, seed=3, validation_split=0.25)
        results[device] = (history.history, model.get_weights(), model.predict(X, members=True),
                           model.evaluate(X, y, verbose=0))
    (h_cpu, w_cpu, p_cpu, e_cpu), (h_gpu, w_gpu, p_gpu, e_gpu) = results["cpu"], results["cuda"]
    for key in h_cpu:
        np.testing.assert_allclose(h_gpu[key], h_cpu[key], rtol=1e-4, err_msg=key)
    for a, b in zip(w_gpu, w_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e_gpu, e_cpu, rtol=1e-4)
