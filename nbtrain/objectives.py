"""The one objective class that losses and metrics are name tables over: an engine code, a parameter, a name
(the history key) and the direction in which it improves; and the lookup of an objective by instance, config or
Keras name, which nbtrain.losses and nbtrain.metrics share."""
from .engine.plan import columns
from .errors import unknown


class Objective:
    """Something the engine computes per element or per row and reports as a (weighted) mean, or counts: a code and
    a parameter for its kernels, the name it is logged under, and whether lower ("down") or higher ("up") is
    better."""

    code = None
    param = 0.0
    direction = "down"
    default_name = None

    def __init__(self, name=None):
        self.name = name or self.default_name

    def value(self, sums, weight, k):
        """This objective's figure from its engine sums over rows weighing `weight` in all (the row count for a
        loss, the weights' sum for a metric): the sum per weight and per column of a row's value."""
        return float(sums[0]) / (weight * columns(self.code, k))

    def resolved(self, n_out, k):
        """The objective the engine computes for a model of n_out outputs and targets of k columns (itself, except
        for names that Keras resolves from the shapes)."""
        return self

    def _config(self):
        """The constructor arguments beyond the name, as plain data."""
        return {}

    def get_config(self):
        return {"class_name": type(self).__name__, "config": {"name": self.name, **self._config()}}


def lookup(identifier, base, classes, aliases, what, keep_name=False):
    """An instance of `base` from an instance, a get_config() dict, or a name in `aliases` (case-insensitive);
    with keep_name, a name given as a string is kept as the objective's name (metrics=["mae"] logs "mae")."""
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        return classes[identifier["class_name"]](**identifier["config"])
    if isinstance(identifier, str) and identifier.lower() in aliases:
        cls = aliases[identifier.lower()]
        return cls(name=identifier) if keep_name else cls()
    raise ValueError(unknown(what, identifier, list(aliases)))
