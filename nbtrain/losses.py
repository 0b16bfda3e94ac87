"""Losses with Keras's names and defaults: a name table over objectives.Objective. Each is a code and a
parameter for the engine's loss kernels; the model's loss is, as Keras reduces it, the sum over the batch of each
row's weight times its loss (the mean over its columns; for the categorical losses, over its classes) divided by
the batch size."""
from .engine.plan import (
    LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE, LOSS_SCE_LOGITS,
)
from .errors import missing
from .objectives import Objective, lookup


class Loss(Objective):
    """Base class of the losses (always minimized)."""


class MeanAbsoluteError(Loss):
    code, default_name = LOSS_MAE, "mean_absolute_error"


class MeanSquaredError(Loss):
    code, default_name = LOSS_MSE, "mean_squared_error"


class Huber(Loss):
    """0.5 e^2 where |e| <= delta, delta (|e| - 0.5 delta) beyond."""

    code, default_name = LOSS_HUBER, "huber_loss"

    def __init__(self, delta=1.0, name=None):
        super().__init__(name)
        if delta <= 0:
            raise ValueError(f"Huber delta must be positive, got {delta!r}")
        self.param = self.delta = float(delta)

    def _config(self):
        return {"delta": self.delta}


class BinaryCrossentropy(Loss):
    """Cross-entropy of 0/1 targets. On a sigmoid output it is computed from the logits (stable);
    with from_logits=True the model's raw output is taken as the logits."""

    default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.code = LOSS_BCE_LOGITS if from_logits else LOSS_BCE

    def _config(self):
        return {"from_logits": self.from_logits}


class CategoricalCrossentropy(Loss):
    """-sum over classes of y log p for one-hot (or soft) targets, p normalized and clipped to [1e-7, 1 - 1e-7] as
    Keras does; on a softmax output it is computed from the logits (stable), and from_logits=True takes the model's
    raw output as the logits. label_smoothing moves targets towards 1/k."""

    default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(name)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        self.code = LOSS_CCE_LOGITS if from_logits else LOSS_CCE
        self.param = self.label_smoothing

    def _config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy of integer class targets (y holds the class index, one column), as Keras."""

    default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        self.from_logits = bool(from_logits)
        self.code = LOSS_SCE_LOGITS if from_logits else LOSS_SCE

    def _config(self):
        return {"from_logits": self.from_logits}


CLASSES = {cls.__name__: cls for cls in (MeanAbsoluteError, MeanSquaredError, Huber, BinaryCrossentropy,
                                         CategoricalCrossentropy, SparseCategoricalCrossentropy)}
ALIASES = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy, "cce": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """A Loss from a Loss instance, a Keras name ("mae", "mse", "huber", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy") or a config."""
    return lookup(identifier, Loss, CLASSES, ALIASES, "loss")


def __getattr__(name):
    """A Keras loss class nbtrain lacks: one line naming those it has."""
    raise missing(__name__, "loss", name, list(CLASSES))
