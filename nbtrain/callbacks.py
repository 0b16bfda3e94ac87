"""Callbacks with Keras's names and semantics, called once per epoch (the epoch itself runs compiled,
so batch-level hooks are not called); on a long epoch, on_epoch_progress reports the steps done while it runs."""
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


class CallbackList:
    """Calls each hook on every callback in order: History first (so an epoch is recorded as soon as it
    ends, even if a later callback is interrupted), then the user's, then the progress printer."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be nbtrain.callbacks.Callback instances, got {type(cb).__name__}")
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        if self.history is None:
            self.history = History()
            self.callbacks.insert(0, self.history)
        if params.get("verbose") and not any(isinstance(cb, ProgbarLogger) for cb in self.callbacks):
            self.callbacks.append(ProgbarLogger())
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def on_train_begin(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs=None):
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

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
    """A callback from plain functions: LambdaCallback(on_epoch_end=lambda epoch, logs: ...)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None):
        super().__init__()
        for name, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)


def format_number(value):
    """A logged number as Keras prints it: four decimals, or four significant digits in e-notation below 1e-3."""
    return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 or not np.isfinite(value) else f"{value:.4e}"


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
    """Prints one Keras-style line per epoch (verbose=1: 'Epoch i/N' and a filled bar; verbose=2: compact)."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self.params.get("verbose") == 1:
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
