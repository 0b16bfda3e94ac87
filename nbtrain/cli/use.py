"""Using a model from `nbtrain fit`: predict, evaluate and info."""
import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..callbacks import format_metric
from ..files import atomic_write
from .app import cell, command, make_console, say, user_errors
from .options import ModelFile


PREDICT_HELP = (
    "Predict with a model from nbtrain fit on a table with the same feature columns.\n\n"
    "Columns are matched by name: extra columns (the target too) are ignored, missing ones are an error. The "
    "output CSV has one row per input row, in order: the --keep columns, then prediction (the value, or the "
    "predicted label) and, for binary classification, probability (of the label coded 1; see nbtrain info), for "
    "multiclass one probability_<label> column per class.")


@command(help=PREDICT_HELP, epilog="[bold]Examples[/bold] (after nbtrain fit --help's)\n\n"
         "  nbtrain predict runs/houses/model.nbt data/houses.csv -o preds.csv\n\n"
         "  nbtrain predict runs/birds data/birds.csv --keep bird_id\n\n"
         "  cat data/churn.csv | nbtrain predict runs/churn - > preds.csv")
def predict(
    model: ModelFile,
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV or Parquet file with the feature columns "
                                                             "('-': standard input).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                   help="CSV file to write (replaced if it exists, keeping "
                                                        "its mode; a symlink's target; a device or FIFO written "
                                                        "into) \\[default: standard output].")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(metavar="COLUMN", help="A column of DATA to copy into the "
                                                                             "output, first, e.g. an ID "
                                                                             "(repeatable).")] = None,
):
    with user_errors():
        from ..tabular.apply import file_predictions
        from ..tabular.runfolder import load_run
        net, pre = load_run(model)
        notes = []
        tables = file_predictions(net, pre, data, tuple(keep or ()), notes)
        if output is None or str(output) == "-":
            text = "".join(_csv_parts(tables, []))  # all read before any is written
            _say_notes(notes)
            typer.echo(text, nl=False)
        else:
            rows = []
            atomic_write(output, lambda tmp: _write_lines(tmp, _csv_parts(tables, rows)))
            _say_notes(notes)
            say(make_console(stderr=True), f"Wrote {sum(rows)} predictions to {output}")


def _say_notes(notes):
    for note in notes:  # on standard error: standard output may be the CSV
        say(make_console(stderr=True), f"Note: {note}")


def _csv_parts(tables, rows):
    """The CSV text of prediction tables, the header once; each table's row count is appended to `rows`."""
    for i, table in enumerate(tables):
        rows.append(len(table))
        yield table.to_csv(index=False, header=i == 0, float_format="%.6g")


def _write_lines(path, parts):
    with open(path, "w", newline="") as handle:
        for part in parts:
            handle.write(part)


EVALUATE_HELP = (
    "Scores of a model from nbtrain fit on a labelled table.\n\n"
    "Scores on rows the model was fitted or validated on are optimistic: a warning counts them (the model file "
    "remembers its rows). Score held-out rows: a file of your own, or the test split of fit --test-split. "
    "Rows without a target value are left out. For classification: accuracy, log loss (the mean cross-entropy), "
    "macro F1 and the confusion matrix. For regression: the loss (the training loss, on the standardized "
    "target), and mae and rmse computed from the predictions in the target's own units.")


SHOWN_CLASSES = 20  # a larger confusion matrix is not printed (it would not fit a terminal); --confusion writes it


@command(help=EVALUATE_HELP, epilog="[bold]Examples[/bold] (after nbtrain fit --help's)\n\n"
         "  nbtrain evaluate runs/houses data/houses.csv\n\n"
         "  nbtrain evaluate runs/birds data/birds.csv --confusion confusion.csv")
def evaluate(
    model: ModelFile,
    data: Annotated[str, typer.Argument(metavar="DATA", help="CSV or Parquet file with the features and the "
                                                             "target column.")],
    confusion: Annotated[Optional[Path], typer.Option(metavar="FILE", show_default=False, help=(
        "Write the whole confusion matrix of a classifier to this CSV file (rows: true labels, columns: predicted; "
        f"the terminal shows it up to {SHOWN_CLASSES} classes)."))] = None,
):
    from rich.table import Table
    with user_errors():
        from ..tabular.apply import file_evaluation
        from ..tabular.runfolder import load_run
        net, pre = load_run(model)
        notes = []
        rows, scores = file_evaluation(net, pre, data, notes)
    console, spec = make_console(), pre.target
    for note in notes:
        say(console, f"Note: {note}")
    if scores.seen is not None and scores.seen.warning():
        say(make_console(stderr=True), f"Warning: {scores.seen.warning()}")
    say(console, f"Evaluated on {_name(data)}: {rows} rows")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in scores.metrics.items():
        table.add_row(name, format_metric(value))
    console.print(table)
    if spec.task == "regression":
        say(console, f"loss: {net.loss.name} on the standardized target; mae and rmse: in {spec.name!r} units")
        if confusion is not None:
            say(make_console(stderr=True), f"No {confusion} written: a regression has no confusion matrix")
        return
    if confusion is not None:
        with user_errors():
            atomic_write(confusion, lambda tmp: _confusion_frame(spec, scores.confusion).to_csv(tmp))
        say(make_console(stderr=True), f"Wrote the confusion matrix ({len(spec.labels)} classes) to {confusion}")
    if len(spec.labels) <= SHOWN_CLASSES:
        console.print(_confusion_table(spec, scores.confusion))
    elif confusion is None:
        say(console, f"Confusion matrix not shown: {len(spec.labels)} classes (shown up to {SHOWN_CLASSES}); "
                     "--confusion FILE writes it as CSV")


def _name(data):
    return "standard input" if data == "-" else data


def _confusion_frame(spec, confusion):
    """The confusion matrix as a DataFrame labelled by the classes (rows true, columns predicted)."""
    import pandas as pd
    from ..tabular.preprocessing import label_text
    labels = pd.Index([label_text(label) for label in spec.labels], name="true \\ predicted")
    return pd.DataFrame(confusion, index=labels, columns=labels)


def _confusion_table(spec, confusion):
    """The confusion matrix: a row per true class, a column per predicted class."""
    from rich.table import Table
    from ..tabular.preprocessing import label_text
    labels = [label_text(label) for label in spec.labels]
    table = Table(title=cell(f"Confusion matrix of {spec.name!r}"))
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(cell(label), justify="right")
    for label, counts in zip(labels, confusion):
        table.add_row(cell(label), *map(str, counts))
    return table


@command(epilog="[bold]Examples[/bold] (after nbtrain fit --help's)\n\n  nbtrain info runs/houses/model.nbt")
def info(model: ModelFile):
    """Architecture, parameter count, training data schema, task and best metrics of a saved model."""
    from rich.table import Table
    with user_errors():
        from ..tabular.runfolder import load_run
        net, pre = load_run(model)
    training = net.metadata.get("training", {})
    console = make_console()
    line = functools.partial(say, console)
    spec = pre.target
    if spec.task != "regression":
        line(f"Task: {spec.task} classification of {spec.name!r}: {spec.mapping(counts=True)}")
    else:
        line(f"Task: regression of {spec.name!r} (standardized for training: mean {spec.center:.6g}, "
            f"sd {spec.scale:.6g})")
    if training:
        line(f"Trained on {training['data']}: {training['train_rows']} training rows, {training['val_rows']} "
            f"validation rows; {training['epochs_run']} epochs ({training['status']}), best epoch "
            f"{training['best_epoch']}; {training['seconds']} s")
        line("Best epoch: " + ", ".join(f"{k} {format_metric(v)}" for k, v in training["best"].items()))
        if "test" in training:
            line(f"Test ({training['test_rows']} held-out rows): "
                 + ", ".join(f"{k} {format_metric(v)}" for k, v in training["test"].items()))
    net.summary(print_fn=line)
    line(f"Parameters: {net.count_params():,}; loss {net.loss.name}; optimizer {type(net.optimizer).__name__}")
    schema = Table(title=f"Input columns ({len(pre.features)} -> {len(pre.input_names)} inputs, scaling {pre.scaling})")
    for heading in ("column", "kind", "missing ->", "encoding"):
        schema.add_column(heading)
    for f in pre.features:
        encoding = (f"(x - {f.center:.6g}) / {f.scale:.6g}" + (f", smooth clip {f.clip:g}" if f.clip else "")
                    if f.kind == "numeric"
                    else f"one-hot: {', '.join(f.categories[:8])}{', ...' if len(f.categories) > 8 else ''}")
        schema.add_row(cell(f.name), f.kind, cell(f.fill if f.kind != "numeric" else f"{f.fill:.6g}"), cell(encoding))
    console.print(schema)
    if pre.dropped:
        line(f"Dropped at training: {', '.join(map(repr, pre.dropped))}")
