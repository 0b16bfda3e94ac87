"""What a Keras user tries next, and what nbtrain does about it (issue 26): seeds that seed whether or not the model
was built before fit, folders made for checkpoints and saves, and one-line refusals naming what nbtrain has where
Keras code would work (the functional API, model subclassing, layers and names nbtrain lacks); Keras's rmse."""
import warnings

import numpy as np
import pytest

import nbtrain
from nbtrain import Sequential, callbacks, layers, load_model, losses, metrics, optimizers, utils
from nbtrain.model import SeedWarning


def wine_like(X):
    """README's "Beyond the course" model, small: inputs normalized inside, gelu layers, a linear output."""
    norm = layers.Normalization()
    norm.adapt(X)
    model = Sequential([layers.Input(shape=(X.shape[1],)), norm, layers.Dense(16, activation="gelu"),
                        layers.Dropout(0.1), layers.Dense(1)])
    model.compile(optimizer=optimizers.AdamW(learning_rate=0.01), loss="mae")
    return model


class StartingWeights(callbacks.Callback):
    """The weights a fit starts from."""

    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


def run(model, X, y, **options):
    start = StartingWeights()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SeedWarning)
        history = model.fit(X, y, batch_size=32, epochs=3, verbose=0, validation_split=0.2, callbacks=[start],
                            **options)
    return start.weights, history.history, model.get_weights()


def assert_same_run(a, b):
    for first, second in zip(a[0] + a[2], b[0] + b[2]):
        np.testing.assert_array_equal(first, second)
    assert a[1] == b[1]


# ---------------------------------------------------------------------------------------------------- seeds
def test_a_summary_before_fit_does_not_change_a_seeded_run(regression_data):
    """README's example gave 54, 46 and 40 epochs in three runs with its summary() line: the weights summary()
    drew from the unseeded global generator were trained, and fit's seed did not reach them."""
    X, y = regression_data
    plain = run(wine_like(X), X, y, seed=0)
    for _ in range(2):
        model = wine_like(X)
        model.summary(print_fn=lambda text: None)
        assert model.built
        assert_same_run(run(model, X, y, seed=0), plain)



def test_weights_read_before_fit_are_the_weights_it_starts_from(regression_data):
    """What a user saw (weights, get_weights, predict, evaluate, save) is what training starts from: fit's seed
    cannot apply to those weights, and a SeedWarning says so."""
    X, y = regression_data
    for read in (lambda m: m.weights, lambda m: m.get_weights(), lambda m: m.predict(X[:2])):
        model = wine_like(X)
        read(model)
        seen = model.get_weights()
        start = StartingWeights()
        with pytest.warns(SeedWarning, match="drawn from the global generator before fit and read since"):
            model.fit(X, y, epochs=1, verbose=0, seed=0, callbacks=[start])
        for a, b in zip(start.weights, seen):
            np.testing.assert_array_equal(a, b)


def test_set_random_seed_before_building_gives_one_run_built_first_or_not(regression_data):
    X, y = regression_data
    utils.set_random_seed(7)
    built_first = wine_like(X)
    built_first.summary(print_fn=lambda text: None)
    first = run(built_first, X, y)
    utils.set_random_seed(7)
    second = run(wine_like(X), X, y)
    assert_same_run(first, second)
    utils.set_random_seed(8)
    assert not np.array_equal(run(wine_like(X), X, y)[0][2], first[0][2])  # another seed, other weights


def test_weights_from_build_seed_are_kept_and_set_or_trained_ones_warn(regression_data):
    X, y = regression_data
    model = wine_like(X)
    model.build(seed=5)
    drawn = model.get_weights()
    start, _, _ = run(model, X, y, seed=0)  # no warning: build's own seed chose these weights
    for a, b in zip(start, drawn):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(SeedWarning, match=r"fit\(seed=0\) cannot seed this model's weights: they were trained"):
        model.fit(X, y, epochs=1, verbose=0, seed=0)

    by_hand = wine_like(X)
    by_hand.set_weights([np.full_like(w, 0.01) for w in by_hand.get_weights()])
    with pytest.warns(SeedWarning, match="trained or set"):
        by_hand.fit(X, y, epochs=1, verbose=0, seed=0)

    in_place = wine_like(X)
    in_place.weights[2][0, 0] += 1.0  # the first kernel, a live view, edited without set_weights
    edited = in_place.get_weights()
    with pytest.warns(SeedWarning):
        in_place.fit(X, y, epochs=1, verbose=0, seed=0, callbacks=[start := StartingWeights()])
    for a, b in zip(start.weights, edited):
        np.testing.assert_array_equal(a, b)


def test_a_loaded_model_keeps_its_weights_and_says_so(regression_data, tmp_path):
    X, y = regression_data
    model = wine_like(X)
    model.fit(X, y, epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.nbt")
    loaded = load_model(tmp_path / "m.nbt")
    with pytest.warns(SeedWarning, match="shuffles and dropout masks only"):
        loaded.fit(X, y, epochs=1, verbose=0, seed=0)


# ---------------------------------------------------------------------------------------------------- files
def test_checkpoints_and_saves_make_their_folders(regression_data, tmp_path):
    X, y = regression_data
    model = wine_like(X)
    model.fit(X, y, epochs=2, verbose=0, seed=0,
              callbacks=[callbacks.ModelCheckpoint(str(tmp_path / "nodir" / "deeper" / "x-{epoch}.nbt")),
                         callbacks.ModelCheckpoint(str(tmp_path / "weights" / "w.weights.nbt"),
                                                   save_weights_only=True)])
    assert sorted(p.name for p in (tmp_path / "nodir" / "deeper").iterdir()) == ["x-1.nbt", "x-2.nbt"]
    model.save(tmp_path / "dir" / "x.nbt")
    np.testing.assert_array_equal(load_model(tmp_path / "dir" / "x.nbt").predict(X), model.predict(X))
    fresh = wine_like(X)
    fresh.load_weights(tmp_path / "weights" / "w.weights.nbt")
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_saving_to_a_folder_is_one_line(regression_data, tmp_path):
    model = wine_like(regression_data[0])
    for folder in (tmp_path, f"{tmp_path}/", str(tmp_path / "new") + "/"):
        with pytest.raises(ValueError, match=r"is a folder: name the model file in it, such as .*model\.nbt") as info:
            model.save(folder)
        assert "\n" not in str(info.value)
        with pytest.raises(ValueError, match="is a folder"):
            model.save_weights(folder)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------- refusals
def test_the_functional_api_is_refused_in_one_line():
    for reach in (lambda: nbtrain.Model, lambda: nbtrain.models.Model):
        with pytest.raises(AttributeError, match=r"nbtrain has no keras.Model .*Sequential\(\[layers.Input"):
            reach()
    with pytest.raises(TypeError, match=r"no functional API: a layer is not called on a tensor.*layers.Dense"):
        layers.Dense(16)(layers.Input(shape=(11,)))
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        nbtrain.Nothing


def test_a_subclass_call_is_refused_rather_than_ignored():
    class Residual(Sequential):
        def __init__(self):
            super().__init__([layers.Dense(4, input_shape=[3]), layers.Dense(1)])

        def call(self, x):
            return x + super().predict(x)

    for step in (lambda m: m.compile(loss="mse"), lambda m: m.build((None, 3)), lambda m: m.predict(np.ones((2, 3))),
                 lambda m: m.summary()):
        with pytest.raises(TypeError, match=r"Residual defines call\(\): nbtrain has no model subclassing"):
            step(Residual())


@pytest.mark.parametrize("name", ["LayerNormalization", "Conv1D", "LSTM", "GaussianNoise"])
def test_keras_layers_nbtrain_lacks_are_named(name):
    with pytest.raises(AttributeError, match=f"nbtrain.layers has no '{name}'.*: nbtrain has Activation, "
                                             "Adapter, BatchNormalization, Dense, Dropout, Embedding, Flatten, Input") as info:
        getattr(layers, name)
    assert "\n" not in str(info.value)
    assert not hasattr(layers, name)


def test_names_nbtrain_lacks_say_what_it_has_and_the_nearest():
    cases = [
        (lambda: layers.Dense(3, activation="relu6"),
         "unknown activation 'relu6' (did you mean 'relu'?): nbtrain has "),
        (lambda: Sequential().compile(loss="mean_absolute_eror"),
         "unknown loss 'mean_absolute_eror' (did you mean 'mean_absolute_error'?)"),
        (lambda: Sequential().compile(loss="mae", metrics=["r2_score"]), "unknown metric 'r2_score': nbtrain has "),
        (lambda: Sequential().compile(optimizer="adagrad", loss="mae"), "unknown optimizer 'adagrad': nbtrain has "
                                                                        "adam, adamw, rmsprop, sgd"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError) as info:
            make()
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
    for module, name, has in ((optimizers, "Nadam", "Adam, AdamW"), (losses, "LogCosh", "Huber"),
                              (metrics, "R2Score", "RootMeanSquaredError")):
        with pytest.raises(AttributeError, match=f"has no '{name}'.*{has}"):
            getattr(module, name)


# ---------------------------------------------------------------------------------------------------- rmse
def test_rmse_is_the_root_of_the_epochs_mean_squared_error(regression_data):
    X, y = regression_data
    weights = np.linspace(0.5, 2.0, len(y))
    runs = {}
    for names in (["mse"], ["rmse", metrics.RootMeanSquaredError()]):
        model = Sequential([layers.Dense(8, activation="relu", input_shape=[5]), layers.Dense(1)])
        model.compile(optimizer="adam", loss="mae", metrics=names)
        history = model.fit(X, y, batch_size=32, epochs=3, verbose=0, seed=0, validation_split=0.25,
                            sample_weight=weights,
                            callbacks=[callbacks.EarlyStopping(monitor="val_rmse" if "rmse" in names else "val_mse")])
        runs[names[0]] = (history.history, model.evaluate(X, y, sample_weight=weights, verbose=0, return_dict=True),
                          model)
    (mse_history, mse_scores, _), (rmse_history, rmse_scores, model) = runs["mse"], runs["rmse"]
    for key in ("", "val_"):
        np.testing.assert_allclose(rmse_history[key + "rmse"], np.sqrt(mse_history[key + "mse"]), rtol=1e-12)
        assert rmse_history[key + "rmse"] == rmse_history[key + "root_mean_squared_error"]
    assert rmse_scores["rmse"] == pytest.approx(np.sqrt(mse_scores["mse"]), rel=1e-12)
    errors = model.predict(X)[:, 0].astype(np.float64) - y  # the root of the weighted mean of squared errors
    assert rmse_scores["rmse"] == pytest.approx(np.sqrt(np.sum(weights * errors ** 2) / weights.sum()), rel=1e-5)
