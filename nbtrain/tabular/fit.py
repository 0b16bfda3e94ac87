"""`nbtrain fit` below the command line: a table file to a run folder, in one call that reads, prepares, builds,
trains and saves, and returns what happened as plain data for the caller to show."""
import functools
from dataclasses import dataclass

from ..errors import InputError
from .preprocessing import prepare
from .reading import read_shared
from .recipe import build_model, for_task, train
from .runfolder import output_dir, save_run


@dataclass
class FitResult:
    """A finished fit: the options (loss resolved), the table's size, the prepared arrays, the model (with the best
    epoch's weights), how training went, the run folder and the files written there."""
    options: object
    shape: tuple
    prep: object
    model: object
    outcome: object
    run_dir: object
    saved: list


def fit_table(options, out=None, group=None, callbacks=(), on_ready=None, overwrite=False):
    """Fit a table as `options` (FitOptions) say and write the run folder `out` (default runs/<timestamp>; an
    existing `out` is an InputError unless `overwrite`). `callbacks` run each epoch (a display; a callable
    callbacks(recorder, stopper) gives them with the early stopping they can show); on_ready(shape, prep, model,
    options) is called once the model is built, before training (to describe the run). Under MPI (`group`) every
    rank reads its share and trains; rank 0 alone writes. Raises InputError when no epoch ended with a finite
    loss (nothing is saved then)."""
    frame = read_shared(options.data, group)
    prep = prepare(frame, options.target, task=options.task, scaling=options.scale, drop=options.drop,
                   val_split=options.val_split, seed=options.seed,
                   validation=read_shared(options.val, group) if options.val else None)
    target = prep.preprocessing.target
    options = for_task(options, target.task)
    model = build_model(prep.x.shape[1], target.task, options, options.seed, target.outputs)
    make = functools.partial(output_dir, out, overwrite)
    run_dir, created = make() if group is None else group.run(make, everywhere=False)
    writer = group is None or group.rank == 0
    if on_ready is not None:
        on_ready(frame.shape, prep, model, options)
    display = callbacks if callable(callbacks) else lambda recorder, stopper: list(callbacks)
    outcome = train(model, prep.x, prep.y, prep.x_val, prep.y_val, options, target.task, target.scale, options.seed,
                    extra_callbacks=display)
    if outcome.best is None:
        if created and writer:
            run_dir.rmdir()
        raise InputError(f"{model.stop_reason or 'training ended'}; no epoch ended with a finite loss, so nothing "
                         "was saved")
    saved = save_run(model, prep, run_dir, options, outcome) if writer else []
    return FitResult(options, frame.shape, prep, model, outcome, run_dir, saved)
