"""`nbtrain fit --test-split`: labelled rows held out before anything is fitted (no statistic, no early stopping,
no epoch choice sees them), scored once at the end as `nbtrain evaluate` scores a file, so the run reports an
honest test score beside its training and validation scores."""
import numpy as np

from ..errors import InputError
from .apply import model_scores

TEST_STREAM = 1  # the test split's own random stream of the seed (the validation split draws from the seed itself)
TEST_NAME = "the test rows"


def held_out_rows(n, fraction, seed):
    """The positions (sorted) among the `n` labelled rows of the table held out as test rows: a seeded `fraction`
    of them, at least one when fraction > 0; unlabelled rows stay with the rest, where fit notes and leaves them
    out."""
    if not fraction:
        return np.zeros(0, np.int64)
    n_test = max(1, round(n * fraction))
    if n - n_test < 2:
        raise InputError(f"{n} labelled rows are too few to hold out a test split")
    return np.sort(np.random.default_rng([seed, TEST_STREAM]).permutation(n)[:n_test])


def rest_share(val_split, test_split):
    """The validation share of the rows left after the test split, so that both options are shares of the whole
    table (--val-split 0.2 --test-split 0.2 trains on 60%); an InputError when they leave nothing to train on."""
    if val_split + test_split >= 1:
        raise InputError(f"--val-split {val_split:g} and --test-split {test_split:g} leave no rows to train on; "
                         "together they must stay below 1")
    return val_split / (1 - test_split)


def test_scores(model, pre, test):
    """(test rows, Scores) of the fitted `model` on the held-out rows `test` (Prepared.test: x, y, a regression
    target's values), as `nbtrain evaluate` reports them."""
    x, y, actual = test
    return len(x), model_scores(model, pre.target, x, y, actual)


# what a test score is called in the history's metrics, so that it shows in the same row of the result table
HISTORY_NAMES = {"accuracy": ("accuracy", "binary_accuracy"), "log_loss": ("loss",)}


def beside_history(scores, history_names):
    """The test scores placed against the history's metric names ({history name: value}: a classifier's loss is
    its log loss), and those with no training counterpart (rmse, macro_f1) by their own names."""
    placed, extra = {}, {}
    for name, value in scores.items():
        aliases = HISTORY_NAMES.get(name, (name,))
        match = next((alias for alias in aliases if alias in history_names), None)
        (placed if match else extra)[match or name] = value
    return placed, extra
