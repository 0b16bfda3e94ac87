"""`nbtrain.sweep(...)`: many fits of one prepared table, run side by side by a local process pool (default) or by
Ray Tune, shown live, ranked in a leaderboard, with the best model saved as `nbtrain fit` saves one; and the option
checks that come before any data is read."""
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..arrays import SEED_MAX, whole_number
from ..errors import InputError
from ..threads import requested
from ..tabular.options import BACKENDS, COURSE, SEARCHES, FitOptions, SweepOptions
from ..utils import available_cores
from .board import log_names


def sweep(data, target, trials=SweepOptions.trials, space=SweepOptions.space, backend=SweepOptions.backend,
          address=SweepOptions.address, workers=SweepOptions.workers, metric=SweepOptions.metric,
          seed=FitOptions.seed, out=None, *, task=FitOptions.task, scale=COURSE.scale, drop=FitOptions.drop,
          val=FitOptions.val, val_split=FitOptions.val_split, epochs=COURSE.epochs, patience=COURSE.patience,
          min_delta=FitOptions.min_delta, class_weight=FitOptions.class_weight, search=SweepOptions.search,
          grace_epochs=SweepOptions.grace_epochs, threads=FitOptions.threads, overwrite=False, verbose=0):
    """Train `trials` models on `data` (a CSV or Parquet path, or a DataFrame) with hyperparameters drawn from
    `space` (a TOML file, a dict of the same shape, or None for the default space of the task) and return the
    leaderboard, best first, as a DataFrame. The data options are `nbtrain fit`'s: the preprocessing is fitted
    once, on the training rows, and shared by every trial. backend="local" runs `workers` processes (default:
    one per core) with one BLAS thread each; backend="ray" runs Ray Tune with ASHA on a new local Ray or on the
    cluster at `address` ("auto" or "host:port"), with random search or, given optuna, search="tpe" (ASHA stops no
    trial before grace_epochs). With `out` (a new folder, or with overwrite=True an existing run folder holding
    only nbtrain's files), leaderboard.csv, sweep.png and the best model (best/model.nbt, usable by `nbtrain
    predict`) are written there. threads: each trial's BLAS threads (default: one). Ctrl-C (or SIGTERM) stops the
    sweep and returns (and saves) what finished. verbose: 0 (the default, as a library call) prints nothing (the
    data's warnings come as Python warnings), 1 only the result, 2 what `nbtrain sweep` shows: the sweep described
    and the trials as they run. On the local backend, call this from under `if __name__ == "__main__":` in a
    script: the worker processes import the script."""
    fit = FitOptions(data=data, target=target, task=task, recipe="course", scale=scale, drop=tuple(drop), val=val, val_split=val_split,
                     epochs=epochs, patience=patience, min_delta=min_delta, class_weight=class_weight, seed=seed,
                     device="cpu", threads=threads)
    return run_sweep(SweepOptions(fit, trials, space, backend, address, workers, metric, search, grace_epochs), out,
                     verbose, overwrite).leaderboard


def run_sweep(options, out=None, verbose=2, overwrite=False, stamped=False):
    """sweep() for a SweepOptions, returning a SweepOutcome; the command line calls this with stamped=True, which
    writes to a new runs/sweep-<timestamp> folder when `out` is None. SIGINT and SIGTERM stop the trials and save
    what finished (a second one stops the saving too)."""
    from ..interrupts import SignalStop
    from ..monitor import Monitor
    from ..tabular.preprocessing import prepare
    from ..tabular.recipe import for_task
    from ..tabular.runfolder import claim_run_folder, fill_folder
    from .board import Board
    from .pool import run_local
    from .report import Display, save_sweep
    from .space import default_space, load_space, parse_space
    from .trial import SweepData, trial_seed
    fit = options.fit
    check_options(options)
    frame = _table(fit.data)
    prep = prepare(frame, fit.target, task=fit.task, scaling=fit.scale, drop=fit.drop, val_split=fit.val_split,
                   seed=fit.seed, validation=None if fit.val is None else _table(fit.val))
    spec = prep.preprocessing.target
    space = options.space
    space = (default_space(spec.task) if space is None else parse_space(space, spec.task) if isinstance(space, dict)
             else load_space(space, spec.task))
    check_metric(options.metric, spec.task, len(prep.x_val) > 0, space)
    for_task(fit, spec.task)  # the options the task takes
    claim = claim_run_folder(None if out is None else Path(out), overwrite, prefix="sweep-") \
        if out is not None or stamped else None  # before any trial; filled beside its place, renamed in at the end
    try:
        shared = SweepData(prep.x, prep.y, prep.x_val, prep.y_val, spec.task, spec.scale, fit,
                           Monitor(options.metric), spec.outputs)
        workers = options.workers or (min(options.trials, available_cores()) if options.backend == "local" else None)
        board = Board(shared, options.trials, list(space.varied))
        sampled = [{"index": i, "seed": trial_seed(fit.seed, i), "params": params}
                   for i, params in enumerate(space.sample(options.trials, fit.seed))]
        display = Display(board, verbose)
        display.describe(fit.data, frame, prep, space, options, workers)
        stage = None if claim is None else Path(claim.stage)
        with SignalStop() as stop:
            try:
                with display.live():
                    if options.backend == "local":
                        run_local(shared, sampled, workers, board)
                    else:
                        from .ray_tune import run_ray
                        run_ray(shared, space, sampled, fit.seed, workers, options.address, options.search, board,
                                stage, options.grace_epochs)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (Stopped), or Ray's own KeyboardInterrupt
                stop.cause = stop.cause or "interrupted"
            stop.armed = False  # what finished is saved; a second signal stops that too
            board.stop()
            leaderboard = board.leaderboard()
            saved = [] if claim is None else fill_folder(claim, lambda folder: save_sweep(board, leaderboard, prep,
                                                                                          folder))
    except BaseException:
        if claim is not None:
            claim.abandon()
        raise
    display.summary(leaderboard, None if claim is None else Path(claim.path), saved, stop.cause)
    return SweepOutcome(leaderboard, stop.cause)


@dataclass
class SweepOutcome:
    """A sweep's leaderboard (best first) and what stopped it early: "interrupted" (Ctrl-C), "terminated"
    (SIGTERM) or None."""
    leaderboard: object
    cause: object = None


def _table(source):
    """A DataFrame as it is; a path read as `nbtrain fit` reads it."""
    from ..tabular.reading import read_table
    return source if hasattr(source, "columns") else read_table(source)


def check_options(options):
    """Options that are wrong whatever the data: reported before the data is read."""
    trials, backend, address, workers, search = (options.trials, options.backend, options.address, options.workers,
                                                 options.search)
    whole_number(options.fit.seed, "seed", 0, SEED_MAX)
    if trials < 1:
        raise InputError(f"the number of trials must be at least 1, got {trials}")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if search not in SEARCHES:
        raise InputError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if backend == "local" and (address is not None or search != "random"):
        raise InputError(f"{'--address' if address is not None else '--search tpe'} needs --backend ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError("--backend ray needs Ray Tune: pip install 'nbtrain[ray]'")
    if search == "tpe" and importlib.util.find_spec("optuna") is None:
        raise InputError("--search tpe needs Optuna: pip install optuna")
    requested(options.fit.threads)  # threads, or NBTRAIN_THREADS, which the workers inherit


def check_metric(metric, task, has_val, space):
    """The metric must be one that every trial logs, and comparable across trials."""
    names = log_names(task, has_val)
    if metric not in names:
        raise InputError(f"the metric {metric!r} is not logged here; choose one of {', '.join(names)}")
    if metric in ("loss", "val_loss") and "loss" in space.varied:  # regression only: classifiers have one loss
        raise InputError(f"the space varies 'loss', so {metric} is not comparable between trials; rank them "
                         f"with --metric {'val_mae' if has_val else 'mae'}")
