"""nbtrain.sklearn: scikit-learn's own estimator checks over both estimators, and the estimators where scikit-learn
users put them: a Pipeline after a ColumnTransformer inside GridSearchCV(n_jobs=2), cross_val_score, clone, pickle."""
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import pandas as pd  # noqa: E402
from joblib import cpu_count, parallel_config  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from nbtrain.sklearn import NBTrainClassifier, NBTrainRegressor, expected_failed_checks  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data"
SMALL = dict(hidden_layer_sizes=(16,), epochs=40, learning_rate=0.01, random_state=0)


@parametrize_with_checks([NBTrainClassifier(**SMALL), NBTrainRegressor(**SMALL)],
                         expected_failed_checks=expected_failed_checks)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_import_nbtrain_does_not_import_scikit_learn():
    code = "import sys, nbtrain; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def preprocessing(numeric, categorical):
    return ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                     OneHotEncoder(handle_unknown="ignore")), categorical),
    ])


@pytest.fixture(scope="module")
def birds():
    table = pd.read_csv(DATA / "birds.csv")
    return table.drop(columns=["bird_id", "species"]), table["species"]


@pytest.fixture(scope="module")
def churn():
    table = pd.read_csv(DATA / "churn.csv")
    return table.drop(columns="churned"), table["churned"]


def test_pipeline_in_a_grid_search_on_two_workers(birds):
    X, y = birds
    pipeline = make_pipeline(preprocessing(["wing_mm", "bill_mm", "mass_g"], ["island"]),
                             NBTrainClassifier(hidden_layer_sizes=(32,), epochs=30, random_state=0))
    search = GridSearchCV(pipeline, {"nbtrainclassifier__learning_rate": [1e-3, 1e-2]}, cv=3, n_jobs=2)
    search.fit(X, y)
    assert search.best_params_ == {"nbtrainclassifier__learning_rate": 0.01}
    assert search.best_score_ > 0.8  # three species that overlap; a majority guess scores 0.47
    classifier = search.best_estimator_[-1]
    assert list(classifier.classes_) == ["finch", "sparrow", "warbler"]
    assert classifier.model_.output_shape == (None, 3)
    assert search.predict(X.head(3)).dtype == object


class Probe(NBTrainClassifier):
    """Records the BLAS threads its fit's kernels may use."""

    def _network(self, *args):
        from threadpoolctl import threadpool_info
        self.blas_threads_ = max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return super()._network(*args)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_joblib_workers_keep_to_their_share_of_the_cores(churn, backend):
    X, y = churn
    X = X.drop(columns="plan")
    with parallel_config(backend=backend):
        fitted = cross_validate(Probe(hidden_layer_sizes=(8,), epochs=3, random_state=0), X, y, cv=2, n_jobs=2,
                                return_estimator=True)["estimator"]
    # a process of two gets cpu_count // 2 (joblib's share); two threads of one process one each
    share = max(1, cpu_count() // 2) if backend == "loky" else 1
    assert [est.blas_threads_ for est in fitted] == [share, share]
    # outside joblib there is no limit, and the threads' shared limit was lifted when the last fit ended
    alone = Probe(hidden_layer_sizes=(8,), epochs=1, random_state=0).fit(X, y)
    from threadpoolctl import threadpool_info
    assert alone.blas_threads_ == max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_cross_val_score_clone_and_pickle(churn):
    X, y = churn
    pipeline = make_pipeline(preprocessing(["tenure_months", "monthly_fee", "support_calls"], ["plan"]),
                             NBTrainClassifier(hidden_layer_sizes=(16,), epochs=20, random_state=0))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.65  # majority 0.58; logistic regression 0.73
    copy = clone(pipeline)
    assert copy[-1].get_params() == pipeline[-1].get_params() and not hasattr(copy[-1], "model_")
    pipeline.fit(X, y)
    state = pipeline[-1].__getstate__()["model_"]
    assert set(state) == {"config", "input_width", "compile", "weights"}  # plain data, not a Sequential
    assert all(isinstance(w, np.ndarray) for w in state["weights"])
    again = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(again.predict_proba(X), pipeline.predict_proba(X))
    np.testing.assert_array_equal(again.predict(X), pipeline.predict(X))
    assert again[-1].history_ == pipeline[-1].history_


def test_binary_string_labels(churn):
    X, y = churn
    X = pd.get_dummies(X, dtype=float)
    model = NBTrainClassifier(hidden_layer_sizes=(16,), epochs=30, random_state=0).fit(X, y)
    assert list(model.classes_) == ["no", "yes"]
    assert model.model_.output_shape == (None, 1) and model.model_.loss.name == "binary_crossentropy"
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(X)) <= {"no", "yes"}
    assert model.score(X, y) > 0.7
    assert list(model.feature_names_in_) == list(X.columns) and model.n_features_in_ == X.shape[1]
    assert model.n_iter_ == len(model.history_["loss"]) <= 30


def test_multiclass_labels_and_early_stopping(birds):
    X, y = birds
    X = pd.get_dummies(X, dtype=float).fillna(0.0)
    X = (X - X.mean()) / X.std()
    model = NBTrainClassifier(hidden_layer_sizes=(32,), epochs=200, learning_rate=0.01, early_stopping=True,
                              patience=5, random_state=0).fit(X, y)
    assert model.model_.output_shape == (None, 3)
    assert model.model_.loss.name == "sparse_categorical_crossentropy"
    assert set(model.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.n_iter_ < 200  # stopped early
    curve = model.history_["val_loss"]  # best: the last improvement by more than tol, which EarlyStopping restored
    assert curve[model.best_epoch_ - 1] <= min(curve) + model.tol
    assert all(value >= curve[model.best_epoch_ - 1] - model.tol for value in curve[model.best_epoch_:])
    assert model.n_iter_ == model.best_epoch_ + 5
    # the best epoch's weights are kept: the validation rows' loss is the best epoch's
    assert model.score(X, y) > 0.8
    numbers = model.predict_proba(X)
    assert numbers.shape == (len(X), 3)
    np.testing.assert_allclose(numbers.sum(axis=1), 1.0)


def test_regressor_on_raw_units():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = 250_000 + 40_000 * X[:, 0] - 25_000 * X[:, 1] ** 2 + rng.normal(scale=2_000, size=400)
    model = NBTrainRegressor(hidden_layer_sizes=(32,), epochs=100, learning_rate=0.01, random_state=0).fit(X, y)
    prediction = model.predict(X)
    assert prediction.shape == (400,) and prediction.dtype == np.float64
    assert model.score(X, y) > 0.9
    two = NBTrainRegressor(hidden_layer_sizes=(32,), epochs=50, learning_rate=0.01, random_state=0)
    assert two.fit(X, np.column_stack([y, -y / 1000])).predict(X).shape == (400, 2)


def test_sample_weight_is_honoured():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = rng.integers(0, 2, size=300)  # labels unrelated to X: a weighted class wins
    small = dict(hidden_layer_sizes=(8,), epochs=20, learning_rate=0.01, random_state=0)
    plain = NBTrainClassifier(**small).fit(X, y)
    np.testing.assert_array_equal(NBTrainClassifier(**small).fit(X, y, sample_weight=np.ones(300)).predict_proba(X),
                                  plain.predict_proba(X))
    heavy = NBTrainClassifier(**small).fit(X, y, sample_weight=np.where(y == 1, 10.0, 1.0))
    assert np.mean(heavy.predict(X) == 1) > 0.9 > np.mean(plain.predict(X) == 1)


def test_balanced_class_weight_is_scikit_learns_formula(birds):
    X, y = birds
    X = pd.get_dummies(X, dtype=float).fillna(0.0)
    counts = y.value_counts()
    formula = {label: len(y) / (len(counts) * count) for label, count in counts.items()}
    small = dict(hidden_layer_sizes=(8,), epochs=10, random_state=0)
    balanced = NBTrainClassifier(class_weight="balanced", **small).fit(X, y)
    explicit = NBTrainClassifier(class_weight=formula, **small).fit(X, y)
    by_rows = NBTrainClassifier(**small).fit(X, y, sample_weight=y.map(formula).to_numpy())
    np.testing.assert_array_equal(balanced.predict_proba(X), explicit.predict_proba(X))
    np.testing.assert_array_equal(balanced.predict_proba(X), by_rows.predict_proba(X))
    assert not np.array_equal(balanced.predict_proba(X), NBTrainClassifier(**small).fit(X, y).predict_proba(X))


def test_refusals_come_from_fit():
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    model = NBTrainClassifier(optimizer="adagrad", epochs=2)  # nothing is checked before fit
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        NBTrainRegressor(activation="swish").fit(X, y)
    from scipy import sparse
    with pytest.raises(TypeError, match="Sparse data was passed"):
        NBTrainClassifier(epochs=1).fit(sparse.csr_matrix(X), y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        NBTrainClassifier(epochs=1).fit(np.where(X > 1, np.nan, X), y)


def test_optimizers_penalties_and_layers():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 4)), rng.normal(size=100)
    for optimizer in ["adam", "adamw", "sgd", "rmsprop"]:
        model = NBTrainRegressor(hidden_layer_sizes=(8, 4), optimizer=optimizer, alpha=1e-3, weight_decay=1e-4,
                                 dropout=0.1, batch_normalization=True, activation="gelu", epochs=2, batch_size=16,
                                 random_state=0).fit(X, y)
        assert type(model.model_.optimizer).__name__.lower() == optimizer
        assert model.model_.optimizer.weight_decay == 1e-4
        assert [type(layer).__name__ for layer in model.model_.layers] == [
            "Dense", "Dropout", "BatchNormalization", "Dense", "Dropout", "BatchNormalization", "Dense"]
