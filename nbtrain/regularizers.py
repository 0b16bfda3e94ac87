"""Weight penalties with Keras's names and defaults (kernel_regularizer=, bias_regularizer= on Dense): l1 * sum|w| +
l2 * sum w^2, added to every batch's loss (so reported in loss and val_loss, as Keras reports them) and its
gradient l1 sign(w) + 2 l2 w to the weights' gradient, in the engine."""


class Regularizer:
    """Base class: the two coefficients the engine reads."""

    l1 = l2 = 0.0

    def __call__(self, weights):
        """The penalty of a weight array, in NumPy (for checks and for people)."""
        import numpy as np
        return float(self.l1 * np.abs(weights).sum() + self.l2 * np.square(weights).sum())

    def get_config(self):
        return {"class_name": type(self).__name__, "config": self._config()}


def _coefficient(value, what):
    value = float(value)
    if not value >= 0:
        raise ValueError(f"{what} must be a non-negative number, got {value!r}")
    return value


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _coefficient(l1, "l1")

    def _config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _coefficient(l2, "l2")

    def _config(self):
        return {"l2": self.l2}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _coefficient(l1, "l1"), _coefficient(l2, "l2")

    def _config(self):
        return {"l1": self.l1, "l2": self.l2}


def l1(l1=0.01):
    return L1(l1)


def l2(l2=0.01):
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):
    return L1L2(l1, l2)


CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}
ALIASES = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01)}


def get(identifier):
    """A Regularizer (or None) from an instance, a get_config() dict or a Keras name ("l1", "l2", "l1_l2")."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return CLASSES[identifier["class_name"]](**identifier["config"])
    if isinstance(identifier, str) and identifier.lower() in ALIASES:
        return ALIASES[identifier.lower()]()
    raise ValueError(f"unknown regularizer {identifier!r}: use regularizers.l1/l2/l1_l2 or one of {', '.join(ALIASES)}")
