"""The one rule for a monitored quantity (`val_loss`, `mae`, `val_binary_accuracy`, ...): which way it improves,
and whether a value improves on another by more than min_delta. EarlyStopping and the sweep's scoring and
leaderboard use it, so a metric's direction is read from the metric tables in one place."""
import math

from . import metrics as metrics_module

MODES = ("auto", "min", "max")


def direction(name, compiled=()):
    """"min" or "max" for a logged name: the loss goes down; a metric goes the way its objective says (the
    compiled metric objects first, under their own names, then the metric tables' names)."""
    base = name[4:] if name.startswith("val_") else name
    if base == "loss":
        return "min"
    for metric in compiled:
        if metric.name == base:
            return "max" if metric.direction == "up" else "min"
    try:
        metric = metrics_module.get(base)
    except ValueError:
        raise ValueError(f"cannot tell whether {name!r} should go up or down: pass mode='min' or mode='max'") from None
    return "max" if metric.direction == "up" else "min"


class Monitor:
    """A logged quantity, the way it improves ("min" or "max"; "auto" reads it from the name) and the smallest
    change that counts as an improvement."""

    def __init__(self, name, mode="auto", min_delta=0.0, compiled=()):
        if mode not in MODES:
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.name, self.min_delta = name, abs(min_delta)
        self.mode = direction(name, compiled) if mode == "auto" else mode

    @property
    def maximize(self):
        return self.mode == "max"

    @property
    def worst(self):
        """A value every finite one improves on."""
        return -math.inf if self.maximize else math.inf

    def is_improvement(self, value, reference):
        """Whether `value` beats `reference` by more than min_delta, in the monitor's direction."""
        if self.maximize:
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def sort_key(self, value):
        """A key that sorts better values first."""
        return -value if self.maximize else value
