"""A model's memory of the rows it was fitted on, so that `nbtrain evaluate` can say how many of the rows it scores
were training or validation rows (scores on them are optimistic). A row is known by a 64-bit hash of its encoded
inputs and target, exactly as the network saw them: the same raw row gives the same bytes whatever order the
columns come in or how the file was read. Up to SKETCH_ROWS hashes per split are kept in the model file's metadata;
a bigger split keeps its SKETCH_ROWS smallest hashes (a bottom-k sketch, a uniform sample of its rows), from which
evaluate estimates the count."""
import base64
from dataclasses import dataclass

import numpy as np

from .. import schema
from ..errors import ModelFileError

SCHEME = "splitmix64 of float32 inputs and target, v1"
SKETCH_ROWS = 1 << 17  # hashes kept per split: 1 MiB each (1.4 MB in the metadata's base64), exact up to 131,072 rows
SPLITS = ("train", "validation")
GOLDEN, MIX1, MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(h):
    """splitmix64's finalizer: every input bit moves every output bit (uint64 arrays wrap, as the hash wants)."""
    h = (h ^ (h >> np.uint64(30))) * MIX1
    h = (h ^ (h >> np.uint64(27))) * MIX2
    return h ^ (h >> np.uint64(31))


def row_hashes(x, y):
    """One uint64 per row of the float32 inputs `x` (rows, width) and targets `y` (rows, k), a column at a time
    (a big table is not copied whole)."""
    y = np.asarray(y, np.float32)
    blocks = [np.asarray(x, np.float32), y.reshape(len(x), -1) if len(x) else y.reshape(0, 0)]
    h = np.full(len(x), np.uint64(sum(block.shape[1] for block in blocks)), np.uint64)
    with np.errstate(over="ignore"):
        for block in blocks:
            for j in range(block.shape[1]):
                bits = np.ascontiguousarray(block[:, j]).view(np.uint32).astype(np.uint64)
                h = _mix(h * GOLDEN ^ bits)
    return h


def _sketch(hashes):
    """The split's record: its row count and its (up to SKETCH_ROWS smallest) distinct hashes, sorted, base64."""
    distinct = np.unique(hashes)
    return {"rows": int(len(hashes)), "distinct": int(len(distinct)),
            "hashes": base64.b64encode(distinct[:SKETCH_ROWS].astype("<u8").tobytes()).decode("ascii")}


def fingerprint(x, y, x_val, y_val):
    """The metadata entry for a fit on (x, y) validated on (x_val, y_val): plain JSON-able data."""
    return {"scheme": SCHEME, "train": _sketch(row_hashes(x, y)), "validation": _sketch(row_hashes(x_val, y_val))}


SPLIT = schema.record({"rows": schema.number(low=0, integer=True), "distinct": schema.number(low=0, integer=True),
                       "hashes": schema.text()}, required=("rows", "distinct", "hashes"))
SCHEMA = schema.record({"scheme": schema.text(), "train": SPLIT, "validation": SPLIT},
                       required=("scheme", "train", "validation"))


@dataclass
class Overlap:
    """How many scored rows were training rows and validation rows; `exact` False when a split's sketch was a
    sample (then the counts are estimates)."""
    rows: int
    train: int
    validation: int
    exact: bool

    def warning(self):
        """The line evaluate prints, or None when no scored row was seen in training."""
        if not (self.train or self.validation):
            return None
        about = "" if self.exact else "about "
        return (f"{about}{_counted(self, about)}: these scores are optimistic; hold out a test file or use "
                "fit --test-split")


def _counted(overlap, about):
    """'1,000 of these 1,200 rows were used in training and 200 for validation'."""
    head = f"of these {overlap.rows:,} rows were"
    if not overlap.train:
        return f"{overlap.validation:,} {head} used for validation (they chose the best epoch)"
    tail = f" and {about}{overlap.validation:,} for validation" if overlap.validation else ""
    return f"{overlap.train:,} {head} used in training{tail}"


def overlap(entry, x, y, where="the model file"):
    """Overlap of the rows (x, y) with the fingerprint `entry` of a model's metadata (None: no fingerprint, an
    older file; then None)."""
    if entry is None:
        return None
    try:
        schema.check(entry, SCHEMA, "fingerprint")
        if entry["scheme"] != SCHEME:
            return None  # another nbtrain's hashing: nothing to compare with
        sketches = {name: _decode(entry[name]["hashes"]) for name in SPLITS}
    except (schema.SchemaError, ValueError) as exc:
        raise ModelFileError(f"{where} has an unreadable fingerprint: {exc}") from None
    hashes = row_hashes(x, y)
    counts, exact = {}, True
    seen = np.zeros(len(hashes), bool)
    for name in SPLITS:
        kept, distinct = sketches[name], entry[name]["distinct"]
        matched = np.isin(hashes, kept) & ~seen  # a row in both splits (a duplicate row) counts as training
        seen |= matched
        if len(kept) < distinct:  # a sample: the rows hashing below its largest hash, scaled up
            exact = False
            counts[name] = min(round(int(matched.sum()) * distinct / len(kept)), len(hashes))
        else:
            counts[name] = int(matched.sum())
    return Overlap(len(hashes), counts["train"], counts["validation"], exact)


def _decode(text):
    data = base64.b64decode(text.encode("ascii"), validate=True)
    if len(data) % 8:
        raise ValueError("its hashes are not a whole number of 64-bit values")
    return np.frombuffer(data, "<u8").astype(np.uint64)
