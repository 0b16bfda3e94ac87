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
SMALL = dict(hidden_layer_sizes=(16,), max_iter=40, learning_rate_init=0.01, random_state=0)


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
                             NBTrainClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0))
    search = GridSearchCV(pipeline, {"nbtrainclassifier__learning_rate_init": [1e-3, 1e-2]}, cv=3, n_jobs=2)
    search.fit(X, y)
    assert search.best_params_ == {"nbtrainclassifier__learning_rate_init": 0.01}
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
        fitted = cross_validate(Probe(hidden_layer_sizes=(8,), max_iter=3, random_state=0), X, y, cv=2, n_jobs=2,
                                return_estimator=True)["estimator"]
    # a process of two gets cpu_count // 2 (joblib's share); two threads of one process one each
    share = max(1, cpu_count() // 2) if backend == "loky" else 1
    assert [est.blas_threads_ for est in fitted] == [share, share]
    # outside joblib there is no limit, and the threads' shared limit was lifted when the last fit ended
    alone = Probe(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X, y)
    from threadpoolctl import threadpool_info
    assert alone.blas_threads_ == max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")


def test_cross_val_score_clone_and_pickle(churn):
    X, y = churn
    pipeline = make_pipeline(preprocessing(["tenure_months", "monthly_fee", "support_calls"], ["plan"]),
                             NBTrainClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0))
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
    model = NBTrainClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X, y)
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
    model = NBTrainClassifier(hidden_layer_sizes=(32,), max_iter=200, learning_rate_init=0.01, early_stopping=True,
                              n_iter_no_change=5, random_state=0).fit(X, y)
    assert model.model_.output_shape == (None, 3)
    assert model.model_.loss.name == "sparse_categorical_crossentropy"
    assert set(model.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert model.n_iter_ < 200  # stopped early, by MLP's rule on the validation score (accuracy)
    scores = model.validation_scores_
    assert scores == model.history_["val_accuracy"] and model.best_validation_score_ == max(scores)
    assert model.best_epoch_ == scores.index(max(scores)) + 1 and model.best_loss_ is None
    # more than n_iter_no_change epochs in a row without beating the best by tol ended it
    best, since = -np.inf, 0
    for score in scores:
        since = since + 1 if score < best + model.tol else 0
        best = max(best, score)
    assert since == 6 and all(s < max(scores[:-6]) + model.tol for s in scores[-6:])
    # the best epoch's weights are kept: the validation rows' loss is the best epoch's
    assert model.score(X, y) > 0.8
    numbers = model.predict_proba(X)
    assert numbers.shape == (len(X), 3)
    np.testing.assert_allclose(numbers.sum(axis=1), 1.0)


def test_regressor_on_raw_units():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = 250_000 + 40_000 * X[:, 0] - 25_000 * X[:, 1] ** 2 + rng.normal(scale=2_000, size=400)
    model = NBTrainRegressor(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0).fit(X, y)
    prediction = model.predict(X)
    assert prediction.shape == (400,) and prediction.dtype == np.float64
    assert model.score(X, y) > 0.9
    two = NBTrainRegressor(hidden_layer_sizes=(32,), max_iter=50, learning_rate_init=0.01, random_state=0)
    assert two.fit(X, np.column_stack([y, -y / 1000])).predict(X).shape == (400, 2)


def test_sample_weight_is_honoured():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = rng.integers(0, 2, size=300)  # labels unrelated to X: a weighted class wins
    small = dict(hidden_layer_sizes=(8,), max_iter=20, learning_rate_init=0.01, random_state=0)
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
    small = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    balanced = NBTrainClassifier(class_weight="balanced", **small).fit(X, y)
    explicit = NBTrainClassifier(class_weight=formula, **small).fit(X, y)
    by_rows = NBTrainClassifier(**small).fit(X, y, sample_weight=y.map(formula).to_numpy())
    np.testing.assert_array_equal(balanced.predict_proba(X), explicit.predict_proba(X))
    np.testing.assert_array_equal(balanced.predict_proba(X), by_rows.predict_proba(X))
    assert not np.array_equal(balanced.predict_proba(X), NBTrainClassifier(**small).fit(X, y).predict_proba(X))


def test_refusals_come_from_fit():
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    model = NBTrainClassifier(solver="adagrad", max_iter=2)  # nothing is checked before fit
    with pytest.raises(ValueError, match="solver must be one of adam, sgd, adamw, rmsprop"):
        model.fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        NBTrainRegressor(activation="swish").fit(X, y)
    from scipy import sparse
    with pytest.raises(TypeError, match="Sparse data was passed"):
        NBTrainClassifier(max_iter=1).fit(sparse.csr_matrix(X), y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        NBTrainClassifier(max_iter=1).fit(np.where(X > 1, np.nan, X), y)


def test_optimizers_penalties_and_layers():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 4)), rng.normal(size=100)
    for solver in ["adam", "adamw", "sgd", "rmsprop"]:
        model = NBTrainRegressor(hidden_layer_sizes=(8, 4), solver=solver, alpha=1e-3, weight_decay=1e-4,
                                 dropout=0.1, batch_normalization=True, activation="gelu", max_iter=2, batch_size=16,
                                 random_state=0).fit(X, y)
        assert type(model.model_.optimizer).__name__.lower() == solver
        assert model.model_.optimizer.weight_decay == 1e-4
        # MLP's alpha: 0.5 * alpha * sum of squared kernel weights / the batch's rows, on every kernel
        assert {layer.kernel_regularizer.l2 for layer in model.model_.layers if hasattr(layer, "units")} == {
            0.5 * 1e-3 / 16}
        assert [type(layer).__name__ for layer in model.model_.layers] == [
            "Dense", "Dropout", "BatchNormalization", "Dense", "Dropout", "BatchNormalization", "Dense"]


# ---------------------------------------------------------------------------------------------------- MLP's names
def iris():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# scikit-learn's example "Compare Stochastic learning strategies for MLPClassifier", its parameters as written there
LEARNING_STRATEGIES = [
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0.9, "nesterovs_momentum": False,
     "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "constant", "momentum": 0.9, "nesterovs_momentum": True,
     "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0, "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0.9, "nesterovs_momentum": False,
     "learning_rate_init": 0.2},
    {"solver": "sgd", "learning_rate": "invscaling", "momentum": 0.9, "nesterovs_momentum": True,
     "learning_rate_init": 0.2},
    {"solver": "adam", "learning_rate_init": 0.01},
]


def test_mlp_parameters_and_defaults_are_mlps():
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    for ours, theirs in ((NBTrainClassifier(), MLPClassifier()), (NBTrainRegressor(), MLPRegressor())):
        mlp = theirs.get_params()
        assert {name: ours.get_params()[name] for name in mlp} == mlp
        extras = set(ours.get_params()) - set(mlp)
        assert extras <= {"dropout", "batch_normalization", "weight_decay", "class_weight", "device", "threads"}


def test_mlps_learning_strategies_run_unchanged_with_their_meanings():
    """The example's list as a GridSearchCV grid, unchanged; each strategy's optimizer and final learning rate are
    MLP's: invscaling sets learning_rate_init / (t + 1) ** power_t after each epoch, t the samples seen."""
    from sklearn.neural_network import MLPClassifier
    X, y = iris()
    search = GridSearchCV(NBTrainClassifier(random_state=0, max_iter=60), [{k: [v] for k, v in p.items()}
                                                                            for p in LEARNING_STRATEGIES], cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == len(LEARNING_STRATEGIES) and search.best_score_ > 0.8
    for params in LEARNING_STRATEGIES:
        MLPClassifier(**params).get_params()  # the same names MLP takes
        model = NBTrainClassifier(random_state=0, max_iter=60, **params).fit(X, y)
        optimizer = model.model_.optimizer
        if params["solver"] == "sgd":
            assert (optimizer.momentum, optimizer.nesterov) == (params["momentum"],
                                                                params.get("nesterovs_momentum", True))
        if params.get("learning_rate") == "invscaling":
            assert model.t_ == model.n_iter_ * len(X)
            assert optimizer.learning_rate == pytest.approx(0.2 / (model.t_ + 1) ** 0.5, rel=1e-12)
        else:
            assert optimizer.learning_rate == params["learning_rate_init"]
        # a majority guess scores 0.33; invscaling without momentum learns slowly, as in MLP
        assert model.score(X, y) > 0.6


class Stub:
    """A model for MLPRule alone: an optimizer whose rate the rule moves, stop_training and weights."""

    def __init__(self, rate):
        from nbtrain import optimizers
        self.optimizer, self.stop_training = optimizers.SGD(learning_rate=rate), False

    def get_weights(self):
        return []


def test_adaptive_divides_by_5_after_n_iter_no_change_flat_epochs_then_stops_at_1e_6():
    """MLP's 'adaptive': each time the training loss has failed to improve by tol for more than n_iter_no_change
    epochs the rate is divided by 5, until it is 1e-6 or less; then training stops (other schedules stop at once)."""
    from nbtrain.sklearn import MLPRule
    for schedule, solver in (("adaptive", "sgd"), ("constant", "sgd"), ("adaptive", "adam")):
        estimator = NBTrainClassifier(learning_rate=schedule, solver=solver, n_iter_no_change=2, tol=1e-4)
        estimator.t_ = 0
        rule, model = MLPRule(estimator, 100), Stub(0.01)
        rule.set_model(model)
        rates, epoch = [], 0
        while not model.stop_training:
            rule.on_epoch_end(epoch, {"loss": 1.0 - 1e-5 * epoch})  # improving by less than tol
            rates.append(model.optimizer.learning_rate)
            epoch += 1
        if schedule == "adaptive" and solver == "sgd":
            # the first epoch sets the best; three more without improvement each time the rate drops
            assert rates[:8] == pytest.approx([0.01, 0.01, 0.01, 0.002, 0.002, 0.002, 4e-4, 4e-4])
            # divided while above 1e-6: six times (3.2e-6 -> 6.4e-7); the next time it stops instead
            assert rates[-1] == pytest.approx(0.01 / 5 ** 6) and rates[-5] > 1e-6 >= rates[-4] == rates[-1]
            assert epoch == 1 + 3 * 7
        else:
            assert epoch == 4 and rates == [0.01] * 4


def test_old_names_and_meanings_that_cannot_be_kept_are_one_line_errors():
    X, y = iris()
    for old, new in (("epochs", "max_iter"), ("patience", "n_iter_no_change"), ("optimizer", "solver")):
        with pytest.raises(TypeError, match=f"NBTrainClassifier takes MLP's parameter names: {new}, not {old}"):
            NBTrainClassifier(**{old: 1})
    cases = [
        (NBTrainClassifier(solver="lbfgs"), r"solver='lbfgs' \(full-batch quasi-Newton\) is not in nbtrain.*"
                                            r"the nearest is solver='adam'"),
        (NBTrainClassifier(learning_rate=0.01), "learning_rate is MLP's schedule, one of constant, invscaling, "
                                                "adaptive, got 0.01; the step size is learning_rate_init=0.01"),
        (NBTrainRegressor(loss="poisson"), "NBTrainRegressor trains with loss='squared_error' alone"),
        (NBTrainClassifier(activation="swish"), "activation must be one of identity, logistic, tanh, relu"),
        (NBTrainClassifier(n_iter_no_change=0), "n_iter_no_change must be a positive integer or np.inf"),
    ]
    for estimator, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            estimator.fit(X, y)
        assert "\n" not in str(info.value)


def test_identity_and_logistic_are_mlps_names():
    X, y = iris()
    for name, nbtrain_name in (("identity", "linear"), ("logistic", "sigmoid")):
        model = NBTrainClassifier(activation=name, hidden_layer_sizes=(8,), max_iter=2, random_state=0).fit(X, y)
        assert model.model_.layers[0].activation == nbtrain_name


def test_warm_start_continues_from_the_last_fit():
    X, y = iris()
    model = NBTrainClassifier(hidden_layer_sizes=(8,), max_iter=5, n_iter_no_change=np.inf, warm_start=True,
                              random_state=0).fit(X, y)
    first, weights = model.model_, model.model_.get_weights()
    model.fit(X, y)
    assert model.model_ is first and model.n_iter_ == 5 and len(model.loss_curve_) == 10 and model.t_ == 10 * len(X)
    assert model.loss_curve_[5] < model.loss_curve_[0]  # it went on from the trained weights
    cold = NBTrainClassifier(hidden_layer_sizes=(8,), max_iter=5, n_iter_no_change=np.inf, random_state=0).fit(X, y)
    for a, b in zip(cold.model_.get_weights(), weights):  # without warm_start a fit starts afresh
        np.testing.assert_array_equal(a, b)
    cold.fit(X, y)
    assert len(cold.loss_curve_) == 5
    with pytest.raises(ValueError, match="warm_start needs the previous fit's 4 features"):
        model.fit(X[:, :3], y)


def test_regressor_early_stopping_scores_r2_as_mlp():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] - 2 * X[:, 1] + rng.normal(scale=0.3, size=300)
    model = NBTrainRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=50, random_state=0,
                             learning_rate_init=0.01).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_ and model.best_validation_score_ > 0.9
    assert model.best_validation_score_ == max(model.validation_scores_)
