"""The run folder of `nbtrain fit` (and of a sweep's best trial): model.nbt with the preprocessing and a training
record as its metadata, history.csv and, with matplotlib, learning_curves.png; and reading such a model back."""
import os
import time
from pathlib import Path

from .. import schema
from ..errors import InputError, ModelFileError
from ..files import PREFIX, SUFFIX, FolderBusy, FolderChanged, FolderClaim, atomic_write
from ..version import __version__

MODEL_FILE, HISTORY_FILE, CURVES_FILE = "model.nbt", "history.csv", "learning_curves.png"
# A sweep's files; BEST_DIR keeps its best trial's run folder
LEADERBOARD_FILE, PLOT_FILE, BEST_DIR, RAY_DIR = "leaderboard.csv", "sweep.png", "best", "ray"
RUNS = Path("runs")
# What nbtrain writes in a run folder (a fit's or a sweep's), all that --overwrite may replace: a name's file, or
# a folder of the names below it (OWN_ANYTHING: Ray Tune's own records, whatever they hold)
OWN_ANYTHING = "anything"
RUN_FILES = {MODEL_FILE: None, HISTORY_FILE: None, CURVES_FILE: None}
OWN = {**RUN_FILES, LEADERBOARD_FILE: None, PLOT_FILE: None, BEST_DIR: RUN_FILES, RAY_DIR: OWN_ANYTHING}


def claim_run_folder(out, overwrite=False, prefix=""):
    """The run folder's claim (files.FolderClaim), taken before any training: its files are written beside it and
    renamed into place whole at the end, so the folder appears only when there is something in it and a failed save
    leaves an earlier run there as it was. The default runs/<prefix><timestamp> takes the next free name
    (runs/<timestamp>-2, ...); an existing `out` is an InputError unless `overwrite` allows replacing it, and so is
    an `out` that another nbtrain process is writing."""
    if out is None:
        stamp = prefix + time.strftime("%Y%m%d-%H%M%S")
        for name in [stamp, *(f"{stamp}-{n}" for n in range(2, 1000))]:
            if not (RUNS / name).exists():
                claim = _claim(RUNS / name, busy_ok=True)
                if claim is not None:
                    return claim
        raise InputError(f"cannot find a free run folder name under {RUNS}/ for {stamp}; give one with --out")
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"the run folder {out} already exists; choose another --out, or pass --overwrite to "
                         "replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot write to the output directory {out}: it is a file, not a folder")
    if out.exists():
        _check_replaceable(out)
    return _claim(out, foreign=foreign_entry)


def foreign_entry(folder, own=OWN, under=""):
    """The first entry (by name, its path in `folder`) that nbtrain does not write in a run folder, or None;
    nbtrain's temporary files count as its own."""
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        kind = own.get(entry.name, False)
        if entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX) or kind == OWN_ANYTHING and \
                entry.is_dir(follow_symlinks=False):
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if kind is False or (kind is None) == is_dir:
            return under + entry.name + ("/" if is_dir else "")
        if is_dir:
            inner = foreign_entry(entry.path, kind, f"{under}{entry.name}/")
            if inner is not None:
                return inner
    return None


def _check_replaceable(out):
    """An InputError, before any training, when --overwrite may not replace the folder `out`: it holds something
    nbtrain did not write, or its files cannot be removed (the folder, or its best/, is not writable)."""
    entry = foreign_entry(out)
    if entry is not None:
        raise InputError(f"the run folder {out} holds {entry}, which nbtrain did not write; --overwrite replaces "
                         "only a run folder's own files (model.nbt, history.csv, learning_curves.png, and a "
                         "sweep's leaderboard.csv, sweep.png, best/, ray/): move it away or choose another --out")
    for folder in (out, out / BEST_DIR):
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"cannot replace the files of the run folder {out}: {folder} is not writable")


def _claim(path, busy_ok=False, foreign=None):
    """FolderClaim(path, foreign) with one-line errors; None when another process holds it and `busy_ok`."""
    try:
        claim = FolderClaim(path, foreign)
    except FolderBusy:
        if busy_ok:
            return None
        raise InputError(f"another nbtrain process is writing the run folder {path}; wait for it to end or choose "
                         "another --out") from None
    except OSError as exc:
        raise InputError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    if busy_ok and path.exists():  # taken by a process that finished between the check and the claim
        claim.abandon()
        return None
    return claim


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


def save_run(model, prep, run_dir, options, outcome, status=None, test=(0, None)):
    """model.nbt (with the preprocessing, a training record and the training rows' fingerprint as metadata),
    history.csv and, with matplotlib, learning_curves.png, for a fit with `options` (FitOptions) that ended as
    `outcome` (recipe.Outcome); status overrides the outcome's in the record; `test` (rows, Scores) the held-out
    rows' scores. Returns the names of the files written."""
    from .fingerprint import fingerprint
    history, best, seconds = outcome.history, outcome.best, outcome.seconds
    epochs_run = len(history["loss"])
    training = {
        "data": source_name(options.data), "validation": source_name(options.val), "train_rows": len(prep.x), "val_rows": len(prep.x_val),
        "options": options.record(),
        "epochs_run": epochs_run, "best_epoch": best, "status": status or outcome.status,
        "seconds": round(seconds, 3), "samples_per_second": round(len(prep.x) * epochs_run / seconds, 1),
        "best": {k: v[best - 1] for k, v in history.items()}, "nbtrain_version": __version__}
    if test[1] is not None:
        training.update(test_rows=test[0], test=test[1].metrics)
    model.save(run_dir / MODEL_FILE, metadata={"preprocessing": prep.preprocessing.to_dict(), "training": training,
                                               "fingerprint": fingerprint(prep.x, prep.y, prep.x_val, prep.y_val)})
    atomic_write(run_dir / HISTORY_FILE, lambda tmp: history_frame(history).to_csv(tmp, index=False))
    plotted = plot_curves(history, best, run_dir / CURVES_FILE, prep.preprocessing.target, options.loss)
    return [MODEL_FILE, HISTORY_FILE] + ([CURVES_FILE] if plotted else [])


def fill_folder(claim, write):
    """write(staging folder) -> the names it wrote, then the folder renamed into place whole (a run folder, a
    sweep's). A failure (a full disk) leaves nothing of it and an earlier folder at the same place as it was: an
    InputError saying so, naming the user's folder."""
    existed = Path(claim.path).exists()
    try:
        saved = write(Path(claim.stage))
        claim.commit()
    except FolderChanged as exc:
        raise InputError(f"{exc.path} {exc.why}, so it was left as it is; this run was saved to {exc.kept} "
                         "instead") from None
    except OSError as exc:
        claim.abandon()
        kept = f"; the earlier one in {claim.path} is as it was" if existed else ""
        raise InputError(f"could not save {claim.path} ({exc.strerror or exc}), so nothing of this run was "
                         f"saved{kept}") from None
    return saved


TRAINING = schema.record(
    {"data": schema.optional(schema.text()), "validation": schema.optional(schema.text()),
     "train_rows": schema.number(low=1, integer=True), "val_rows": schema.number(low=0, integer=True),
     "options": schema.mapping(schema.anything()), "epochs_run": schema.number(low=1, integer=True),
     "best_epoch": schema.number(low=1, integer=True), "status": schema.text(),
     "seconds": schema.number(low=0), "samples_per_second": schema.number(low=0, finite=False),
     "best": schema.mapping(schema.number(finite=False)), "nbtrain_version": schema.text(),
     "test_rows": schema.number(low=1, integer=True), "test": schema.mapping(schema.number(finite=False))},
    required=("data", "train_rows", "val_rows", "epochs_run", "best_epoch", "status", "seconds", "best"))


def model_file(path):
    """The model file that `path` names: the file itself, or the model.nbt of a run folder (a sweep's folder: its
    best/model.nbt), as AutoGluon and Ludwig load a folder."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / MODEL_FILE, path / BEST_DIR / MODEL_FILE):
            if candidate.is_file():
                return candidate
        raise ModelFileError(f"{path} is a folder without a {MODEL_FILE} (nor {BEST_DIR}/{MODEL_FILE}): give a run "
                             "folder of nbtrain fit or nbtrain sweep, or a model file")
    return path


def load_run(path, device="auto"):
    """A model written by `nbtrain fit` (or a sweep's best) and its preprocessing, checked: the training record's
    fields by type and range, and the preprocessing's inputs and outputs against the network's. `path` is the model
    file or its run folder (model_file)."""
    from ..ensemble import load_network
    from .preprocessing import Preprocessing
    path = model_file(path)
    model = load_network(path, device)
    if not isinstance(model.metadata, dict) or "preprocessing" not in model.metadata:
        raise ModelFileError(f"{path} has no preprocessing: it was not written by `nbtrain fit` "
                             "(load it in Python with nbtrain.load_model)")
    pre = Preprocessing.from_dict(model.metadata["preprocessing"])
    try:
        if "training" in model.metadata:
            schema.check(model.metadata["training"], TRAINING, "training")
            if model.metadata["training"]["best_epoch"] > model.metadata["training"]["epochs_run"]:
                raise schema.SchemaError("training.best_epoch is past training.epochs_run")
    except schema.SchemaError as exc:
        raise ModelFileError(f"{path} has an unreadable training record: {exc}") from None
    inputs, outputs = model.input_shape[-1], model.output_shape[-1]
    if (len(pre.input_names), pre.target.outputs) != (inputs, outputs):
        raise ModelFileError(f"{path} is inconsistent: its preprocessing makes {len(pre.input_names)} inputs and "
                             f"reads {pre.target.outputs} outputs, its network takes {inputs} and gives {outputs}")
    return model, pre
