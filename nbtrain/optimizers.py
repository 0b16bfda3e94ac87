"""Optimizers with Keras 3's names, defaults and update rules, parameters of one core: every optimizer is a code,
a vector of hyperparameters [learning_rate, weight_decay, its own] and a learning-rate schedule for the engine's one
optimizer_update. State (step count and two slot vectors the size of the flat parameter vector) lives here."""
import numpy as np

from . import schedules
from .engine.plan import HYPERPARAMETERS, OPT_ADAM, OPT_RMSPROP, OPT_SGD
from .errors import missing, unknown


class Optimizer:
    """learning_rate: a number or an optimizers.schedules.LearningRateSchedule (then it moves with every step);
    weight_decay (Keras 3's, decoupled): each step first takes theta -= theta * weight_decay * learning_rate."""

    code = None

    def __init__(self, learning_rate, weight_decay=None):
        if isinstance(learning_rate, dict):  # a saved schedule
            learning_rate = schedules.deserialize(learning_rate)
        if not isinstance(learning_rate, schedules.LearningRateSchedule):
            learning_rate = _positive(learning_rate, "learning_rate")
        if weight_decay is not None and not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a non-negative number or None, got {weight_decay!r}")
        self._learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.iterations = 0
        self.slots = None

    @property
    def learning_rate(self):
        """The learning rate of the next step (a schedule evaluated at the step count), as Keras reports it."""
        rate = self._learning_rate
        return rate(self.iterations) if isinstance(rate, schedules.LearningRateSchedule) else rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            raise TypeError("this optimizer's learning rate is a schedule; it cannot be set (as in Keras)")
        self._learning_rate = _positive(value, "learning_rate")

    def build(self, n_params, dtype=np.float32):
        """Allocate the slot vectors (once; a rebuilt optimizer of another size starts over)."""
        if self.slots is None or self.slots[0].size != n_params:
            self.slots = [np.zeros(n_params, dtype) for _ in range(2)]
            self.iterations = 0

    def hyperparameters(self):
        """[learning_rate (0 under a schedule), weight_decay, the optimizer's own in Keras order], float64."""
        rate = self._learning_rate
        values = [0.0 if isinstance(rate, schedules.LearningRateSchedule) else rate, self.weight_decay or 0.0,
                  *self._own()]
        return np.array(values + [0.0] * (HYPERPARAMETERS - len(values)))

    def schedule(self):
        rate = self._learning_rate
        return rate.encode() if isinstance(rate, schedules.LearningRateSchedule) else schedules.CONSTANT

    def engine_state(self):
        """What the engine session takes: (code, hyperparameters, slots, schedule)."""
        return self.code, self.hyperparameters(), self.slots, self.schedule()

    def get_config(self):
        rate = self._learning_rate
        return {"class_name": type(self).__name__,
                "config": {"learning_rate": rate.get_config() if isinstance(rate, schedules.LearningRateSchedule)
                           else rate, "weight_decay": self.weight_decay, **self._config()}}


def _positive(value, what):
    if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return float(value)


class SGD(Optimizer):
    """theta -= lr g; with momentum: v = momentum v - lr g, theta += v (or the Nesterov form)."""

    code = OPT_SGD

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None):
        super().__init__(learning_rate, weight_decay)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _own(self):
        return [self.momentum, float(self.nesterov)]

    def _config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: bias correction folded into the step size, epsilon outside the square root."""

    code = OPT_ADAM

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None):
        super().__init__(learning_rate, weight_decay)
        if not (0 <= beta_1 < 1 and 0 <= beta_2 < 1 and epsilon > 0):
            raise ValueError("Adam needs 0 <= beta_1, beta_2 < 1 and epsilon > 0")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _own(self):
        return [self.beta_1, self.beta_2, self.epsilon]

    def _config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with Keras's default decoupled weight decay of 0.004."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay)


class RMSprop(Optimizer):
    """Keras RMSprop: a moving mean of squared gradients (rho), epsilon inside the square root, optional momentum
    or centering (one of them: the engine keeps two slots per parameter)."""

    code = OPT_RMSPROP

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None):
        super().__init__(learning_rate, weight_decay)
        if not (0 <= rho < 1 and 0 <= momentum < 1 and epsilon > 0):
            raise ValueError("RMSprop needs 0 <= rho, momentum < 1 and epsilon > 0")
        if centered and momentum:
            raise ValueError("RMSprop with both momentum and centered=True needs three slots; nbtrain keeps two: "
                             "use one of them")
        self.rho, self.momentum, self.epsilon, self.centered = float(rho), float(momentum), float(epsilon), bool(centered)

    def _own(self):
        return [self.rho, self.momentum, self.epsilon, float(self.centered)]

    def _config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}


CLASSES = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop}


def get(identifier):
    """An Optimizer from an instance, a config, or a name ("adam", "adamw", "sgd", "rmsprop") with Keras's
    defaults."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return CLASSES[identifier["class_name"]](**identifier["config"])
    by_name = {name.lower(): cls for name, cls in CLASSES.items()}
    if isinstance(identifier, str) and identifier.lower() in by_name:
        return by_name[identifier.lower()]()
    raise ValueError(unknown("optimizer", identifier, list(by_name)) + " (or an optimizers instance)")


def __getattr__(name):
    """A Keras optimizer class nbtrain lacks: one line naming those it has."""
    raise missing(__name__, "optimizer", name, list(CLASSES))
