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
                archive.writestr(name, data)
    atomic_write(path, write)


def _read(path):
    """(config, arrays, history, metadata) from a model file, or ModelFileError saying what is wrong.
    The format and version are checked before anything else is parsed, so a newer file is reported as such."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            if not isinstance(config, dict) or config.get("format") != FORMAT:
                raise ModelFileError(f"{path} is not an nbtrain model file")
            version = config.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ModelFileError(f"{path} was written by a newer nbtrain (model format {version}; this version "
                                     f"reads up to {FORMAT_VERSION}): upgrade nbtrain")
            with np.load(io.BytesIO(archive.read("weights.npz")), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            history = json.loads(archive.read("history.json"))
            names = archive.namelist()
            metadata = json.loads(archive.read("metadata.json")) if "metadata.json" in names else None
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a readable nbtrain model file ({type(exc).__name__}: {exc})") from None
    return config, arrays, history, metadata


def read_model(path):
    """The SavedModel in the file at `path`, or ModelFileError saying what is wrong with it."""
    path = os.fspath(path)
    config, arrays, history, metadata = _read(path)
    try:
        count = sum(1 for name in arrays if name.startswith("weight_"))
        optimizer = None
        if "optimizer_slot1" in arrays:
            optimizer = {"slots": [arrays["optimizer_slot1"], arrays["optimizer_slot2"]],
                         "iterations": int(arrays["optimizer_iterations"])}
        return SavedModel(config["model"], int(config["input_width"]), config.get("compile"),
                          [arrays[f"weight_{i:04d}"] for i in range(count)], optimizer, history, metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None
