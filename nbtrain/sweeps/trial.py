"""One trial of a sweep: the network that a configuration describes, fitted the way `nbtrain fit` fits (early
stopping on val_loss with the best weights restored, mae in the target's units), in whichever process runs it:
a pool worker, a Ray worker, or the sweep's own process."""
import time
from dataclasses import dataclass, replace

import numpy as np

from ..callbacks import Callback
from ..errors import InputError
from ..utils import limit_blas_threads


@dataclass
class SweepData:
    """What every trial of a sweep needs, prepared once in the sweep's process and shipped to each worker once:
    the encoded arrays (preprocessing fitted on the training rows only) and the settings shared by all trials."""
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    target_scale: float
    options: object  # the FitOptions every trial shares (data, split, epochs, early stopping)
    monitor: object  # the metric that ranks the trials (a monitor.Monitor)
    outputs: int = 1  # the network's output width: the classes of a multiclass target, else 1


def trial_options(options, params, task):
    """The FitOptions of one trial: the shared options with the trial's network and training (every hidden layer
    params["units"] wide; Adam's and the schedule's settings of the course recipe), and the loss the task trains
    with."""
    from ..tabular.recipe import task_loss
    return replace(options, recipe="course", layers=(params["units"],) * params["layers"], dropout=params["dropout"],
                   batchnorm=params["batchnorm"], batch_size=params["batch_size"], optimizer=params["optimizer"],
                   lr=params["lr"], loss=task_loss(task, params.get("loss")))


def trial_seed(seed, index):
    """The fit seed of trial `index`, drawn from (sweep seed, index): a trial's weights, shuffles and dropout
    masks do not depend on which worker runs it, or when."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def single_blas_thread():
    """One BLAS thread in this process, so that K trials in K processes use K cores instead of K times the
    cores (see utils.limit_blas_threads; the limit lasts as long as the returned object's context, or for good)."""
    return limit_blas_threads(1)


class ScoreReport(Callback):
    """After every epoch, gives `report` the trial's result so far: the epochs run, the best epoch by val_loss
    (whose weights the trial keeps if it ends now) and that epoch's metrics. The live table and ASHA read it."""

    def __init__(self, recorder, stopper, report):
        super().__init__()
        self.recorder, self.stopper, self.report = recorder, stopper, report

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.params["epochs"]:
            return  # the last epoch: the trial's result follows at once (and ASHA must see that, not this)
        best = self.stopper.best_epoch
        self.report({"epochs": epoch + 1, "best_epoch": best + 1,
                     **{k: v[best] for k, v in self.recorder.history.items()}})


def run_trial(data, trial, report=None, epochs=None):
    """Fit the configuration trial["params"] with seed trial["seed"] for up to `epochs` (default the shared ones).
    Returns (row, history, model): row has the status ("done", "failed" or "interrupted"), the reason of a
    failure, the best epoch's metrics, the best epoch, the epochs run and the seconds taken; model is None when
    no epoch ended with a finite loss. An exception in a trial is its failure, not the sweep's."""
    from ..tabular.recipe import build_model, check_memory, train
    options = trial_options(data.options, trial["params"], data.task)
    if epochs:
        options = replace(options, epochs=epochs)
    started = time.perf_counter()
    try:
        check_memory(data.x.shape[1], options, data.outputs, len(data.x_val))  # as fit checks, before allocating
        model = build_model(data.x.shape[1], data.task, options, trial["seed"], data.outputs, data.x)
        outcome = train(model, data.x, data.y, data.x_val, data.y_val, options, data.task, data.target_scale,
                        trial["seed"], extra_callbacks=lambda recorder, stopper: [ScoreReport(recorder, stopper, report)]
                        if report else [])
    except Exception as exc:  # a bad combination of hyperparameters fails this trial only
        reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        return {"status": "failed", "reason": reason,
                "seconds": time.perf_counter() - started}, {}, None
    history, best = outcome.history, outcome.best
    row = {"status": {"nonfinite": "failed", "interrupted": "interrupted"}.get(model.stop_cause, "done"),
           "reason": model.stop_reason or ("" if best else "no epoch ended with a finite loss"),
           "seconds": time.perf_counter() - started, "epochs": len(history.get("loss", []))}
    if best:
        row.update({k: v[best - 1] for k, v in history.items()}, best_epoch=best)
    else:
        row["status"] = "failed"
    return row, history, model if best else None
