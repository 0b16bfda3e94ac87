"""A model from `nbtrain fit` applied to a table: the predictions that `nbtrain predict` writes (with columns
kept from the input; from Python, load_table_model), and what `nbtrain evaluate` reports, from the predictions in
the target's terms (a classifier's accuracy, log loss, macro F1 and confusion matrix; a regression's mae and rmse
in its units); a table file is read in chunks (file_predictions, file_evaluation)."""
import warnings
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from .fingerprint import overlap
from .preprocessing import _as_text, labelled_rows
from .reading import unknown_column
from .tablefile import TableFile

PROBABILITY_FLOOR = 1e-7  # Keras's epsilon: a probability of 0 counts as this in the log loss, as in training


@dataclass
class Scores:
    """The metrics by name (in the order shown) and, for a classifier, the confusion matrix: confusion[i, j]
    rows of class i predicted as class j, in the order of the target's labels; `seen`, how many of the rows scored
    the model was fitted or validated on (fingerprint.Overlap; None for a model without a fingerprint)."""
    metrics: dict
    confusion: np.ndarray = None
    seen: object = None


class Unseen:
    """The text values that no training row had, counted over a table's rows (all at once or chunk by chunk): such
    a value is encoded as all zeros (no category), as scikit-learn's OneHotEncoder(handle_unknown="ignore") does,
    and predictions for it are guesses."""
    SHOWN = 3  # values named in a note

    def __init__(self, pre):
        self.features = [f for f in pre.features if f.kind == "categorical"]
        self.counts = {f.name: 0 for f in self.features}
        self.values = {f.name: {} for f in self.features}  # the first SHOWN + 1 distinct unseen values, in order

    def add(self, frame):
        for feature in self.features:
            if feature.name not in frame.columns:
                continue
            text = _as_text(frame[feature.name]).dropna()
            unseen = text[~text.isin(feature.categories)]
            self.counts[feature.name] += len(unseen)
            for value in unseen.unique()[:self.SHOWN + 1]:
                if len(self.values[feature.name]) <= self.SHOWN:
                    self.values[feature.name].setdefault(value)
        return self

    def notes(self, what):
        notes = []
        for name, n in self.counts.items():
            if n:
                values = list(self.values[name])
                shown = ", ".join(map(repr, values[:self.SHOWN])) + (", ..." if len(values) > self.SHOWN else "")
                notes.append(f"{n} row{'s' if n > 1 else ''} of {what} had a {name!r} not seen in training "
                             f"({shown}): encoded as all zeros")
        return notes


def predictions(model, pre, frame, what, keep=(), notes=None):
    """The predictions table for `frame`: the `keep` columns copied from it, then prediction (and the
    probabilities of a classifier), one row per input row, in order. Categories unseen in training are counted in
    `notes` (a list, when given)."""
    keep = tuple(dict.fromkeys(keep))  # a column named twice is copied once
    if notes is not None:
        notes.extend(Unseen(pre).add(frame).notes(what))
    for name in keep:
        if name not in frame.columns:
            raise unknown_column("column to keep", name, frame, what)
    table = pre.target.decode(model.predict(pre.transform(frame, what)))
    clash = [name for name in keep if name in table.columns]
    if clash:
        raise InputError(f"--keep {clash[0]!r} would clash with the output column of that name; rename it in {what}")
    return frame[list(keep)].reset_index(drop=True).join(table)


@dataclass
class TableModel:
    """A model from `nbtrain fit` with its fitted preprocessing, for use from Python as `nbtrain predict` uses it."""
    model: object
    preprocessing: object

    def predict(self, frame, keep=()):
        """The table `nbtrain predict` writes for the DataFrame `frame` (columns found by name): the `keep`
        columns, then prediction in the target's units or labels (and a classifier's probabilities). A dict of
        columns is taken as the DataFrame it makes. Categories unseen in training are counted in a UserWarning, as
        `nbtrain predict` notes them."""
        import pandas as pd
        if isinstance(frame, dict):
            try:
                frame = pd.DataFrame(frame)
            except (ValueError, TypeError) as exc:
                raise InputError(f"the dict of columns does not make a table: {exc}") from None
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"predict takes a DataFrame (or a dict of columns) with the feature columns by name, "
                             f"got {type(frame).__name__}: the preprocessing finds its columns by name")
        notes = []
        table = predictions(self.model, self.preprocessing, frame, "the DataFrame", tuple(keep), notes)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        return table


def load_table_model(path, device="auto"):
    """The model file `path` from `nbtrain fit` (or a sweep's best/) as a TableModel; a ModelFileError if it is
    not one."""
    from .runfolder import load_run
    return TableModel(*load_run(path, device=device))


def evaluation(model, pre, frame, what, notes):
    """(rows evaluated, Scores) on the labelled rows of `frame` (how many were left out is added to `notes`), with
    how many of them the model saw in training (Scores.seen, from its fingerprint).
    A regression's scores start with the loss, on the standardized target, as in training."""
    spec = pre.target
    rows = labelled_rows(frame, spec.name, what, notes)
    notes.extend(Unseen(pre).add(rows).notes(what))
    actual = rows[spec.name].to_numpy(float) if spec.task == "regression" else None
    return len(rows), model_scores(model, spec, pre.transform(rows, what), spec.encode(rows[spec.name], what), actual)


def file_evaluation(model, pre, source, notes):
    """evaluation() of the table file `source`, read in two passes into the model's input matrix
    (labelled_matrix), never a DataFrame of the whole table."""
    table = TableFile(source)
    unseen = Unseen(pre)
    x, y, actual = labelled_matrix(pre, table, table.name, notes, unseen.add)
    notes.extend(unseen.notes(table.name))
    return len(x), model_scores(model, pre.target, x, y, actual)


def model_scores(model, spec, x, y, actual):
    """Scores of `model` on inputs x with encoded targets y (and a regression target's values `actual`), with how
    many of the rows the model saw in training (Scores.seen, from its fingerprint)."""
    outputs = model.predict(x)
    seen = overlap((model.metadata or {}).get("fingerprint"), x, y)
    if spec.task != "regression":
        return replace(classifier_scores(y, spec.probabilities(outputs)), seen=seen)
    scores = regression_scores(spec.decode(outputs)["prediction"], actual)
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    return Scores({"loss": loss, **scores.metrics}, seen=seen)


def file_predictions(model, pre, source, keep=(), notes=None):
    """predictions() of the table file `source`, one table per chunk of its rows, in order; categories unseen in
    training are counted over all chunks in `notes` (a list, when given) once the last is read."""
    table = TableFile(source)
    table.check_header(1)
    unseen, rows = Unseen(pre), 0
    for chunk in table.chunks():
        rows += len(chunk)
        unseen.add(chunk)
        yield predictions(model, pre, chunk.reset_index(drop=True), table.name, keep)
    table.check_header(rows)
    if notes is not None:
        notes.extend(unseen.notes(table.name))


def labelled_matrix(pre, table, what, notes, each=None):
    """(x, y, a regression target's values or None) of the labelled rows of the TableFile `table` with the fitted
    preprocessing `pre`, in their order: a first pass counts the labelled rows, a second transforms chunk by chunk
    into preallocated arrays (each(chunk) called on each chunk's labelled rows, when given)."""
    import pandas as pd
    spec = pre.target
    if spec.name not in table.columns:
        raise unknown_column("target column", spec.name, pd.DataFrame(columns=table.columns), what)
    rows = labelled = 0
    for chunk in table.chunks([spec.name]):
        rows += len(chunk)
        labelled += int(_has_target(chunk[spec.name]).sum())
    table.check_header(rows)
    if labelled == 0:
        raise InputError(f"target column {spec.name!r} in {what} has no values")
    if labelled < rows:
        notes.append(f"{rows - labelled} rows of {what} have no {spec.name!r} value and were left out")
    x = np.empty((labelled, len(pre.input_names)), np.float32)
    y = np.empty((labelled, 1), np.float32)
    actual = np.empty(labelled) if spec.task == "regression" else None
    first = 0
    for chunk in table.chunks():
        chunk = chunk[_has_target(chunk[spec.name])]
        if each is not None:
            each(chunk)
        stop = first + len(chunk)
        x[first:stop] = pre.transform(chunk, what)
        y[first:stop] = spec.encode(chunk[spec.name], what)
        if actual is not None:
            actual[first:stop] = chunk[spec.name].to_numpy(np.float64)
        first = stop
    return x, y, actual


def _has_target(series):
    return (series.notna() & ~series.isin([np.inf, -np.inf])).to_numpy()


def classifier_scores(codes, probabilities):
    """Accuracy, log loss (the mean cross-entropy of the true classes) and macro F1 (the mean F1 over the classes
    that occur among the true or the predicted classes, as scikit-learn averages it) for class indices `codes`
    (rows,) and a (rows, classes) probability matrix."""
    codes = np.asarray(codes).astype(int).ravel()
    k = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (codes, predicted), 1)
    hits, truths, guesses = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    seen = (truths + guesses) > 0
    f1 = 2 * hits[seen] / (truths[seen] + guesses[seen])
    chance = np.clip(probabilities[np.arange(len(codes)), codes], PROBABILITY_FLOOR, 1.0)
    return Scores({"accuracy": float(hits.sum() / len(codes)), "log_loss": float(-np.log(chance).mean()),
                   "macro_f1": float(f1.mean())}, confusion)


def regression_scores(predicted, actual):
    """mae and rmse of predictions against the true values, both in the target's units."""
    error = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return Scores({"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean()))})
