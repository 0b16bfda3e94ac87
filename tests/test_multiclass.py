"""Multiclass models and weighted rows through the Keras-shaped API: softmax outputs, the categorical losses and
accuracies under Keras's names, "accuracy" resolved from the shapes, and sample/class weights with Keras's
reductions (loss: weighted sum over the rows; metrics: weighted mean)."""
import numpy as np
import pytest

from nbtrain import InputError, Sequential, layers, load_model, losses, metrics
from nbtrain.metrics import BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy


@pytest.fixture
def blobs():
    """300 rows of 4 features in 3 separable classes (class c centred at 3 e_c)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    X[np.arange(300), labels] += 3.0
    return X, labels


def classifier(k=3, n_in=4, seed=0):
    model = Sequential([layers.Dense(16, activation="relu", input_shape=[n_in]), layers.Dense(k, activation="softmax")])
    model.build(seed=seed)
    return model


def test_softmax_classifier_learns_and_predicts_probabilities(blobs):
    X, labels = blobs
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X[:240], labels[:240], validation_data=(X[240:], labels[240:]), epochs=30, verbose=0, seed=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.history["val_accuracy"][-1] > 0.9 and history.history["loss"][-1] < history.history["loss"][0]
    p = model.predict(X[240:])
    assert p.shape == (60, 3) and np.allclose(p.sum(axis=1), 1.0, atol=1e-5) and (p >= 0).all()
    assert np.mean(p.argmax(axis=1) == labels[240:]) == pytest.approx(history.history["val_accuracy"][-1])


def test_reported_values_are_keras_formulas_of_the_predictions(blobs):
    """evaluate's loss and metrics recomputed in NumPy from predict: cross-entropy of the softmax (clipped at 1e-7),
    weighted sum over the row count; accuracy and the cross-entropy metric as weighted means."""
    X, labels = blobs
    model = classifier()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy", "sparse_categorical_crossentropy"])
    model.fit(X, labels, epochs=2, verbose=0, seed=1)
    w = np.random.default_rng(2).uniform(0, 2, size=len(X)).astype(np.float32)
    p = model.predict(X).astype(np.float64)
    rows = -np.log(np.clip(p[np.arange(len(X)), labels], 1e-7, 1 - 1e-7))
    hits = p.argmax(axis=1) == labels
    loss, accuracy, cce = model.evaluate(X, labels, sample_weight=w, verbose=0)
    assert loss == pytest.approx((w * rows).sum() / len(X), rel=1e-5)
    assert accuracy == pytest.approx((w * hits).sum() / w.sum(), rel=1e-6)
    assert cce == pytest.approx((w * rows).sum() / w.sum(), rel=1e-5)
    plain = model.evaluate(X, labels, verbose=0, return_dict=True)
    assert plain["loss"] == pytest.approx(rows.mean(), rel=1e-5) and plain["accuracy"] == pytest.approx(hits.mean())


def test_one_hot_targets_and_logits(blobs):
    """categorical_crossentropy on one-hot targets trains the same model as the sparse loss on indices; with
    from_logits=True on a linear output the loss is the same cross-entropy of softmax(logits)."""
    X, labels = blobs
    histories, weights = [], []
    for loss, y in (("sparse_categorical_crossentropy", labels), ("categorical_crossentropy", np.eye(3)[labels])):
        model = classifier()
        model.compile(loss=loss, metrics=["accuracy"])
        histories.append(model.fit(X, y, epochs=3, verbose=0, seed=4).history)
        weights.append(model.get_weights())
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-5)
    assert histories[0]["accuracy"] == histories[1]["accuracy"]
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    logits = Sequential([layers.Dense(16, activation="relu", input_shape=[4]), layers.Dense(3)])
    logits.build(seed=0)
    logits.set_weights(weights[0])
    logits.compile(loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    softmax = classifier()
    softmax.set_weights(weights[0])
    softmax.compile(loss="sparse_categorical_crossentropy")
    assert logits.evaluate(X, labels, verbose=0) == pytest.approx(softmax.evaluate(X, labels, verbose=0), rel=1e-5)


def test_accuracy_is_resolved_from_the_shapes_as_keras_does():
    accuracy = metrics.get("accuracy")
    assert isinstance(accuracy.resolved(1, 1), BinaryAccuracy)
    assert isinstance(accuracy.resolved(3, 1), SparseCategoricalAccuracy)
    assert isinstance(accuracy.resolved(3, 3), CategoricalAccuracy)
    assert accuracy.resolved(3, 1).name == "accuracy" and accuracy.direction == "up"


def test_class_weight_is_sample_weight_by_class(blobs):
    X, labels = blobs
    table = {0: 1.0, 1: 3.0, 2: 0.5}
    runs = []
    for kwargs in ({"class_weight": table}, {"sample_weight": np.array([table[c] for c in labels])}):
        model = classifier()
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        runs.append(model.fit(X, labels, epochs=2, verbose=0, seed=5, **kwargs).history)
    assert runs[0] == runs[1]
    model = classifier()
    model.compile(loss="sparse_categorical_crossentropy")
    unweighted = model.fit(X, labels, epochs=2, verbose=0, seed=5).history
    assert unweighted["loss"] != runs[0]["loss"]


def test_binary_class_weight_and_weighted_regression():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3)).astype(np.float32)
    y = (X[:, 0] > 0.8).astype(np.float32)  # imbalanced
    model = Sequential([layers.Dense(1, activation="sigmoid", input_shape=[3])])
    model.build(seed=0)
    model.compile(loss="binary_crossentropy", metrics=["accuracy"])
    start = model.get_weights()
    # one batch: the epoch's loss is the loss before the update, Keras's weighted sum over the batch size
    weighted = model.fit(X, y, class_weight={1: 4.0}, batch_size=120, epochs=1, verbose=0, seed=0).history
    p = 1 / (1 + np.exp(-(X @ start[0] + start[1])))[:, 0]
    w = np.where(y == 1, 4.0, 1.0)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert weighted["loss"][0] == pytest.approx((w * bce).sum() / 120, rel=1e-5)
    assert weighted["accuracy"][0] == pytest.approx((w * ((p > 0.5) == y)).sum() / w.sum(), rel=1e-6)
    reg = Sequential([layers.Dense(1, input_shape=[3])])
    reg.build(seed=0)
    reg.compile(loss="mse", metrics=["mae"])
    r = X[:, 1]
    w = rng.uniform(0, 2, size=120)
    loss, mae = reg.evaluate(X, r, sample_weight=w, verbose=0)
    e = reg.predict(X)[:, 0] - r
    assert loss == pytest.approx((w * e * e).sum() / 120, rel=1e-5)
    assert mae == pytest.approx((w * np.abs(e)).sum() / w.sum(), rel=1e-5)


def test_weighted_validation_data_and_split(blobs):
    X, labels = blobs
    w = np.linspace(0.1, 2.0, len(X)).astype(np.float32)
    results = []
    for kwargs in ({"sample_weight": w, "validation_split": 0.2},
                   {"sample_weight": w[:240], "validation_data": (X[240:], labels[240:], w[240:])}):
        model = classifier()
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        data = (X, labels) if "validation_split" in kwargs else (X[:240], labels[:240])
        results.append((model.fit(*data, epochs=2, verbose=0, seed=6, **kwargs).history, model))
    assert results[0][0] == results[1][0]
    model = results[0][1]
    val = model.evaluate(X[240:], labels[240:], sample_weight=w[240:], verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(results[0][0]["val_loss"][-1], rel=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda m, X, y: m.fit(X, y + 1, verbose=0), "class indices 0 to 2"),
    (lambda m, X, y: m.fit(X, y + 0.5, verbose=0), "class indices 0 to 2"),
    (lambda m, X, y: m.fit(X, np.eye(3)[y], verbose=0), "one column of class indices"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.ones(5), verbose=0), "one weight per row"),
    (lambda m, X, y: m.fit(X, y, sample_weight=-np.ones(len(y)), verbose=0), "non-negative"),
    (lambda m, X, y: m.fit(X, y, sample_weight=np.ones(len(y)), class_weight={0: 2}, verbose=0), "not both"),
    (lambda m, X, y: m.fit(X, y, class_weight=[1, 2, 3], verbose=0), "must be a dict"),
    (lambda m, X, y: m.evaluate(X, y, sample_weight=np.zeros(len(y)), verbose=0), "zero for every row"),
    (lambda m, X, y: m.fit(X, y, batch_size=0, verbose=0), "batch_size must be at least 1"),
])
def test_bad_targets_and_weights_are_one_line_errors(blobs, call, match):
    X, labels = blobs
    model = classifier()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with pytest.raises(InputError, match=match):
        call(model, X, labels)


def test_element_metric_on_class_indices_is_refused(blobs):
    X, labels = blobs
    model = classifier()
    model.compile(loss="sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(InputError, match="metric 'mae' compares them column by column"):
        model.fit(X, labels, verbose=0)


def test_multiclass_model_saves_and_loads(tmp_path, blobs):
    X, labels = blobs
    model = classifier()
    model.compile(loss=losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    model.fit(X, np.eye(3)[labels], epochs=2, verbose=0, seed=0)
    model.save(tmp_path / "m.nbt")
    loaded = load_model(tmp_path / "m.nbt")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.loss.label_smoothing == 0.1
    assert loaded.evaluate(X, np.eye(3)[labels], verbose=0) == model.evaluate(X, np.eye(3)[labels], verbose=0)
