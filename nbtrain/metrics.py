"""Metrics with Keras's names: a name table over objectives.Objective (a loss used as a metric, or binary
accuracy, which improves upward)."""
from .engine.plan import LOSS_BCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, METRIC_BINARY_ACCURACY
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


CLASSES = {cls.__name__: cls for cls in (MeanAbsoluteError, MeanSquaredError, Huber, BinaryCrossentropy,
                                         BinaryAccuracy)}
ALIASES = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "huber": Huber, "binary_crossentropy": BinaryCrossentropy,
    "binary_accuracy": BinaryAccuracy, "accuracy": BinaryAccuracy, "acc": BinaryAccuracy,
}


def get(identifier):
    """A Metric from an instance, a config, or a Keras name; a name given as a string is kept as the
    history key, as Keras does (metrics=["mae"] logs "mae" and "val_mae")."""
    return lookup(identifier, Metric, CLASSES, ALIASES, "metric", keep_name=True)
