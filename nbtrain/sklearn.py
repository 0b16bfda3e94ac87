"""scikit-learn estimators over Sequential: NBTrainClassifier and NBTrainRegressor, a dense network with
MLPClassifier's and MLPRegressor's parameters (names, defaults, meanings) in the constructor, for Pipelines,
ColumnTransformers, GridSearchCV (an MLP grid runs unchanged), cross_val_score, clone and pickle. Imported only as `nbtrain.sklearn` (scikit-learn is the optional extra `nbtrain[sklearn]`)."""
import contextlib
import numbers
import os
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import callbacks, layers, optimizers, regularizers
from .model import Sequential, SeedWarning
from .threads import requested
from .utils import limit_blas_threads

__all__ = ["NBTrainClassifier", "NBTrainRegressor", "expected_failed_checks"]

# scikit-learn's estimator checks that these estimators cannot pass, with the reason (scikit-learn 1.9 takes them as
# parametrize_with_checks(..., expected_failed_checks=expected_failed_checks) or check_estimator's argument)
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "minibatch gradient training: a row of weight 2 and the same row twice make other batches, steps and "
        "shuffles, so the fits agree in expectation, not to rtol 1e-7 (scikit-learn's MLP passes it only with "
        "lbfgs, which nbtrain does not have)",
}

# solver: MLP's "adam" and "sgd", and nbtrain's own "adamw" and "rmsprop"
SOLVERS = {"adam": optimizers.Adam, "sgd": optimizers.SGD, "adamw": optimizers.AdamW, "rmsprop": optimizers.RMSprop}
# activation: MLP's names (identity, logistic) for nbtrain's, and nbtrain's others
ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu", "elu": "elu",
               "gelu": "gelu", "leaky_relu": "leaky_relu", "softplus": "softplus", "sigmoid": "sigmoid"}
SCHEDULES = ("constant", "invscaling", "adaptive")
# nbtrain's names before they became MLP's: a one-line error names the new one
RENAMED = {"epochs": "max_iter", "patience": "n_iter_no_change", "optimizer": "solver"}
SEED_LIMIT = 2**31 - 1
# The environment variables joblib sets in its worker processes to give each its share of the cores
SHARE_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def blas_share():
    """The BLAS threads a fit may use: None (no limit) outside joblib; inside a joblib worker (GridSearchCV or
    cross_val_score with n_jobs > 1), the share joblib gave the worker process (cpu_count // n_jobs, which it puts in
    OPENBLAS_NUM_THREADS), or one thread in a thread-based worker, where the workers share one process's pools."""
    from joblib.parallel import get_active_backend
    backend, _ = get_active_backend()
    if getattr(backend, "nesting_level", 0) < 1:
        return None
    for name in SHARE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


_limit_lock = threading.Lock()
_limit = {"users": 0, "limiter": None}


@contextlib.contextmanager
def _threads():
    """A context in which the compiled kernels' BLAS keeps to blas_share() threads. The limit is process-wide, so
    fits running at once in one process's threads share it: the first sets it, the last one out restores it."""
    share = blas_share()
    if share is None:
        yield
        return
    with _limit_lock:
        if _limit["users"] == 0:
            _limit["limiter"] = limit_blas_threads(share)
        _limit["users"] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit["users"] -= 1
            if _limit["users"] == 0:
                _limit["limiter"].restore_original_limits()
                _limit["limiter"] = None


PARAMETERS = """
    Parameters: MLPClassifier's and MLPRegressor's names, defaults and meanings, so that a parameter grid written for
    them runs unchanged (checked in fit, as scikit-learn does):
    hidden_layer_sizes ((100,)); activation ("relu"; "identity", "logistic", "tanh", and nbtrain's elu, gelu,
    leaky_relu, softplus); solver ("adam"; "sgd", and nbtrain's "adamw" and "rmsprop"; "lbfgs" is refused, naming
    the nearest); alpha (1e-4: an L2 penalty of 0.5 * alpha * the squared kernel weights / the batch's rows added to
    each batch's loss, MLP's, as Keras's l2(0.5 * alpha / batch_size) on every kernel); batch_size ("auto":
    min(200, n_samples)); learning_rate ("constant"; with solver="sgd", "invscaling": learning_rate_init /
    (t + 1) ** power_t after each epoch, t the samples seen, and "adaptive": divided by 5 whenever the stopping rule
    below fires, until it is 1e-6 or less; other solvers ignore it, and "adaptive" stops as "constant" does, as in
    MLP); learning_rate_init (0.001); power_t (0.5); max_iter (200 epochs at most); shuffle (True); random_state
    (None, an int or a RandomState: the weights, shuffles, dropout masks and split; an int gives the same model every
    fit); tol (1e-4); verbose (False; True prints nbtrain's line per epoch); warm_start (False; True starts the next
    fit from this one's weights, with a fresh optimizer, as MLP); momentum (0.9) and nesterovs_momentum (True), for
    sgd; early_stopping (False) with validation_fraction (0.1: held out by a shuffle seeded from random_state,
    stratified for a classifier); beta_1, beta_2 (0.9, 0.999) and epsilon (1e-8), for adam and adamw;
    n_iter_no_change (10; np.inf: never stop early); max_fun (15000; lbfgs only, as MLP, so unused).
    The stopping rule is MLP's: after each epoch, an epoch counts as not improving when the training loss is not
    below the best so far minus tol (with early_stopping: the validation score, accuracy or R^2, not above the best
    plus tol); after more than n_iter_no_change such epochs in a row, training stops (or, with "adaptive", the rate is
    divided by 5 and the count restarts). With early_stopping the weights of the best validation score are kept.
    nbtrain's own: dropout (0: a Dropout layer of this rate after each hidden layer), batch_normalization (False: a
    BatchNormalization layer after each, after the Dropout), weight_decay (None: the solver's decoupled weight decay;
    AdamW's default 0.004), device ("cpu", so that results repeat bit for bit; "cuda" or "auto"), threads (the BLAS
    threads of fit and predict; None: NBTRAIN_THREADS, else inside a joblib worker (GridSearchCV, cross_val_score
    with n_jobs) the worker's share of the cores (blas_share), else the cores other processes leave free, as
    Sequential.fit)."""


class MLPRule(callbacks.Callback):
    """MLP's rule after each epoch (sklearn.neural_network's _fit_stochastic): the no-improvement count against tol
    on the training loss or the validation score, "invscaling" and "adaptive" learning rates, the stop, and with a
    validation score the best score's weights restored at the end. `score(logs)` is the validation score or None."""

    def __init__(self, estimator, n_samples, score=None):
        super().__init__()
        self.estimator, self.n_samples, self.score = estimator, n_samples, score
        self.schedule = estimator.learning_rate if estimator.solver == "sgd" else "constant"
        self.best_loss, self.best_score, self.best_weights, self.best_epoch = np.inf, -np.inf, None, None
        self.scores, self.count = [], 0

    def on_epoch_end(self, epoch, logs=None):
        est = self.estimator
        est.t_ += self.n_samples
        if self.score is not None:
            score = self.score(logs)
            self.scores.append(score)
            self.count = self.count + 1 if score < self.best_score + est.tol else 0
            if score > self.best_score:
                self.best_score, self.best_epoch, self.best_weights = score, epoch, self.model.get_weights()
        else:
            loss = logs["loss"]
            self.count = self.count + 1 if loss > self.best_loss - est.tol else 0
            self.best_loss = min(self.best_loss, loss)
        optimizer = self.model.optimizer
        if self.schedule == "invscaling":
            optimizer.learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if self.count > est.n_iter_no_change:
            what = "Validation score" if self.score is not None else "Training loss"
            message = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if self.schedule == "adaptive" and optimizer.learning_rate > 1e-6:
                optimizer.learning_rate = optimizer.learning_rate / 5.0
                self.count = 0
                self._say(f"{message} Setting learning rate to {optimizer.learning_rate:f}")
            else:
                self.model.stop_training = True
                self._say(f"{message} Stopping.")

    def _say(self, message):
        if self.estimator.verbose:
            print(message)

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class _NBTrainEstimator(BaseEstimator):
    """What both estimators share: the network, the solver, the split for early stopping, MLP's stopping rule, the
    fit and the pickle form of the fitted Sequential (its config and weights as plain arrays)."""

    def __new__(cls, *args, **kwargs):
        """nbtrain's former parameter names (epochs, patience, optimizer) are refused with MLP's that replaced them
        (here, since scikit-learn's checks give __init__ every keyword of its signature)."""
        for name in sorted(kwargs.keys() & RENAMED.keys()):
            raise TypeError(f"{cls.__name__} takes MLP's parameter names: {RENAMED[name]}, not {name}")
        return super().__new__(cls)

    def _keep(self, parameters):
        """Keep the constructor's arguments as attributes under their own names, unchecked (scikit-learn's rule)."""
        for name, value in parameters.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ checks of the hyperparameters
    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = (sizes,) if isinstance(sizes, numbers.Integral) else tuple(sizes)
        if any(not isinstance(n, numbers.Integral) or n < 1 for n in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' (full-batch quasi-Newton) is not in nbtrain, which trains by minibatch "
                             "steps: the nearest is solver='adam' (with batch_size=n_samples for full batches)")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if not isinstance(self.learning_rate, str) or self.learning_rate not in SCHEDULES:
            hint = (f"; the step size is learning_rate_init={self.learning_rate!r}"
                    if isinstance(self.learning_rate, numbers.Real) else "")
            raise ValueError(f"learning_rate is MLP's schedule, one of {', '.join(SCHEDULES)}, got "
                             f"{self.learning_rate!r}{hint}")
        for name, low, high in (("alpha", 0, None), ("learning_rate_init", 0, None), ("power_t", 0, None),
                                ("tol", 0, None), ("momentum", 0, 1), ("beta_1", 0, 1), ("beta_2", 0, 1),
                                ("epsilon", 0, None)):
            value = getattr(self, name)
            positive = name in ("learning_rate_init", "epsilon")
            if not (isinstance(value, numbers.Real) and np.isfinite(value) and (value > low if positive else
                                                                                 value >= low)
                    and (high is None or value <= high and not (name.startswith("beta") and value == high))):
                raise ValueError(f"{name} must be a {'positive' if positive else 'non-negative'} number"
                                 f"{f' below or at {high}' if high is not None else ''}, got {value!r}")
        if not (self.batch_size == "auto" or isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.max_iter, numbers.Integral) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not (self.n_iter_no_change == np.inf or isinstance(self.n_iter_no_change, numbers.Integral)
                and self.n_iter_no_change >= 1):
            raise ValueError(f"n_iter_no_change must be a positive integer or np.inf, got {self.n_iter_no_change!r}")
        if self.early_stopping and not (isinstance(self.validation_fraction, numbers.Real)
                                        and 0 < self.validation_fraction < 1):
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not (isinstance(self.dropout, numbers.Real) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        requested(self.threads)  # a ValueError (InputError) naming a bad count or NBTRAIN_THREADS
        return sizes

    # ------------------------------------------------------------------ the network and its training
    def _network(self, sizes, n_in, n_out, output_activation, seed, batch_size):
        penalty = regularizers.l2(0.5 * float(self.alpha) / batch_size) if self.alpha else None
        activation = ACTIVATIONS[self.activation]
        stack = []
        for n in sizes:
            stack.append(layers.Dense(int(n), activation=activation, kernel_regularizer=penalty))
            if self.dropout:
                stack.append(layers.Dropout(float(self.dropout)))
            if self.batch_normalization:
                stack.append(layers.BatchNormalization())
        stack.append(layers.Dense(n_out, activation=output_activation, kernel_regularizer=penalty))
        model = Sequential(stack)
        model.build((None, n_in), seed=seed)
        return model

    def _optimizer(self):
        options = {"learning_rate": float(self.learning_rate_init)}
        if self.solver == "sgd":
            options.update(momentum=float(self.momentum), nesterov=bool(self.nesterovs_momentum))
        elif self.solver in ("adam", "adamw"):
            options.update(beta_1=float(self.beta_1), beta_2=float(self.beta_2), epsilon=float(self.epsilon))
        if self.weight_decay is not None:
            options["weight_decay"] = float(self.weight_decay)
        return SOLVERS[self.solver](**options)

    def _warm_model(self, n_in, n_out):
        """The fitted network to continue from (warm_start), or None to build a new one."""
        model = getattr(self, "model_", None) if self.warm_start else None
        if model is not None and model.input_shape[-1] == n_in and model.output_shape[-1] == n_out:
            return model
        if model is not None:
            raise ValueError(f"warm_start needs the previous fit's {model.input_shape[-1]} features and "
                             f"{model.output_shape[-1]} outputs, got {n_in} and {n_out}")
        return None

    def _train(self, X, Y, weights, n_out, output_activation, loss, metrics, stratify=None, score=None):
        """Build (or, with warm_start, keep), compile and fit the network on float arrays X (n, f) and Y (n, k) with
        row weights, under MLP's stopping rule; `score(model, (X_val, Y_val, w_val), logs)` is the validation score.
        Sets the fitted attributes that describe the training."""
        sizes = self._check_params()
        rng = check_random_state(self.random_state)
        build_seed, fit_seed, split_seed = (int(s) for s in rng.randint(0, SEED_LIMIT, size=3))
        validation = None
        if self.early_stopping:
            X, Y, weights, validation = self._split(X, Y, weights, stratify, split_seed)
        if not np.any(weights > 0):
            raise ValueError("Sample weights must contain at least one non-zero number among the training rows.")
        batch_size = min(200 if self.batch_size == "auto" else int(self.batch_size), X.shape[0])
        warm = self._warm_model(X.shape[1], n_out)
        if warm is None:
            self.t_, self.loss_curve_ = 0, []
        judge = None
        if validation is not None:
            held = validation
            judge = lambda logs: score(model, held, logs)  # noqa: E731
            if not held[2].sum() > 0:  # rows that all weigh 0 are scored unweighted
                validation = held[:2]
        rule = MLPRule(self, X.shape[0], judge)
        with _threads(), warnings.catch_warnings():
            # warm_start continues from trained weights: the fit's seed seeds its shuffles alone, as meant
            warnings.simplefilter("ignore", SeedWarning)
            model = warm or self._network(sizes, X.shape[1], n_out, output_activation, build_seed, batch_size)
            model.compile(optimizer=self._optimizer(), loss=loss, metrics=metrics, device=self.device)
            history = model.fit(X, Y, batch_size=batch_size, epochs=int(self.max_iter), shuffle=bool(self.shuffle),
                                verbose=2 if self.verbose else 0, seed=fit_seed, validation_data=validation,
                                callbacks=[rule], sample_weight=weights, threads=self.threads)
        self.model_ = model
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        self.n_iter_ = len(history.epoch)
        self.loss_curve_ = self.loss_curve_ + self.history_["loss"]
        self.loss_ = self.loss_curve_[-1]
        self.best_loss_ = None if validation is not None else min(self.history_["loss"])
        self.validation_scores_ = rule.scores if validation is not None else None
        self.best_validation_score_ = rule.best_score if validation is not None else None
        # the epoch (counted from 1) whose weights the model has: the best validation score's, else the last
        self.best_epoch_ = rule.best_epoch + 1 if rule.best_epoch is not None else self.n_iter_
        return self

    def _split(self, X, Y, weights, stratify, seed):
        """The early-stopping split: a shuffle seeded from random_state holds out validation_fraction of the rows
        (stratified by class for a classifier when every class has two rows or more)."""
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"early_stopping needs at least 2 samples to hold some out for validation, "
                             f"got n_samples={n}")
        held = max(1, min(n - 1, int(round(self.validation_fraction * n))))
        if stratify is not None and (np.bincount(stratify).min() < 2 or held < np.unique(stratify).size
                                     or n - held < np.unique(stratify).size):
            stratify = None
        train, val = train_test_split(np.arange(n), test_size=held, random_state=seed, stratify=stratify)
        return X[train], Y[train], weights[train], (X[val], Y[val], weights[val])

    def _outputs(self, X):
        """The network's outputs for X, float64 (n, k), after the checks scikit-learn expects."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=(np.float64, np.float32))
        with _threads():
            return self.model_.predict(X, threads=self.threads).astype(np.float64)

    def _inputs(self, X, y, **options):
        return validate_data(self, X, y, accept_sparse=False, dtype=(np.float64, np.float32), **options)

    @staticmethod
    def _weights(sample_weight, X):
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not np.any(weights > 0):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return weights

    # ------------------------------------------------------------------ pickle: config and weights, not objects
    def __getstate__(self):
        state = super().__getstate__()
        model = state.get("model_")
        if isinstance(model, Sequential):
            state = dict(state)
            state["model_"] = {"config": model.get_config(), "input_width": int(model.plan.n_in),
                               "compile": model.compile_config(), "weights": model.get_weights()}
        return state

    def __setstate__(self, state):
        saved = state.get("model_")
        if isinstance(saved, dict):
            state = dict(state)
            model = Sequential.from_config(saved["config"])
            model.build((None, saved["input_width"]))
            model.set_weights(saved["weights"])
            compiled = saved["compile"]
            if compiled is not None:
                model.compile(optimizer=optimizers.get(compiled["optimizer"]), loss=compiled["loss"],
                              metrics=compiled["metrics"], device="cpu")
            state["model_"] = model
        super().__setstate__(state)


class NBTrainClassifier(ClassifierMixin, _NBTrainEstimator):
    __doc__ = """A dense network classifier trained by nbtrain, with MLPClassifier's shape.

    Binary targets get one sigmoid output and binary cross-entropy, more classes a softmax output and sparse
    categorical cross-entropy; labels of any type are mapped to 0..k-1 in sorted order (`classes_`).
    class_weight: None, {label: weight}, or "balanced" (n_samples / (n_classes * count of the class)); it multiplies
    sample_weight. Fitted attributes: classes_, n_features_in_, feature_names_in_ (DataFrame input with string
    column names), MLP's n_iter_ (epochs run), loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_ and t_ (samples seen), and nbtrain's model_ (the Sequential), history_ ({"loss": [...],
    "accuracy": [...], "val_...": ...}) and best_epoch_ (the epoch, from 1, whose weights the model keeps).
    """ + PARAMETERS

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_normalization=False,
                 weight_decay=None, class_weight=None, device="cpu", threads=None):
        self._keep(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and labels y (n_samples,); returns self."""
        X, y = self._inputs(X, y)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"NBTrainClassifier takes binary or multiclass targets, got {type_of_target(y)!r}")
        weights = self._weights(sample_weight, X)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        codes = encoder.transform(y)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"NBTrainClassifier needs samples of at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r})")
        weights = weights * self._class_weights(codes, k)[codes]
        kept = np.unique(codes[weights > 0])
        if kept.size < 2:
            raise ValueError(f"NBTrainClassifier needs samples of at least 2 classes with a non-zero weight; only "
                             f"class {self.classes_[kept[0]]!r} has any")
        Y = codes.astype(np.float64).reshape(-1, 1)
        if k == 2:
            return self._train(X, Y, weights, 1, "sigmoid", "binary_crossentropy", ["accuracy"], codes, _accuracy)
        return self._train(X, Y, weights, k, "softmax", "sparse_categorical_crossentropy", ["accuracy"], codes,
                           _accuracy)

    def _class_weights(self, codes, k):
        """One weight per class index, from class_weight (the labels' dict, "balanced" or None)."""
        if self.class_weight is None:
            return np.ones(k)
        if isinstance(self.class_weight, str):
            if self.class_weight != "balanced":
                raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}")
            return compute_class_weight("balanced", classes=np.arange(k), y=codes)
        if not isinstance(self.class_weight, dict):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {type(self.class_weight).__name__}")
        unknown = [label for label in self.class_weight if label not in self.classes_]
        if unknown:
            raise ValueError(f"class_weight names {unknown[0]!r}, which is not a class of y (its classes are "
                             f"{', '.join(map(repr, self.classes_[:10].tolist()))}{', ...' if k > 10 else ''})")
        return compute_class_weight(
            {int(np.searchsorted(self.classes_, label)): weight for label, weight in self.class_weight.items()},
            classes=np.arange(k), y=codes)

    def predict_proba(self, X):
        """The probability of each class in classes_, float64 (n_samples, n_classes), rows summing to 1."""
        out = self._outputs(X)
        if len(self.classes_) == 2:
            p = np.clip(out[:, 0], 0.0, 1.0)
            return np.column_stack([1.0 - p, p])
        out = np.clip(out, 0.0, None)
        return out / out.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable label of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class NBTrainRegressor(RegressorMixin, _NBTrainEstimator):
    __doc__ = """A dense network regressor trained by nbtrain with mean squared error, with MLPRegressor's shape.

    The target is standardized internally (each column's mean and standard deviation over the training rows), so the
    defaults work on targets in their own units, and predictions are scaled back: 1-D for a 1-D y, (n, k) for k
    target columns. history_'s and loss_curve_'s losses are therefore on the standardized target (the mean squared
    error, not MLP's half of it). loss: "squared_error" alone. Fitted attributes as for NBTrainClassifier (without
    classes_).""" + PARAMETERS

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0,
                 batch_normalization=False, weight_decay=None, device="cpu", threads=None):
        self._keep(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and targets y (n_samples,) or (n_samples, n_targets); returns self."""
        if self.loss != "squared_error":
            raise ValueError(f"NBTrainRegressor trains with loss='squared_error' alone, got {self.loss!r}; for "
                             "counts, the nearest is a TransformedTargetRegressor over log1p(y)")
        X, y = self._inputs(X, y, y_numeric=True, multi_output=True)
        weights = self._weights(sample_weight, X)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self._y_mean = Y.mean(axis=0)
        scale = Y.std(axis=0)
        self._y_scale = np.where(scale > 0, scale, 1.0)
        return self._train(X, (Y - self._y_mean) / self._y_scale, weights, Y.shape[1], None, "mse", [], score=_r2)

    def predict(self, X):
        """Predictions in the target's units: 1-D for a 1-D training y."""
        out = self._outputs(X) * self._y_scale + self._y_mean
        return out[:, 0] if self._y_1d else out


def _accuracy(model, validation, logs):
    """MLPClassifier's validation score: the (weighted) accuracy, which the epoch's logs hold."""
    return logs["val_accuracy"]


def _r2(model, validation, logs):
    """MLPRegressor's validation score: R^2 (weighted, averaged over the targets) of the network's predictions,
    on the standardized targets, which leaves it unchanged."""
    X, Y, weights = validation
    return float(r2_score(Y, model.predict(X), sample_weight=weights if weights.sum() > 0 else None))


def expected_failed_checks(estimator):
    """The estimator checks that `estimator` is expected to fail, {check name: reason}."""
    return dict(EXPECTED_FAILED_CHECKS) if isinstance(estimator, _NBTrainEstimator) else {}
