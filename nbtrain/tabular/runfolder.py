"""The run folder of `nbtrain fit` (and of a sweep's best trial): model.nbt with the preprocessing and a training
record as its metadata, history.csv and, with matplotlib, learning_curves.png; and reading such a model back."""
import time
from pathlib import Path

from ..errors import ModelFileError
from ..files import atomic_write, writable_folder
from ..version import __version__

MODEL_FILE, HISTORY_FILE, CURVES_FILE = "model.nbt", "history.csv", "learning_curves.png"
RUNS = Path("runs")


def output_dir(out):
    """The run folder, created and proven writable before any training (default runs/<timestamp>), and
    whether it is new."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = RUNS / stamp
        for n in range(2, 1000):
            if not out.exists():
                break
            out = RUNS / f"{stamp}-{n}"
    out = Path(out)
    created = not out.exists()
    return writable_folder(out), created


def source_name(source):
    """How the training record names a data source: its path, "DataFrame" for one given in Python, or None."""
    return None if source is None else "DataFrame" if hasattr(source, "columns") else str(source)


def history_frame(history):
    import pandas as pd
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", range(1, len(frame) + 1))
    return frame


def plot_curves(history, best, path, regression):
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
    plotted = plot_curves(history, best, run_dir / CURVES_FILE, prep.preprocessing.target.task == "regression")
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
