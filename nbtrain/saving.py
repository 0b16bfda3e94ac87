"""The model-file format alone: a zip of config.json (architecture, compile settings, format version),
weights.npz (weights and optimizer state, read with allow_pickle=False), history.json and, when given,
metadata.json (anything else a caller needs to use the model, e.g. the CLI's preprocessing). Written to a
temporary file and renamed, so a failed save never leaves half a model behind. It knows plain data only:
the model turns itself into that data and back (model.py), so this module imports nothing above it."""
import io
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import ModelFileError
from .files import atomic_write

FORMAT = "nbtrain-model"
FORMAT_VERSION = 1


def _npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@dataclass
class SavedModel:
    """What a model file holds, as plain data: the architecture (Sequential.get_config), the input width, the
    compile settings (or None), the weight arrays in Keras order, the optimizer state (slots and step count, or
    None), the history and the metadata (or None)."""
    model: dict
    input_width: int
    compile: dict
    weights: list
    optimizer: dict
    history: dict
    metadata: dict = None


def write_model(path, saved):
    """Write `saved` (a SavedModel) to `path` atomically."""
    arrays = {f"weight_{i:04d}": w for i, w in enumerate(saved.weights)}
    if saved.optimizer is not None:
        arrays["optimizer_slot1"], arrays["optimizer_slot2"] = saved.optimizer["slots"]
        arrays["optimizer_iterations"] = np.array(saved.optimizer["iterations"], np.int64)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": saved.model,
              "input_width": saved.input_width, "compile": saved.compile}
    members = {"config.json": json.dumps(config, indent=1), "weights.npz": _npz_bytes(arrays),
               "history.json": json.dumps(saved.history)}
    if saved.metadata is not None:
        members["metadata.json"] = json.dumps(saved.metadata, indent=1)

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                # weights hardly compress; stored as they are, a real file never looks like a zip bomb
                archive.writestr(name, data, zipfile.ZIP_STORED if name == "weights.npz" else None)
    atomic_write(path, write)


# What a model file may hold, checked before anything is inflated or allocated: generous for real models (weights.npz
# holds the weights and both optimizer slots, so 1 GiB is about 90M parameters), far below what exhausts a machine.
MEMBER_LIMITS = {"config.json": 16 << 20, "weights.npz": 1 << 30, "history.json": 64 << 20,
                 "metadata.json": 64 << 20}
MAX_RATIO = 100  # uncompressed / compressed size of a member above RATIO_FLOOR bytes
RATIO_FLOOR = 1 << 20


def _member(archive, name, path):
    """The bytes of one member, refused (ModelFileError) when its size or compression ratio is past the limits; the
    read stops at the limit whatever the member's header claims."""
    info = archive.getinfo(name)
    limit = MEMBER_LIMITS[name]
    if info.file_size > limit:
        raise ModelFileError(f"{path}: {name} would inflate to {info.file_size:,} bytes, over the limit of "
                             f"{limit:,} for a model file")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ModelFileError(f"{path}: {name} is compressed {info.file_size // max(info.compress_size, 1)}x, over "
                             f"the limit of {MAX_RATIO}x for a model file (a zip bomb?)")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: {name} inflates past the limit of {limit:,} bytes for a model file")
    return data


def _arrays(data, path):
    """The arrays of weights.npz, each member's .npy header read first so that no shape larger than the member's
    own bytes is ever allocated (np.load would allocate what a header claims)."""
    from numpy.lib import format as npy
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer) as npz:
        for info in npz.infolist():
            with npz.open(info) as member:
                version = npy.read_magic(member)
                shape, _, dtype = (npy.read_array_header_1_0 if version == (1, 0)
                                   else npy.read_array_header_2_0)(member)
            if dtype.hasobject or dtype.kind not in "fiub":
                raise ModelFileError(f"{path}: weights.npz holds {info.filename} of type {dtype}, not numbers")
            if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
                raise ModelFileError(f"{path}: weights.npz claims {info.filename} of shape {shape}, larger than the "
                                     "bytes it holds")
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _read(path):
    """(config, arrays, history, metadata) from a model file, or ModelFileError saying what is wrong.
    The format and version are checked before anything else is parsed, so a newer file is reported as such."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(_member(archive, "config.json", path))
            if not isinstance(config, dict) or config.get("format") != FORMAT:
                raise ModelFileError(f"{path} is not an nbtrain model file")
            version = config.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ModelFileError(f"{path} was written by a newer nbtrain (model format {version}; this version "
                                     f"reads up to {FORMAT_VERSION}): upgrade nbtrain")
            arrays = _arrays(_member(archive, "weights.npz", path), path)
            history = json.loads(_member(archive, "history.json", path))
            names = archive.namelist()
            metadata = json.loads(_member(archive, "metadata.json", path)) if "metadata.json" in names else None
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, MemoryError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a readable nbtrain model file ({type(exc).__name__}: {exc})") from None
    return config, arrays, history, metadata


def _history(history):
    """history.json as Keras's History holds it: names mapped to equally long lists of numbers (NaN allowed)."""
    if not isinstance(history, dict):
        raise TypeError("history is not a dict of lists")
    lengths = set()
    for key, values in history.items():
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in values):
            raise TypeError(f"history entry {key!r} is not a list of numbers")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise ValueError("history entries of different lengths")
    return history


def read_model(path):
    """The SavedModel in the file at `path`, or ModelFileError saying what is wrong with it: weights that are not
    finite numbers, an optimizer state that does not match them, or a history that is not lists of numbers."""
    path = os.fspath(path)
    config, arrays, history, metadata = _read(path)
    try:
        count = sum(1 for name in arrays if name.startswith("weight_"))
        weights = [arrays[f"weight_{i:04d}"] for i in range(count)]
        for i, w in enumerate(weights):
            if w.dtype.kind != "f" or not np.isfinite(w).all():
                raise ValueError(f"weight array {i} holds {'NaN or infinite values' if w.dtype.kind == 'f' else w.dtype}")
        optimizer = None
        if "optimizer_slot1" in arrays:
            optimizer = {"slots": [arrays["optimizer_slot1"], arrays["optimizer_slot2"]],
                         "iterations": int(arrays["optimizer_iterations"])}
            if optimizer["iterations"] < 0:
                raise ValueError("a negative optimizer step count")
        if not isinstance(config["model"], dict) or not isinstance(config["model"].get("layers"), list):
            raise TypeError("the architecture is not a list of layers")
        width = config["input_width"]
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"input width {width!r}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("metadata is not a dict")
        return SavedModel(config["model"], width, config.get("compile"), weights, optimizer, _history(history),
                          metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None
