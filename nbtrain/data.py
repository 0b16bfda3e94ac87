"""Turn what users pass (NumPy arrays, lists, pandas DataFrames and Series, CSV and Parquet files) into the
engine's float32 matrices, with a clear one-line error for anything that cannot be trained on. For tables:
reading, target and task inference, imputation, scaling, one-hot encoding and the train/validation split,
fitted on the training rows and kept as plain data so that it can be saved and applied again."""
import csv
import io
import itertools
import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError, ModelFileError


def _columns(data):
    return [str(c) for c in data.columns] if hasattr(data, "columns") else None


def as_matrix(data, what="x"):
    """A C-contiguous float32 (rows, columns) array; 1-D input is one column."""
    columns = _columns(data)
    if columns is not None:
        from pandas.api.types import is_bool_dtype, is_numeric_dtype
        bad = [f"{c!r} ({dt})" for c, dt in zip(columns, data.dtypes)
               if not (is_numeric_dtype(dt) or is_bool_dtype(dt))]
        if bad:
            raise InputError(f"{what} has non-numeric columns: {', '.join(bad)}; encode or drop them first")
        data = data.to_numpy(dtype=np.float32, na_value=np.nan)
    elif hasattr(data, "to_numpy"):
        data = data.to_numpy()
    try:
        array = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not numeric: {exc}") from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InputError(f"{what} must be a table (rows x columns), got an array of shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        name = f"column {columns[col]!r}" if columns else f"column {col}"
        kind = "NaN" if np.isnan(array[row, col]) else "an infinite value"
        raise InputError(f"{what} has {kind} at row {row}, {name} ({int(bad.sum())} such cells); "
                         "impute or drop them first")
    # one array type for the compiled kernels: read-only input (pandas' copy-on-write) would compile anew
    return np.require(array, np.float32, ["C_CONTIGUOUS", "ALIGNED", "WRITEABLE"])


def as_pair(x, y, what="x"):
    """Features and targets with the same number of rows."""
    X = as_matrix(x, what)
    Y = as_matrix(y, "y" if what == "x" else f"{what} targets")
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"{what} has {X.shape[0]} rows but its targets have {Y.shape[0]}")
    return X, Y


# ---------------------------------------------------------------------------------------------------------------
# Tabular files -> float32 arrays. pandas is imported inside the functions so that `import nbtrain` (and the
# command line's --help) stay fast.

DELIMITERS = ",;\t|"
SNIFF_CHARS = 64 * 1024
SNIFF_LINES = 20
TASKS = ("regression", "binary")
SCALINGS = ("standard", "minmax", "none")
PREPROCESSING_FORMAT = 1


def read_table(source, share=None):
    """A DataFrame with a header row from a CSV file (delimiter sniffed), '-' for standard input, or a Parquet
    file (needs pyarrow). A first column with an empty header, as R and pandas write a row index, becomes the
    index rather than a feature.

    With share=(rank, size), only that rank's share of the rows is read (CSV: a byte range cut at line ends;
    Parquet: a run of row groups), unchecked: data-parallel training gathers the shares of all ranks, in rank
    order, and passes their concatenation to check_table, which gives the frame read_table(source) gives."""
    name = "standard input" if str(source) == "-" else str(source)
    if share is not None:
        return _read_share(source, name, *share)
    raw = _read_bytes(source, name)
    return check_table(_parse_parquet(raw, name) if raw[:4] == b"PAR1" else _parse_csv(raw, name), name)


def check_table(frame, name):
    """Column names as text, an unnamed first column as the index, and a header and data rows required."""
    frame.columns = [str(c) for c in frame.columns]
    if len(frame.columns) and frame.columns[0] == "Unnamed: 0":
        frame = frame.set_index("Unnamed: 0").rename_axis(None)
    if all(_looks_numeric(c) for c in frame.columns):
        raise InputError(f"{name} has no header row (its first line looks like data: "
                         f"{', '.join(list(frame.columns)[:4])}); add a line with the column names")
    if frame.empty:
        raise InputError(f"{name} has a header but no data rows")
    return frame


def _read_share(source, name, rank, size):
    if str(source) == "-":
        raise InputError("standard input cannot be split between processes: give a file to a distributed fit")
    head = _read_bytes(source, name, 0, SNIFF_CHARS)
    if head[:4] == b"PAR1":
        return _parquet_share(source, name, rank, size)
    header_end = head.find(b"\n") + 1 or len(head)
    total = os.path.getsize(source)
    cuts = [_line_start(source, header_end + k * (total - header_end) // size, header_end, total)
            for k in (rank, rank + 1)]
    text = head.decode("utf-8-sig", errors="replace")
    return _parse_csv(head[:header_end] + _read_bytes(source, name, *cuts), name, sniff_delimiter(text))


def _line_start(source, position, first, total):
    """The first line start at or after `position` (between the first data line and the end of the file)."""
    if position <= first or position >= total:
        return min(max(position, first), total)
    with open(source, "rb") as handle:
        handle.seek(position - 1)
        while block := handle.read(SNIFF_CHARS):
            newline = block.find(b"\n")
            if newline >= 0:
                return handle.tell() - len(block) + newline + 1
    return total


def _parquet_share(source, name, rank, size):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{name} is a Parquet file; reading Parquet needs pyarrow "
                         "(pip install 'nbtrain[parquet]')") from None
    try:
        parquet = pq.ParquetFile(source)
        groups = parquet.num_row_groups
        return parquet.read_row_groups(list(range(rank * groups // size, (rank + 1) * groups // size))).to_pandas()
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise InputError(f"{name} is not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)})") from None


def _read_bytes(source, name, start=0, stop=None):
    """The file's bytes (from start to stop), or standard input's; one-line errors for unreadable sources."""
    if str(source) == "-":
        stream = sys.stdin
        return stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()
    try:
        with open(source, "rb") as handle:
            handle.seek(start)
            return handle.read() if stop is None else handle.read(stop - start)
    except FileNotFoundError:
        raise InputError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a data file") from None
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None


def _parse_parquet(raw, name):
    import pandas as pd
    try:
        return pd.read_parquet(io.BytesIO(raw))
    except ImportError:
        raise InputError(f"{name} is a Parquet file; reading Parquet needs pyarrow "
                         "(pip install 'nbtrain[parquet]')") from None
    except Exception as exc:  # pyarrow raises its own error types for damaged files
        raise InputError(f"{name} is not a readable Parquet file ({type(exc).__name__}: {_first_line(exc)})") from None


def _parse_csv(raw, name, delimiter=None):
    import pandas as pd
    if not raw.strip():
        raise InputError(f"{name} is empty")
    if b"\x00" in raw[:SNIFF_CHARS]:
        raise InputError(f"{name} is a binary file, not a CSV table")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name} is not UTF-8 text (undecodable byte at offset {exc.start}); "
                         "save it as a UTF-8 CSV file") from None
    delimiter = delimiter or sniff_delimiter(text[:SNIFF_CHARS])
    header, *first = itertools.islice(csv.reader(io.StringIO(text), delimiter=delimiter), 2)
    if first and len(first[0]) > len(header):
        raise InputError(f"{name}: line 2 has {len(first[0])} fields but the header has {len(header)}")
    try:
        return pd.read_csv(io.StringIO(text), sep=delimiter, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{name} is not a readable CSV table: {_first_line(exc)}") from None


def sniff_delimiter(sample):
    """The delimiter among , ; tab | that splits the first lines into the same number of fields, the most
    fields winning; failing that, the one that splits the header line most. A decimal comma splits data lines
    but not the header, so '7,4;0,7' files are read as ';'-separated."""
    lines = sample.splitlines()
    if len(sample) >= SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the sample may end inside a line
    lines = [line for line in lines[:SNIFF_LINES] if line.strip()]

    def score(delimiter):
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        return len(set(widths)) == 1 and widths[0] > 1, widths[0]
    return max(DELIMITERS, key=score)


def _looks_numeric(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _column_list(frame):
    names = [repr(c) for c in frame.columns]
    return ", ".join(names[:30]) + (f" ... ({len(names)} in all)" if len(names) > 30 else "")


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

    def text(value):
        if pd.isna(value):
            return None
        value = _plain(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    return series.map(text).astype(object)


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

@dataclass
class Feature:
    """One input column. Numeric: missing -> fill (training median), then (x - center) / scale. Categorical:
    missing -> fill (most frequent training value), then one-hot over `categories`; unseen values -> zeros."""
    name: str
    kind: str
    fill: object
    center: float = 0.0
    scale: float = 1.0
    categories: list = field(default_factory=list)

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
        center, spread = {"standard": (values.mean(), values.std()),
                          "minmax": (values.min(), values.max() - values.min()),
                          "none": (0.0, 1.0)}[scaling]
        return cls(name, "numeric", float(np.median(values)), float(center), float(spread) if spread > 0 else 1.0)

    def transform(self, series, what):
        """This column's block of model inputs, float64 (rows, len(outputs))."""
        if self.kind == "numeric":
            values = _numbers(series, self.name, what)
            return ((np.where(np.isnan(values), self.fill, values) - self.center) / self.scale)[:, None]
        import pandas as pd
        codes = pd.Index(self.categories).get_indexer(_as_text(series).fillna(self.fill))
        block = np.zeros((len(series), len(self.categories)))
        known = np.flatnonzero(codes >= 0)
        block[known, codes[known]] = 1.0
        return block


@dataclass
class Target:
    """The column to predict. Binary: labels[0] -> 0, labels[1] -> 1 (sorted order). Regression: trained on
    (y - center) / scale with training-split statistics; predictions are mapped back to the original units."""
    name: str
    task: str
    labels: list = None
    center: float = 0.0
    scale: float = 1.0

    @classmethod
    def infer(cls, series, name, task="auto"):
        """The task from the target's values: two distinct values -> binary, numeric otherwise -> regression."""
        values = series.dropna()
        keys = sorted({_label_key(v): _plain(v) for v in values.unique()}.items(),
                      key=lambda item: (isinstance(item[0], str), item[0]))
        examples = ", ".join(repr(v) for _, v in keys[:5]) + (", ..." if len(keys) > 5 else "")
        if not keys:
            raise InputError(f"target column {name!r} has no values")
        if len(keys) == 1:
            raise InputError(f"target column {name!r} has only one distinct value ({examples}): "
                             "there is nothing to learn")
        if task == "auto":
            task = "binary" if len(keys) == 2 else "regression"
        if task == "binary":
            if len(keys) != 2:
                raise InputError(f"binary classification needs a target with two distinct values; {name!r} has "
                                 f"{len(keys)} ({examples})")
            return cls(name, task, [v for _, v in keys])
        if not _is_numeric(series):
            raise InputError(f"target column {name!r} is not numeric ({examples}), so it cannot be a regression "
                             "target; binary classification needs two distinct values")
        return cls(name, task)

    def fit_scaling(self, series):
        """Standardize a regression target with the training rows' mean and standard deviation."""
        if self.task == "regression":
            values = _numbers(series, self.name, "the training rows")
            self.center, self.scale = float(values.mean()), float(values.std()) or 1.0

    def encode(self, series, what):
        """Training targets, float32 (rows, 1): 0/1 codes, or the standardized value."""
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

    def decode(self, outputs):
        """Model outputs as a table in the target's terms: probability and label, or the value."""
        import pandas as pd
        out = np.asarray(outputs, np.float64)[:, 0]
        if self.task == "regression":
            return pd.DataFrame({"prediction": out * self.scale + self.center})
        labels = np.array(self.labels, dtype=object)
        return pd.DataFrame({"probability": out, "prediction": labels[(out > 0.5).astype(int)]})


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
        target.fit_scaling(train[target.name])
        return cls(target, [Feature.fit(train[name], name, scaling) for name in features], scaling, list(dropped))

    def transform(self, frame, what="the data"):
        """Model inputs, float32 (rows, len(input_names)). Columns are found by name; others are ignored."""
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise InputError(f"{what} lacks the feature column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)} (it has {_column_list(frame)})")
        blocks = [feature.transform(frame[feature.name], what) for feature in self.features]
        return as_matrix(np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0)), what)

    def to_dict(self):
        return {"format": PREPROCESSING_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data):
        try:
            if data.get("format") != PREPROCESSING_FORMAT:
                raise ValueError(f"preprocessing format {data.get('format')!r}")
            return cls(Target(**data["target"]), [Feature(**f) for f in data["features"]], data["scaling"],
                       list(data["dropped"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"the model file's preprocessing is unreadable ({reason})")


# ---------------------------------------------------------------------------------------------------------------
# From a labelled table to training arrays.

@dataclass
class Prepared:
    """Training and validation arrays with the preprocessing fitted on the training rows, and notes for the user."""
    preprocessing: Preprocessing
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    notes: list


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
        raise InputError(f"target column {target!r} not found in {what}; its columns are {_column_list(frame)}")
    keep = frame[target].notna() & ~frame[target].isin([np.inf, -np.inf])
    if not keep.any():
        raise InputError(f"target column {target!r} in {what} has no values")
    if not keep.all():
        notes.append(f"{int((~keep).sum())} rows of {what} have no {target!r} value and were left out")
    return frame[keep]


def prepare(frame, target, task="auto", scaling="standard", drop=(), val_split=0.2, seed=0, validation=None):
    """Infer the task, split (or take `validation`), fit the preprocessing on the training rows and encode both.
    Every problem with the data is an InputError with a one-line message."""
    if task not in ("auto", *TASKS):
        raise InputError(f"task must be auto, {' or '.join(TASKS)}, got {task!r}")
    notes = []
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise InputError(f"column {unknown[0]!r} to drop not found; the columns are {_column_list(frame)}")
    if target in drop:
        raise InputError(f"the target column {target!r} cannot also be dropped")
    labelled = labelled_rows(frame, target, "the data", notes)
    spec = Target.infer(frame[target], target, task)
    features = [c for c in frame.columns if c != target and c not in drop]
    if not features:
        raise InputError(f"there are no feature columns: the data has only {_column_list(frame)}")
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
    for feature in pre.features:
        if len(feature.categories) > max(50, len(train) // 2):
            notes.append(f"column {feature.name!r} has {len(feature.categories)} distinct values in {len(train)} "
                         "training rows: if it is an identifier, drop it")
    x_val = pre.transform(val, "the validation data") if len(val) else np.zeros((0, len(pre.input_names)), np.float32)
    return Prepared(pre, pre.transform(train, "the training data"), spec.encode(train[target], "the training data"),
                    x_val, spec.encode(val[target], "the validation data"), notes)
