"""Exceptions for bad input: each carries a one-line message fit to show a user as it is."""


class InputError(ValueError):
    """Data that cannot be trained on or scored: wrong shape, non-numeric, NaN, missing columns."""


class ModelFileError(ValueError):
    """A model file that cannot be read: missing, corrupt, not an nbtrain model, or from a newer version."""


class DeviceError(RuntimeError):
    """A device that was asked for cannot be used here (no GPU, no driver, or the GPU extra missing)."""


class DistributedError(RuntimeError):
    """A distributed fit cannot go on: MPI is missing, or the ranks disagree (data, weights, an error on one rank)."""
