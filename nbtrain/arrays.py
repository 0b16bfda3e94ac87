"""The API's input adapter: what users pass to fit/evaluate/predict (NumPy arrays, lists, pandas DataFrames
and Series) as the engine's C-contiguous float32 matrices, with a one-line InputError for anything that
cannot be trained on."""
import numpy as np

from .errors import InputError


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


def as_weights(weights, n, what="sample_weight"):
    """One finite, non-negative float32 weight per row (ones when weights is None), not all zero."""
    if weights is None:
        return np.ones(n, np.float32)
    try:
        array = np.asarray(weights.to_numpy() if hasattr(weights, "to_numpy") else weights, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not numeric: {exc}") from None
    array = array.reshape(-1) if array.ndim == 2 and 1 in array.shape else array
    if array.shape != (n,):
        raise InputError(f"{what} must hold one weight per row ({n}), got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any():
        raise InputError(f"{what} must be finite and non-negative")
    if not array.any():
        raise InputError(f"{what} is zero for every row")
    return np.ascontiguousarray(array)


SEED_MAX = 2**32 - 1  # seeds run from 0 to this, as NumPy's legacy generator and the command line take them


def whole_number(value, what, low, high=None):
    """`value` as an int when it is an integer (not a bool, not 2.5) from `low` to `high`, or a one-line
    InputError naming `what`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        wanted = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{what} must be {wanted}, got {value}")
    return int(value)


def class_weights(class_weight, Y):
    """Keras's class_weight as one weight per row: each row's class (its one-hot argmax, or its rounded index or
    0/1 label) weighted by class_weight[class], 1 for classes the dict leaves out."""
    if not isinstance(class_weight, dict):
        raise InputError(f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}")
    labels = np.argmax(Y, axis=1) if Y.shape[1] > 1 else np.round(Y[:, 0]).astype(np.int64)
    classes = Y.shape[1] if Y.shape[1] > 1 else max(2, int(labels.max(initial=0)) + 1)
    table = {}
    for key, value in class_weight.items():
        whole = isinstance(key, (int, float, np.number)) and not isinstance(key, bool) and float(key).is_integer()
        if not whole or not 0 <= key < classes:  # 1.5, "a", or a class the targets lack
            raise InputError(f"class_weight names class {key!r}, which is not a class of the targets (class indices "
                             f"0 to {classes - 1})")
        try:
            table[int(key)] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"class_weight maps class indices to numbers, got {key!r}: {value!r}") from None
    weights = np.ones(len(labels), np.float32)
    for label, weight in table.items():
        weights[labels == label] = weight
    return as_weights(weights, len(labels), "class_weight")
