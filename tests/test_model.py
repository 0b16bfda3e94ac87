"""The Keras-shaped API: fit/evaluate/predict, weights, defaults, reproducibility and bad input."""
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import nbtrain
from nbtrain import InputError, Sequential, callbacks, layers, optimizers, utils
from promises import FLOAT32_ROUNDING


def small_model(**dense):
    return Sequential([layers.Dense(8, activation="relu", **dense), layers.Dense(1)])


def test_history_keys_lengths_and_dataframe(regression_data):
    X, y = regression_data
    model = small_model(input_shape=[5])
    model.compile(optimizer="adam", loss="mae", metrics=["mse"])
    history = model.fit(X[:150], y[:150], validation_data=(X[150:], y[150:]), epochs=4, verbose=0, seed=0)
    assert list(history.history) == ["loss", "mse", "val_loss", "val_mse"]
    assert history.epoch == [0, 1, 2, 3] and model.history is history
    frame = pd.DataFrame(history.history)
    assert frame.shape == (4, 4) and np.isfinite(frame.to_numpy()).all()
    assert frame["loss"].iloc[-1] < frame["loss"].iloc[0]


def test_validation_split_takes_the_last_rows(regression_data):
    X, y = regression_data
    histories = []
    for kwargs in ({"validation_split": 0.25}, {"validation_data": (X[150:], y[150:])}):
        model = small_model()
        model.compile(loss="mse")
        data = (X, y) if "validation_split" in kwargs else (X[:150], y[:150])
        histories.append(model.fit(*data, epochs=3, verbose=0, seed=1, **kwargs).history)
    assert histories[0] == histories[1]


def test_input_width_is_inferred_and_checked(regression_data):
    X, y = regression_data
    model = Sequential([layers.Dense(4), layers.Dense(1)])
    assert model.input_shape is None
    assert model.predict(X).shape == (200, 1)
    assert model.input_shape == (None, 5) and model.output_shape == (None, 1)
    with pytest.raises(InputError, match="expects 5 input features but the data has 3"):
        model.predict(X[:, :3])
    declared = Sequential([layers.Dense(1, input_shape=[4])])
    with pytest.raises(InputError, match="expects 4 input features"):
        declared.predict(X)


def test_evaluate_matches_the_last_validation_entry(regression_data):
    X, y = regression_data
    model = Sequential([layers.Dense(8, activation="relu"), layers.BatchNormalization(), layers.Dense(1)])
    model.compile(loss="mae", metrics=["mse", "mae"])
    history = model.fit(X[:150], y[:150], validation_data=(X[150:], y[150:]), epochs=3, verbose=0, seed=2)
    loss, mse, mae = model.evaluate(X[150:], y[150:], verbose=0)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-6)
    assert mse == pytest.approx(history.history["val_mse"][-1], rel=1e-6) and mae == pytest.approx(loss)
    by_rows_of_7 = model.evaluate(X[150:], y[150:], batch_size=7, verbose=0, return_dict=True)
    assert by_rows_of_7["loss"] == pytest.approx(loss, rel=1e-6)
    plain = small_model()
    plain.compile(loss="mse")
    plain.fit(X, y, verbose=0)
    assert isinstance(plain.evaluate(X, y, verbose=0), float)


def test_predict_is_inference_mode_and_matches_numpy(regression_data):
    X, _ = regression_data
    model = Sequential([layers.Dense(6, activation="relu", input_shape=[5]), layers.Dropout(0.5),
                        layers.BatchNormalization(), layers.Dense(1, activation="sigmoid")])
    model.build(seed=0)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
    weights[5] = np.abs(weights[5]) + 0.5  # moving variance must be positive
    model.set_weights(weights)
    k1, b1, gamma, beta, mean, var, k2, b2 = [w.astype(np.float64) for w in weights]
    h = np.maximum(X @ k1 + b1, 0)
    h = gamma * (h - mean) / np.sqrt(var + 1e-3) + beta
    expected = 1 / (1 + np.exp(-(h @ k2 + b2)))
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-5, atol=1e-6)
    # another batch partition runs sgemm on other shapes: equal to float32 rounding, not bit for bit
    np.testing.assert_allclose(model.predict(X, batch_size=13), model.predict(X), **FLOAT32_ROUNDING)
    np.testing.assert_array_equal(model.predict(X, batch_size=13), model.predict(X, batch_size=13))
    assert model.predict(X).dtype == np.float32


def test_weights_in_keras_order_with_keras_initialization():
    model = Sequential([layers.Dense(512, input_shape=[256]), layers.BatchNormalization(), layers.Dense(1)])
    model.build(seed=0)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(256, 512), (512,), (512,), (512,), (512,), (512,), (512, 1), (1,)]
    kernel, bias, gamma, beta, mean, var = model.get_weights()[:6]
    limit = np.sqrt(6 / (256 + 512))
    assert np.abs(kernel).max() <= limit and abs(kernel.std() - limit / np.sqrt(3)) < 0.01 * limit
    assert not bias.any() and not beta.any() and not mean.any() and (gamma == 1).all() and (var == 1).all()
    assert model.count_params() == 256 * 512 + 512 + 4 * 512 + 513
    assert [len(layer.weights) for layer in model.layers] == [2, 4, 2]
    with pytest.raises(ValueError, match="expects 2 weight arrays"):
        model.layers[0].set_weights([kernel])
    with pytest.raises(ValueError, match="does not match"):
        model.set_weights([w.T for w in model.get_weights()])


def test_keras_defaults():
    adam, sgd = optimizers.Adam(), optimizers.SGD()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    bn = layers.BatchNormalization()
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)
    dense = layers.Dense(3)
    assert (dense.activation, dense.use_bias, dense.kernel_initializer, dense.bias_initializer) == (
        "linear", True, "glorot_uniform", "zeros")


def fit_fresh(X, y, **fit_kwargs):
    model = Sequential([layers.Dense(16, activation="relu", input_shape=[5]), layers.Dropout(0.3),
                        layers.BatchNormalization(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="huber", metrics=["mae"])
    history = model.fit(X, y, validation_split=0.2, batch_size=16, epochs=3, verbose=0, **fit_kwargs)
    return model, history


def test_same_seed_gives_bit_identical_runs(regression_data):
    X, y = regression_data
    (m1, h1), (m2, h2) = fit_fresh(X, y, seed=7), fit_fresh(X, y, seed=7)
    assert h1.history == h2.history
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    m3, h3 = fit_fresh(X, y, seed=8)
    assert h3.history != h1.history


def test_global_seed_makes_unseeded_runs_reproducible(regression_data):
    X, y = regression_data
    utils.set_random_seed(123)
    _, h1 = fit_fresh(X, y)
    utils.set_random_seed(123)
    _, h2 = fit_fresh(X, y)
    assert h1.history == h2.history


def test_dropout_is_active_in_training_only(regression_data):
    X, y = regression_data
    losses = {}
    for rate in (0.0, 0.5):
        model = Sequential([layers.Dense(32, activation="relu", input_shape=[5]), layers.Dropout(rate),
                            layers.Dense(1)])
        model.build(seed=0)
        model.compile(optimizer=optimizers.SGD(learning_rate=1e-9), loss="mse")
        history = model.fit(X, y, batch_size=200, epochs=1, verbose=0, seed=0)
        losses[rate] = (history.history["loss"][0], model.evaluate(X, y, verbose=0))
    assert losses[0.0][0] == pytest.approx(losses[0.0][1], rel=1e-4)
    assert losses[0.5][1] == pytest.approx(losses[0.0][1], rel=1e-4)  # inference ignores dropout
    assert abs(losses[0.5][0] - losses[0.5][1]) > 1e-3 * losses[0.5][1]  # training does not


def test_dataframe_and_series_inputs_equal_arrays(regression_data):
    X, y = regression_data
    frame = pd.DataFrame(X, columns=list("abcde"))
    results = []
    for data in ((X, y), (frame, pd.Series(y))):
        model = small_model(input_shape=[5])
        model.compile(loss="mae")
        results.append(model.fit(*data, epochs=2, verbose=0, seed=3).history)
    assert results[0] == results[1]


def test_non_finite_loss_stops_before_the_bad_update(regression_data):
    X, y = regression_data
    model = small_model(input_shape=[5])
    model.compile(optimizer=optimizers.SGD(learning_rate=1e6), loss="mse")
    with pytest.warns(RuntimeWarning, match=r"non-finite at epoch \d+, batch \d+.*lower learning rate"):
        history = model.fit(X, y * 1e10, batch_size=20, epochs=50, verbose=0, seed=0)
    assert len(history.epoch) < 50 and np.isnan(history.history["loss"][-1])
    assert "lower learning rate" in model.stop_reason
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_ctrl_c_keeps_history_and_restores_best_weights(regression_data):
    X, y = regression_data

    class Interrupt(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt

    model = small_model(input_shape=[5])
    model.compile(loss="mae")
    stopper = callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True)
    history = model.fit(X, y, epochs=10, verbose=0, seed=0, callbacks=[stopper, Interrupt()])
    assert history.epoch == [0, 1, 2, 3] and model.stop_reason.startswith("interrupted")
    assert stopper.best_weights is not None
    for restored, best in zip(model.get_weights(), stopper.best_weights):
        np.testing.assert_array_equal(restored, best)


def test_early_stopping_in_a_real_fit_restores_the_best_epoch(regression_data):
    X, y = regression_data
    model = small_model(input_shape=[5])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05), loss="mae")
    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(X[:150], y[:150], validation_data=(X[150:], y[150:]), epochs=200, verbose=0, seed=0,
                        callbacks=[stopper])
    assert len(history.epoch) < 200
    best = min(history.history["val_loss"])
    assert model.evaluate(X[150:], y[150:], verbose=0) == pytest.approx(best, rel=1e-6)


def test_verbose_lines(regression_data, capsys):
    X, y = regression_data
    model = small_model(input_shape=[5])
    model.compile(loss="mae", metrics=["mse"])
    model.fit(X, y, validation_split=0.2, batch_size=50, epochs=2, verbose=1, seed=0)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2"
    assert re.fullmatch(r"4/4 ━{20} \S+ \S+/step - loss: [\d.]+ - mse: [\d.]+ - val_loss: [\d.]+ - val_mse: [\d.]+",
                        out[1])
    model.fit(X, y, batch_size=50, epochs=1, verbose=2)  # Keras 3: the epoch line, then a compact one
    assert re.fullmatch(r"Epoch 1/1\n4/4 - \S+ - \S+/step - loss: [\d.]+ - mse: [\d.]+\n", capsys.readouterr().out)
    model.fit(X, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_initial_epoch_and_continued_training(regression_data):
    X, y = regression_data
    model = small_model(input_shape=[5])
    model.compile(loss="mae")
    history = model.fit(X, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4] and model.optimizer.iterations == 2 * 7


def test_summary_counts(capsys):
    model = Sequential([layers.Dense(512, activation="relu", input_shape=[11]), layers.Dropout(0.3),
                        layers.Dense(1)])
    model.build()
    model.summary()
    out = capsys.readouterr().out
    assert "dense (Dense)" in out or "Dense" in out
    assert f"Total params: {11 * 512 + 512 + 513:,}" in out and "(None, 512)" in out


@pytest.mark.parametrize("bad, message", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), y), "NaN at row 1, column 2"),
    (lambda X, y: (pd.DataFrame({"a": X[:, 0], "color": ["red"] * len(X)}), y), "non-numeric columns: 'color'"),
    (lambda X, y: (X, y[:10]), "200 rows but its targets have 10"),
    (lambda X, y: (X[:0], y[:0]), "empty"),
    (lambda X, y: (X[:, :, None], y), "must be a table"),
    (lambda X, y: (X, np.stack([y, y], 1)), "2 target columns but the model outputs 1"),
    (lambda X, y: (X, np.where(np.isfinite(y), np.inf, 0)), "infinite value at row 0"),
])
def test_bad_input_gets_one_line_errors(regression_data, bad, message):
    X, y = regression_data
    model = small_model()
    model.compile(loss="mae")
    with pytest.raises(InputError, match=re.escape(message)) as info:
        model.fit(*bad(X, y), epochs=1, verbose=0)
    assert "\n" not in str(info.value)


def test_configuration_errors(regression_data):
    X, y = regression_data
    model = small_model()
    with pytest.raises(RuntimeError, match="compile the model"):
        model.fit(X, y)
    model.compile(loss="binary_crossentropy")
    with pytest.raises(InputError, match=r"binary_crossentropy needs y in \[0, 1\]"):
        model.fit(X, y, verbose=0)
    for bad in (lambda: model.compile(loss="hinge"), lambda: model.compile(optimizer="adagrad", loss="mae"),
                lambda: layers.Dense(3, activation="sigmoidd"), lambda: layers.Dropout(1.0),
                lambda: model.compile(loss="mae", metrics=["mae", "mae"])):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="no layer that computes"):
        Sequential([layers.Dropout(0.0)]).build((None, 3))


def test_public_names():
    for name in ("Sequential", "layers", "callbacks", "optimizers", "losses", "load_model"):
        assert hasattr(nbtrain, name)
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(2), layers.Activation("relu")])
    assert model.input_shape == (None, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(np.ones((2, 3))).min() >= 0
