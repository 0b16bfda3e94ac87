"""`nbtrain fit` below the command line: a table file to a run folder, in one call that reads, prepares, builds,
trains and saves, and returns what happened as plain data for the caller to show."""
import functools
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..threads import requested
from .holdout import test_scores
from .recipe import build_model, check_memory, for_task, train
from .runfolder import claim_run_folder, fill_folder, save_run
from .streaming import prepare_file

STOPPED = ("interrupted", "terminated")  # a Model.stop_cause of a signal: the user stopped the fit


@dataclass
class FitResult:
    """A finished fit: the options (loss resolved), the table's size, the prepared arrays, the model (with the best
    epoch's weights), how training went, the run folder and the files written there (None and [] when nothing was
    saved: a signal before the first epoch ended, or an MPI rank other than 0), and the held-out test rows' count and
    scores (0 and None without --test-split)."""
    options: object
    shape: tuple
    prep: object
    model: object
    outcome: object
    run_dir: object
    saved: list
    test_rows: int = 0
    test: object = None


def fit_table(options, out=None, group=None, callbacks=(), on_ready=None, overwrite=False):
    """Fit a table as `options` (FitOptions) say and write the run folder `out` (default runs/<timestamp>; an
    existing `out` is an InputError unless `overwrite`), whole or not at all (runfolder.claim_run_folder).
    `callbacks` run each epoch (a display; a callable callbacks(recorder, best) gives them with the best epoch so
    far and the patience they can show); on_ready(shape, prep, model, options, test_rows) is called once the model
    is built, before training (to describe the run). The table is read in two passes straight into the training
    matrices (streaming.prepare_file); options.test_split holds out test rows before anything is fitted, scored at
    the end (holdout.py). Under MPI (`group`) every rank reads its share and trains; rank 0 alone writes. Raises
    InputError when no epoch ended with a finite loss; when Ctrl-C or SIGTERM came before the first epoch ended,
    nothing is saved either and the result has run_dir None. What options leave None comes from their recipe
    (FitOptions.resolved)."""
    requested(options.threads)  # a bad NBTRAIN_THREADS is an error before the data is read
    options = options.resolved()
    shape, prep = prepare_file(options.data, options.target, task=options.task, scaling=options.scale,
                               drop=options.drop, val_split=options.val_split, seed=options.seed,
                               validation=options.val, group=group, test_split=options.test_split)
    test = prep.test
    target = prep.preprocessing.target
    options = for_task(options, target.task)
    check_memory(prep.x.shape[1], options, target.outputs, len(prep.x_val))
    writer = group is None or group.rank == 0
    claim_folder = functools.partial(claim_run_folder, out, overwrite)
    claim = claim_folder() if group is None else group.run(claim_folder if writer else lambda: None)
    try:
        model = build_model(prep.x.shape[1], target.task, options, options.seed, target.outputs, prep.x)
        if on_ready is not None:
            on_ready(shape, prep, model, options, 0 if test is None else len(test[0]))
        display = callbacks if callable(callbacks) else lambda recorder, best: list(callbacks)
        outcome = train(model, prep.x, prep.y, prep.x_val, prep.y_val, options, target.task, target.scale,
                        options.seed, extra_callbacks=display)
        if outcome.best is None and model.stop_cause not in STOPPED:
            raise InputError(f"{model.stop_reason or 'training ended'}; no epoch ended with a finite loss, so "
                             "nothing was saved")
        tested = test_scores(model, prep.preprocessing, test) if test is not None and outcome.best else (0, None)
        if outcome.best is None or not writer:
            saved, run_dir = [], None
            if claim is not None:
                claim.abandon()
        else:
            run_dir = Path(claim.path)
            saved = fill_folder(claim, lambda folder: save_run(model, prep, folder, options, outcome, test=tested))
    except BaseException:
        if claim is not None:
            claim.abandon()
        raise
    return FitResult(options, shape, prep, model, outcome, run_dir, saved, *tested)
