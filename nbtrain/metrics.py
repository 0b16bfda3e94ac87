"""Metrics with Keras's names: a name table over objectives.Objective (a loss used as a metric, or an accuracy,
which improves upward). With sample or class weights a metric is the weighted mean over the rows, as in Keras."""
from .engine.plan import (
    LOSS_BCE, LOSS_CCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE, METRIC_BINARY_ACCURACY, METRIC_CATEGORICAL_ACCURACY,
    METRIC_SPARSE_CATEGORICAL_ACCURACY,
)
from .objectives import Objective, lookup


class Metric(Objective):
    """Base class of the metrics."""


class MeanAbsoluteError(Metric):
    code, default_name = LOSS_MAE, "mean_absolute_error"


class MeanSquaredError(Metric):
    code, default_name = LOSS_MSE, "mean_squared_error"


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


class Accuracy(Metric):
    """metrics=["accuracy"]: resolved as Keras resolves the name from the shapes, to binary accuracy for one
    output, sparse categorical accuracy for class-index targets, categorical accuracy for one-hot targets."""

    default_name, direction = "accuracy", "up"

    def resolved(self, n_out, k):
        cls = BinaryAccuracy if n_out == 1 else SparseCategoricalAccuracy if k == 1 else CategoricalAccuracy
        return cls(name=self.name)


CLASSES = {cls.__name__: cls for cls in (MeanAbsoluteError, MeanSquaredError, Huber, BinaryCrossentropy,
                                         BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                         CategoricalCrossentropy, SparseCategoricalCrossentropy, Accuracy)}
ALIASES = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "huber": Huber, "binary_crossentropy": BinaryCrossentropy,
    "binary_accuracy": BinaryAccuracy, "accuracy": Accuracy, "acc": Accuracy,
    "categorical_accuracy": CategoricalAccuracy, "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """A Metric from an instance, a config, or a Keras name; a name given as a string is kept as the
    history key, as Keras does (metrics=["mae"] logs "mae" and "val_mae")."""
    return lookup(identifier, Metric, CLASSES, ALIASES, "metric", keep_name=True)
