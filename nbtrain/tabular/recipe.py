"""The training recipe of the command line, shared by `nbtrain fit` and every sweep trial: a dense ReLU
network built from a few options with the task's output, loss and metric (checked against the memory there is),
fitted with early stopping on val_loss and the best epoch's weights restored, with a standardized regression
target's mae reported back in the target's own units."""
import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..callbacks import Callback, EarlyStopping, History
from ..errors import InputError
from ..monitor import Monitor
from .options import PIECEWISE_BINS, REGRESSION_LOSS

# a classifier's output activation, loss and metric; a regression has a linear output, options.loss and mae
CLASSIFIERS = {"binary": ("sigmoid", "binary_crossentropy", "binary_accuracy"),
               "multiclass": ("softmax", "sparse_categorical_crossentropy", "accuracy")}


def task_loss(task, loss=None):
    """The loss a task trains with: a classifier's own (naming another is an error), a regression's `loss` or mae."""
    if task not in CLASSIFIERS:
        return loss or REGRESSION_LOSS
    if loss and loss != CLASSIFIERS[task][1]:
        raise InputError(f"--loss applies to regression; {task} classification trains with {CLASSIFIERS[task][1]}")
    return CLASSIFIERS[task][1]


def for_task(options, task):
    """`options` (a FitOptions) with the loss the task trains with; an InputError for an option the task does
    not take (--loss for a classifier, --class-weight for a regression)."""
    if options.class_weight and task not in CLASSIFIERS:
        raise InputError("--class-weight applies to classification; the target is a regression target")
    return options.with_loss(task_loss(task, options.loss))


def task_metric(task):
    """The metric the recipe logs for a task: accuracy for classifiers, mae (in the target's units) otherwise."""
    return CLASSIFIERS[task][2] if task in CLASSIFIERS else "mae"


def class_weights(option, y):
    """The class_weight of fit for --class-weight (None: every row alike; "balanced": scikit-learn's
    n_rows / (n_classes * the class's rows) over the classes in the training targets `y`)."""
    if option is None:
        return None
    codes, counts = np.unique(np.asarray(y).astype(int).ravel(), return_counts=True)
    return {int(c): len(y) / (len(codes) * int(n)) for c, n in zip(codes, counts)}


class TargetUnits(Callback):
    """Turns the mae metrics of each epoch's logs into the target's own units: a regression target is
    standardized for training, and MAE scales exactly with it. Listed before History and the progress display,
    so that they, and the saved history, see original units (the loss stays on the standardized target)."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def on_epoch_end(self, epoch, logs=None):
        for key in ("mae", "val_mae"):
            if key in logs:
                logs[key] *= self.scale


class BestEpoch(Callback):
    """The epoch with the best monitored value (strictly the lowest, or highest by the monitor's direction), whose
    weights are restored when training ends. min_delta only counts patience, which `stopper` (an EarlyStopping
    without restore_best_weights) keeps: Keras's EarlyStopping would also let it decide the best epoch. Shows as
    the stopper does (monitor, best, best_epoch from 0, patience, wait) for the displays."""

    def __init__(self, stopper):
        super().__init__()
        self.stopper, self.monitor, self.patience = stopper, stopper.monitor, stopper.patience
        self.best, self.best_epoch, self.weights = math.inf, 0, None

    @property
    def wait(self):
        return self.stopper.wait

    def on_train_begin(self, logs=None):
        self.rule = Monitor(self.monitor, compiled=getattr(self.model, "metrics", ()) or ())
        self.best, self.best_epoch, self.weights = self.rule.worst, 0, None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor, math.nan)
        if self.rule.is_improvement(current, self.best):
            self.best, self.best_epoch, self.weights = current, epoch, self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


MEMORY_SHARE = 0.8  # of the memory available now, the most a fit's arrays may take
SLOTS = 2  # Adam's two moment arrays (SGD has fewer); with the weights, the gradient and the best epoch's copy
COPIES = 3 + SLOTS


def fit_bytes(width, options, outputs, val_rows):
    """About what the fit of `options` on `width` inputs allocates for its network: every parameter in the
    weights, the gradient, the optimizer's slots and the best epoch's copy; every unit's activations, their
    gradients and the layer's own buffers for a batch (or a chunk of the validation rows), float32."""
    from ..model import EVAL_ROWS
    first = embedding(options)
    widths = [width if first is None else first.output_width(width), *options.layers, outputs]
    params = sum((a + 1) * b for a, b in zip(widths, widths[1:])) + 4 * sum(options.layers) * options.batchnorm
    if first is not None:  # the embedding's own weights, and the inputs it reads
        params += sum(int(np.prod(spec[1])) for spec in first.variable_specs(width))
        widths.append(width)
    params *= options.ensemble
    units = sum(widths) * (2 + options.batchnorm + (options.dropout > 0))
    return 4 * (COPIES * params + 3 * units * max(options.batch_size, min(val_rows, EVAL_ROWS)))


def available_memory():
    """Bytes of memory available now (Linux's MemAvailable; physical memory elsewhere), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(width, options, outputs, val_rows):
    """An InputError, before anything is allocated, when the network of `options` would not fit in memory."""
    need, free = fit_bytes(width, options, outputs, val_rows), available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise InputError(f"--layers {','.join(map(str, options.layers))} on {width} inputs needs about "
                         f"{need / 2**30:.1f} GiB for weights, optimizer state and activations, more than the "
                         f"{free / 2**30:.1f} GiB of memory available; use narrower or fewer layers")


def smoothing(options, task):
    """The label smoothing a fit of `options` trains a `task` with (multiclass only: the engine's categorical
    cross-entropy takes it, on one-hot targets)."""
    return options.settings.label_smoothing if task == "multiclass" else 0.0


def embedding(options):
    """The layer that options.embeddings puts before the hidden layers: rtdl's periodic embeddings with their
    defaults, the piecewise-linear encoding over PIECEWISE_BINS quantile bins of the training rows, or None."""
    from .. import layers
    return {"periodic": layers.PeriodicEmbedding, "piecewise": lambda: layers.PiecewiseLinearEncoding(
        PIECEWISE_BINS)}.get(options.embeddings, lambda: None)()


def build_model(width, task, options, seed, outputs=1, x=None):
    """The network for `options` (a resolved FitOptions, its loss the task's): the recipe's embedding of the
    inputs, if any, then Dense ReLU layers (each followed
    by Dropout and BatchNormalization when asked), then one linear output, one sigmoid output for binary
    classification or `outputs` softmax ones for multiclass; initialized from `seed`, compiled on options.device
    (the CPU for an MPI fit) with the recipe's optimizer settings, label smoothing and schedule (a cosine one
    spans options.epochs over the training rows `x`, which a piecewise-linear encoding is adapted to)."""
    from .. import layers, losses, optimizers, schedules
    from ..model import Sequential
    stack = [layer for layer in [embedding(options)] if layer is not None]
    if options.embeddings == "piecewise":
        stack[0].adapt(x)
    for n in options.layers:
        stack.append(layers.Dense(n, activation="relu"))
        if options.dropout:
            stack.append(layers.Dropout(options.dropout))
        if options.batchnorm:
            stack.append(layers.BatchNormalization())
    activation = CLASSIFIERS[task][0] if task in CLASSIFIERS else None
    model = Sequential(stack + [layers.Dense(outputs, activation=activation)])
    model.build((None, width), seed=seed)
    recipe = options.settings
    adam = options.optimizer == "adam"
    rate = options.lr or (optimizers.Adam if adam else optimizers.SGD)().learning_rate
    if recipe.schedule == "cosine" and x is not None:
        rate = schedules.CosineDecay(rate, options.epochs * math.ceil(len(x) / options.batch_size))
    opt = optimizers.Adam(rate, beta_2=recipe.beta_2) if adam else optimizers.SGD(rate)
    loss = losses.CategoricalCrossentropy(label_smoothing=smoothing(options, task)) if smoothing(options, task) \
        else options.loss
    model.compile(opt, loss, [task_metric(task)], device="cpu" if options.distributed == "mpi" else options.device)
    if options.ensemble > 1:  # the members' weights are drawn at fit, from the fit's seed (ensemble.member_seeds)
        from ..ensemble import Ensemble
        return Ensemble(model, options.ensemble)
    return model


@dataclass
class Outcome:
    """How a fit went: the history (mae in target units), the best epoch (from 1; None when no epoch ended
    with a finite loss), a status for people, the seconds taken, and whether the loss diverged."""
    history: dict
    best: int
    status: str
    seconds: float
    diverged: bool


def train(model, x, y, x_val, y_val, options, task, target_scale, seed,
          extra_callbacks=lambda recorder, best: []):
    """Fit as `options` say, with `seed` for the shuffles and dropout, the class weights of options.class_weight,
    and early stopping on val_loss (loss without validation rows; patience 0: all epochs); the best epoch's
    weights (BestEpoch: the best value, min_delta counting patience only) are restored at the end, also after
    Ctrl-C, SIGTERM or a diverging loss. extra_callbacks(recorder, best) gives callbacks to run after them each epoch
    (a display, a progress report; `best` is the BestEpoch)."""
    epochs = options.epochs
    has_val = len(x_val) > 0
    stopper = EarlyStopping(monitor="val_loss" if has_val else "loss", min_delta=options.min_delta,
                            patience=options.patience or epochs)
    best = BestEpoch(stopper)
    recorder = History()
    units = [TargetUnits(target_scale)] if task == "regression" else []
    weights = class_weights(options.class_weight, y)
    if smoothing(options, task):  # the categorical cross-entropy takes one-hot targets
        outputs = model.layers[-1].units
        y, y_val = (np.eye(outputs, dtype=np.float32)[np.asarray(t).astype(int).ravel()] for t in (y, y_val))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverging loss is reported in the outcome
        model.fit(x, y, validation_data=(x_val, y_val) if has_val else None, batch_size=options.batch_size,
                  epochs=epochs, verbose=0, seed=seed, class_weight=weights,
                  callbacks=units + [recorder, stopper, best] + extra_callbacks(recorder, best),
                  distribute="mpi" if options.distributed == "mpi" else None, threads=options.threads)
    diverged = model.stop_cause == "nonfinite"
    if model.stop_reason:
        status = "diverged" if diverged else model.stop_reason
    else:
        status = "stopped early" if stopper.stopped_epoch else "all epochs done"
    best_epoch = best.best_epoch + 1 if best.weights is not None else None
    return Outcome(recorder.history, best_epoch, status, time.perf_counter() - started, diverged)
