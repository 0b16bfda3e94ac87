"""scikit-learn estimators over Sequential: NBTrainClassifier and NBTrainRegressor, a dense network with its
hyperparameters in the constructor, for Pipelines, ColumnTransformers, GridSearchCV, cross_val_score, clone and
pickle. Imported only as `nbtrain.sklearn` (scikit-learn is the optional extra `nbtrain[sklearn]`)."""
import contextlib
import numbers
import os
import threading

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import callbacks, layers, optimizers, regularizers
from .model import Sequential
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

OPTIMIZERS = {"adam": optimizers.Adam, "adamw": optimizers.AdamW, "sgd": optimizers.SGD,
              "rmsprop": optimizers.RMSprop}
ACTIVATIONS = ("relu", "tanh", "elu", "gelu", "leaky_relu", "softplus", "sigmoid")
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
    Parameters (checked in fit, as scikit-learn does):
    hidden_layer_sizes: the hidden Dense layers' widths, (100,) by default; activation: their activation, one of
    relu, tanh, elu, gelu, leaky_relu, softplus, sigmoid; dropout: a Dropout layer of this rate after each hidden
    layer (0: none); batch_normalization: a BatchNormalization layer after each (after the Dropout, as `nbtrain fit`).
    optimizer: "adam", "adamw", "sgd" or "rmsprop" with learning_rate; weight_decay: the optimizer's decoupled
    weight decay (None: the optimizer's default, none except AdamW's 0.004); alpha: an l2 penalty on every Dense
    kernel (nbtrain.regularizers.l2, Keras's: alpha times the sum of squared weights added to the loss).
    batch_size: rows per step, "auto" = min(200, n_samples) as MLPClassifier; epochs: at most this many.
    early_stopping: hold out validation_fraction of the rows (a shuffle seeded from random_state, stratified for a
    classifier) and stop when val_loss has not improved by more than tol for `patience` epochs, keeping the best
    epoch's weights; without it, stop when the training loss has not improved by more than tol for `patience`
    epochs (MLPClassifier's n_iter_no_change), keeping the last weights. patience=None trains all epochs.
    random_state: None, an int or a RandomState, from which the weights, shuffles, dropout masks and split are
    seeded (an int gives the same model every fit). verbose: nbtrain's epoch lines (0: none, 2: one line per
    epoch). device: "cpu" (the default, for results that repeat bit for bit), "cuda" or "auto".
    threads: the BLAS threads of fit and predict (None: NBTRAIN_THREADS, else inside a joblib worker (GridSearchCV,
    cross_val_score with n_jobs) the worker's share of the cores (blas_share), else the cores other processes leave
    free, as Sequential.fit)."""


class _NBTrainEstimator(BaseEstimator):
    """What both estimators share: the network, the optimizer, the split for early stopping, the fit and the
    pickle form of the fitted Sequential (its config and weights as plain arrays)."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", dropout=0.0, batch_normalization=False,
                 optimizer="adam", learning_rate=1e-3, alpha=0.0, weight_decay=None, batch_size="auto", epochs=200,
                 early_stopping=False, validation_fraction=0.1, patience=10, tol=1e-4, random_state=None,
                 verbose=0, device="cpu", threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_normalization = batch_normalization
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.threads = threads

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
        if not (isinstance(self.dropout, numbers.Real) and 0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not (isinstance(self.alpha, numbers.Real) and self.alpha >= 0):
            raise ValueError(f"alpha must be a non-negative number, got {self.alpha!r}")
        if not (self.batch_size == "auto" or isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if not (isinstance(self.epochs, numbers.Integral) and self.epochs >= 1):
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.early_stopping and not (isinstance(self.validation_fraction, numbers.Real)
                                        and 0 < self.validation_fraction < 1):
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.patience is not None and not (isinstance(self.patience, numbers.Integral) and self.patience >= 0):
            raise ValueError(f"patience must be None or a non-negative integer, got {self.patience!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
        requested(self.threads)  # a ValueError (InputError) naming a bad count or NBTRAIN_THREADS
        return sizes

    # ------------------------------------------------------------------ the network and its training
    def _network(self, sizes, n_in, n_out, output_activation, seed):
        penalty = regularizers.l2(float(self.alpha)) if self.alpha else None
        stack = []
        for n in sizes:
            stack.append(layers.Dense(int(n), activation=self.activation, kernel_regularizer=penalty))
            if self.dropout:
                stack.append(layers.Dropout(float(self.dropout)))
            if self.batch_normalization:
                stack.append(layers.BatchNormalization())
        stack.append(layers.Dense(n_out, activation=output_activation, kernel_regularizer=penalty))
        model = Sequential(stack)
        model.build((None, n_in), seed=seed)
        return model

    def _optimizer(self):
        kind = OPTIMIZERS[self.optimizer.lower()]
        options = {"learning_rate": float(self.learning_rate)}
        if self.weight_decay is not None:
            options["weight_decay"] = float(self.weight_decay)
        return kind(**options)

    def _train(self, X, Y, weights, n_out, output_activation, loss, metrics, stratify=None):
        """Build, compile and fit the network on float arrays X (n, f) and Y (n, k) with row weights; sets the
        fitted attributes that describe the training."""
        sizes = self._check_params()
        rng = check_random_state(self.random_state)
        build_seed, fit_seed, split_seed = (int(s) for s in rng.randint(0, SEED_LIMIT, size=3))
        validation = None
        if self.early_stopping:
            X, Y, weights, validation = self._split(X, Y, weights, stratify, split_seed)
        if not np.any(weights > 0):
            raise ValueError("Sample weights must contain at least one non-zero number among the training rows.")
        monitor = "val_loss" if self.early_stopping else "loss"
        stops = []
        if self.patience is not None:
            stops.append(callbacks.EarlyStopping(monitor=monitor, patience=int(self.patience),
                                                 min_delta=float(self.tol), restore_best_weights=self.early_stopping))
        batch_size = min(200, X.shape[0]) if self.batch_size == "auto" else int(self.batch_size)
        with _threads():
            model = self._network(sizes, X.shape[1], n_out, output_activation, build_seed)
            model.compile(optimizer=self._optimizer(), loss=loss, metrics=metrics, device=self.device)
            history = model.fit(X, Y, batch_size=batch_size, epochs=int(self.epochs), verbose=int(self.verbose),
                                seed=fit_seed, validation_data=validation, callbacks=stops, sample_weight=weights,
                                threads=self.threads)
        self.model_ = model
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        self.n_iter_ = len(history.epoch)
        # the epoch (counted from 1) whose weights the model has: with early stopping the best val_loss (an
        # improvement by more than tol) that EarlyStopping restored, else the last
        self.best_epoch_ = stops[0].best_epoch + 1 if self.early_stopping and stops and stops[0].best_weights \
            is not None else self.n_iter_
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
        wv = weights[val]
        validation = (X[val], Y[val], wv) if wv.sum() > 0 else (X[val], Y[val])
        return X[train], Y[train], weights[train], validation

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
    column names), model_ (the nbtrain Sequential), history_ ({"loss": [...], "accuracy": [...], "val_...": ...}),
    n_iter_ (epochs run) and best_epoch_ (the epoch, from 1, whose weights the model keeps).""" + PARAMETERS

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", dropout=0.0, batch_normalization=False,
                 optimizer="adam", learning_rate=1e-3, alpha=0.0, weight_decay=None, batch_size="auto", epochs=200,
                 early_stopping=False, validation_fraction=0.1, patience=10, tol=1e-4, class_weight=None,
                 random_state=None, verbose=0, device="cpu", threads=None):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, dropout=dropout,
                         batch_normalization=batch_normalization, optimizer=optimizer, learning_rate=learning_rate,
                         alpha=alpha, weight_decay=weight_decay, batch_size=batch_size, epochs=epochs,
                         early_stopping=early_stopping, validation_fraction=validation_fraction, patience=patience,
                         tol=tol, random_state=random_state, verbose=verbose, device=device, threads=threads)
        self.class_weight = class_weight

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
            return self._train(X, Y, weights, 1, "sigmoid", "binary_crossentropy", ["accuracy"], codes)
        return self._train(X, Y, weights, k, "softmax", "sparse_categorical_crossentropy", ["accuracy"], codes)

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
        return compute_class_weight(
            {int(np.searchsorted(self.classes_, label)): weight for label, weight in self.class_weight.items()
             if label in self.classes_}, classes=np.arange(k), y=codes)

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
    target columns. history_'s losses are therefore on the standardized target. Fitted attributes as for
    NBTrainClassifier (without classes_).""" + PARAMETERS

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and targets y (n_samples,) or (n_samples, n_targets); returns self."""
        X, y = self._inputs(X, y, y_numeric=True, multi_output=True)
        weights = self._weights(sample_weight, X)
        y = np.asarray(y, dtype=np.float64)
        self._y_1d = y.ndim == 1
        Y = y.reshape(-1, 1) if y.ndim == 1 else y
        self._y_mean = Y.mean(axis=0)
        scale = Y.std(axis=0)
        self._y_scale = np.where(scale > 0, scale, 1.0)
        return self._train(X, (Y - self._y_mean) / self._y_scale, weights, Y.shape[1], None, "mse", [])

    def predict(self, X):
        """Predictions in the target's units: 1-D for a 1-D training y."""
        out = self._outputs(X) * self._y_scale + self._y_mean
        return out[:, 0] if self._y_1d else out


def expected_failed_checks(estimator):
    """The estimator checks that `estimator` is expected to fail, {check name: reason}."""
    return dict(EXPECTED_FAILED_CHECKS) if isinstance(estimator, _NBTrainEstimator) else {}
