"""Metrics with Keras's names: a name table over objectives.Objective (a loss used as a metric, an accuracy, or
precision, recall and AUC of 0/1 targets, which improve upward). With sample or class weights a metric is the
weighted mean over the rows (the counts weighted), as in Keras; each is computed over the whole epoch or validation
set, never averaged over batches."""
import numpy as np

from .engine.plan import (
    LOSS_BCE, LOSS_CCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE, METRIC_AUC, METRIC_BINARY_ACCURACY,
    METRIC_CATEGORICAL_ACCURACY, METRIC_PRECISION, METRIC_RECALL, METRIC_SPARSE_CATEGORICAL_ACCURACY,
)
from .errors import missing
from .objectives import Objective, lookup


class Metric(Objective):
    """Base class of the metrics."""


class MeanAbsoluteError(Metric):
    code, default_name = LOSS_MAE, "mean_absolute_error"


class MeanSquaredError(Metric):
    code, default_name = LOSS_MSE, "mean_squared_error"


class RootMeanSquaredError(Metric):
    """The square root of the (weighted) mean squared error over the whole epoch or validation set, as Keras's: the
    engine's squared-error sums, rooted here."""

    code, default_name = LOSS_MSE, "root_mean_squared_error"

    def value(self, sums, weight, k):
        return float(np.sqrt(super().value(sums, weight, k)))


class Huber(Metric):
    code, default_name, param = LOSS_HUBER, "huber", 1.0


class BinaryCrossentropy(Metric):
    code, default_name = LOSS_BCE, "binary_crossentropy"


class BinaryAccuracy(Metric):
    """Share of outputs whose thresholded value (output > threshold) equals the 0/1 target."""

    code, default_name, direction = METRIC_BINARY_ACCURACY, "binary_accuracy", "up"

    def __init__(self, name=None, threshold=0.5):
        super().__init__(name)
        self.param = self.threshold = float(threshold)

    def _config(self):
        return {"threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """Share of rows whose highest output is the class of the one-hot target's highest value."""

    code, default_name, direction = METRIC_CATEGORICAL_ACCURACY, "categorical_accuracy", "up"


class SparseCategoricalAccuracy(Metric):
    """Share of rows whose highest output is the class index the target holds."""

    code, default_name, direction = METRIC_SPARSE_CATEGORICAL_ACCURACY, "sparse_categorical_accuracy", "up"


class CategoricalCrossentropy(Metric):
    code, default_name = LOSS_CCE, "categorical_crossentropy"


class SparseCategoricalCrossentropy(Metric):
    code, default_name = LOSS_SCE, "sparse_categorical_crossentropy"


class Precision(Metric):
    """True positives over predicted positives (output > threshold, 0.5 by default); 0 when nothing is predicted
    positive, as Keras."""

    code, default_name, direction = METRIC_PRECISION, "precision", "up"

    def __init__(self, thresholds=None, name=None):
        super().__init__(name)
        self.param = self.thresholds = 0.5 if thresholds is None else float(thresholds)

    def value(self, sums, weight, k):
        return float(sums[0] / sums[1]) if sums[1] else 0.0

    def _config(self):
        return {"thresholds": self.thresholds}


class Recall(Precision):
    """True positives over positives (output > threshold, 0.5 by default); 0 without positives, as Keras."""

    code, default_name = METRIC_RECALL, "recall"


class AUC(Metric):
    """Area under the ROC curve, as Keras computes it: true and false positive rates at num_thresholds thresholds
    (-1e-7, 1/(n-1), ..., 1 + 1e-7), joined by the trapezoid rule ("interpolation")."""

    code, default_name, direction = METRIC_AUC, "auc", "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None):
        super().__init__(name)
        if int(num_thresholds) != num_thresholds or num_thresholds < 3:
            raise ValueError(f"AUC needs num_thresholds > 2, got {num_thresholds!r}")
        if curve != "ROC" or summation_method != "interpolation":
            raise ValueError("nbtrain's AUC is Keras's default: curve='ROC', summation_method='interpolation'")
        self.param = self.num_thresholds = int(num_thresholds)

    def value(self, sums, weight, k):
        """From [positives, negatives] per bucket (how many thresholds lie below the prediction): the counts above
        each threshold are the sums over the higher buckets."""
        positives, negatives = sums[0::2], sums[1::2]
        above = lambda counts: np.cumsum(counts[::-1])[::-1][1:self.num_thresholds + 1]  # noqa: E731
        tp, fp = above(positives), above(negatives)
        tpr = tp / positives.sum() if positives.sum() else np.zeros_like(tp)
        fpr = fp / negatives.sum() if negatives.sum() else np.zeros_like(fp)
        return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0))

    def _config(self):
        return {"num_thresholds": self.num_thresholds}


class Accuracy(Metric):
    """metrics=["accuracy"]: resolved as Keras resolves the name from the shapes, to binary accuracy for one
    output, sparse categorical accuracy for class-index targets, categorical accuracy for one-hot targets."""

    default_name, direction = "accuracy", "up"

    def resolved(self, n_out, k):
        cls = BinaryAccuracy if n_out == 1 else SparseCategoricalAccuracy if k == 1 else CategoricalAccuracy
        return cls(name=self.name)


CLASSES = {cls.__name__: cls for cls in (MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, Huber,
                                         BinaryCrossentropy, BinaryAccuracy, CategoricalAccuracy,
                                         SparseCategoricalAccuracy, CategoricalCrossentropy,
                                         SparseCategoricalCrossentropy, Accuracy, Precision, Recall, AUC)}
ALIASES = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "huber": Huber, "binary_crossentropy": BinaryCrossentropy,
    "binary_accuracy": BinaryAccuracy, "accuracy": Accuracy, "acc": Accuracy,
    "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "precision": Precision, "recall": Recall, "auc": AUC,
}


def get(identifier):
    """A Metric from an instance, a config, or a Keras name; a name given as a string is kept as the
    history key, as Keras does (metrics=["mae"] logs "mae" and "val_mae")."""
    return lookup(identifier, Metric, CLASSES, ALIASES, "metric", keep_name=True)


def __getattr__(name):
    """A Keras metric class nbtrain lacks: one line naming those it has."""
    raise missing(__name__, "metric", name, list(CLASSES))
