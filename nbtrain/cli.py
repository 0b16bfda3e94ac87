"""The `nbtrain` command: fit, predict, evaluate and info on CSV (or Parquet) tables, built on the Python API.
pandas, Numba and matplotlib are imported inside the commands so that --help and --version start fast."""
import contextlib
import functools
import time
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from . import __version__
from .callbacks import Callback, format_duration, format_logs
from .distributed import launched_rank
from .errors import DeviceError, DistributedError, InputError, ModelFileError
from .io import atomic_write, writable_folder
from .recipe import build_model, train

MODEL_FILE, HISTORY_FILE, CURVES_FILE = "model.nbt", "history.csv", "learning_curves.png"
# fit's options, as recorded in the model file
RECORDED_OPTIONS = ("task", "loss", "scale", "layers", "dropout", "batchnorm", "epochs", "batch_size", "optimizer",
                    "lr", "patience", "min_delta", "val_split", "seed")

app = typer.Typer(
    help="Train and use neural networks on tabular data from the command line.\n\n"
         "Start with [bold]nbtrain fit DATA --target COLUMN[/bold]; see [bold]nbtrain COMMAND --help[/bold].",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_show_locals=False)


# ------------------------------------------------------------------------------------------------ errors and output
def _fail(message):
    """One line on stderr and exit code 2: how every error a user can cause ends (under mpiexec every rank
    exits, and rank 0 alone prints)."""
    if launched_rank() == 0:
        typer.echo(f"Error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _user_errors():
    """Bad data, bad model files and unwritable outputs end in _fail, without a traceback."""
    try:
        yield
    except (InputError, ModelFileError, DeviceError, DistributedError) as exc:
        _fail(exc)
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else exc)


def _console(stderr=False, muted=False):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, quiet=muted)


def _say(console, text):
    """A plain line (no rich markup, never wrapped mid-word into a table-like layout)."""
    console.print(text, markup=False, soft_wrap=True)


def _number(value):
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.4e}"


def _version(value: bool):
    if value:
        typer.echo(f"nbtrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """Train and use neural networks on tabular data from the command line."""


# ------------------------------------------------------------------------------------------------ training display
class EpochLines(Callback):
    """One plain line per epoch, like Keras's verbose=2, for logs and pipes."""

    def __init__(self, console):
        super().__init__()
        self.console = console
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = format_duration(time.perf_counter() - self._start)
        _say(self.console, f"Epoch {epoch + 1}/{self.params['epochs']} - {elapsed}{format_logs(logs or {})}")


class EpochBar(Callback):
    """A rich progress bar over epochs that shows the latest epoch's loss and metrics."""

    def __init__(self, progress):
        super().__init__()
        self.progress = progress
        self.task = None

    def on_train_begin(self, logs=None):
        self.task = self.progress.add_task("Training", total=self.params["epochs"], logs="")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.task, advance=1, logs=format_logs(logs or {}).removeprefix(" - "))


@contextlib.contextmanager
def _progress(console, quiet):
    """The per-epoch display: a progress bar on a terminal, plain lines otherwise, nothing when quiet."""
    if quiet:
        yield []
    elif not console.is_terminal:
        yield [EpochLines(console)]
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column
        fixed = Column(no_wrap=True)
        columns = (TextColumn("Epoch", table_column=fixed), MofNCompleteColumn(table_column=fixed),
                   BarColumn(bar_width=20), TimeElapsedColumn(table_column=fixed),
                   TextColumn("{task.fields[logs]}", table_column=Column(overflow="fold")))
        with Progress(*columns, console=console) as progress:
            yield [EpochBar(progress)]


# ------------------------------------------------------------------------------------------------ fit: pieces
def _hidden_layers(text):
    try:
        units = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        units = [0]
    if any(u < 1 for u in units):
        _fail(f"--layers must be comma-separated positive widths such as 512,512,512, got {text!r}")
    return units


def _output_dir(out):
    """The run folder, created and proven writable before any training (default runs/<timestamp>), and
    whether it is new."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / stamp
        for n in range(2, 1000):
            if not out.exists():
                break
            out = Path("runs") / f"{stamp}-{n}"
    created = not out.exists()
    return writable_folder(out), created


# ------------------------------------------------------------------------------------------------ fit over MPI
def _process_group(distributed):
    """The MPI process group of `fit --distributed mpi` (None for one process)."""
    if distributed == "none":
        return None
    from .distributed import Group
    return Group()


def _read(source, group):
    """The table at `source`; under MPI each rank reads its share of the rows and all ranks get the whole
    table (so the preprocessing statistics are those of one process). An error on any rank stops all."""
    from .data import check_table, read_table
    if group is None:
        return read_table(source)
    part = error = None
    try:
        part = read_table(source, share=(group.rank, group.size))
    except InputError as exc:
        error = exc
    message = group.first_error(error)
    if message:
        raise InputError(message)
    return check_table(group.gather_table(part), str(source))


def _on_rank_0(group, action):
    """action() on rank 0 alone, its result on every rank; an error there stops every rank."""
    if group is None:
        return action()
    result = error = None
    if group.rank == 0:
        try:
            result = action()
        except InputError as exc:
            error = exc
    message = group.first_error(error)
    if message:
        raise InputError(message)
    return group.broadcast(result)


@contextlib.contextmanager
def _abort_job_on_crash(group):
    """Under MPI, an unexpected error on one rank would leave the others waiting in a collective forever:
    report it and abort the whole job."""
    try:
        yield
    except (typer.Exit, InputError, ModelFileError, DeviceError, DistributedError, OSError):
        raise
    except Exception as exc:
        if group is None:
            raise
        typer.echo(f"Error: rank {group.rank}: {type(exc).__name__}: {exc}", err=True)
        group.abort(2)


def _describe(console, frame, prep, model, units, args, group=None):
    """What is about to happen: task, label mapping, encoded width, split sizes, the model and its training."""
    pre, target = prep.preprocessing, prep.preprocessing.target
    say = functools.partial(_say, console)
    say(f"Data: {'standard input' if args['data'] == '-' else args['data']}: {len(frame)} rows x "
        f"{len(frame.columns)} columns")
    if target.task == "binary":
        mapping = ", ".join(f"{label!r} -> {i}" for i, label in enumerate(target.labels))
        say(f"Task: binary classification of {target.name!r}: {mapping} (loss binary_crossentropy)")
    else:
        say(f"Task: regression of {target.name!r} (loss {args['loss']}; trained on the standardized target, "
            f"mean {target.center:.4g}, sd {target.scale:.4g}; mae is in the target's units)")
    kinds = [f.kind for f in pre.features]
    say(f"Features: {len(kinds)} columns ({kinds.count('numeric')} numeric, {kinds.count('categorical')} "
        f"categorical) -> {prep.x.shape[1]} inputs; scaling {pre.scaling}"
        + (f"; dropped {', '.join(map(repr, pre.dropped))}" if pre.dropped else ""))
    say(f"Split: {len(prep.x)} training rows, {len(prep.x_val)} validation rows (seed {args['seed']})")
    extras = (f", dropout {args['dropout']}" if args["dropout"] else "") + (", batchnorm" if args["batchnorm"] else "")
    say(f"Model: hidden ReLU layers {'-'.join(map(str, units)) or '(none)'}{extras} -> 1 "
        f"{'sigmoid' if target.task == 'binary' else 'linear'} output; {model.count_params():,} parameters")
    stops = (f"early stopping on {'val_loss' if len(prep.x_val) else 'loss'} (patience {args['patience']})"
             if args["patience"] else "no early stopping")
    say(f"Training: {args['optimizer']} lr {model.optimizer.learning_rate:g}, batch {args['batch_size']}, up to "
        f"{args['epochs']} epochs, {stops}; device {model.device}"
        + (f", data-parallel over {group.size} MPI ranks" if group else ""))
    for note in prep.notes:
        say(f"Note: {note}")


def _history_frame(history):
    import pandas as pd
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def _plot_curves(history, best, path, regression):
    """learning_curves.png: loss (and binary accuracy) per epoch, training and validation. False without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    pairs = [("loss", "val_loss")] + ([] if regression else [("binary_accuracy", "val_binary_accuracy")])
    figure = Figure(figsize=(6 * len(pairs), 4), layout="constrained")
    epochs = range(1, len(history["loss"]) + 1)
    for axes, keys in zip(figure.subplots(1, len(pairs), squeeze=False)[0], pairs):
        for key in keys:
            if key in history:
                axes.plot(epochs, history[key], label=key)
        axes.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        axes.set_xlabel("epoch")
        axes.set_title(keys[0] + (" (standardized target)" if regression and keys[0] == "loss" else ""))
        axes.legend()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return True


def _result_table(history, best, seconds, train_rows):
    """The best epoch's metrics, training and validation, with the time taken and the training throughput."""
    from rich.table import Table
    names = [k for k in history if not k.startswith("val_")]
    epochs_run = len(history["loss"])
    table = Table(title=f"Best epoch {best} of {epochs_run}",
                  caption=f"{seconds:.1f} s, {train_rows * epochs_run / seconds:,.0f} samples/s")
    table.add_column("metric")
    table.add_column("training", justify="right")
    table.add_column("validation", justify="right")
    for name in names:
        val = history.get("val_" + name)
        table.add_row(name, _number(history[name][best - 1]), _number(val[best - 1]) if val else "-")
    return table


# ------------------------------------------------------------------------------------------------ fit
FIT_HELP = (
    "Train a model on a CSV (or Parquet) table and save it with its preprocessing.\n\n"
    "The task comes from the target: two distinct values make a binary classifier (the label mapping is "
    "printed), numbers otherwise a regression. Numeric columns are imputed (median) and scaled, text columns "
    "imputed (most frequent) and one-hot encoded, all with training-split statistics. A regression target is "
    "standardized for training; predictions and mae are in its own units.\n\n"
    "The run folder gets model.nbt (with the best epoch's weights), history.csv and, with matplotlib "
    "installed, learning_curves.png.")
FIT_EXAMPLES = """[bold]Examples[/bold]

  nbtrain fit red-wine.csv --target quality

  nbtrain fit ion.csv -t Class --layers 16,16 --dropout 0.3 --out runs/ion

  cat houses.csv | nbtrain fit - -t price --drop id --loss huber --epochs 200 --quiet
"""


@app.command(help=FIT_HELP, epilog=FIT_EXAMPLES)
def fit(
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV file with a header row ('-' reads standard "
                                                             "input), or Parquet.")],
    target: Annotated[str, typer.Option("--target", "-t", metavar="COLUMN", help="The column to predict.")],
    task: Annotated[Literal["auto", "regression", "binary"],
                    typer.Option(help="auto: binary for two distinct target values, else regression.")] = "auto",
    loss: Annotated[Optional[Literal["mae", "mse", "huber"]],
                    typer.Option(help="Regression loss \\[default: mae]. Classification uses binary_crossentropy.",
                                 show_default=False)] = None,
    scale: Annotated[Literal["standard", "minmax", "none"], typer.Option(help="Scaling of numeric columns.")]
    = "standard",
    drop: Annotated[Optional[list[str]], typer.Option(metavar="COLUMN", help="A column to leave out, e.g. an ID "
                                                                            "(repeatable).")] = None,
    val: Annotated[Optional[str], typer.Option(metavar="DATA2", help="A validation file (instead of --val-split).")]
    = None,
    val_split: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of rows held out for validation.")] = 0.2,
    layers: Annotated[str, typer.Option(help="Widths of the ReLU hidden layers.")] = "512,512,512",
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Dropout rate after each hidden layer.")] = 0.0,
    batchnorm: Annotated[bool, typer.Option(help="BatchNormalization after each hidden layer.")] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs to train.")] = 500,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per minibatch.")] = 256,
    optimizer: Annotated[Literal["adam", "sgd"], typer.Option(help="Optimizer.")] = "adam",
    lr: Annotated[Optional[float], typer.Option(show_default=False,
                                                help="Learning rate \\[default: 0.001 adam, 0.01 sgd].")] = None,
    patience: Annotated[int, typer.Option(min=0, help="Epochs without improvement of val_loss before stopping "
                                                      "(0: train all epochs). The best weights are kept.")] = 20,
    min_delta: Annotated[float, typer.Option(min=0.0, help="Smallest val_loss change that counts as improvement.")]
    = 0.001,
    seed: Annotated[int, typer.Option(help="Seed of the split, initial weights, shuffles and dropout.")] = 0,
    device: Annotated[Literal["auto", "cpu", "cuda"], typer.Option(help="Where to train: auto picks a CUDA GPU "
                                                                        "when one and the gpu extra are there.")]
    = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False,
                                                help="Run folder \\[default: runs/<timestamp>].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
    distributed: Annotated[Literal["none", "mpi"], typer.Option(
        help="mpi: data-parallel over the ranks of `mpiexec -n P nbtrain fit ...` (same model as one process; "
             "rank 0 prints and writes).")] = "none",
):
    args = dict(locals())
    if lr is not None and lr <= 0:
        _fail(f"--lr must be positive, got {lr}")
    if distributed == "mpi" and device == "cuda":
        _fail("--distributed mpi trains on the CPU; leave out --device cuda")
    units = _hidden_layers(layers)
    with _user_errors():
        group = _process_group(distributed)
    console = _console(muted=bool(group and group.rank))
    with _user_errors(), _abort_job_on_crash(group):
        from .data import prepare
        frame = _read(data, group)
        prep = prepare(frame, target, task=task, scaling=scale, drop=drop or (), val_split=val_split, seed=seed,
                       validation=_read(val, group) if val else None)
        spec = prep.preprocessing.target
        if spec.task == "binary" and loss:
            _fail("--loss applies to regression; binary classification trains with binary_crossentropy")
        args["loss"] = "binary_crossentropy" if spec.task == "binary" else loss or "mae"
        model = build_model(prep.x.shape[1], units, dropout, batchnorm, spec.task, optimizer, lr, args["loss"], seed,
                            "cpu" if group else device)
        if not quiet:
            _describe(console, frame, prep, model, units, args, group)
        run_dir, created = _on_rank_0(group, lambda: _output_dir(out))
        with _progress(console, quiet or bool(group and group.rank)) as display:
            outcome = train(model, prep.x, prep.y, prep.x_val, prep.y_val, task=spec.task, target_scale=spec.scale,
                            batch_size=batch_size, epochs=epochs, patience=patience, min_delta=min_delta, seed=seed,
                            extra_callbacks=lambda recorder, stopper: display,
                            distribute="mpi" if group else None)
        history, best, status, seconds = outcome.history, outcome.best, outcome.status, outcome.seconds
        if best is None:
            if created and not (group and group.rank):
                run_dir.rmdir()
            _fail(f"{model.stop_reason or 'training ended'}; no epoch ended with a finite loss, so nothing was saved")
        saved = [] if group and group.rank else _save_run(model, prep, run_dir, args, history, best, status, seconds)
    _say(console, f"Training ended: {status}; the model keeps the weights of epoch {best}")
    console.print(_result_table(history, best, seconds, len(prep.x)))
    _say(console, f"Saved {', '.join(saved)} to {run_dir}")
    if CURVES_FILE not in saved:
        _say(console, "No learning_curves.png: install matplotlib for it (pip install 'nbtrain[plot]')")
    if outcome.diverged:
        _fail(f"{model.stop_reason}; the model saved in {run_dir} has the weights of epoch {best}")


def _save_run(model, prep, run_dir, args, history, best, status, seconds):
    """model.nbt (with the preprocessing and a training record as metadata), history.csv and, with matplotlib,
    learning_curves.png. Returns the names of the files written."""
    epochs_run = len(history["loss"])
    training = {
        "data": args["data"], "validation": args["val"], "train_rows": len(prep.x), "val_rows": len(prep.x_val),
        "options": {k: args[k] for k in RECORDED_OPTIONS},
        "epochs_run": epochs_run, "best_epoch": best, "status": status, "seconds": round(seconds, 3),
        "samples_per_second": round(len(prep.x) * epochs_run / seconds, 1),
        "best": {k: v[best - 1] for k, v in history.items()}, "nbtrain_version": __version__}
    model.save(run_dir / MODEL_FILE, metadata={"preprocessing": prep.preprocessing.to_dict(), "training": training})
    atomic_write(run_dir / HISTORY_FILE, lambda tmp: _history_frame(history).to_csv(tmp, index=False))
    plotted = _plot_curves(history, best, run_dir / CURVES_FILE, prep.preprocessing.target.task == "regression")
    return [MODEL_FILE, HISTORY_FILE] + ([CURVES_FILE] if plotted else [])


# ------------------------------------------------------------------------------------------------ using a model
def _load(path):
    """A model written by `nbtrain fit` and its preprocessing."""
    from .data import Preprocessing
    from .io import load_model
    model = load_model(path)
    if not isinstance(model.metadata, dict) or "preprocessing" not in model.metadata:
        raise ModelFileError(f"{path} has no preprocessing: it was not written by `nbtrain fit` "
                             "(load it in Python with nbtrain.load_model)")
    return model, Preprocessing.from_dict(model.metadata["preprocessing"])


PREDICT_HELP = (
    "Predict with a model from nbtrain fit on a table with the same feature columns.\n\n"
    "Columns are matched by name: extra columns (the target too) are ignored, missing ones are an error. The "
    "output CSV has one row per input row, in order: prediction (the value, or the predicted label) and, for "
    "classification, probability (of the label coded 1; see nbtrain info).")


@app.command(help=PREDICT_HELP, epilog="[bold]Examples[/bold]\n\n  nbtrain predict runs/wine/model.nbt new-wines.csv "
             "-o preds.csv\n\n  cat new.csv | nbtrain predict runs/wine/model.nbt - > preds.csv")
def predict(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A model file written by nbtrain fit.")],
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV or Parquet file with the feature columns "
                                                             "('-': standard input).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", show_default=False,
                                                   help="CSV file to write \\[default: standard output].")] = None,
):
    with _user_errors():
        from .data import read_table
        net, pre = _load(model)
        frame = read_table(data)
        table = pre.target.decode(net.predict(pre.transform(frame, data)))
        if pre.target.task == "binary":
            table = table[["prediction", "probability"]]
        if output is None or str(output) == "-":
            typer.echo(table.to_csv(index=False, float_format="%.6g"), nl=False)
        else:
            atomic_write(output, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))
            _say(_console(stderr=True), f"Wrote {len(table)} predictions to {output}")


EVALUATE_HELP = (
    "Loss and metrics of a model from nbtrain fit on a labelled table.\n\n"
    "Rows without a target value are left out. For regression, mae and rmse are computed from the predictions "
    "in the target's own units; the loss is the training loss, on the standardized target.")


@app.command(help=EVALUATE_HELP, epilog="[bold]Examples[/bold]\n\n  nbtrain evaluate runs/wine/model.nbt test.csv")
def evaluate(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A model file written by nbtrain fit.")],
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV or Parquet file with the features and the "
                                                             "target column.")],
):
    import numpy as np
    from rich.table import Table
    with _user_errors():
        from .data import labelled_rows, read_table
        net, pre = _load(model)
        spec, notes = pre.target, []
        rows = labelled_rows(read_table(data), spec.name, data, notes)
        x, y = pre.transform(rows, data), spec.encode(rows[spec.name], data)
        result = net.evaluate(x, y, verbose=0, return_dict=True)
        if spec.task == "regression":
            error = spec.decode(net.predict(x))["prediction"].to_numpy() - rows[spec.name].to_numpy(float)
            result = {"loss": result["loss"], "mae": float(np.abs(error).mean()),
                      "rmse": float(np.sqrt((error ** 2).mean()))}
    console = _console()
    for note in notes:
        _say(console, f"Note: {note}")
    _say(console, f"Evaluated on {data}: {len(rows)} rows")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.items():
        table.add_row(name, _number(value))
    console.print(table)
    if spec.task == "regression":
        _say(console, f"loss: {net.loss.name} on the standardized target; mae and rmse: in {spec.name!r} units")


@app.command(epilog="[bold]Examples[/bold]\n\n  nbtrain info runs/wine/model.nbt")
def info(model: Annotated[Path, typer.Argument(metavar="MODEL", help="A model file written by nbtrain fit.")]):
    """Architecture, parameter count, training data schema, task and best metrics of a saved model."""
    from rich.table import Table
    with _user_errors():
        net, pre = _load(model)
    training = net.metadata.get("training", {})
    console = _console()
    say = functools.partial(_say, console)
    spec = pre.target
    if spec.task == "binary":
        say(f"Task: binary classification of {spec.name!r}: "
            + ", ".join(f"{label!r} -> {i}" for i, label in enumerate(spec.labels)))
    else:
        say(f"Task: regression of {spec.name!r} (standardized for training: mean {spec.center:.6g}, "
            f"sd {spec.scale:.6g})")
    if training:
        say(f"Trained on {training['data']}: {training['train_rows']} training rows, {training['val_rows']} "
            f"validation rows; {training['epochs_run']} epochs ({training['status']}), best epoch "
            f"{training['best_epoch']}; {training['seconds']} s")
        say("Best epoch: " + ", ".join(f"{k} {_number(v)}" for k, v in training["best"].items()))
    net.summary(print_fn=say)
    say(f"Parameters: {net.count_params():,}; loss {net.loss.name}; optimizer {type(net.optimizer).__name__}")
    schema = Table(title=f"Input columns ({len(pre.features)} -> {len(pre.input_names)} inputs, scaling {pre.scaling})")
    for heading in ("column", "kind", "missing ->", "encoding"):
        schema.add_column(heading)
    for f in pre.features:
        encoding = (f"(x - {f.center:.6g}) / {f.scale:.6g}" if f.kind == "numeric"
                    else f"one-hot: {', '.join(f.categories[:8])}{', ...' if len(f.categories) > 8 else ''}")
        schema.add_row(f.name, f.kind, str(f.fill if f.kind != "numeric" else f"{f.fill:.6g}"), encoding)
    console.print(schema)
    if pre.dropped:
        say(f"Dropped at training: {', '.join(map(repr, pre.dropped))}")


# ------------------------------------------------------------------------------------------------ sweep
SWEEP_HELP = (
    "Train many models on one table with hyperparameters drawn from a search space, and keep the best.\n\n"
    "The data options are fit's: the preprocessing is fitted once, on the training rows, and shared by every "
    "trial. --space takes a TOML file (keys layers, units, lr, batch_size, dropout, batchnorm, optimizer, loss; "
    "a value, an array of choices, or a table with log_uniform, uniform or choices); without it a default space "
    "is searched. Trials run side by side in local worker processes (one BLAS thread each), or on Ray Tune with "
    "ASHA early termination (--backend ray; pip install 'nbtrain\\[ray]'). The same command gives the same trials "
    "and the same leaderboard.\n\n"
    "The run folder gets leaderboard.csv, sweep.png (the metric against each hyperparameter, with matplotlib) "
    "and best/ with the best trial's model.nbt, usable by nbtrain predict. Ctrl-C stops the sweep and saves "
    "what finished.")
SWEEP_EXAMPLES = """[bold]Examples[/bold]

  nbtrain sweep ion.csv --target Class --trials 32

  nbtrain sweep red-wine.csv -t quality --trials 8 --space space.toml --metric val_mae --out runs/wine-sweep

  nbtrain sweep red-wine.csv -t quality --backend ray --address auto --search tpe --trials 200
"""


@app.command("sweep", help=SWEEP_HELP, epilog=SWEEP_EXAMPLES)
def sweep_command(
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV or Parquet file with a header row.")],
    target: Annotated[str, typer.Option("--target", "-t", metavar="COLUMN", help="The column to predict.")],
    trials: Annotated[int, typer.Option(min=1, help="Number of models to train.")] = 20,
    space: Annotated[Optional[Path], typer.Option(metavar="TOML", show_default=False,
                                                  help="Search space file \\[default: a space for the task].")]
    = None,
    backend: Annotated[Literal["local", "ray"], typer.Option(help="local: a process pool on this machine; ray: "
                                                                  "Ray Tune.")] = "local",
    address: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Ray cluster to join: auto or HOST:PORT "
                                                                        "\\[default: start a local Ray].",
                                                   show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, show_default=False,
                                                   help="Trials at a time \\[default: one per core].")] = None,
    metric: Annotated[str, typer.Option(help="What ranks the trials: val_loss, val_mae, val_binary_accuracy, or "
                                             "their training versions.")] = "val_loss",
    search: Annotated[Literal["random", "tpe"], typer.Option(help="How Ray picks trials: random, or Optuna's TPE "
                                                                  "(needs optuna).")] = "random",
    task: Annotated[Literal["auto", "regression", "binary"],
                    typer.Option(help="auto: binary for two distinct target values, else regression.")] = "auto",
    scale: Annotated[Literal["standard", "minmax", "none"], typer.Option(help="Scaling of numeric columns.")]
    = "standard",
    drop: Annotated[Optional[list[str]], typer.Option(metavar="COLUMN", help="A column to leave out (repeatable).")]
    = None,
    val: Annotated[Optional[str], typer.Option(metavar="DATA2", help="A validation file (instead of --val-split).")]
    = None,
    val_split: Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of rows held out for validation.")] = 0.2,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per trial.")] = 500,
    patience: Annotated[int, typer.Option(min=0, help="Early stopping patience on val_loss (0: all epochs).")] = 20,
    min_delta: Annotated[float, typer.Option(min=0.0, help="Smallest val_loss change that counts as improvement.")]
    = 0.001,
    seed: Annotated[int, typer.Option(help="Seed of the split, the sampled trials and their fits.")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", show_default=False,
                                                help="Run folder \\[default: runs/sweep-<timestamp>].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
):
    from .sweep import sweep as run_sweep
    with _user_errors():
        run_sweep(data, target, trials, space, backend, address, workers, metric, seed,
                  out or Path("runs") / time.strftime("sweep-%Y%m%d-%H%M%S"), task=task, scale=scale, drop=drop or (),
                  val=val, val_split=val_split, epochs=epochs, patience=patience, min_delta=min_delta, search=search,
                  verbose=1 if quiet else 2)
