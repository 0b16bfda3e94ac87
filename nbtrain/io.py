"""The model file: a zip of config.json (architecture, compile settings, format version),
weights.npz (weights and optimizer state, read with allow_pickle=False), history.json and, when given,
metadata.json (anything else a caller needs to use the model, e.g. the CLI's preprocessing).
Written to a temporary file and renamed, so a failed save never leaves half a model behind."""
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import InputError, ModelFileError

FORMAT = "nbtrain-model"
FORMAT_VERSION = 1


def _npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def atomic_write(path, write):
    """Call write(temporary_path) for a file in path's folder, give it the permissions a new file gets, then
    rename it to `path`: readers see the old file or the whole new one, never half of one."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".nbtrain-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def writable_folder(path):
    """Create the folder `path` (with its parents) and prove it writable before any work that will write there:
    an InputError saying so otherwise, so that nothing is computed only to be lost."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    return path


def save_model(model, path, metadata=None):
    if not model.built:
        raise ValueError("build or fit the model before saving it")
    arrays = {f"weight_{i:04d}": w for i, w in enumerate(model.get_weights())}
    opt = model.optimizer
    if opt is not None and opt.slots is not None:
        arrays["optimizer_slot1"], arrays["optimizer_slot2"] = opt.slots
        arrays["optimizer_iterations"] = np.array(opt.iterations, np.int64)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.get_config(),
              "input_width": model.plan.n_in, "compile": model.compile_config()}
    history = model.history.history if model.history is not None else {}
    members = {"config.json": json.dumps(config, indent=1), "weights.npz": _npz_bytes(arrays),
               "history.json": json.dumps(history)}
    if metadata is not None:
        members["metadata.json"] = json.dumps(metadata, indent=1)

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


def load_model(path, device="auto"):
    """Rebuild a saved model with its weights, compile settings (on `device`), optimizer state and history.
    The file's metadata (or None) is available as model.metadata."""
    from .callbacks import History
    from .model import Sequential

    config, arrays, history, metadata = _read(os.fspath(path))
    try:
        model = Sequential.from_config(config["model"])
        model.build((None, int(config["input_width"])))
        weights = [arrays[f"weight_{i:04d}"] for i in range(len(model.weights))]
        model.set_weights(weights)
        if config.get("compile"):
            compiled = config["compile"]
            model.compile(compiled["optimizer"], compiled["loss"], compiled["metrics"], device=device)
            if "optimizer_slot1" in arrays:
                slots = [arrays["optimizer_slot1"].astype(np.float32), arrays["optimizer_slot2"].astype(np.float32)]
                if any(slot.shape != (model.plan.n_params,) for slot in slots):
                    raise ValueError("optimizer state does not match the weights")
                model.optimizer.slots = slots
                model.optimizer.iterations = int(arrays["optimizer_iterations"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None
    model.history = History()
    model.history.history = {k: list(v) for k, v in history.items()}
    model.history.epoch = list(range(len(next(iter(history.values()), []))))
    model.metadata = metadata
    return model
