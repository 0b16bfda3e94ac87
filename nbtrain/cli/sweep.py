"""`nbtrain sweep`: many fits of one table, as nbtrain.sweeps runs them."""
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..tabular.options import BACKENDS, COURSE, SEARCHES, FitOptions, SweepOptions
from . import options as opt
from .app import command, fail, user_errors
from .fit import EXIT_CODES, stopped_at_once


SWEEP_HELP = (
    "Train many models on one table with hyperparameters drawn from a search space, and keep the best.\n\n"
    "The data options are fit's: the preprocessing is fitted once, on the training rows, and shared by every "
    "trial. --space takes a TOML file (keys layers, units, lr, batch_size, dropout, batchnorm, optimizer, loss; "
    "a value, an array of choices, or a table with log_uniform, uniform or choices); without it a default space "
    "is searched. Trials run side by side in local worker processes (one BLAS thread each), or on Ray Tune with "
    "ASHA early termination (--backend ray; pip install 'nbtrain\\[ray]'). The same command gives the same trials "
    "and the same leaderboard.\n\n"
    "The run folder gets leaderboard.csv, sweep.png (the metric against each hyperparameter, with matplotlib) "
    "and best/ with the best trial's model.nbt, usable by nbtrain predict. Ctrl-C or SIGTERM stops the sweep, "
    "saves what finished and exits 130 or 143; a sweep whose every trial failed exits 2.")
SWEEP_EXAMPLES = """[bold]Examples[/bold] (on the bundled tables in data/)

  nbtrain sweep data/churn.csv --target churned --trials 32

  nbtrain sweep data/houses.csv -t price_k --drop house_id --trials 8 --metric val_mae --out runs/houses-sweep

  nbtrain sweep data/birds.csv -t species --drop bird_id --backend ray --search tpe --trials 200
"""



@command("sweep", help=SWEEP_HELP, epilog=SWEEP_EXAMPLES)
def sweep_command(
    data: opt.Data,
    target: opt.Target,
    trials: Annotated[int, typer.Option(min=1, help="Number of models to train.")] = SweepOptions.trials,
    space: Annotated[Optional[Path], typer.Option(metavar="TOML", show_default=False,
                                                  help="Search space file \\[default: a space for the task].")]
    = SweepOptions.space,
    backend: Annotated[Literal[BACKENDS], typer.Option(help="local: a process pool on this machine; ray: "
                                                            "Ray Tune.")] = SweepOptions.backend,
    address: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Ray cluster to join: auto or HOST:PORT "
                                                                        "\\[default: start a local Ray].",
                                                   show_default=False)] = SweepOptions.address,
    workers: Annotated[Optional[int], typer.Option(min=1, show_default=False,
                                                   help="Trials at a time \\[default: one per core].")]
    = SweepOptions.workers,
    metric: Annotated[str, typer.Option(help="What ranks the trials: val_loss, or the task's metric (val_mae, "
                                             "val_binary_accuracy, val_accuracy), or their training versions.")]
    = SweepOptions.metric,
    search: Annotated[Literal[SEARCHES], typer.Option(help="How Ray picks trials: random, or Optuna's TPE "
                                                           "(needs optuna).")] = SweepOptions.search,
    task: opt.Task = FitOptions.task,
    class_weight: opt.ClassWeight = FitOptions.class_weight,
    scale: opt.Scale = COURSE.scale,
    drop: opt.Drop = None,
    val: opt.Val = FitOptions.val,
    val_split: opt.ValSplit = FitOptions.val_split,
    epochs: opt.Epochs = COURSE.epochs,
    patience: opt.Patience = COURSE.patience,
    min_delta: opt.MinDelta = FitOptions.min_delta,
    seed: opt.seed_option("Seed of the split, the sampled trials and their fits.") = FitOptions.seed,
    threads: opt.Threads = FitOptions.threads,
    out: opt.out_option("runs/sweep-<timestamp>") = None,
    overwrite: opt.Overwrite = False,
    quiet: opt.Quiet = False,
):
    from ..sweeps.api import run_sweep
    fit = FitOptions(data=data, target=target, task=task, recipe="course", class_weight=class_weight, scale=scale,
                     drop=tuple(drop or ()), val=val, val_split=val_split, epochs=epochs, patience=patience,
                     min_delta=min_delta, seed=seed, device="cpu", threads=threads)
    options = SweepOptions(fit, trials, space, backend, address, workers, metric, search)
    with stopped_at_once("Sweep"), user_errors():
        outcome = run_sweep(options, out, verbose=1 if quiet else 2, overwrite=overwrite, stamped=True)
    board = outcome.leaderboard
    if outcome.cause is None and len(board) and (board["status"] == "failed").all():
        reasons = board.groupby("reason", sort=False)["trial"].apply(lambda ids: ", ".join(map(str, ids)))
        fail(f"every trial failed ({'; '.join(f'trial {ids}: {reason}' for reason, ids in reasons.items())})")
    if outcome.cause is not None:
        raise typer.Exit(EXIT_CODES[outcome.cause])
