"""The run folder of `nbtrain fit` (and of a sweep's best trial): model.nbt with the preprocessing and a training
record as its metadata, history.csv and, with matplotlib, learning_curves.png; and reading such a model back."""
import time
from pathlib import Path

from ..errors import InputError, ModelFileError
from ..files import atomic_write, writable_folder
from ..version import __version__

MODEL_FILE, HISTORY_FILE, CURVES_FILE = "model.nbt", "history.csv", "learning_curves.png"
RUNS = Path("runs")


def output_dir(out, overwrite=False, prefix=""):
    """The run folder, created (atomically: of two fits racing for one folder, one gets it) and proven writable
    before any training, and whether it is new. The default runs/<prefix><timestamp> takes the next free name
    (runs/<timestamp>-2, ...); an existing `out` is an InputError unless `overwrite` allows replacing its files."""
    if out is None:
        stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
        for name in [stamp, *(f"{stamp}-{n}" for n in range(2, 1000))]:
            if _new_folder(RUNS / name):
                return writable_folder(RUNS / name), True
        raise InputError(f"cannot find a free run folder name under {RUNS}/ for {stamp}; give one with --out")
    out = Path(out)
    if _new_folder(out):
        return writable_folder(out), True
    if not overwrite:
        raise InputError(f"the run folder {out} already exists; choose another --out, or pass --overwrite to "
                         "replace the files in it")
    if not out.is_dir():
        raise InputError(f"cannot write to the output directory {out}: it is a file, not a folder")
    return writable_folder(out), False


def _new_folder(path):
    """Create the folder `path` (its parents as needed); False when it exists already."""
    try:
        writable_folder(path.parent)
        path.mkdir()
    except FileExistsError:
        return False
    except OSError as exc:
        raise InputError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    return True


def source_name(source):
    """How the training record names a data source: its path, "DataFrame" for one given in Python, or None."""
    return None if source is None else "DataFrame" if hasattr(source, "columns") else str(source)


def history_frame(history):
    import pandas as pd
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def plot_curves(history, best, path, target, loss):
    """learning_curves.png (curves_figure). False without matplotlib."""
    try:
        figure = curves_figure(history, best, target, loss)
    except ImportError:
        return False
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return True


def curves_figure(history, best, target, loss):
    """Two panels, the loss and the recipe's metric (mae in the target's units, or the accuracy) per epoch,
    training and validation, the best epoch marked, both axes labelled, whole epochs on the x axis."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from .recipe import task_metric
    metric, regression = task_metric(target.task), target.task == "regression"
    panels = [("loss", f"loss ({loss}{', standardized target' if regression else ''})"),
              (metric, f"{metric} ({target.name} units)" if regression else metric)]
    figure = Figure(figsize=(12, 4), layout="constrained")
    epochs = range(1, len(history["loss"]) + 1)
    for axes, (key, label) in zip(figure.subplots(1, 2), panels):
        for name in (key, "val_" + key):
            if name in history:
                axes.plot(epochs, history[name], label="validation" if name.startswith("val_") else "training")
        axes.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.legend()
    return figure


def save_run(model, prep, run_dir, options, outcome, status=None):
    """model.nbt (with the preprocessing and a training record as metadata), history.csv and, with matplotlib,
    learning_curves.png, for a fit with `options` (FitOptions) that ended as `outcome` (recipe.Outcome); status
    overrides the outcome's in the record. Returns the names of the files written."""
    history, best, seconds = outcome.history, outcome.best, outcome.seconds
    epochs_run = len(history["loss"])
    training = {
        "data": source_name(options.data), "validation": source_name(options.val), "train_rows": len(prep.x), "val_rows": len(prep.x_val),
        "options": options.record(),
        "epochs_run": epochs_run, "best_epoch": best, "status": status or outcome.status,
        "seconds": round(seconds, 3), "samples_per_second": round(len(prep.x) * epochs_run / seconds, 1),
        "best": {k: v[best - 1] for k, v in history.items()}, "nbtrain_version": __version__}
    model.save(run_dir / MODEL_FILE, metadata={"preprocessing": prep.preprocessing.to_dict(), "training": training})
    atomic_write(run_dir / HISTORY_FILE, lambda tmp: history_frame(history).to_csv(tmp, index=False))
    plotted = plot_curves(history, best, run_dir / CURVES_FILE, prep.preprocessing.target, options.loss)
    return [MODEL_FILE, HISTORY_FILE] + ([CURVES_FILE] if plotted else [])


def load_run(path, device="auto"):
    """A model written by `nbtrain fit` (or a sweep's best) and its preprocessing."""
    from ..model import load_model
    from .preprocessing import Preprocessing
    model = load_model(path, device=device)
    if not isinstance(model.metadata, dict) or "preprocessing" not in model.metadata:
        raise ModelFileError(f"{path} has no preprocessing: it was not written by `nbtrain fit` "
                             "(load it in Python with nbtrain.load_model)")
    return model, Preprocessing.from_dict(model.metadata["preprocessing"])
