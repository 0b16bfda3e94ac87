"""The search space of a sweep: which hyperparameters vary and how, read from a small TOML file (or a dict of
the same shape), checked before any trial starts, and sampled from a seeded generator.

    layers = [1, 2, 3]                      # an array: one of these values
    units = [16, 32, 64, 128, 256, 512]
    lr = { log_uniform = [1e-4, 1e-2] }     # a table: log_uniform, uniform or choices
    dropout = { uniform = [0.0, 0.3] }
    batchnorm = [false, true]
    optimizer = "adam"                      # a single value: fixed for every trial

A key the file leaves out keeps `nbtrain fit`'s default. Every hidden layer of a trial gets the same width."""
from dataclasses import dataclass

import numpy as np

from .. import schema
from ..errors import InputError
from ..tabular.options import COURSE, OPTIMIZERS, REGRESSION_LOSS, REGRESSION_LOSSES, FitOptions
from ..tabular.recipe import task_loss


@dataclass(frozen=True)
class Key:
    """One hyperparameter: its value type, the fit default, and the allowed values (bounds or a closed set)."""
    kind: type
    default: object
    low: float = None
    high: float = None
    allowed: tuple = ()

    def check(self, value, where):
        """`value` as this key's type, or an error naming where it came from."""
        plain = value.item() if isinstance(value, np.generic) else value
        if self.kind is float and isinstance(plain, int) and not isinstance(plain, bool):
            plain = float(plain)
        if type(plain) is not self.kind:
            raise InputError(f"{where} must be {self.kind.__name__} values, got {value!r}")
        if self.allowed and plain not in self.allowed:
            raise InputError(f"{where} must be one of {', '.join(map(repr, self.allowed))}, got {value!r}")
        if self.low is not None and not self.low <= plain <= self.high:
            raise InputError(f"{where} must be between {self.low:g} and {self.high:g}, got {value!r}")
        return plain


# each key's default is `nbtrain fit --recipe course`'s (a fit's hidden layers all have one width here)
KEYS = {
    "layers": Key(int, len(COURSE.layers), 0, 32),  # hidden layers; 0 makes a linear (or logistic) model
    "units": Key(int, COURSE.layers[0], 1, 65536),  # width of every hidden layer
    "lr": Key(float, COURSE.lr, 1e-12, 10.0),  # None: the optimizer's default (0.001 adam, 0.01 sgd)
    "batch_size": Key(int, COURSE.batch_size, 1, 2**31 - 1),
    "dropout": Key(float, FitOptions.dropout, 0.0, 0.9),
    "batchnorm": Key(bool, FitOptions.batchnorm),
    "optimizer": Key(str, FitOptions.optimizer, allowed=OPTIMIZERS),
    "loss": Key(str, REGRESSION_LOSS, allowed=REGRESSION_LOSSES),  # regression only
}
KINDS = ("choices", "uniform", "log_uniform")
# A space file is a few lines, two levels deep; tomllib recurses once per level of [ and {
SPACE_LIMIT, SPACE_DEPTH = 1 << 20, 8


@dataclass(frozen=True)
class Param:
    """How one key varies: `kind` is "fixed", "choices", "uniform" or "log_uniform"; `values` holds the fixed
    value, the choices, or the (low, high) bounds."""
    name: str
    kind: str
    values: tuple

    def sample(self, rng):
        """One value drawn with `rng`; integer keys round a drawn number to the nearest integer."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "choices":
            return self.values[int(rng.integers(len(self.values)))]
        low, high = self.values
        if self.kind == "log_uniform":
            value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        else:
            value = float(rng.uniform(low, high))
        return int(round(value)) if KEYS[self.name].kind is int else value

    def describe(self):
        if self.kind == "fixed":
            return f"{self.name} {_show(self.values[0])}"
        if self.kind == "choices":
            return f"{self.name} {'|'.join(map(_show, self.values))}"
        return f"{self.name} {self.kind.replace('_', '-')} {self.values[0]:g}..{self.values[1]:g}"


def _show(value):
    if value is None:
        return "default"
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


class Space:
    """The hyperparameters of a sweep, one Param per key of KEYS (in that order)."""

    def __init__(self, params):
        self.params = params

    @property
    def varied(self):
        """The keys that differ between trials."""
        return [p.name for p in self.params.values() if p.kind != "fixed" and len(set(p.values)) > 1]

    def sample(self, n, seed):
        """`n` trial configurations from a generator seeded with `seed`: the same seed gives the same trials."""
        rng = np.random.default_rng(seed)
        return [{name: param.sample(rng) for name, param in self.params.items()} for _ in range(n)]

    def describe(self):
        return "; ".join(p.describe() for p in self.params.values())

    def to_optuna(self):
        """Optuna distributions for the keys that vary (Optuna's TPE searches these; the rest stay fixed)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
        dists = {}
        for name in self.varied:
            param = self.params[name]
            if param.kind == "choices":
                dists[name] = CategoricalDistribution(param.values)
            else:
                integer = KEYS[name].kind is int
                dists[name] = (IntDistribution if integer else FloatDistribution)(
                    *param.values, log=param.kind == "log_uniform")
        return dists

    def fixed(self):
        """The values of the keys that do not vary."""
        return {name: p.values[0] for name, p in self.params.items() if name not in self.varied}


def default_space(task):
    """The space searched without --space: depth, width, learning rate, batch size, dropout and batch
    normalization around the course's models. A regression keeps the course's MAE loss so that val_loss
    compares like with like."""
    spec = {"layers": [1, 2, 3], "units": [16, 32, 64, 128, 256, 512], "lr": {"log_uniform": [1e-4, 1e-2]},
            "batch_size": [32, 64, 128, 256], "dropout": [0.0, 0.1, 0.2, 0.3], "batchnorm": [False, True]}
    return parse_space(spec, task)


def load_space(path, task):
    """A Space from a TOML file; any problem (syntax, a key, a value, a range) is an InputError naming the file."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise InputError("reading a space file on Python 3.10 needs tomli (pip install tomli)") from None
    try:
        with open(path, "rb") as handle:
            text = handle.read(SPACE_LIMIT + 1)
        if len(text) > SPACE_LIMIT:
            raise InputError(f"{path} is larger than {SPACE_LIMIT:,} bytes: not a space file")
        depth = schema.measure(text, schema.TOML_STRINGS)[0]
        if depth > SPACE_DEPTH:
            raise InputError(f"{path} nests {depth:,} levels deep, over the limit of {SPACE_DEPTH} for a space file")
        spec = tomllib.loads(text.decode())
    except FileNotFoundError:
        raise InputError(f"space file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read the space file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    return parse_space(spec, task, str(path))


def parse_space(spec, task, source="the space"):
    """A Space from a dict shaped like the TOML file, checked key by key against KEYS for this task."""
    if not isinstance(spec, dict):
        raise InputError(f"{source} must be a table of keys, got {type(spec).__name__}")
    unknown = [k for k in spec if k not in KEYS]
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    if task != "regression" and "loss" in spec:
        raise InputError(f"{source}: 'loss' applies to regression; {task} classification trains with "
                         f"{task_loss(task)}")
    params = {name: _param(name, spec[name], f"{source}: {name!r}") if name in spec
              else Param(name, "fixed", (key.default,)) for name, key in KEYS.items()}
    if task != "regression":
        params.pop("loss")
    return Space(params)


def _param(name, entry, where):
    key = KEYS[name]
    if isinstance(entry, list):
        entry = {"choices": entry}
    if not isinstance(entry, dict):
        return Param(name, "fixed", (key.check(entry, where),))
    if len(entry) != 1 or next(iter(entry)) not in KINDS:
        raise InputError(f"{where} must be a value, an array of choices, or a table with one of "
                         f"{', '.join(KINDS)}, got {entry!r}")
    kind, values = next(iter(entry.items()))
    if not isinstance(values, list) or not values:
        raise InputError(f"{where}: {kind} needs a non-empty array, got {values!r}")
    if kind == "choices":
        return Param(name, kind, tuple(key.check(v, where) for v in values))
    if key.kind not in (int, float):
        raise InputError(f"{where}: {kind} needs a numeric key; use choices for {key.kind.__name__} values")
    if len(values) != 2:
        raise InputError(f"{where}: {kind} needs [low, high], got {values!r}")
    low, high = (key.check(v, where) for v in values)
    if not low < high:
        raise InputError(f"{where}: {kind} needs low < high, got [{low:g}, {high:g}]")
    if kind == "log_uniform" and low <= 0:
        raise InputError(f"{where}: log_uniform needs a positive low bound, got {low:g}")
    return Param(name, kind, (low, high))
