"""Callbacks with Keras's names and semantics, called once per epoch (the epoch itself runs compiled,
so batch-level hooks are not called); on a long epoch, on_epoch_progress reports the steps done while it runs."""
import math
import sys
import time
import warnings

import numpy as np

from .monitor import MODES, Monitor


class Callback:
    """Base class: override on_train_begin/end and on_epoch_begin/end(epoch, logs); on_epoch_progress(epoch, step)
    (nbtrain's own) is called about twice a second during an epoch long enough to run beside the caller's thread,
    with the steps done so far (params["steps"] is the epoch's total)."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_epoch_progress(self, epoch, step):
        pass


# Keras's batch-level hooks: the epoch runs as one compiled call, so nbtrain cannot call them; a callback that
# defines one is refused when fit starts rather than silently never called.
BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
               "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end")


def _batch_hooks(callback):
    """The batch-level hooks a callback defines (overrides or sets)."""
    return [name for name in BATCH_HOOKS if name in vars(callback) or any(name in vars(cls) for cls in
                                                                          type(callback).__mro__[:-1])]


class CallbackList:
    """Calls each hook on every callback in order, the user's, then the progress printer; a History the user did
    not place records each epoch after them all (so it sees what they add to the logs, as Keras's does) and even
    when one of them raises."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be nbtrain.callbacks.Callback instances, got {type(cb).__name__}")
            hooks = _batch_hooks(cb)
            if hooks:
                raise ValueError(f"{type(cb).__name__} defines {', '.join(hooks)}: nbtrain runs each epoch as one "
                                 "compiled call and cannot call batch-level hooks; use on_epoch_end or "
                                 "on_epoch_progress")
        self.params = params
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self.recorder = None  # the History made here: it records each epoch after the others, even if one raises
        if self.history is None:
            self.history = self.recorder = History()
        if params.get("verbose") and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self._all():
            cb.set_model(model)
            cb.set_params(params)

    def on_train_begin(self, logs=None):
        for cb in self._all():
            cb.on_train_begin(logs)

    def _all(self):
        return self.callbacks + ([self.recorder] if self.recorder else [])

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        try:
            for cb in self.callbacks:
                cb.on_epoch_end(epoch, logs)
        finally:  # what the callbacks added to logs (learning_rate) included, as Keras's History sees it
            if self.recorder:
                self.recorder.on_epoch_end(epoch, logs)

    def on_epoch_progress(self, epoch, step):
        for cb in self.callbacks:
            cb.on_epoch_progress(epoch, step)


class History(Callback):
    """Records each epoch's logs: history.history is a dict of lists that pandas.DataFrame accepts."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs (Keras 3 rules:
    the wait counts epochs since the last improvement, a baseline must be beaten to reset it, and with
    restore_best_weights the best epoch's weights are restored when training ends)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.verbose, self.mode, self.baseline = verbose, mode, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = None
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.monitor_rule = Monitor(self.monitor, self.mode, self.min_delta, getattr(self.model, "metrics", ()) or ())
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = self.monitor_rule.worst
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"EarlyStopping is conditioned on {self.monitor!r}, which is not available. "
                          f"Available: {', '.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self.monitor_rule.is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self.monitor_rule.is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class TerminateOnNaN(Callback):
    """Stop training when the loss is NaN or infinite. (nbtrain's fit always stops there, before the
    offending batch's update; this callback exists so Keras code that lists it runs unchanged.)"""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Epoch {epoch + 1}: invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...). Batch-level functions
    (on_train_batch_end=, ...) are refused when fit starts, as any batch-level hook is."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None, **batch):
        super().__init__()
        unknown = set(batch) - set(BATCH_HOOKS)
        if unknown:
            raise TypeError(f"LambdaCallback got unexpected arguments: {', '.join(sorted(unknown))}")
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end), *batch.items()):
            if fn is not None:
                setattr(self, name, fn)


class ReduceLROnPlateau(Callback):
    """Keras 3's rule: when `monitor` has not improved by more than min_delta for `patience` epochs, multiply the
    learning rate by `factor` (not below min_lr), then wait `cooldown` epochs before counting again. Logs the
    learning rate of each epoch as `learning_rate`."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        if mode not in MODES:
            raise ValueError(f"ReduceLROnPlateau mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.factor, self.patience, self.verbose, self.mode = monitor, factor, patience, verbose, mode
        self.min_delta, self.cooldown, self.min_lr = min_delta, cooldown, min_lr
        self.wait = self.cooldown_counter = 0
        self.best = None

    def on_train_begin(self, logs=None):
        self.rule = Monitor(self.monitor, self.mode, self.min_delta, getattr(self.model, "metrics", ()) or ())
        self.wait = self.cooldown_counter = 0
        self.best = self.rule.worst

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau is conditioned on {self.monitor!r}, which is not available. "
                          f"Available: {', '.join(logs)}", stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.rule.is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(optimizer.learning_rate)
                if old > np.float32(self.min_lr):
                    optimizer.learning_rate = max(old * self.factor, self.min_lr)
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                              f"{optimizer.learning_rate}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to schedule(epoch, lr) (or schedule(epoch)), as Keras;
    logs it as `learning_rate`."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the one-argument form
            rate = self.schedule(epoch)
        if not isinstance(rate, (float, int, np.floating, np.integer)) or isinstance(rate, bool):
            raise ValueError(f"the output of the schedule function should be a float, got {rate!r}")
        optimizer.learning_rate = float(rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ModelCheckpoint(Callback):
    """Saves the model (or only its weights) after each epoch, or only when `monitor` improves (save_best_only),
    to filepath formatted with the epoch (from 1) and the logs ("model-{epoch:02d}-{val_loss:.3f}.nbt"), as Keras.
    Every file is written atomically: a crash leaves the previous checkpoint whole."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint saves once per epoch here (save_freq='epoch'): an epoch runs as one "
                             "compiled call")
        if mode not in MODES:
            raise ValueError(f"ModelCheckpoint mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only, self.mode = save_best_only, save_weights_only, mode
        self.initial_value_threshold = initial_value_threshold
        self.best = None

    def on_train_begin(self, logs=None):
        if self.best is None:
            self.rule = Monitor(self.monitor, self.mode, 0.0, getattr(self.model, "metrics", ()) or ())
            self.best = self.rule.worst if self.initial_value_threshold is None else self.initial_value_threshold

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.", stacklevel=2)
                return
            if not self.rule.is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      "saving model")
            self.best = current
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Appends each epoch's logs to a CSV file (epoch, then the log keys in sorted order), as Keras; append=True
    continues an existing file."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = str(filename), separator, append
        self.keys = None
        self.file = None

    def on_train_begin(self, logs=None):
        import os
        resume = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None
        self.header = not resume

    def on_epoch_end(self, epoch, logs=None):
        import csv
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.writer(self.file, delimiter=self.separator)
            if self.header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow([epoch, *(logs.get(k, "NA") for k in self.keys)])
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class TensorBoard(Callback):
    """Keras's TensorBoard for what nbtrain logs: each epoch's scalars as `epoch_<name>` in log_dir/train and
    log_dir/validation (the val_ values), where `tensorboard --logdir` finds them. Histograms, graphs, images and
    profiling are not written. Needs tensorboardX (the tensorboard extra)."""

    def __init__(self, log_dir="logs", update_freq="epoch", **unsupported):
        super().__init__()
        used = [key for key, value in unsupported.items() if value not in (None, 0, False)]
        if used or update_freq != "epoch":
            raise ValueError(f"nbtrain's TensorBoard writes epoch scalars only; not supported here: "
                             f"{', '.join(used or ['update_freq=' + repr(update_freq)])}")
        self.log_dir = str(log_dir)
        self.writers = {}

    def on_train_begin(self, logs=None):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError("callbacks.TensorBoard needs tensorboardX: pip install 'nbtrain[tensorboard]'") from None
        import os
        self.writers = {part: SummaryWriter(os.path.join(self.log_dir, part)) for part in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self.writers[part].add_scalar(f"epoch_{name}", value, epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def format_number(value):
    """A logged number as Keras prints it: four decimals, or four significant digits in e-notation below 1e-3."""
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 or not np.isfinite(value) else f"{value:.4e}"


def format_metric(value, digits=4):
    """A number as the command line shows it, for its scale: `digits` significant digits (0.1462, 13.41, 1234),
    whole numbers with thousands separators from 10**digits up (33,052 for a MAE in dollars), e-notation below
    1e-3."""
    if not np.isfinite(value):
        return str(value)
    size = abs(value)
    if size >= 10 ** digits:
        return f"{value:,.0f}"
    if size >= 1e-3 or value == 0:
        return f"{value:.{max(0, digits - 1 - math.floor(math.log10(size or 1)))}f}"
    return f"{value:.{digits - 1}e}"


def format_logs(logs):
    """' - loss: 0.1234 - val_loss: 0.2345' in Keras's number format."""
    return "".join(f" - {k}: {format_number(v)}" for k, v in logs.items())


def format_duration(seconds):
    if seconds >= 1:
        return f"{seconds:.0f}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms"
    return f"{seconds * 1e6:.0f}us"


class ProgbarLogger(Callback):
    """Prints Keras 3's lines per epoch: 'Epoch i/N', then a filled bar (verbose=1) or a compact line (verbose=2)."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        print(f"Epoch {epoch + 1}/{self.params['epochs']}", file=self.stream or sys.stdout)

    def on_epoch_progress(self, epoch, step):
        """On a terminal, verbose=1 redraws the epoch's bar in place as the steps go by."""
        stream = self.stream or sys.stdout
        if self.params.get("verbose") == 1 and stream.isatty():
            steps = self.params.get("steps") or 1
            filled = int(20 * step / steps)
            elapsed = format_duration(time.perf_counter() - self._start)
            print(f"\r{step}/{steps} {'━' * filled}{' ' * (20 - filled)} {elapsed}", end="", file=stream, flush=True)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        steps = self.params.get("steps") or 1
        per_step = format_duration(elapsed / steps)
        stream = self.stream or sys.stdout
        if self.params.get("verbose") == 1:
            redraw = "\r" if stream.isatty() else ""  # over the bar on_epoch_progress drew
            line = f"{redraw}{steps}/{steps} {'━' * 20} {format_duration(elapsed)} {per_step}/step"
        else:
            line = f"{steps}/{steps} - {format_duration(elapsed)} - {per_step}/step"
        print(line + format_logs(logs or {}), file=stream, flush=True)
