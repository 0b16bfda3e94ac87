"""Learning-rate schedules with Keras's names, defaults and formulas (optimizers.schedules.*): a learning rate that
moves with every step inside the compiled epoch. Each is plain numbers for the engine (`encode`, read by
elementwise.learning_rate, the one implementation) and is callable with a step for Python."""
import numpy as np

from .engine.plan import SCHEDULE_CONSTANT, SCHEDULE_COSINE, SCHEDULE_EXPONENTIAL, SCHEDULE_PIECEWISE


class LearningRateSchedule:
    """Base class: a learning rate as a function of the optimizer's step count (0 for the first update)."""

    def encode(self):
        """The float64 vector the engine reads: [code, parameters...]."""
        raise NotImplementedError

    def __call__(self, step):
        from .engine.elementwise import learning_rate
        schedule = self.encode()
        return float(learning_rate(int(schedule[0]), schedule, 0.0, int(step)))

    def get_config(self):
        return {"class_name": type(self).__name__, "config": self._config()}


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored when staircase."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        if decay_steps <= 0 or initial_learning_rate <= 0 or decay_rate <= 0:
            raise ValueError("ExponentialDecay needs positive initial_learning_rate, decay_steps and decay_rate")
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), float(decay_steps)
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def encode(self):
        return np.array([SCHEDULE_EXPONENTIAL, self.initial_learning_rate, self.decay_steps, self.decay_rate,
                         float(self.staircase)])

    def _config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from initial_learning_rate (or, after warmup_steps of linear warm-up, from warmup_target) to
    alpha times it over decay_steps, then constant."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        if decay_steps <= 0 or warmup_steps < 0:
            raise ValueError("CosineDecay needs decay_steps > 0 and warmup_steps >= 0")
        self.initial_learning_rate, self.decay_steps, self.alpha = (float(initial_learning_rate), float(decay_steps),
                                                                    float(alpha))
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps, self.name = float(warmup_steps), name

    def encode(self):
        target = np.nan if self.warmup_target is None else self.warmup_target
        return np.array([SCHEDULE_COSINE, self.initial_learning_rate, self.decay_steps, self.alpha, target,
                         self.warmup_steps])

    def _config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to boundaries[0] (inclusive), values[1] up to boundaries[1], ..., values[-1] after."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(values) != len(boundaries) + 1 or list(boundaries) != sorted(boundaries):
            raise ValueError("PiecewiseConstantDecay needs increasing boundaries and one more value than boundaries")
        self.boundaries, self.values, self.name = [float(b) for b in boundaries], [float(v) for v in values], name

    def encode(self):
        return np.array([SCHEDULE_PIECEWISE, len(self.boundaries), *self.boundaries, *self.values])

    def _config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, CosineDecay, PiecewiseConstantDecay)}
CONSTANT = np.array([SCHEDULE_CONSTANT], np.float64)  # the engine's vector for a plain learning rate


def deserialize(config):
    return CLASSES[config["class_name"]](**config["config"])
