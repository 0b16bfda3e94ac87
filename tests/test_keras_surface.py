"""What a Keras user reaches for after the course: penalties, weight decay, RMSprop, learning-rate schedules and the
callbacks that move the learning rate or save the model, the model built before fit, and Keras's small conveniences.
Expected values are written out from Keras's documented formulas."""
import math

import numpy as np
import pytest

import nbtrain
from nbtrain import Sequential, callbacks, layers, optimizers, regularizers
from nbtrain.initializers import INITIALIZERS
from nbtrain.optimizers import schedules


def data(rows=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4)).astype(np.float32)
    return X, (X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3).astype(np.float32)


# ---------------------------------------------------------------- penalties
def test_penalties_are_added_to_the_loss_as_keras_reports_it():
    X, y = data()
    model = Sequential([layers.Dense(3, activation="relu", input_shape=[4], kernel_regularizer=regularizers.l2(0.1),
                                     bias_regularizer=regularizers.l1(0.2)),
                        layers.Dense(1, kernel_regularizer=regularizers.l1_l2(l1=0.05, l2=0.0))])
    model.compile(optimizer="sgd", loss="mse")
    kernel, bias, kernel2, _ = start = model.get_weights()
    data_loss = model.evaluate(X, y, verbose=0)
    penalty = (0.1 * (kernel ** 2).sum() + 0.2 * np.abs(bias).sum() + 0.05 * np.abs(kernel2).sum())
    plain = Sequential([layers.Dense(3, activation="relu", input_shape=[4]), layers.Dense(1)])
    plain.compile(loss="mse")
    plain.set_weights(start)
    assert data_loss == pytest.approx(plain.evaluate(X, y, verbose=0) + penalty, rel=1e-5)
    history = model.fit(X, y, batch_size=64, epochs=1, verbose=0)  # one batch: the loss before its update
    assert history.history["loss"][0] == pytest.approx(data_loss, rel=1e-5)
    assert regularizers.l2(0.1)(kernel) == pytest.approx(0.1 * float((kernel.astype(float) ** 2).sum()), rel=1e-6)


def test_regularizers_by_name_and_config():
    assert regularizers.get("l2").l2 == 0.01 and regularizers.get("l1_l2").l1 == 0.01
    dense = layers.Dense(2, kernel_regularizer="l1")
    again = layers.Dense.from_config(dense.get_config())
    assert again.kernel_regularizer.l1 == 0.01 and again.bias_regularizer is None
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.l2(-1)


# ---------------------------------------------------------------- optimizers
def one_step(optimizer, theta, grad, steps=1):
    """theta after `steps` updates with the same gradient, through the engine's CPU kernel."""
    from nbtrain.engine import cpu
    from nbtrain.engine.bundles import Optimizer
    optimizer.build(theta.size)
    theta = theta.astype(np.float32).copy()
    for t in range(1, steps + 1):
        code, hp, slots, schedule = optimizer.engine_state()
        cpu.optimizer_update(code, int(schedule[0]), Optimizer(code, hp, slots[0], slots[1], schedule), t, theta,
                             grad.astype(np.float32))
    return theta


def test_weight_decay_is_decoupled_and_applied_before_the_step():
    theta, grad = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, -0.3])
    got = one_step(optimizers.SGD(learning_rate=0.1, weight_decay=0.5), theta, grad)
    np.testing.assert_allclose(got, theta - theta * 0.5 * 0.1 - 0.1 * grad, rtol=1e-6)
    assert optimizers.AdamW().weight_decay == 0.004
    adam, adamw = (one_step(o, theta, grad) for o in (optimizers.Adam(0.01), optimizers.AdamW(0.01, weight_decay=0.1)))
    np.testing.assert_allclose(adamw, adam - theta * 0.1 * 0.01, rtol=1e-6)  # first Adam step: theta - lr * sign


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.5, False), (0.0, True)])
def test_rmsprop_follows_keras(momentum, centered):
    theta, grad = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, -0.3])
    lr, rho, eps = 0.01, 0.9, 1e-7
    ref, velocity, second = theta.copy(), np.zeros(3), np.zeros(3)
    for _ in range(3):
        velocity = rho * velocity + (1 - rho) * grad ** 2
        denominator = velocity + eps
        if centered:
            second = rho * second + (1 - rho) * grad
            denominator = velocity - second ** 2 + eps
        increment = lr * grad / np.sqrt(denominator)
        if momentum:
            second = momentum * second + increment
            ref -= second
        else:
            ref -= increment
    got = one_step(optimizers.RMSprop(lr, rho, momentum, eps, centered), theta, grad, steps=3)
    np.testing.assert_allclose(got, ref, rtol=1e-5)


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("schedule, steps, expected", [
    (schedules.ExponentialDecay(0.1, 10, 0.5), [0, 5, 10, 20], [0.1, 0.1 * 0.5 ** 0.5, 0.05, 0.025]),
    (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True), [9, 10, 15, 20], [0.1, 0.05, 0.05, 0.025]),
    (schedules.CosineDecay(0.1, 100), [0, 50, 100, 200], [0.1, 0.05, 0.0, 0.0]),
    (schedules.CosineDecay(0.1, 100, alpha=0.1), [50, 100], [0.1 * (0.9 * 0.5 + 0.1), 0.01]),
    (schedules.CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10), [0, 5, 10, 60, 110, 500],
     [0.0, 0.05, 0.1, 0.05, 0.0, 0.0]),
    (schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]), [0, 10, 11, 20, 21], [1.0, 1.0, 0.5, 0.5, 0.1]),
])
def test_schedules_give_keras_values(schedule, steps, expected):
    np.testing.assert_allclose([schedule(s) for s in steps], expected, rtol=1e-12, atol=1e-15)


def test_a_schedule_moves_the_learning_rate_every_step():
    """SGD under ExponentialDecay equals plain SGD steps with lr = schedule(t) for t = 0, 1, ...: one row per batch,
    so each step's gradient is known in closed form for a linear model with MSE."""
    X, y = data(rows=8)
    schedule = schedules.ExponentialDecay(0.05, 2, 0.5)
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(optimizer=optimizers.SGD(learning_rate=schedule), loss="mse")
    w, b = (a.astype(np.float64) for a in model.get_weights())
    model.fit(X, y, batch_size=1, epochs=1, shuffle=False, verbose=0)  # from the weights read above
    for t in range(8):
        e = X[t] @ w[:, 0] + b[0] - y[t]
        w[:, 0] -= schedule(t) * 2 * e * X[t]
        b[0] -= schedule(t) * 2 * e
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-5, atol=1e-6)  # float32 rounding, weights near 0 too
    assert model.optimizer.learning_rate == pytest.approx(schedule(8))
    with pytest.raises(TypeError, match="schedule"):
        model.optimizer.learning_rate = 0.1


def test_optimizers_with_schedules_save_and_load(tmp_path):
    X, y = data()
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(optimizer=optimizers.AdamW(learning_rate=schedules.CosineDecay(0.01, 50)), loss="mse")
    model.fit(X, y, epochs=2, verbose=0, seed=0)
    model.save(tmp_path / "m.nbt")
    loaded = nbtrain.models.load_model(tmp_path / "m.nbt")
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.learning_rate == pytest.approx(model.optimizer.learning_rate)


# ---------------------------------------------------------------- callbacks that move the learning rate
class FakeModel:
    """Enough of a model for the callbacks: an optimizer with a learning rate, no metrics."""

    def __init__(self, lr=1.0):
        self.optimizer = optimizers.SGD(learning_rate=lr)
        self.metrics = []
        self.stop_training = False


def drive(callback, values, monitor="val_loss", model=None):
    """Feed scripted monitored values; the learning rate after each epoch."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        callback.on_epoch_begin(epoch)
        logs = {monitor: value}
        callback.on_epoch_end(epoch, logs)
        rates.append(model.optimizer.learning_rate)
    return rates


def test_reduce_lr_on_plateau_follows_keras():
    # patience 2: two epochs without an improvement of more than min_delta cut the rate (epochs 3 and 6, 8); the
    # epoch after a cut is cooldown (cooldown=1): its wait stays 0
    values = [1.0, 0.9, 0.9, 0.89995, 0.8, 0.8, 0.8, 0.8, 0.8]
    rates = drive(callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_delta=1e-4), values)
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]
    floored = drive(callbacks.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05), [1.0, 1.0, 1.0, 1.0])
    assert floored == [1.0, 0.1, 0.05, 0.05]
    grows = drive(callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1),
                  [0.5, 0.6, 0.6, 0.7], monitor="val_accuracy")
    assert grows == [1.0, 1.0, 0.5, 0.5]
    with pytest.raises(ValueError, match="factor"):
        callbacks.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler_in_a_fit_and_history_records_it():
    X, y = data()
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    halve = callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    history = model.fit(X, y, epochs=4, verbose=0, seed=0, callbacks=[halve])
    np.testing.assert_allclose(history.history["learning_rate"], [0.1, 0.05, 0.025, 0.0125])
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    history = model.fit(X, y, epochs=2, verbose=0, callbacks=[one_arg])  # training goes on
    np.testing.assert_allclose(history.history["learning_rate"], [0.01, 0.02])


def test_reduce_lr_on_plateau_in_a_fit_changes_the_steps():
    X, y = data()
    runs = []
    for cb in ([], [callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)]):
        model = Sequential([layers.Dense(1, input_shape=[4])])
        model.build(seed=0)
        model.compile(optimizer=optimizers.SGD(learning_rate=0.01), loss="mse")
        runs.append(model.fit(X, y, epochs=3, verbose=0, seed=0, callbacks=cb).history)
    # the learning rate each epoch ran with: cut after epoch 2 (no improvement by min_delta), used from epoch 3
    assert runs[1]["learning_rate"] == [0.01, 0.01, 0.005]
    assert runs[0]["loss"][:2] == runs[1]["loss"][:2] and runs[0]["loss"][2] != runs[1]["loss"][2]


# ---------------------------------------------------------------- callbacks that save
def test_model_checkpoint_saves_the_best_epochs_atomically(tmp_path):
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(loss="mse")
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.nbt"), save_best_only=True)
    drive(checkpoint, [0.5, 0.7, 0.4, 0.4, 0.3], model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01-0.50.nbt", "m-03-0.40.nbt", "m-05-0.30.nbt"]
    every = callbacks.ModelCheckpoint(str(tmp_path / "w.weights.nbt"), save_weights_only=True)
    drive(every, [1.0, 2.0], model=model)
    fresh = Sequential([layers.Dense(1, input_shape=[4])])
    fresh.load_weights(tmp_path / "w.weights.nbt")
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="once per epoch"):
        callbacks.ModelCheckpoint("x.nbt", save_freq=10)


def test_csv_logger_writes_keras_columns(tmp_path):
    X, y = data()
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(loss="mse", metrics=["mae"])
    path = tmp_path / "log.csv"
    model.fit(X, y, validation_split=0.25, epochs=2, verbose=0, seed=0, callbacks=[callbacks.CSVLogger(path)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,mae,val_loss,val_mae" and [line.split(",")[0] for line in lines[1:]] == ["0", "1"]
    model.fit(X, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, append=True)])
    assert len(path.read_text().splitlines()) == 4


def test_batch_hooks_are_refused_not_dropped():
    X, y = data()
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(loss="mse")

    class PerBatch(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    for cb in (PerBatch(), callbacks.LambdaCallback(on_batch_end=lambda batch, logs: None)):
        with pytest.raises(ValueError, match="cannot call batch-level hooks"):
            model.fit(X, y, epochs=1, verbose=0, callbacks=[cb])


# ---------------------------------------------------------------- the model before fit, and small conveniences
def test_a_declared_model_has_its_weights_before_fit():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3, activation="tanh"), layers.Dense(1)])
    assert model.count_params() == 4 * 3 + 3 + 3 + 1
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 3), (3,), (3, 1), (1,)]
    model.set_weights([np.ones_like(w) for w in weights])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 19" in lines[0] and "(None, 3)" in lines[0] and "unbuilt" not in lines[0]
    np.testing.assert_allclose(model.predict_on_batch(np.zeros((2, 4))), np.tanh(1.0) * 3 + 1, rtol=1e-6)


def test_pop_keeps_the_other_weights_and_keras_names_are_refused(tmp_path):
    model = Sequential([layers.Dense(3, input_shape=[4]), layers.Dense(2), layers.Dense(1)])
    before = model.get_weights()
    model.pop()
    assert model.output_shape == (None, 2)
    for a, b in zip(model.get_weights(), before[:4]):
        np.testing.assert_array_equal(a, b)
    for name in ("m.keras", "m.h5", "m.weights.h5"):
        with pytest.raises(ValueError, match=r"not Keras's .*name the file m(\.weights)?\.nbt"):
            (model.save_weights if "weights" in name else model.save)(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert nbtrain.models.load_model is nbtrain.load_model


@pytest.mark.parametrize("name, scale, mode", [("he_normal", 2.0, "fan_in"), ("lecun_normal", 1.0, "fan_in"),
                                               ("glorot_normal", 1.0, "fan_avg"), ("he_uniform", 2.0, "fan_in")])
def test_initializers_have_keras_variances(name, scale, mode):
    w = INITIALIZERS[name]((400, 300), np.random.default_rng(0))
    n = 400 if mode == "fan_in" else 350
    if name.endswith("normal"):  # truncated at two standard deviations of the untruncated normal
        std = math.sqrt(scale / n) / 0.87962566103423978
        assert np.abs(w).max() <= 2 * std
    assert w.std() == pytest.approx(math.sqrt(scale / n), rel=0.02)


def test_normalization_adapts_and_saves(tmp_path):
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.0] + [5.0, -3.0, 2.0]  # the third feature is constant
    norm = layers.Normalization()
    norm.adapt(raw)
    model = Sequential([layers.Input(shape=(3,)), norm])
    expected = (raw - raw.mean(axis=0)) / np.maximum(raw.std(axis=0), 1e-7)
    np.testing.assert_allclose(model.predict(raw), expected, rtol=1e-4, atol=1e-5)
    later = rng.normal(size=(50, 3)) * 3
    norm.adapt(later)  # built: the model's weights follow
    np.testing.assert_allclose(model.get_weights()[0], later.mean(axis=0), rtol=1e-6)
    model.compile(loss="mse")
    model.save(tmp_path / "n.nbt")
    loaded = nbtrain.load_model(tmp_path / "n.nbt")
    np.testing.assert_array_equal(loaded.predict(later), model.predict(later))
    inverse = Sequential([layers.Input(shape=(3,)), layers.Normalization(mean=2.0, variance=4.0, invert=True)])
    np.testing.assert_allclose(inverse.predict(np.ones((1, 3))), [[4.0, 4.0, 4.0]])
    with pytest.raises(ValueError, match="cannot adapt"):
        inverse.layers[1].adapt(raw)


# ---------------------------------------------------------------- metrics over the whole set
def roc_auc(p, y, w, thresholds=200):
    """Keras's AUC in NumPy: rates at its thresholds, trapezoids between them."""
    t = np.array([-1e-7] + [(i + 1) / (thresholds - 1) for i in range(thresholds - 2)] + [1 + 1e-7])
    above = p[None, :] > t[:, None]
    tpr = (above * (w * y)).sum(axis=1) / (w * y).sum()
    fpr = (above * (w * (1 - y))).sum(axis=1) / (w * (1 - y)).sum()
    return np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)


def test_auc_precision_recall_over_the_whole_validation_set():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=300) > 0.3).astype(np.float32)
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=[4])])
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy",
                  metrics=["auc", "precision", "recall", nbtrain.metrics.AUC(num_thresholds=50, name="auc50")])
    history = model.fit(X[:200], y[:200], validation_data=(X[200:], y[200:]), batch_size=16, epochs=10, verbose=0,
                        seed=0)
    p = model.predict(X[200:])[:, 0].astype(np.float64)
    yv, ones = y[200:].astype(np.float64), np.ones(100)
    assert history.history["val_auc"][-1] == pytest.approx(roc_auc(p, yv, ones), rel=1e-6)
    assert history.history["val_auc50"][-1] == pytest.approx(roc_auc(p, yv, ones, 50), rel=1e-6)
    hit = p > 0.5
    assert history.history["val_precision"][-1] == pytest.approx((hit * yv).sum() / hit.sum(), rel=1e-9)
    assert history.history["val_recall"][-1] == pytest.approx((hit * yv).sum() / yv.sum(), rel=1e-9)
    w = rng.uniform(0.1, 2.0, size=100)
    result = model.evaluate(X[200:], y[200:], sample_weight=w, verbose=0, return_dict=True)
    assert result["auc"] == pytest.approx(roc_auc(p, yv, w), rel=1e-6)
    assert result["precision"] == pytest.approx((w * hit * yv).sum() / (w * hit).sum(), rel=1e-6)
    assert 0.7 < result["auc"] <= 1.0 and nbtrain.monitor.direction("val_auc") == "max"


def read_scalars(folder):
    """{tag: [(step, value)]} from the TensorBoard event files in folder (TFRecord framing, Event protos)."""
    import struct
    from pathlib import Path
    from tensorboardX.proto import event_pb2
    found = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboard_writes_epoch_scalars_where_keras_does(tmp_path):
    pytest.importorskip("tensorboardX", reason="TensorBoard needs the tensorboard extra (the test extra installs it)")
    X, y = data()
    model = Sequential([layers.Dense(1, input_shape=[4])])
    model.compile(loss="mse", metrics=["mae"])
    history = model.fit(X, y, validation_split=0.25, epochs=3, verbose=0, seed=0,
                        callbacks=[callbacks.TensorBoard(log_dir=tmp_path / "logs")])
    train, validation = read_scalars(tmp_path / "logs" / "train"), read_scalars(tmp_path / "logs" / "validation")
    assert sorted(train) == ["epoch_loss", "epoch_mae"] and sorted(validation) == ["epoch_loss", "epoch_mae"]
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in validation["epoch_mae"]], history.history["val_mae"], rtol=1e-6)
    with pytest.raises(ValueError, match="epoch scalars only"):
        callbacks.TensorBoard(histogram_freq=1)
