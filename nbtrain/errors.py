"""Exceptions for bad input: each carries a one-line message fit to show a user as it is; and the one wording of
a name nbtrain lacks (a Keras activation, loss, metric, optimizer or layer), with a "did you mean" where one is
close."""
import difflib


class InputError(ValueError):
    """Data that cannot be trained on or scored: wrong shape, non-numeric, NaN, missing columns."""


class ModelFileError(ValueError):
    """A model file that cannot be read: missing, corrupt, not an nbtrain model, or from a newer version."""


class DeviceError(RuntimeError):
    """A device that was asked for cannot be used here (no GPU, no driver, or the GPU extra missing)."""


class DistributedError(RuntimeError):
    """A distributed fit cannot go on: MPI is missing, or the ranks disagree (data, weights, an error on one rank)."""


def unknown(what, name, choices):
    """'unknown loss 'maa' (did you mean 'mae'?): nbtrain has ...': one line naming what nbtrain supports."""
    close = difflib.get_close_matches(str(name).lower(), [c.lower() for c in choices], n=1, cutoff=0.75)
    hint = ""
    if close:
        hint = f" (did you mean {next(c for c in choices if c.lower() == close[0])!r}?)"
    return f"unknown {what} {name!r}{hint}: nbtrain has {', '.join(sorted(choices))}"


def missing(module, what, name, choices):
    """The AttributeError of an API module's __getattr__ for a Keras name it lacks (layers.Conv1D,
    optimizers.Nadam): one line naming what the module has."""
    if name.startswith("__"):
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    return AttributeError(unknown(what, name, choices).replace(f"unknown {what}", f"{module} has no", 1))
