"""The fitted preprocessing of a table: the target and its task, each feature column's imputation, scaling
or one-hot encoding, and the train/validation split, fitted on the training rows and kept as plain data
(to_dict/from_dict) so that the model file can carry it and `predict` can apply it again."""
import json
import shlex
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import schema
from ..arrays import as_matrix
from ..errors import InputError, ModelFileError
from ..saving import within_limits
from ..schema import SchemaError, check
from .options import SCALINGS, TASKS
from .reading import column_list, unknown_column

PREPROCESSING_FORMAT = 3  # 2: classes' training rows (Target.counts); multiclass. 3: smooth clipping, target range
READABLE_FORMATS = (1, 2, 3)
CLIP = 3.0  # robust scaling's smooth clipping, x / sqrt(1 + (x / CLIP)^2): inputs within (-3, 3), as RealMLP's
QUARTILES = (0.25, 0.75)


def _is_numeric(series):
    import pandas as pd
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _plain(value):
    """A NumPy scalar as the Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value


def _label_key(value):
    """Labels compare by value: 1, 1.0 and True are one label; strings compare as text."""
    value = _plain(value)
    return float(value) if isinstance(value, (int, float)) else str(value)


def _as_text(series):
    """Category values as strings, missing values kept missing; integral numbers lose their '.0' so that a
    column read as floats (because of a gap) matches the same column read as integers."""
    import pandas as pd
    return series.map(lambda value: None if pd.isna(value) else label_text(value)).astype(object)


def label_text(value):
    """A category or a class label as text: integral numbers without '.0' (5, not 5.0)."""
    value = _plain(value)
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _numbers(series, name, what):
    """A numeric column as float64 with missing and infinite values as NaN; non-numbers are an error."""
    import pandas as pd
    if _is_numeric(series):
        values = series.astype("float64").to_numpy()
    else:
        converted = pd.to_numeric(series, errors="coerce")
        bad = series.notna() & converted.isna()
        if bad.any():
            raise InputError(f"column {name!r} in {what} must be numeric but holds {series[bad].iloc[0]!r} "
                             f"({int(bad.sum())} such values)")
        values = converted.astype("float64").to_numpy()
    return np.where(np.isfinite(values), values, np.nan)


# ---------------------------------------------------------------------------------------------------------------
# The fitted preprocessing: plain data, saved in the model file's metadata and re-applied at predict time.

def quantile(kth, n, q):
    """NumPy's default (linear) quantile q of n numbers, from kth(k), the k-th smallest (from 0)."""
    position = q * (n - 1)
    low = int(np.floor(position))
    first = kth(low)
    return first if position == low else first + (position - low) * (kth(low + 1) - first)


def quantile_ranks(n, qs):
    """The k of kth(k) that quantile(kth, n, q) reads for each q of qs."""
    return sorted({k for q in qs for k in (int(np.floor(q * (n - 1))), int(np.ceil(q * (n - 1))))})


def robust_scale(kth, n):
    """(center, spread) of robust scaling from the order statistics kth(k) of n numbers: the median and the
    interquartile range; half the range where the quartiles are equal (a column mostly of one value), as RealMLP's
    RobustScaleSmoothClipTransform; 1 for a constant column."""
    spread = quantile(kth, n, QUARTILES[1]) - quantile(kth, n, QUARTILES[0])
    if spread <= 0:
        spread = (kth(n - 1) - kth(0)) / 2
    return quantile(kth, n, 0.5), spread if spread > 0 else 1.0


def robust_ranks(n):
    """The order statistics robust_scale reads."""
    return sorted({0, n - 1, *quantile_ranks(n, (QUARTILES[0], 0.5, QUARTILES[1]))})


@dataclass
class Feature:
    """One input column. Numeric: missing -> fill (training median), then (x - center) / scale, then with `clip`
    (robust scaling) smoothly clipped to (-clip, clip) by x / sqrt(1 + (x / clip)^2). Categorical: missing -> fill
    (most frequent training value), then one-hot over `categories`; unseen values -> zeros."""
    name: str
    kind: str
    fill: object
    center: float = 0.0
    scale: float = 1.0
    categories: list = field(default_factory=list)
    clip: float = 0.0

    @property
    def outputs(self):
        """Names of the model inputs this column becomes."""
        return [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]

    @classmethod
    def fit(cls, series, name, scaling):
        """Numeric columns get their fill value and scaling, text columns their categories, from the training rows."""
        if not _is_numeric(series):
            text = _as_text(series).dropna()
            if text.empty:
                raise InputError(f"column {name!r} has no values in the training rows; drop it")
            counts = text.value_counts()
            fill = min(c for c, n in counts.items() if n == counts.max())
            return cls(name, "categorical", fill, categories=sorted(counts.index))
        values = _numbers(series, name, "the training rows")
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise InputError(f"column {name!r} has no values in the training rows; drop it")
        if scaling == "robust":
            values.sort()
            center, spread = robust_scale(values.__getitem__, len(values))
        else:
            center, spread = {"standard": (values.mean(), values.std()),
                              "minmax": (values.min(), values.max() - values.min()),
                              "none": (0.0, 1.0)}[scaling]
        return cls(name, "numeric", float(np.median(values)), float(center), float(spread) if spread > 0 else 1.0,
                   clip=CLIP if scaling == "robust" else 0.0)

    def scaled(self, values):
        """Filled float64 values of this numeric column as model inputs (float64): scaled, and clipped if asked."""
        x = (values - self.center) / self.scale
        return x / np.hypot(1.0, x / self.clip) if self.clip else x

    def transform(self, series, what):
        """This column's block of model inputs, float64 (rows, len(outputs)). Numbers are read at float32's
        precision first, as fit's streamed reading stores them, so that a row gives the same inputs (and
        fingerprint) at fit, predict and evaluate."""
        if self.kind == "numeric":
            with np.errstate(over="ignore"):
                values = _numbers(series, self.name, what).astype(np.float32)
            values = np.where(np.isfinite(values), values, np.nan).astype(np.float64)
            return self.scaled(np.where(np.isnan(values), self.fill, values))[:, None]
        import pandas as pd
        codes = pd.Index(self.categories).get_indexer(_as_text(series).fillna(self.fill))
        block = np.zeros((len(series), len(self.categories)))
        known = np.flatnonzero(codes >= 0)
        block[known, codes[known]] = 1.0
        return block


@dataclass
class Target:
    """The column to predict. Binary: labels[0] -> 0, labels[1] -> 1; multiclass: labels[i] -> class i (labels in
    sorted order), with `counts` the training rows of each. Regression: trained on (y - center) / scale with
    training-split statistics; predictions are mapped back to the original units and clamped to the training
    rows' range [low, high] (None in model files from before it was kept: not clamped)."""
    name: str
    task: str
    labels: list = None
    center: float = 0.0
    scale: float = 1.0
    counts: list = None
    low: float = None
    high: float = None

    @classmethod
    def infer(cls, series, name, task="auto"):
        """The task from the target's values: two distinct values -> binary; text with more -> multiclass;
        numbers with more -> regression (an integer score stays one unless task="multiclass" says otherwise)."""
        values = series.dropna()
        return cls.from_distinct(values.unique(), len(values), _is_numeric(series), name, task)

    @classmethod
    def from_distinct(cls, distinct, count, numeric, name, task="auto"):
        """infer's decision from the target's distinct values, its count of values and whether it is numeric (what
        a streamed read summarizes)."""
        keys = sorted({_label_key(v): _plain(v) for v in distinct}.items(),
                      key=lambda item: (isinstance(item[0], str), item[0]))
        examples = ", ".join(repr(v) for _, v in keys[:5]) + (", ..." if len(keys) > 5 else "")
        if not keys:
            raise InputError(f"target column {name!r} has no values")
        if len(keys) == 1:
            raise InputError(f"target column {name!r} has only one distinct value ({examples}): "
                             "there is nothing to learn")
        if task == "auto":
            task = "binary" if len(keys) == 2 else "regression" if numeric else "multiclass"
        if task == "binary" and len(keys) != 2:
            raise InputError(f"binary classification needs a target with two distinct values; {name!r} has "
                             f"{len(keys)} ({examples}): use --task multiclass")
        if task == "multiclass" and len(keys) > count // 2:
            raise InputError(f"target column {name!r} has {len(keys)} distinct values in {count} rows ("
                             f"{examples}): too few rows per class to learn classes from")
        if task != "regression":
            return cls(name, task, [v for _, v in keys])
        if not numeric:
            raise InputError(f"target column {name!r} is not numeric ({examples}), so it cannot be a regression "
                             "target; leave out --task regression to classify it")
        return cls(name, task)

    @property
    def outputs(self):
        """The width of the network's output: one probability per class for multiclass, else one number."""
        return len(self.labels) if self.task == "multiclass" else 1

    def fit(self, series):
        """From the training rows: a regression target's mean, standard deviation and range, a classifier's rows
        per class."""
        if self.task == "regression":
            values = _numbers(series, self.name, "the training rows")
            self.center, self.scale = float(values.mean()), float(values.std()) or 1.0
            self.low, self.high = float(values.min()), float(values.max())
        else:
            self.counts = np.bincount(self.encode(series, "the training rows")[:, 0].astype(int),
                                      minlength=len(self.labels)).tolist()

    def encode(self, series, what):
        """Training targets, float32 (rows, 1): class indices (0/1 for binary), or the standardized value."""
        if self.task == "regression":
            y = (_numbers(series, self.name, what) - self.center) / self.scale
        else:
            codes = {_label_key(label): i for i, label in enumerate(self.labels)}
            y = series.map(lambda v: codes.get(_label_key(v), -1)).to_numpy(dtype=np.float64)
            unknown = series[y < 0]
            if len(unknown):
                raise InputError(f"target column {self.name!r} in {what} has values the model was not trained on: "
                                 f"{_plain(unknown.iloc[0])!r} ({len(unknown)} rows; its labels are "
                                 f"{', '.join(repr(v) for v in self.labels)})")
        return y.astype(np.float32)[:, None]

    def probabilities(self, outputs):
        """A classifier's outputs as one probability per class, float64 (rows, len(labels))."""
        out = np.asarray(outputs, np.float64)
        return np.column_stack([1.0 - out[:, 0], out[:, 0]]) if self.task == "binary" else out

    def decode(self, outputs):
        """Model outputs as a table in the target's terms: the value; or the label, then the probability of the
        label coded 1 (binary) or a probability_<label> column per class (multiclass)."""
        import pandas as pd
        if self.task == "regression":
            value = np.asarray(outputs, np.float64)[:, 0] * self.scale + self.center
            return pd.DataFrame({"prediction": value if self.low is None else np.clip(value, self.low, self.high)})
        chances = self.probabilities(outputs)
        table = pd.DataFrame({"prediction": np.array(self.labels, dtype=object)[chances.argmax(axis=1)]})
        if self.task == "binary":
            return table.assign(probability=chances[:, 1])
        return table.join(pd.DataFrame(chances, columns=[f"probability_{label_text(v)}" for v in self.labels]))

    def mapping(self, counts=False):
        """The classes as printed: "'bad' -> 0, 'good' -> 1", with each one's training rows when asked."""
        rows = [f" ({n} training rows)" if i == 0 else f" ({n})" for i, n in enumerate(self.counts)] \
            if counts and self.counts else [""] * len(self.labels)
        return ", ".join(f"{label!r} -> {i}{n}" for i, (label, n) in enumerate(zip(self.labels, rows)))


@dataclass
class Preprocessing:
    """Everything needed to turn a table into model inputs again: the target, each feature column in order,
    the scaling used and the columns dropped on purpose. to_dict() is JSON-able."""
    target: Target
    features: list
    scaling: str = "standard"
    dropped: list = field(default_factory=list)

    @property
    def input_names(self):
        """The model's inputs in column order: a numeric column's name, or 'column=category' per one-hot input."""
        return [name for feature in self.features for name in feature.outputs]

    @classmethod
    def fit(cls, train, target, features, scaling="standard", dropped=()):
        """Fit imputation, scaling and encodings on the training rows only."""
        if scaling not in SCALINGS:
            raise InputError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
        target.fit(train[target.name])
        return cls(target, [Feature.fit(train[name], name, scaling) for name in features], scaling, list(dropped))

    def transform(self, frame, what="the data"):
        """Model inputs, float32 (rows, len(input_names)). Columns are found by name; others are ignored."""
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise InputError(f"{what} lacks the feature column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)} (it has {column_list(frame)})")
        blocks = [feature.transform(frame[feature.name], what) for feature in self.features]
        return as_matrix(np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0)), what)

    def to_dict(self):
        return {"format": PREPROCESSING_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data):
        """The preprocessing a model file holds, every field checked by type and range (SCHEMA) and against the
        others (a numeric column's number fill, a classifier's labels and counts), or ModelFileError."""
        try:
            version = data.get("format") if isinstance(data, dict) else None
            if version not in READABLE_FORMATS:
                raise SchemaError(f"preprocessing format {version!r} (this nbtrain reads {READABLE_FORMATS[0]} to "
                                  f"{READABLE_FORMATS[-1]})")
            check(data, SCHEMA, "preprocessing")
            target = Target(**data["target"])
            features = [Feature(**f) for f in data["features"]]
            _consistent(target, features)
        except SchemaError as exc:
            raise ModelFileError(f"the model file's preprocessing is unreadable: {exc}") from None
        return cls(target, features, data["scaling"], list(data["dropped"]))


LABEL = schema.either(schema.text(), schema.number(), schema.boolean(), wanted="a label (text or a number)")
SCALE = schema.number(above=0)
FEATURE = schema.record({"name": schema.text(), "kind": schema.text(("numeric", "categorical")),
                         "fill": schema.either(schema.number(), schema.text(), wanted="a number or text"),
                         "center": schema.number(), "scale": SCALE, "categories": schema.list_of(schema.text()),
                         "clip": schema.number(low=0)},
                        required=("name", "kind", "fill"))
TARGET = schema.record({"name": schema.text(), "task": schema.text(TASKS[1:]),
                        "labels": schema.optional(schema.list_of(LABEL)), "center": schema.number(), "scale": SCALE,
                        "counts": schema.optional(schema.list_of(schema.number(low=0, integer=True))),
                        "low": schema.optional(schema.number()), "high": schema.optional(schema.number())},
                       required=("name", "task"))
SCHEMA = schema.record({"format": schema.number(integer=True), "target": TARGET, "features": schema.list_of(FEATURE), "scaling": schema.text(SCALINGS),
                        "dropped": schema.list_of(schema.text())})


def _consistent(target, features):
    """What the schema cannot say field by field: a classifier has two (binary) or more labels and a count per
    label; a numeric column fills with a number, a categorical one with text and has categories."""
    if target.task != "regression":
        wanted = 2 if target.task == "binary" else None
        labels = target.labels or []
        if len(labels) < 2 or (wanted and len(labels) != wanted):
            raise SchemaError(f"preprocessing.target.labels must be {'two' if wanted else 'two or more'} labels "
                              f"for {target.task} classification, got {labels!r}")
        if target.counts is not None and len(target.counts) != len(labels):
            raise SchemaError("preprocessing.target.counts must have one count per label")
    elif (target.low is None) != (target.high is None) or (target.low is not None and target.low > target.high):
        raise SchemaError(f"preprocessing.target's range must be two numbers, low <= high, got {target.low!r} and "
                          f"{target.high!r}")
    for i, f in enumerate(features):
        numeric = f.kind == "numeric"
        if isinstance(f.fill, str) == numeric or (not numeric and not f.categories):
            raise SchemaError(f"preprocessing.features[{i}] ({f.name!r}) is {f.kind} but has "
                              + (f"the fill {f.fill!r}" if isinstance(f.fill, str) == numeric else "no categories"))


# ---------------------------------------------------------------------------------------------------------------
# From a labelled table to training arrays.

@dataclass
class Prepared:
    """Training and validation arrays with the preprocessing fitted on the training rows, and notes and warnings
    (likely mistakes, such as a row ID left in) for the user; `test`: fit --test-split's held-out rows as
    (x, y, a regression target's values or None), or None."""
    preprocessing: Preprocessing
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    notes: list
    warnings: list = field(default_factory=list)
    test: tuple = None


ROW_ID_ROWS = 20  # fewer rows than this say too little to call a column a row ID


def looks_like_row_id(series):
    """Whether a column holds one value per row, all different, integers or text: a row ID, not a feature."""
    import pandas as pd
    kind = pd.api.types.is_integer_dtype(series) or not _is_numeric(series)
    return bool(kind and len(series) >= ROW_ID_ROWS and series.notna().all() and series.nunique() == len(series))


def split_rows(n, val_fraction, seed):
    """(train, validation) row positions: a seeded shuffle, whose first `val_fraction` is held out."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    if n - n_val < 1:
        raise InputError(f"{n} labelled rows are too few to hold out a validation split")
    return order[n_val:], order[:n_val]


def labelled_rows(frame, target, what, notes):
    """The rows that have a target value; how many were left out is added to `notes`."""
    if target not in frame.columns:
        raise unknown_column("target column", target, frame, what)
    keep = frame[target].notna() & ~frame[target].isin([np.inf, -np.inf])
    if not keep.any():
        raise InputError(f"target column {target!r} in {what} has no values")
    if not keep.all():
        notes.append(f"{int((~keep).sum())} rows of {what} have no {target!r} value and were left out")
    return frame[keep]


def advice(pre, row_ids, labelled, train):
    """(notes, warnings) on likely mistakes: the `row_ids` columns (a different value in each of the `labelled`
    rows) trained on as features, a class with no training rows, and text columns with very many categories in
    the `train` training rows; an InputError, before training, for a preprocessing too large for a model file."""
    warnings = [f"column {c!r} looks like a row ID (a different value in each of the {labelled} rows) and is "
                f"trained on as a feature; leave it out with --drop {shlex.quote(c)}" for c in row_ids]
    spec = pre.target
    untrained = [label for label, n in zip(spec.labels or (), spec.counts or ()) if n == 0]
    if untrained:
        warnings.append(f"class {label_text(untrained[0])!r} of {spec.name!r}"
                        f"{f' (and {len(untrained) - 1} more)' if len(untrained) > 1 else ''} has no training rows "
                        "(its rows all landed in validation): the model's output for it is trained on no rows; "
                        "give it more rows or lower --val-split")
    notes = [f"column {feature.name!r} has {len(feature.categories)} distinct values in {train} training rows: if "
             "it is an identifier, drop it" for feature in pre.features
             if feature.name not in row_ids and len(feature.categories) > max(50, train // 2)]
    fits_a_model_file(pre)
    return notes, warnings


def fits_a_model_file(pre):
    """Refuse, before training, a preprocessing too large for the model file's metadata (categories by the hundred
    thousand), naming the column with the most categories (streaming.prepare_file asks before it allocates the
    one-hot columns too)."""
    try:
        within_limits({"metadata.json": json.dumps({"preprocessing": pre.to_dict()}, indent=1)}, "the preprocessing")
    except ModelFileError as exc:
        widest = max(pre.features, key=lambda f: len(f.categories))
        raise InputError(f"{exc}: column {widest.name!r} has {len(widest.categories):,} distinct values; leave it out "
                         f"with --drop {shlex.quote(widest.name)}") from None


def prepare(frame, target, task="auto", scaling="standard", drop=(), val_split=0.2, seed=0, validation=None):
    """Infer the task, split (or take `validation`), fit the preprocessing on the training rows and encode both.
    Every problem with the data is an InputError with a one-line message."""
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    notes = []
    for name in drop:
        if name not in frame.columns:
            raise unknown_column("column to drop", name, frame, "the data")
    if target in drop:
        raise InputError(f"the target column {target!r} cannot also be dropped")
    labelled = labelled_rows(frame, target, "the data", notes)
    spec = Target.infer(frame[target], target, task)
    features = [c for c in frame.columns if c != target and c not in drop]
    if not features:
        raise InputError(f"there are no feature columns: the data has only {column_list(frame)}")
    empty = [c for c in features if frame[c].isna().all()]
    if empty:
        raise InputError(f"column {empty[0]!r} has no values (all missing); drop it")
    if validation is None:
        train_rows, val_rows = split_rows(len(labelled), val_split, seed)
        train, val = labelled.iloc[train_rows], labelled.iloc[val_rows]
    else:
        train = labelled.iloc[np.random.default_rng(seed).permutation(len(labelled))]
        val = labelled_rows(validation, target, "the validation data", notes)
    pre = Preprocessing.fit(train, spec, features, scaling, drop)
    more_notes, warnings = advice(pre, [c for c in features if looks_like_row_id(labelled[c])], len(labelled),
                                  len(train))
    notes += more_notes
    x_val = pre.transform(val, "the validation data") if len(val) else np.zeros((0, len(pre.input_names)), np.float32)
    return Prepared(pre, pre.transform(train, "the training data"), spec.encode(train[target], "the training data"),
                    x_val, spec.encode(val[target], "the validation data"), notes, warnings)
