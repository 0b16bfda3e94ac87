"""A model from `nbtrain fit` applied to a table: the predictions that `nbtrain predict` writes (with columns
kept from the input; from Python, load_table_model), and what `nbtrain evaluate` reports, from the predictions in the target's terms (a
classifier's accuracy, log loss, macro F1 and confusion matrix; a regression's mae and rmse in its units)."""
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .preprocessing import labelled_rows
from .reading import unknown_column
from .streaming import labelled_matrix
from .tablefile import TableFile

PROBABILITY_FLOOR = 1e-7  # Keras's epsilon: a probability of 0 counts as this in the log loss, as in training


@dataclass
class Scores:
    """The metrics by name (in the order shown) and, for a classifier, the confusion matrix: confusion[i, j]
    rows of class i predicted as class j, in the order of the target's labels."""
    metrics: dict
    confusion: np.ndarray = None


def predictions(model, pre, frame, what, keep=()):
    """The predictions table for `frame`: the `keep` columns copied from it, then prediction (and the
    probabilities of a classifier), one row per input row, in order."""
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
        columns, then prediction in the target's units or labels (and a classifier's probabilities)."""
        return predictions(self.model, self.preprocessing, frame, "the DataFrame", tuple(keep))


def load_table_model(path, device="auto"):
    """The model file `path` from `nbtrain fit` (or a sweep's best/) as a TableModel; a ModelFileError if it is
    not one."""
    from .runfolder import load_run
    return TableModel(*load_run(path, device=device))


def evaluation(model, pre, frame, what, notes):
    """(rows evaluated, Scores) on the labelled rows of `frame` (how many were left out is added to `notes`).
    A regression's scores start with the loss, on the standardized target, as in training."""
    spec = pre.target
    rows = labelled_rows(frame, spec.name, what, notes)
    actual = rows[spec.name].to_numpy(float) if spec.task == "regression" else None
    return len(rows), model_scores(model, spec, pre.transform(rows, what), spec.encode(rows[spec.name], what), actual)


def file_evaluation(model, pre, source, notes):
    """evaluation() of the table file `source`, read in two passes into the model's input matrix
    (streaming.labelled_matrix), never a DataFrame of the whole table."""
    table = TableFile(source)
    x, y, actual = labelled_matrix(pre, table, table.name, notes)
    return len(x), model_scores(model, pre.target, x, y, actual)


def model_scores(model, spec, x, y, actual):
    """Scores of `model` on inputs x with encoded targets y (and a regression target's values `actual`)."""
    outputs = model.predict(x)
    if spec.task != "regression":
        return classifier_scores(y, spec.probabilities(outputs))
    scores = regression_scores(spec.decode(outputs)["prediction"], actual)
    loss = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    return Scores({"loss": loss, **scores.metrics})


def file_predictions(model, pre, source, keep=()):
    """predictions() of the table file `source`, one table per chunk of its rows, in order."""
    table = TableFile(source)
    table.check_header(1)
    rows = 0
    for chunk in table.chunks():
        rows += len(chunk)
        yield predictions(model, pre, chunk.reset_index(drop=True), table.name, keep)
    table.check_header(rows)


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
