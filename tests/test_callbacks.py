"""Callback semantics driven by scripted logs: no training needed."""
import warnings

import numpy as np
import pytest

from nbtrain import Sequential, callbacks, layers, metrics
from nbtrain.callbacks import Callback, LambdaCallback


class ScriptedModel:
    """Stands in for a model: its 'weights' are the index of the epoch that produced them."""

    def __init__(self, metric_list=()):
        self.metrics = list(metric_list)
        self.epoch = -1
        self.restored = None
        self.stop_training = False

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.restored = int(weights[0])


def run(callback, values, monitor="val_loss", model=None):
    """Feed one value per epoch until the callback stops training; returns (model, epochs run)."""
    model = model or ScriptedModel()
    model.stop_training = False
    callback.set_model(model)
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        model.epoch = epoch
        callback.on_epoch_end(epoch, {monitor: value})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epochs


def test_keras_defaults():
    es = callbacks.EarlyStopping()
    assert (es.monitor, es.min_delta, es.patience, es.mode, es.baseline, es.restore_best_weights,
            es.start_from_epoch) == ("val_loss", 0, 0, "auto", None, False, 0)


def test_patience_counts_epochs_since_the_best_and_restores_it():
    es = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model, epochs = run(es, [1.0, 0.9, 0.95, 0.93, 0.8])
    assert epochs == 4 and es.stopped_epoch == 3
    assert model.restored == 1 and es.best == 0.9 and es.best_epoch == 1


def test_patience_zero_stops_at_first_non_improvement_but_never_at_epoch_zero():
    model, epochs = run(callbacks.EarlyStopping(), [1.0, 1.0, 0.5])
    assert epochs == 2


def test_min_delta_is_the_smallest_change_that_counts():
    es = callbacks.EarlyStopping(min_delta=0.05, patience=1)
    _, epochs = run(es, [1.0, 0.97, 0.96, 0.9])
    assert epochs == 2 and es.best == 1.0
    es = callbacks.EarlyStopping(min_delta=-0.05, patience=1)  # the sign is ignored, as in Keras
    assert run(es, [1.0, 0.97, 0.96, 0.9])[1] == 2


def test_baseline_must_be_beaten_to_reset_the_wait():
    es = callbacks.EarlyStopping(baseline=0.5, patience=2)
    _, epochs = run(es, [0.9, 0.8, 0.7, 0.6])  # improving every epoch: never stopped
    assert epochs == 4 and es.wait == 4
    _, epochs = run(callbacks.EarlyStopping(baseline=0.5, patience=2), [0.9, 0.95, 0.96])
    assert epochs == 2


def test_start_from_epoch_ignores_warm_up():
    es = callbacks.EarlyStopping(start_from_epoch=3, restore_best_weights=True)
    model, epochs = run(es, [5.0, 6.0, 7.0, 8.0, 9.0, 1.0])
    assert epochs == 5 and model.restored == 3


def test_auto_mode_maximizes_accuracy_metrics():
    model = ScriptedModel([metrics.get("binary_accuracy")])
    es = callbacks.EarlyStopping(monitor="val_binary_accuracy", patience=1, restore_best_weights=True)
    model, epochs = run(es, [0.5, 0.7, 0.6, 0.65], monitor="val_binary_accuracy", model=model)
    assert epochs == 3 and model.restored == 1
    es = callbacks.EarlyStopping(monitor="val_mae", patience=1)
    _, epochs = run(es, [0.5, 0.7, 0.6], monitor="val_mae", model=ScriptedModel([metrics.get("mae")]))
    assert epochs == 2


def test_explicit_mode_and_unknown_direction():
    es = callbacks.EarlyStopping(monitor="score", mode="max", patience=0)
    assert run(es, [1.0, 2.0, 1.5], monitor="score")[1] == 3
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        run(callbacks.EarlyStopping(monitor="score"), [1.0], monitor="score")
    with pytest.raises(ValueError):
        callbacks.EarlyStopping(mode="sideways")


def test_restores_best_weights_at_the_end_even_without_stopping():
    es = callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    model, epochs = run(es, [1.0, 0.5, 0.7])
    assert epochs == 3 and es.stopped_epoch == 0 and model.restored == 1


def test_state_is_reset_when_training_starts_again():
    es = callbacks.EarlyStopping(patience=1, restore_best_weights=True)
    run(es, [0.5, 0.9])
    model, epochs = run(es, [2.0, 1.9, 1.8])  # worse than the first fit's best, but a new fit
    assert epochs == 3 and es.best == 1.8 and model.restored == 2


def test_missing_monitor_warns_and_never_stops():
    es = callbacks.EarlyStopping(monitor="val_loss")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, epochs = run(es, [1.0, 2.0, 3.0], monitor="loss")
    assert epochs == 3 and any("val_loss" in str(w.message) for w in caught)


def test_terminate_on_nan():
    cb = callbacks.TerminateOnNaN()
    model, epochs = run(cb, [1.0, float("nan"), 0.5], monitor="loss")
    assert epochs == 2


def test_lambda_callback_and_format():
    seen = []
    cb = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, logs["loss"])))
    run(cb, [3.0, 2.0], monitor="loss")
    assert seen == [(0, 3.0), (1, 2.0)]
    assert callbacks.format_logs({"loss": 0.12345, "mae": 0.0000123}) == " - loss: 0.1235 - mae: 1.2300e-05"


# ---------------------------------------------------------------- Ctrl-C and SIGTERM during fit
def signalling_model(seed=0):
    model = Sequential([layers.Dense(64, activation="relu", input_shape=[20]), layers.Dense(1)])
    model.build(seed=seed)
    model.compile(optimizer="adam", loss="mse")
    return model


def test_sigterm_between_epochs_stops_after_that_epoch():
    import os
    import signal
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 20)), rng.normal(size=64)
    model = signalling_model()
    kill = LambdaCallback(on_epoch_end=lambda epoch, logs: epoch == 2 and os.kill(os.getpid(), signal.SIGTERM))
    history = model.fit(X, y, epochs=10, verbose=0, seed=0, callbacks=[kill])
    assert history.epoch == [0, 1, 2] and model.stop_cause == "terminated"
    assert "terminated after 3 epochs" in model.stop_reason
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back after the fit


def test_ctrl_c_during_a_long_epoch_stops_at_the_end_of_the_step(monkeypatch):
    """A long epoch runs beside the caller and reports progress; Ctrl-C sent at the first report ends the epoch
    after the current step: the optimizer took some of the epoch's steps, not all, and the cut epoch is not
    recorded."""
    import os
    import signal
    import nbtrain.model
    monkeypatch.setattr(nbtrain.model, "PROGRESS_SECONDS", 0.01)
    rng = np.random.default_rng(1)
    rows = 200_000  # 12,500 steps of 16 rows: an epoch far longer than the progress interval on any machine
    X, y = rng.normal(size=(rows, 20)).astype(np.float32), rng.normal(size=rows).astype(np.float32)
    model = signalling_model()
    assert X.shape[0] * model.plan.n_params >= nbtrain.model.BESIDE_WORK
    reports = []

    class Interrupt(Callback):
        def on_epoch_progress(self, epoch, step):
            reports.append((epoch, step))
            if len(reports) == 1:
                os.kill(os.getpid(), signal.SIGINT)

    history = model.fit(X, y, batch_size=16, epochs=3, verbose=0, seed=0, callbacks=[Interrupt()])
    steps, cut = rows // 16, reports[0][0]
    assert history.epoch == list(range(cut)) and model.stop_cause == "interrupted"
    assert cut * steps < model.optimizer.iterations < (cut + 1) * steps
    assert all(0 <= step <= steps for _, step in reports)


def test_an_ignored_sigint_stays_ignored_during_fit():
    import signal
    seen = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model = signalling_model()
        rng = np.random.default_rng(0)
        model.fit(rng.normal(size=(8, 20)), rng.normal(size=8), epochs=1, verbose=0,
                  callbacks=[LambdaCallback(on_epoch_end=lambda e, l: seen.append(signal.getsignal(signal.SIGINT)))])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [signal.SIG_IGN]
