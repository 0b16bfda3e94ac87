"""Losses with Keras's names and defaults: a name table over objectives.Objective. Each is a code and a
parameter for the engine's loss kernels; the model's loss is the mean of the element losses over the batch."""
from .engine.plan import LOSS_BCE, LOSS_BCE_LOGITS, LOSS_HUBER, LOSS_MAE, LOSS_MSE
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


CLASSES = {cls.__name__: cls for cls in (MeanAbsoluteError, MeanSquaredError, Huber, BinaryCrossentropy)}
ALIASES = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
}


def get(identifier):
    """A Loss from a Loss instance, a Keras name ("mae", "mse", "huber", "binary_crossentropy") or a config."""
    return lookup(identifier, Loss, CLASSES, ALIASES, "loss")
