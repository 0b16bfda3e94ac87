"""Optimizers with Keras's names, defaults and update rules. State (step count and one or two slot
vectors the size of the flat parameter vector) lives here; the update itself is an engine kernel."""
import numpy as np

from .engine.plan import OPT_ADAM, OPT_SGD


class Optimizer:
    code = None

    def __init__(self, learning_rate):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0
        self.slots = None

    def build(self, n_params, dtype=np.float32):
        """Allocate the slot vectors (once; a rebuilt optimizer of another size starts over)."""
        if self.slots is None or self.slots[0].size != n_params:
            self.slots = [np.zeros(n_params, dtype) for _ in range(2)]
            self.iterations = 0

    def get_config(self):
        return {"class_name": type(self).__name__, "config": dict(self._config())}


class SGD(Optimizer):
    """theta -= lr g; with momentum: v = momentum v - lr g, theta += v (or the Nesterov form)."""

    code = OPT_SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def hyperparameters(self):
        return np.array([self.learning_rate, self.momentum, float(self.nesterov)])

    def _config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: bias correction folded into the step size, epsilon outside the square root."""

    code = OPT_ADAM

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        if not (0 <= beta_1 < 1 and 0 <= beta_2 < 1 and epsilon > 0):
            raise ValueError("Adam needs 0 <= beta_1, beta_2 < 1 and epsilon > 0")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def hyperparameters(self):
        return np.array([self.learning_rate, self.beta_1, self.beta_2, self.epsilon])

    def _config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


CLASSES = {"SGD": SGD, "Adam": Adam}


def get(identifier):
    """An Optimizer from an instance, a config, or a name ("adam", "sgd") with Keras's defaults."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return CLASSES[identifier["class_name"]](**identifier["config"])
    by_name = {name.lower(): cls for name, cls in CLASSES.items()}
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}: use 'adam', 'sgd' or an optimizers.Adam/SGD instance")
