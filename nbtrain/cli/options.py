"""The command-line options that commands share (`nbtrain fit` and `nbtrain sweep`; the MODEL argument of
predict, evaluate, info and export), each defined once; the defaults the
commands give them come from tabular.options (FitOptions, SweepOptions), so each is written once too."""
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..tabular.options import CLASS_WEIGHTS, RECIPES, SCALINGS, SEED_MAX, TASKS

Data = Annotated[str, typer.Argument(metavar="DATA", help="CSV file with a header row ('-' reads standard input), "
                                                          "or Parquet.")]
ModelFile = Annotated[Path, typer.Argument(metavar="MODEL", help="A model file written by nbtrain fit, or its run "
                                                                             "folder (a sweep's: its best model).")]
Target = Annotated[str, typer.Option("--target", "-t", metavar="COLUMN", help="The column to predict.")]
Task = Annotated[Literal[TASKS], typer.Option(help="auto: binary for two distinct target values, multiclass for "
                                                   "text with more, regression for numbers with more (an integer "
                                                   "score too: say multiclass to classify it).")]
ClassWeight = Annotated[Optional[Literal[CLASS_WEIGHTS]], typer.Option(
    show_default=False, help="balanced: weigh each training row by n_rows / (n_classes * its class's rows), as "
                             "scikit-learn does (classification) \\[default: every row alike].")]
Scale = Annotated[Optional[Literal[SCALINGS]], typer.Option(
    help="Scaling of numeric columns: robust (median and interquartile range, then smooth clipping to (-3, 3)), "
         "standard (mean and standard deviation), minmax or none.")]
Drop = Annotated[Optional[list[str]], typer.Option(metavar="COLUMN", help="A column to leave out, e.g. an ID "
                                                                         "(repeatable).")]
Val = Annotated[Optional[str], typer.Option(metavar="DATA2", help="A validation file (instead of --val-split).")]
ValSplit = Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of rows held out for validation.")]
TestSplit = Annotated[float, typer.Option(min=0.0, max=0.9, help="Share of rows held out for an honest test "
                                                                 "score, seen by nothing until the end.")]
Epochs = Annotated[Optional[int], typer.Option(min=1, help="Most epochs to train (per trial, in a sweep).")]
Patience = Annotated[Optional[int], typer.Option(min=0, help="Epochs without improvement of val_loss before "
                                                             "stopping (0: train all epochs). The best weights are "
                                                             "kept.")]


def _recipe(name):
    """A recipe's values in a line of --recipe's help."""
    r = RECIPES[name]
    stops = f"early stopping, patience {r.patience}" if r.patience else "all of them, the best kept"
    return (f"{name}: {r.scale} scaling, embeddings {r.embeddings}, layers {','.join(map(str, r.layers))}, "
            f"{r.epochs} epochs of batch {r.batch_size} ({stops}), Adam {f'lr {r.lr:g}' if r.lr else 'default lr'} beta_2 {r.beta_2:g} "
            f"({r.schedule} schedule)" + (f", label smoothing {r.label_smoothing:g} (multiclass)"
                                           if r.label_smoothing else ""))


Recipe = Annotated[Literal[tuple(RECIPES)], typer.Option(
    help="What the options left out default to. " + "; ".join(map(_recipe, RECIPES))
         + " (course: nbtrain fit as it trained before).")]
MinDelta = Annotated[float, typer.Option(min=0.0, help="Smallest val_loss change that counts as improvement.")]
Threads = Annotated[Optional[int], typer.Option(
    min=1, show_default=False, help="BLAS threads of each fit's matrix products \\[default: NBTRAIN_THREADS, else the "
                                    "cores other processes leave free; one per sweep trial].")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result (and warnings).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Write into an --out folder that exists already, "
                                                             "replacing its files (without it, that is an error); "
                                                             "refused if it holds anything nbtrain did not write.")]


def seed_option(help):
    """--seed, with the command's own account of what it seeds (NumPy's generators take 0 to 2**32 - 1 alike)."""
    return Annotated[int, typer.Option(min=0, max=SEED_MAX, help=help)]


def out_option(default):
    """--out, with the command's own default folder (-o is where a command writes: this folder here, predict's
    CSV file there)."""
    return Annotated[Optional[Path], typer.Option("--out", "-o", metavar="DIR", show_default=False,
                                                  help=f"Run folder to create; an existing one is an error unless "
                                                       f"--overwrite \\[default: {default}, a free name].")]
