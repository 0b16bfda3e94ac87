"""`nbtrain fit --test-split`: labelled rows held out before anything is fitted (no statistic, no early stopping,
no epoch choice sees them), scored once at the end as `nbtrain evaluate` scores a file, so the run reports an
honest test score beside its training and validation scores."""
import numpy as np

from ..errors import InputError
from .apply import evaluation

TEST_STREAM = 1  # the test split's own random stream of the seed (the validation split draws from the seed itself)
TEST_NAME = "the test rows"


def split_test(frame, target, fraction, seed):
    """(the rows to train and validate on, the test rows): a seeded `fraction` of the labelled rows (at least one
    when fraction > 0) is held out; unlabelled rows stay with the rest, where fit notes and leaves them out."""
    if not fraction:
        return frame, None
    if target not in frame.columns:
        return frame, None  # prepare names the missing target
    labelled = np.flatnonzero(frame[target].notna().to_numpy() & ~frame[target].isin([np.inf, -np.inf]).to_numpy())
    n_test = max(1, round(len(labelled) * fraction))
    if len(labelled) - n_test < 2:
        raise InputError(f"{len(labelled)} labelled rows are too few to hold out a test split")
    held = np.sort(np.random.default_rng([seed, TEST_STREAM]).permutation(labelled)[:n_test])
    keep = np.ones(len(frame), bool)
    keep[held] = False
    return frame.iloc[keep], frame.iloc[held]


def rest_share(val_split, test_split):
    """The validation share of the rows left after the test split, so that both options are shares of the whole
    table (--val-split 0.2 --test-split 0.2 trains on 60%); an InputError when they leave nothing to train on."""
    if val_split + test_split >= 1:
        raise InputError(f"--val-split {val_split:g} and --test-split {test_split:g} leave no rows to train on; "
                         "together they must stay below 1")
    return val_split / (1 - test_split)


def test_scores(model, pre, test):
    """(test rows, Scores) of the fitted `model` on the held-out frame `test`, as `nbtrain evaluate` reports them."""
    return evaluation(model, pre, test, TEST_NAME, [])


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
