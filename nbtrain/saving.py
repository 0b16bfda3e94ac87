"""The model-file format alone: a zip of config.json (architecture, compile settings, format version),
weights.npz (weights and optimizer state, read with allow_pickle=False), history.json and, when given,
metadata.json (anything else a caller needs to use the model, e.g. the CLI's preprocessing). Written to a
temporary file and renamed, so a failed save never leaves half a model behind. It knows plain data only:
the model turns itself into that data and back (model.py), so this module imports nothing above it."""
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from . import schema
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
    within_limits(members, f"cannot save {os.fspath(path)}", len(arrays))

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                # weights hardly compress; stored as they are, a real file never looks like a zip bomb
                archive.writestr(name, data, zipfile.ZIP_STORED if name == "weights.npz" else None)
    atomic_write(path, write)


# What a model file may hold, checked from the zip headers before anything is inflated, parsed or allocated: generous
# for real models, far below what exhausts a machine. weights.npz holds the weights and both optimizer slots (1 GiB is
# about 90M parameters). A history is about 21 bytes a logged value, so 4 MiB holds some 50,000 epochs of four values;
# metadata is the preprocessing (a category or a label is a few bytes each, and each one-hot category is an input).
MEMBER_LIMITS = {"config.json": 1 << 20, "weights.npz": 1 << 30, "history.json": 4 << 20, "metadata.json": 4 << 20}
MAX_RATIO = 100  # uncompressed / compressed size of a member above RATIO_FLOOR bytes, at every level
RATIO_FLOOR = 1 << 20
MAX_MEMBERS = 16  # entries in a model file's zip directory (nbtrain writes 3 or 4)
MAX_ARRAYS = 10_000  # arrays in weights.npz: two or four a layer, and the optimizer's three
MAX_DEPTH = 32  # nesting of [ and { in a JSON member (nbtrain writes 5 levels); json.loads recurses once per level
MAX_ITEMS = 500_000  # values in a JSON member (its commas), each a Python object once parsed
ARRAY_NAME = re.compile(r"(weight_\d{4}|optimizer_slot1|optimizer_slot2|optimizer_iterations)\.npy")


def _directory(file, limit, what):
    """Refuse a zip whose central directory lists more than `limit` entries, before zipfile parses it (it would hold
    an object per entry); the end record is read with zipfile's own reader, so both see the same directory."""
    end = zipfile._EndRecData(file)  # private, but the very reader that ZipFile runs next
    if end is None:
        raise zipfile.BadZipFile("File is not a zip file")
    entries = end[zipfile._ECD_ENTRIES_TOTAL]
    if entries > limit:
        raise ModelFileError(f"{what} lists {entries:,} entries, over the limit of {limit:,} for a model file")
    file.seek(0)


def _check_size(info, limit, what):
    """Refuse a member (`what`) whose header claims more than `limit` bytes or a compression ratio past MAX_RATIO."""
    if info.file_size > limit:
        raise ModelFileError(f"{what} would inflate to {info.file_size:,} bytes, over the limit of {limit:,} for a "
                             "model file")
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ModelFileError(f"{what} is compressed {info.file_size // max(info.compress_size, 1)}x, over the limit "
                             f"of {MAX_RATIO}x for a model file (a zip bomb?)")


def _member(archive, name, path):
    """The bytes of one member, refused (ModelFileError) when its size or compression ratio is past the limits; the
    read stops at the limit whatever the member's header claims."""
    info = archive.getinfo(name)
    limit = MEMBER_LIMITS[name]
    _check_size(info, limit, f"{path}: {name}")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"{path}: {name} inflates past the limit of {limit:,} bytes for a model file")
    return data


def within_limits(members, what, arrays=0):
    """Refuse to write a model file that read_model would refuse: a member ({name: bytes or text}) past its limits,
    too many arrays (a ModelFileError that starts with `what`)."""
    if arrays > MAX_ARRAYS:
        raise ModelFileError(f"{what}: {arrays:,} arrays, over the limit of {MAX_ARRAYS:,} for a model file")
    for name, data in members.items():
        data = data.encode() if isinstance(data, str) else data
        if len(data) > MEMBER_LIMITS[name]:
            raise ModelFileError(f"{what}: its {name} would be {len(data):,} bytes, over the limit of "
                                 f"{MEMBER_LIMITS[name]:,} for a model file")
        if name.endswith(".json"):
            _bounded(data, name, what)


def _bounded(data, name, path):
    """Refuse a JSON member nested deeper or holding more values than the limits allow, measured without parsing it
    (so that neither json.loads's recursion nor its objects can be driven past what a real file needs)."""
    depth, items = schema.measure(data)
    if depth > MAX_DEPTH:
        raise ModelFileError(f"{path}: {name} nests {depth:,} levels deep, over the limit of {MAX_DEPTH} for a model "
                             "file")
    if items > MAX_ITEMS:
        raise ModelFileError(f"{path}: {name} holds {items:,} values, over the limit of {MAX_ITEMS:,} for a model file")
    return data


def _json(data, name, path):
    """A JSON member parsed, within the limits of _bounded."""
    return json.loads(_bounded(data, name, path))


def _shapes_text(shapes, shown=6):
    """A list of shapes for a one-line message: the first few, then how many more."""
    text = ", ".join(str(tuple(shape)) for shape in shapes[:shown])
    return f"[{text}{f', ... {len(shapes) - shown} more' if len(shapes) > shown else ''}]"


def _headers(npz, path):
    """{array name: (shape, dtype, ZipInfo)} from each .npy header of weights.npz, every member's size and ratio
    checked first; nothing but the headers is read."""
    from numpy.lib import format as npy
    headers, total = {}, 0
    for info in npz.infolist():
        what = f"{path}: weights.npz member {info.filename}"
        match = ARRAY_NAME.fullmatch(info.filename)
        if match is None or match.group(1) in headers:
            raise ModelFileError(f"{what} is not an array nbtrain writes")
        _check_size(info, MEMBER_LIMITS["weights.npz"] - total, what)  # what the members before it leave
        total += info.file_size
        with npz.open(info) as member:
            version = npy.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise ModelFileError(f"{what} has an .npy header of version {version}")
            shape, _, dtype = (npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0)(member)
        if dtype.hasobject or dtype.kind not in "fiu" or dtype.itemsize > 8:
            raise ModelFileError(f"{path}: weights.npz holds {info.filename} of type {dtype}, not numbers")
        if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
            raise ModelFileError(f"{path}: weights.npz claims {info.filename} of shape {shape}, larger than the "
                                 "bytes it holds")
        headers[match.group(1)] = (shape, dtype, info)
    return headers


def _check_layout(shapes, layout, path):
    """The arrays' shapes ({name: shape} from their headers) against `layout`: (weight shapes, slot length)."""
    held = [shapes[name] for name in sorted(shapes) if name.startswith("weight_")]
    if held != [tuple(shape) for shape in layout[0]]:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model: the model needs weights of shapes "
                             f"{_shapes_text(layout[0])} but the file holds {_shapes_text(held)}")
    needs = {"optimizer_slot1": (layout[1],), "optimizer_slot2": (layout[1],), "optimizer_iterations": ()}
    for name in sorted(set(shapes) & set(needs)):
        if shapes[name] != needs[name]:
            raise ModelFileError(f"{path} holds an inconsistent nbtrain model: the optimizer state {name} has shape "
                                 f"{shapes[name]}, not the {needs[name]} the model needs")


def _arrays(data, path, layout):
    """The arrays of weights.npz: the archive's directory and every member's size, ratio and .npy header checked,
    then the shapes against what the architecture needs (`layout`, when given), before any array is read (np.load
    would allocate whatever a header claims)."""
    from numpy.lib import format as npy
    buffer = io.BytesIO(data)
    _directory(buffer, MAX_ARRAYS, f"{path}: weights.npz")
    with zipfile.ZipFile(buffer) as npz:
        headers = _headers(npz, path)
        optimizer = [name for name in headers if name.startswith("optimizer_")]
        if optimizer and len(optimizer) != 3:
            raise ModelFileError(f"{path}: weights.npz holds {', '.join(sorted(optimizer))} without the rest of the "
                                 "optimizer state")
        if layout is not None:
            _check_layout({name: header[0] for name, header in headers.items()}, layout, path)
        arrays = {}
        for name, (_, _, info) in headers.items():
            with npz.open(info) as member:
                arrays[name] = npy.read_array(member, allow_pickle=False)
        return arrays


def _read(path, layout):
    """(config, arrays, history, metadata) from a model file, or ModelFileError saying what is wrong.
    The format and version are checked before anything else is parsed, so a newer file is reported as such."""
    try:
        with open(path, "rb") as file:
            _directory(file, MAX_MEMBERS, path)
            with zipfile.ZipFile(file) as archive:
                config = _json(_member(archive, "config.json", path), "config.json", path)
                if not isinstance(config, dict) or config.get("format") != FORMAT:
                    raise ModelFileError(f"{path} is not an nbtrain model file")
                version = config.get("format_version")
                if not isinstance(version, int) or version > FORMAT_VERSION:
                    raise ModelFileError(f"{path} was written by a newer nbtrain (model format {version}; this "
                                         f"version reads up to {FORMAT_VERSION}): upgrade nbtrain")
                _check_config(config, path)
                shapes = _layout(layout, config, path)
                arrays = _arrays(_member(archive, "weights.npz", path), path, shapes)
                history = _json(_member(archive, "history.json", path), "history.json", path)
                names = archive.namelist()
                metadata = (_json(_member(archive, "metadata.json", path), "metadata.json", path)
                            if "metadata.json" in names else None)
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a directory, not a model file") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, MemoryError, RecursionError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} is not a readable nbtrain model file ({type(exc).__name__}: {exc})") from None
    return config, arrays, history, metadata


def _layout(layout, config, path):
    """What `layout` (read_model's) says the weights must be, an error in the architecture as ModelFileError."""
    if layout is None:
        return None
    try:
        return layout(config["model"], config["input_width"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None


def _check_config(config, path):
    """The architecture's outline and the input width, checked before they are used to lay out the weights."""
    if not isinstance(config.get("model"), dict) or not isinstance(config["model"].get("layers"), list):
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model (TypeError: the architecture is not a "
                             "list of layers)")
    width = config.get("input_width")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model (ValueError: input width {width!r})")


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


def read_model(path, layout=None):
    """The SavedModel in the file at `path`, or ModelFileError saying what is wrong with it: weights that are not
    finite numbers, an optimizer state that does not match them, or a history that is not lists of numbers.
    `layout(architecture, input_width)`, when given, says what the weights must be, (weight shapes, optimizer slot
    length); the file's array headers are checked against it before any array is read."""
    path = os.fspath(path)
    config, arrays, history, metadata = _read(path, layout)
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
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError("metadata is not a dict")
        return SavedModel(config["model"], config["input_width"], config.get("compile"), weights, optimizer,
                          _history(history), metadata)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent nbtrain model ({type(exc).__name__}: {exc})") from None
