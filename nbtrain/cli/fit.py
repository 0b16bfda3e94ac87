"""`nbtrain fit`: options in, tabular.fit_table to do the work, and what happened shown to the user."""
import contextlib
import functools
from typing import Annotated, Literal, Optional

import typer

from ..callbacks import format_metric
from ..tabular.options import DEVICES, EMBEDDINGS, OPTIMIZERS, PIECEWISE_BINS, REGRESSION_LOSSES, FitOptions
from . import options as opt
from .app import command, fail, make_console, say, user_errors
from .display import ending, progress
from .ranks import abort_job_on_crash, process_group

EXIT_CODES = {"interrupted": 130, "terminated": 143}  # the shell's 128 + SIGINT, 128 + SIGTERM
SCALING_NAMES = {"robust": "robust (median, IQR, smooth clipping)", "standard": "standard", "minmax": "minmax",
                 "none": "none"}
EMBEDDING_NAMES = {"none": "none", "periodic": "periodic",
                   "piecewise": f"piecewise-linear ({PIECEWISE_BINS} quantile bins per input)"}


@contextlib.contextmanager
def stopped_at_once(what, muted=False):
    """A signal that ends the work where it cannot stop cleanly (a second Ctrl-C while saving what a first one
    kept, or one while the data is read): one line saying nothing was saved, exit 130 (143 for SIGTERM)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        cause = getattr(exc, "cause", "interrupted")
        say(make_console(stderr=True, muted=muted), f"{what} {cause} at once: nothing of this run was saved")
        raise typer.Exit(EXIT_CODES[cause]) from None

FIT_HELP = (
    "Train a model on a CSV (or Parquet) table and save it with its preprocessing.\n\n"
    "The task comes from the target: two distinct values make a binary classifier, text with more a multiclass "
    "one (the classes are printed with their training rows), numbers otherwise a regression (--task overrides). "
    "Numeric columns are imputed (median) and scaled (--scale), text columns "
    "imputed (most frequent) and one-hot encoded, all with training-split statistics. A regression target is "
    "standardized for training; predictions (clamped to the training rows' range) and mae are in its own units.\n\n"
    "--recipe says what the options left out default to: the default recipe, or the Keras course's (--recipe "
    "course, as nbtrain fit trained before).\n\n"
    "--test-split holds out rows that nothing sees until the end, for an honest test score beside the training "
    "and validation ones.\n\n"
    "The run folder gets model.nbt (with the best epoch's weights), history.csv (one row per epoch, counted from 1 "
    "as the epoch lines are) and, with matplotlib installed (pip install 'nbtrain\\[plot]'), "
    "learning_curves.png.")
FIT_EXAMPLES = """[bold]Examples[/bold] (on the bundled tables in data/)

  nbtrain fit data/houses.csv --target price_k --drop house_id --out runs/houses

  nbtrain fit data/churn.csv -t churned --layers 16,16 --dropout 0.3 --test-split 0.2 --out runs/churn

  nbtrain fit data/birds.csv -t species --drop bird_id --class-weight balanced --out runs/birds

  cat data/houses.csv | nbtrain fit - -t price_k --drop house_id --loss huber --epochs 200 --quiet
"""


def _hidden_layers(text):
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        units = [0]
    if any(u < 1 for u in units):
        fail(f"--layers must be comma-separated positive widths such as 512,512,512, got {text!r}")
    return tuple(units)


@command(help=FIT_HELP, epilog=FIT_EXAMPLES)
def fit(
    data: opt.Data,
    target: opt.Target,
    task: opt.Task = FitOptions.task,
    loss: Annotated[Optional[Literal[REGRESSION_LOSSES]],
                    typer.Option(help="Regression loss \\[default: mae]. Classification uses binary_crossentropy "
                                      "(binary) or sparse_categorical_crossentropy (multiclass).",
                                 show_default=False)] = FitOptions.loss,
    class_weight: opt.ClassWeight = FitOptions.class_weight,
    recipe: opt.Recipe = FitOptions.recipe,
    scale: opt.Scale = FitOptions.scale,
    embeddings: Annotated[Optional[Literal[EMBEDDINGS]], typer.Option(
        help=f"Before the hidden layers, every input through: piecewise (a piecewise-linear encoding over "
             f"{PIECEWISE_BINS} quantile bins of the training rows), periodic (trainable sines and cosines) or "
             "none.")] = FitOptions.embeddings,
    drop: opt.Drop = None,
    val: opt.Val = FitOptions.val,
    val_split: opt.ValSplit = FitOptions.val_split,
    test_split: opt.TestSplit = FitOptions.test_split,
    layers: Annotated[Optional[str], typer.Option(metavar="WIDTHS", help="Widths of the ReLU hidden layers.")]
    = FitOptions.layers,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Dropout rate after each hidden layer.")]
    = FitOptions.dropout,
    batchnorm: Annotated[bool, typer.Option(help="BatchNormalization after each hidden layer.")]
    = FitOptions.batchnorm,
    epochs: opt.Epochs = FitOptions.epochs,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Rows per minibatch.")] = FitOptions.batch_size,
    optimizer: Annotated[Literal[OPTIMIZERS], typer.Option(help="Optimizer.")] = FitOptions.optimizer,
    lr: Annotated[Optional[float], typer.Option(show_default=False,
                                                help="Learning rate \\[default: the recipe's, else 0.001 adam, "
                                                     "0.01 sgd].")]
    = FitOptions.lr,
    patience: opt.Patience = FitOptions.patience,
    min_delta: opt.MinDelta = FitOptions.min_delta,
    seed: opt.seed_option("Seed of the split, initial weights, shuffles and dropout.") = FitOptions.seed,
    device: Annotated[Literal[DEVICES], typer.Option(help="Where to train: auto picks a CUDA GPU when one and the "
                                                          "gpu extra are there.")] = FitOptions.device,
    threads: opt.Threads = FitOptions.threads,
    ensemble: Annotated[int, typer.Option(min=1, metavar="K", help=(
        "Train K copies of the network with their own seeds in one compiled call and predict their average "
        "(nbtrain.Ensemble)."))] = FitOptions.ensemble,
    out: opt.out_option("runs/<timestamp>") = None,
    overwrite: opt.Overwrite = False,
    quiet: opt.Quiet = False,
    distributed: Annotated[Literal["none", "mpi"], typer.Option(
        help="mpi: data-parallel over the ranks of `mpiexec -n P nbtrain fit ...` (same model as one process; "
             "rank 0 prints and writes).")] = FitOptions.distributed,
):
    if lr is not None and lr <= 0:
        fail(f"--lr must be a positive number, got {lr}")
    if distributed == "mpi" and device == "cuda":
        fail("--distributed mpi trains on the CPU; leave out --device cuda")
    options = FitOptions(data=data, target=target, task=task, loss=loss, class_weight=class_weight, recipe=recipe,
                         scale=scale, embeddings=embeddings, drop=tuple(drop or ()), val=val, val_split=val_split,
                         test_split=test_split, layers=None if layers is None else _hidden_layers(layers),
                         dropout=dropout,
                         batchnorm=batchnorm, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                         patience=patience, min_delta=min_delta, seed=seed, device=device, distributed=distributed,
                         threads=threads, ensemble=ensemble)
    from ..tabular.fit import fit_table
    with user_errors():
        group = process_group(distributed)
    muted = bool(group and group.rank)
    console = make_console(muted=muted)
    describe = functools.partial(_describe, console, make_console(stderr=True, muted=muted), group, quiet)
    with stopped_at_once("Training", muted), user_errors(), abort_job_on_crash(group), \
            progress(console, quiet or muted) as display:
        result = fit_table(options, out, group, display, describe, overwrite)
    outcome, run_dir, cause = result.outcome, result.run_dir, result.model.stop_cause
    if run_dir is None and cause in EXIT_CODES:
        say(make_console(stderr=True, muted=muted), f"Training {cause} before the first epoch ended: nothing was saved")
        raise typer.Exit(EXIT_CODES[cause])
    monitor = "val_loss" if len(result.prep.x_val) else "loss"
    say(console, ending(outcome, monitor, result.options.patience, result.options.min_delta))
    console.print(_result_table(outcome, len(result.prep.x), result.test))
    say(console, f"Saved {', '.join(result.saved)} to {run_dir}")
    if "learning_curves.png" not in result.saved:
        say(console, "No learning_curves.png: install matplotlib for it (pip install 'nbtrain[plot]')")
    if outcome.diverged:
        fail(f"{result.model.stop_reason}; the model saved in {run_dir} has the weights of epoch {outcome.best}")
    if cause in EXIT_CODES:
        raise typer.Exit(EXIT_CODES[cause])


def _describe(console, errors, group, quiet, shape, prep, model, options, test_rows=0):
    """What is about to happen: task, classes, encoded width, split sizes, the model and its training; warnings
    (on `errors`, also when quiet)."""
    for warning in prep.warnings:
        say(errors, f"Warning: {warning}")
    if quiet:
        return
    pre, target = prep.preprocessing, prep.preprocessing.target
    line = functools.partial(say, console)
    line(f"Data: {'standard input' if options.data == '-' else options.data}: {shape[0]} rows x {shape[1]} columns")
    if target.task != "regression":
        weights = f"; class weights {options.class_weight}" if options.class_weight else ""
        smooth = getattr(model.loss, "label_smoothing", 0)
        line(f"Task: {target.task} classification of {target.name!r}: {target.mapping(counts=True)} "
             f"(loss {options.loss}{f' with label smoothing {smooth:g}' if smooth else ''}{weights})")
    else:
        line(f"Task: regression of {target.name!r} (loss {options.loss}; trained on the standardized target, "
             f"mean {target.center:.4g}, sd {target.scale:.4g}; mae is in the target's units)")
    kinds = [f.kind for f in pre.features]
    line(f"Features: {len(kinds)} columns ({kinds.count('numeric')} numeric, {kinds.count('categorical')} "
         f"categorical) -> {prep.x.shape[1]} inputs; scaling {SCALING_NAMES[pre.scaling]}; embeddings "
         f"{EMBEDDING_NAMES[options.embeddings]}"
         + (f"; dropped {', '.join(map(repr, pre.dropped))}" if pre.dropped else ""))
    tested = f", {test_rows} test rows" if test_rows else ""
    line(f"Split: {len(prep.x)} training rows, {len(prep.x_val)} validation rows{tested} (seed {options.seed})")
    extras = (f", dropout {options.dropout}" if options.dropout else "") + (", batchnorm" if options.batchnorm else "")
    head = model.layers[-1]
    line(f"Model ({options.recipe} recipe): hidden ReLU layers {'-'.join(map(str, options.layers)) or '(none)'}"
         f"{extras} -> {head.units} {head.activation} output{'s' if head.units > 1 else ''}; "
         f"{model.count_params():,} parameters"
         + (f" in an ensemble of {options.ensemble}" if options.ensemble > 1 else ""))
    stops = (f"early stopping on {'val_loss' if len(prep.x_val) else 'loss'} (patience {options.patience})"
             if options.patience else "no early stopping")
    optimizer = model.optimizer
    rate = f"lr {optimizer.learning_rate:g}" + (" cosine to 0" if options.settings.schedule == "cosine" else "")
    adam = f" (beta_2 {optimizer.beta_2:g})" if hasattr(optimizer, "beta_2") else ""
    line(f"Training: {options.optimizer}{adam} {rate}, batch {options.batch_size}, up to "
         f"{options.epochs} epochs, {stops}, best epoch kept; device {model.device}"
         + (f", data-parallel over {group.size} MPI ranks" if group else ""))
    for note in prep.notes:
        line(f"Note: {note}")


def _result_table(outcome, train_rows, test=None):
    """The best epoch's metrics, training and validation (and the held-out test rows' scores, `test`), with the
    time taken and the training throughput."""
    from rich.table import Table
    from ..tabular.holdout import beside_history
    history, best, seconds = outcome.history, outcome.best, outcome.seconds
    names = [k for k in history if not k.startswith("val_")]
    epochs_run = len(history["loss"])
    table = Table(title=f"Best epoch {best} of {epochs_run}",
                  caption=f"{seconds:.1f} s, {train_rows * epochs_run / seconds:,.0f} samples/s")
    table.add_column("metric")
    table.add_column("training", justify="right")
    table.add_column("validation", justify="right")
    placed, extra = beside_history(test.metrics, names) if test is not None else ({}, {})
    if test is not None:
        table.add_column("test", justify="right")
    for name in names:
        val = history.get("val_" + name)
        table.add_row(name, format_metric(history[name][best - 1]), format_metric(val[best - 1]) if val else "-",
                      *([format_metric(placed[name])] if name in placed else ["-"] if test is not None else []))
    for name, value in extra.items():
        table.add_row(name, "-", "-", format_metric(value))
    return table
