"""From a table file to the training matrices without the table in memory, in two passes over the file as
LightGBM's two_round does: a scan that counts rows, learns each column's kind and codes the text columns and the
target row by row; then a fill that parses the numeric feature columns chunk by chunk straight into preallocated
float32 training and validation matrices (one-hot columns written from the codes). The preprocessing is then
fitted and applied in place, one column at a time, and means the same as preprocessing.prepare's on the whole
DataFrame. Under MPI each rank reads its share of the rows (tablefile.TableFile) and the statistics are merged
from per-share summaries (counts, sums, an exact selection for medians), so every rank fits one process's
preprocessing; the ranks then assemble the whole matrices, which the compiled epoch needs on every rank."""
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .options import SCALINGS, TASKS
from .apply import labelled_matrix
from .holdout import TEST_NAME, held_out_rows, rest_share
from .preprocessing import (CLIP, ROW_ID_ROWS, Feature, Prepared, Preprocessing, Target, _as_text, _is_numeric,
                            _label_key, advice, fits_a_model_file, robust_ranks, robust_scale, split_rows)
from .reading import unknown_column
from .tablefile import TableFile

NUMERIC_KINDS = "biuf"  # pandas dtype kinds of numeric (and boolean) columns


class Column:
    """What the scan learned of one column in this process's rows: the dtype kinds its chunks had (text: 'O'), its
    non-missing values, and for a text column each row's code into `levels` (-1: missing); `values` keeps a
    numeric target's values (float64, NaN missing)."""

    def __init__(self):
        self.kinds, self.present, self.levels, self.codes, self.values = set(), 0, {}, [], []

    @property
    def numeric(self):
        return self.kinds <= set(NUMERIC_KINDS)


class Ranks:
    """The MPI group's merges of per-share summaries (one process: each is the value itself)."""

    def __init__(self, group):
        self.group, self.comm = group, None if group is None else group.comm

    def run(self, action):
        """action() on every rank; an InputError on any stops all with its message (Group.run)."""
        return action() if self.group is None else self.group.run(action)

    def gather(self, value):
        """Every rank's value, in rank order."""
        return [value] if self.comm is None else self.comm.allgather(value)

    def total(self, value):
        """The sum over the ranks (numbers or arrays)."""
        return value if self.comm is None else self.comm.allreduce(value)

    def offset(self, count):
        """(the counts of the ranks before this one, the total)."""
        counts = self.gather(int(count))
        rank = 0 if self.comm is None else self.comm.Get_rank()
        return sum(counts[:rank]), sum(counts)


def scan(table, keep=(), columns=None, dtype=None):
    """(rows, {column: Column}) of one pass over `table`; `keep` names numeric columns whose values are kept."""
    import pandas as pd
    found, rows = {c: Column() for c in (columns or table.columns)}, 0
    for chunk in table.chunks(columns, dtype):
        for name, column in found.items():
            series = chunk[name]
            if _is_numeric(series):
                column.kinds.add(series.dtype.kind)
                column.present += int(series.notna().sum())
                if name in keep:
                    column.values.append(series.to_numpy(np.float64, na_value=np.nan))
            else:
                column.kinds.add("O")
                codes, uniques = pd.factorize(_as_text(series))
                lookup = np.array([column.levels.setdefault(u, len(column.levels)) for u in uniques] + [-1], np.int32)
                column.codes.append(lookup[codes])
                column.present += int((codes >= 0).sum())
        rows += len(chunk)
    return rows, found


def scan_table(table, keep, ranks):
    """scan() of this process's share, with the columns that were numeric in some chunks (or shares) and text in
    others scanned again as text, as pandas reads a whole column with one text value in it; text codes are made
    global (sorted levels of all shares). A reading error on any rank stops every rank (group.run) before they
    exchange their summaries."""
    rows, found = ranks.run(lambda: scan(table, keep))
    kinds = {name: set().union(*k) for name, k in zip(found, zip(*ranks.gather([c.kinds for c in found.values()])))}
    mixed = [name for name, k in kinds.items() if "O" in k and not k <= {"O"}]
    if mixed:
        found.update(ranks.run(lambda: scan(table, columns=mixed, dtype={name: str for name in mixed}))[1])
    for name, column in found.items():
        column.kinds = kinds[name] if name not in mixed else {"O"}
        if not column.numeric:
            levels = sorted(set().union(*ranks.gather(list(column.levels))))
            index = {level: i for i, level in enumerate(levels)}
            lookup = np.array([index[level] for level in column.levels] + [-1], np.int32)
            column.codes = lookup[np.concatenate(column.codes)] if column.codes else np.full(rows, -1, np.int32)
            column.levels = levels
        column.present = ranks.total(column.present)
    return rows, found


TRAIN, VALIDATION, TEST = range(3)  # the parts of the labelled rows, each with its own matrix


@dataclass
class Layout:
    """Where this process's rows go: part[i] of row i of its share is TRAIN, VALIDATION, TEST (fit --test-split)
    or -1 (no target value), and place[i] its row in that part's matrix of all shares; owned[p] are the rows of
    part p's matrix that this process holds (its own rows, in order: all rows for one process), sizes[p] the
    whole matrix's."""
    part: np.ndarray
    place: np.ndarray
    owned: list
    sizes: list

    @classmethod
    def split(cls, labelled, ranks, val_split, test_split, seed, validation):
        """The split of the labelled rows of all shares that fit makes of the whole table: the test rows
        (holdout.held_out_rows), then split_rows of the rest in order (with a validation file: all of the rest,
        shuffled as prepare shuffles them)."""
        first, n = ranks.offset(labelled.sum())
        held = held_out_rows(n, test_split, seed)
        rest = np.delete(np.arange(n), held)
        if validation:
            train, val = rest[np.random.default_rng(seed).permutation(len(rest))], np.zeros(0, np.int64)
        else:
            train, val = (rest[rows] for rows in split_rows(len(rest), val_split, seed))
        part, place = np.empty(n, np.int8), np.empty(n, np.int64)
        for code, rows in enumerate((train, val, held)):
            part[rows], place[rows] = code, np.arange(len(rows))
        mine = slice(first, first + int(labelled.sum()))
        local_part, local_place = np.full(len(labelled), -1, np.int8), np.full(len(labelled), -1, np.int64)
        local_part[labelled], local_place[labelled] = part[mine], place[mine]
        owned = [np.sort(local_place[local_part == code]) for code in (TRAIN, VALIDATION, TEST)]
        return cls(local_part, local_place, owned, [len(train), len(val), len(held)])

    def empty(self, width, dtype=np.float32):
        """This process's matrices (train, validation, test) of `width` columns, zeros."""
        return [np.zeros((len(owned), width), dtype) for owned in self.owned]

    def scatter(self, rows, block, matrices):
        """(matrix, its rows, block's rows or a mask) that write `block` (one row per row `rows` of this share, a
        slice or indices; None: the mask of rows instead) into the matrices (train, validation, test)."""
        part, place = self.part[rows], self.place[rows]
        for code, matrix in enumerate(matrices):
            pick = part == code
            yield matrix, np.searchsorted(self.owned[code], place[pick]), block[pick] if block is not None else pick


def prepare_file(source, target, task="auto", scaling="standard", drop=(), val_split=0.2, seed=0, validation=None,
                 group=None, test_split=0.0):
    """((rows, columns) of the table, Prepared): preprocessing.prepare's arrays and preprocessing for the table
    file `source`, read in two passes (validation: a second file of labelled rows). `test_split` holds out that
    share of the labelled rows before anything is fitted (Prepared.test; `val_split` is then a share of the whole
    table too, holdout.rest_share). Under MPI (`group`) every rank reads its share and gets the whole arrays."""
    ranks = Ranks(group)
    table = ranks.run(lambda: TableFile(source, None if group is None else (group.rank, group.size)))
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if scaling not in SCALINGS:
        raise InputError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    table.check_header(1)  # a typo in a column name is reported before the whole table is scanned
    header = _frame(table)
    for name in drop:
        if name not in table.columns:
            raise unknown_column("column to drop", name, header, "the data")
    if target in drop:
        raise InputError(f"the target column {target!r} cannot also be dropped")
    if target not in table.columns:
        raise unknown_column("target column", target, header, "the data")
    rows, found = scan_table(table, (target,), ranks)
    total = ranks.total(rows)
    table.check_header(total)
    notes = []
    goal = found.pop(target)
    labelled = _labelled(goal, target, ranks, notes, total)
    features = [c for c in table.columns if c != target and c not in drop]
    if not features:
        raise InputError(f"there are no feature columns: the data has only {', '.join(map(repr, table.columns))}")
    empty = [c for c in features if found[c].present == 0]
    if empty:
        raise InputError(f"column {empty[0]!r} has no values (all missing); drop it")
    if validation is None and test_split:
        val_split = rest_share(val_split, test_split)
    layout = Layout.split(labelled, ranks, val_split, test_split, seed, validation is not None)
    spec = _target(goal, target, task, layout, ranks)
    ys, actual = _encode_target(spec, goal, labelled, layout, ranks)
    numeric = [c for c in features if found[c].numeric]
    widths = {c: 1 if found[c].numeric else None for c in features}
    fitted = {c: _fit_categorical(found[c], c, layout, ranks) for c in features if not found[c].numeric}
    widths.update({c: len(f.categories) for c, f in fitted.items()})
    fits_a_model_file(Preprocessing(spec, [fitted.get(c, Feature(c, "numeric", 0.0)) for c in features], scaling,
                                    list(drop)))  # before the one-hot columns are allocated
    starts = dict(zip(features, np.cumsum([0] + [widths[c] for c in features])))
    xs = layout.empty(int(sum(widths.values())))
    parsed = {c: np.float32 for c in numeric if found[c].kinds <= set("iuf")}  # booleans are converted after
    ranks.run(lambda: _fill(table, numeric, [int(starts[c]) for c in numeric], parsed, layout, xs))
    for name, feature in fitted.items():
        _one_hot(found[name], feature, int(starts[name]), layout, xs)
    row_ids = [c for c in features if _row_id(found[c], xs, starts[c], layout, ranks)]
    for name in numeric:
        fitted[name] = _fit_numeric(xs[TRAIN][:, starts[name]], name, scaling, ranks)
        for matrix in xs:
            _apply(fitted[name], matrix[:, starts[name]])
    pre = Preprocessing(spec, [fitted[c] for c in features], scaling, list(drop))
    more_notes, warnings = advice(pre, row_ids, layout.sizes[TRAIN] + layout.sizes[VALIDATION], layout.sizes[TRAIN])
    whole = [(_assemble(x, owned, n, group), _assemble(y, owned, n, group))
             for x, y, owned, n in zip(xs, ys, layout.owned, layout.sizes)]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = whole
    if validation is not None:
        x_val, y_val, _ = ranks.run(lambda: labelled_matrix(pre, TableFile(validation), "the validation data",
                                                               notes))
    test = None
    if test_split:
        values = None if actual is None else _assemble(actual, layout.owned[TEST], len(x_test), group)[:, 0]
        test = x_test, y_test, values
    return (total, len(table.columns)), Prepared(pre, x_train, y_train, x_val, y_val, notes + more_notes, warnings,
                                                 test)


def _frame(table):
    import pandas as pd
    return pd.DataFrame(columns=table.columns)


def _labelled(goal, name, ranks, notes, total):
    """This share's rows with a target value, as a mask (missing and infinite values have none)."""
    if goal.numeric:
        labelled = np.isfinite(np.concatenate(goal.values) if goal.values else np.zeros(0))
    else:
        labelled = goal.codes >= 0
    count = ranks.total(int(labelled.sum()))
    if count == 0:
        raise InputError(f"target column {name!r} in the data has no values")
    if count < total:
        notes.append(f"{total - count} rows of the data have no {name!r} value and were left out")
    return labelled


def _target(goal, name, task, layout, ranks):
    """The Target inferred from the values of all shares' rows that are not test rows."""
    kept = layout.part != TEST
    if goal.numeric:
        values = np.concatenate(goal.values) if goal.values else np.zeros(0)
        values = values[kept & ~np.isnan(values)]
        distinct = np.unique(np.concatenate(ranks.gather(np.unique(values))))
        if task in ("auto", "regression") and len(distinct) > 2:
            distinct = distinct[:3]  # a regression target whatever the others are (Target.from_distinct)
        plain = bool if goal.kinds <= {"b"} else int if goal.kinds <= {"b", "i", "u"} else float
        distinct = [plain(v) for v in distinct]
    else:
        counts = ranks.total(np.bincount(goal.codes[kept & (goal.codes >= 0)], minlength=len(goal.levels)))
        distinct = [level for level, n in zip(goal.levels, counts) if n]
    return Target.from_distinct(distinct, goal.present - layout.sizes[TEST], goal.numeric, name, task)


def _encode_target(spec, goal, labelled, layout, ranks):
    """([training, validation, test targets] of this share, float32 (rows, 1), as Target.encode gives them, with
    the statistics (a regression's mean and standard deviation, a classifier's counts) of all training rows; the
    test rows' values (float64 (rows, 1)) for a regression, else None)."""
    import pandas as pd
    values = np.concatenate(goal.values) if goal.numeric and goal.values else np.zeros(0)
    if spec.task == "regression":
        training = values[layout.part == TRAIN]
        center, scale = _mean_std(training, ranks)
        spec.center, spec.scale = center, scale or 1.0
        ends = [e for e in ranks.gather((training.min(), training.max()) if len(training) else None) if e is not None]
        spec.low, spec.high = float(min(e[0] for e in ends)), float(max(e[1] for e in ends))
        coded = (values - spec.center) / spec.scale
    elif goal.numeric:
        keys = np.array([_label_key(label) for label in spec.labels])
        coded = np.searchsorted(keys, np.where(labelled, values, keys[0])).astype(np.float64)
    else:
        index = {_label_key(label): i for i, label in enumerate(spec.labels)}
        lookup = np.array([index.get(_label_key(level), -1) for level in goal.levels] + [-1], np.float64)
        coded = lookup[goal.codes]
    ys = layout.empty(1)
    for matrix, places, block in layout.scatter(slice(None), coded.astype(np.float32)[:, None], ys[:2]):
        matrix[places] = block
    test = np.flatnonzero(layout.part == TEST)
    test = test[np.argsort(layout.place[test])]  # in the order of this process's test matrix
    raw = values[test] if goal.numeric else np.array(goal.levels + [None], object)[goal.codes[test]]
    ys[TEST] = ranks.run(lambda: spec.encode(pd.Series(raw), TEST_NAME))  # a label not trained on is an error
    if spec.task != "regression":
        spec.counts = ranks.total(np.bincount(ys[TRAIN][:, 0].astype(np.int64), minlength=len(spec.labels))).tolist()
    return ys, values[test][:, None] if spec.task == "regression" else None


def _fit_categorical(column, name, layout, ranks):
    """Feature.fit of a text column from its training rows' level counts over all shares."""
    counts = ranks.total(np.bincount(column.codes[(layout.part == TRAIN) & (column.codes >= 0)],
                                     minlength=len(column.levels)))
    if not counts.any():
        raise InputError(f"column {name!r} has no values in the training rows; drop it")
    seen = [level for level, n in zip(column.levels, counts) if n]
    fill = min(level for level, n in zip(column.levels, counts) if n == counts.max())
    return Feature(name, "categorical", fill, categories=seen)


def _one_hot(column, feature, start, layout, matrices):
    """A text column's one-hot block written into the matrices: its category's column set to 1 (a missing value
    counts as the fill; an unseen one sets none)."""
    index = {c: i for i, c in enumerate(feature.categories)}
    lookup = np.array([index.get(level, -1) for level in column.levels] + [index[feature.fill]], np.int64)
    hot = lookup[column.codes]
    for matrix, places, pick in layout.scatter(slice(None), None, matrices):
        known = hot[pick] >= 0
        matrix[places[known], start + hot[pick][known]] = 1.0


def _fill(table, names, columns, parsed, layout, matrices):
    """The second pass: the numeric feature columns `names`, parsed chunk by chunk (as float32: `parsed`) into
    matrix columns `columns` (missing and infinite values as NaN)."""
    if not names:
        return
    together = columns == list(range(columns[0], columns[-1] + 1))  # side by side: a slice is faster
    for first, block in table.numbers(names, parsed):
        block[~np.isfinite(block)] = np.nan
        for matrix, places, part in layout.scatter(slice(first, first + len(block)), block, matrices):
            if together:
                matrix[places, columns[0]:columns[-1] + 1] = part
            else:
                matrix[places[:, None], columns] = part


def _row_id(column, matrices, start, layout, ranks):
    """looks_like_row_id over the training and validation rows of all shares: integers or text, none missing, all
    different."""
    n = layout.sizes[TRAIN] + layout.sizes[VALIDATION]
    if n < ROW_ID_ROWS:
        return False
    if not column.numeric:
        codes = column.codes[(layout.part == TRAIN) | (layout.part == VALIDATION)]
        return ranks.total(int((codes < 0).sum())) == 0 and \
            ranks.total(np.bincount(codes, minlength=len(column.levels))).max() <= 1
    if not column.kinds <= {"i", "u"}:
        return False
    values = np.concatenate([matrices[TRAIN][:, start], matrices[VALIDATION][:, start]])
    if ranks.total(int(np.isnan(values).sum())):
        return False
    local = np.unique(values)
    return len(local) == len(values) and len(np.unique(np.concatenate(ranks.gather(local)))) == n


def _fit_numeric(column, name, scaling, ranks):
    """Feature.fit of a numeric column from its float32 training values over all shares: the exact median, then
    the mean and standard deviation (or minimum and range; or the median and quartiles) in float64."""
    values = column[~np.isnan(column)].astype(np.float64)
    n = ranks.total(len(values))
    if n == 0:
        raise InputError(f"column {name!r} has no values in the training rows; drop it")
    middle = sorted({(n - 1) // 2, n // 2})
    ks = sorted(set(middle + (robust_ranks(n) if scaling == "robust" else [])))
    if ranks.comm is None:  # the same numbers as the selection over shares: the k-th smallest is one value
        kth = dict(zip(ks, np.partition(values, ks)[ks]))
    else:
        values.sort()
        kth = {k: _kth(values, k, ranks) for k in ks}
    median = float(np.mean([kth[k] for k in middle]))
    if scaling == "robust":
        center, spread = robust_scale(kth.__getitem__, n)
    elif scaling == "standard":
        center, spread = _mean_std(values, ranks)
    elif scaling == "minmax":
        ends = [e for e in ranks.gather((values.min(), values.max()) if len(values) else None) if e is not None]
        low = min(e[0] for e in ends)
        center, spread = low, max(e[1] for e in ends) - low
    else:
        center, spread = 0.0, 1.0
    return Feature(name, "numeric", median, float(center), float(spread) if spread > 0 else 1.0,
                   clip=CLIP if scaling == "robust" else 0.0)


def _mean_std(values, ranks):
    """The mean and (population) standard deviation of float64 `values` over all shares, each sum exact and rounded
    once, so that they do not depend on how the rows are shared among ranks."""
    n = ranks.total(len(values))
    mean = float(_exact_sum(values, ranks) / n)
    return mean, float(np.sqrt(float(_exact_sum((values - mean) ** 2, ranks) / n)))


PIECE = 1 << 18  # values (or rows) handled at a time where a whole column's temporaries would be large
EXPONENTS = 2200  # float64 binary exponents (from frexp: -1073 to 1024), offset by EXPONENT_BASE
EXPONENT_BASE = 1100


def _exact_sum(values, ranks):
    """The exact sum of float64 `values` over all shares, as a Fraction: each value's 53-bit integer mantissa split
    into two halves summed per binary exponent (integer sums below 2**53, so float64 adds them exactly, up to
    2**26 values of one exponent per rank)."""
    from fractions import Fraction
    parts = np.zeros((2, EXPONENTS), np.int64)
    for start in range(0, len(values), PIECE):  # a piece at a time: the temporaries stay small
        mantissa, exponent = np.frexp(values[start:start + PIECE])
        whole = mantissa * 2.0 ** 53
        high = np.trunc(whole / 2.0 ** 27)
        bins = exponent + EXPONENT_BASE
        parts[0] += np.bincount(bins, high, EXPONENTS).astype(np.int64)
        parts[1] += np.bincount(bins, whole - high * 2.0 ** 27, EXPONENTS).astype(np.int64)
    parts = ranks.total(parts)
    return sum((Fraction(int(h) * 2 ** 27 + int(low)) * Fraction(2) ** (e - EXPONENT_BASE - 53)
                for e, (h, low) in enumerate(parts.T) if h or low), Fraction(0))


def _kth(values, k, ranks):
    """The k-th smallest (from 0) of the sorted float64 `values` of all shares (float32 numbers), found by a
    bisection over float32's ordered bit patterns that moves one count per step between the ranks."""
    candidates = np.unique(np.concatenate(ranks.gather(values[[0, -1]] if len(values) else values)))
    low, high = np.float32(candidates[0]), np.float32(candidates[-1])
    while low < high:
        middle = _middle(low, high)
        if ranks.total(int(np.searchsorted(values, middle, "right"))) > k:
            high = middle
        else:
            low = np.nextafter(middle, np.float32(np.inf))
    return float(low)


def _middle(low, high):
    """A float32 halfway between low and high in order (of bit patterns), so that bisection ends in 32 steps."""
    def key(x):
        bits = np.array(x, np.float32).view(np.int32).astype(np.int64)
        return bits if bits >= 0 else -(bits & 0x7FFFFFFF)

    def number(k):
        bits = k if k >= 0 else (-k) | -0x80000000
        return np.array(bits, np.int64).astype(np.int32).view(np.float32)[()]
    return number((key(low) + key(high)) // 2)


def _apply(feature, column):
    """A numeric column's fill and scaling, in place, as Feature.transform computes it (float64, then float32)."""
    for start in range(0, len(column), PIECE):
        values = column[start:start + PIECE].astype(np.float64)
        values[np.isnan(values)] = feature.fill
        column[start:start + PIECE] = feature.scaled(values)


def _assemble(part, owned, n, group):
    """The whole matrix from every rank's rows `part` (at global rows `owned`): each rank's part broadcast in turn."""
    if group is None:
        return part
    whole = np.empty((n, part.shape[1]), part.dtype)
    for rank in range(group.size):
        rows = group.comm.bcast(owned if group.rank == rank else None, root=rank)
        for start in range(0, len(rows), PIECE):
            piece = rows[start:start + PIECE]
            block = np.ascontiguousarray(part[start:start + PIECE]) if group.rank == rank else \
                np.empty((len(piece), part.shape[1]), part.dtype)
            group.comm.Bcast(block, root=rank)
            whole[piece] = block
    return whole
