"""How a fit shows its epochs on the command line: a rich progress bar on a terminal, one plain line per epoch
(like Keras's verbose=2) for logs and pipes, or nothing when quiet; a long epoch also shows its steps as it runs,
and a first epoch that has not taken a step yet says that the kernels are compiling."""
import contextlib
import io
import math
import time

from ..callbacks import Callback, format_duration, format_logs, format_number
from .app import say


COMPILING = "compiling the kernels for this machine (first run only)"
COMPILE_SECONDS = 2.0  # a first epoch without a step for this long is compiling (loading the cache takes ~1 s)
LINE_SECONDS = 10.0  # a long epoch's step line, at most this often


def compiling(epoch, step, state):
    """Whether a long epoch reporting `step` is the first epoch still inside its first call for COMPILE_SECONDS or
    more, where Numba compiles the kernels on a machine's first run: no step done yet, no epoch ended. `state` (a
    dict) remembers when the first report came and whether a step was seen."""
    if step or epoch or state.get("stepped"):
        state["stepped"] = True
        return False
    now = time.perf_counter()
    return now - state.setdefault("since", now) >= COMPILE_SECONDS


class EpochLines(Callback):
    """One plain line per epoch, like Keras's verbose=2, for logs and pipes; a long epoch adds a line of its steps
    at most every LINE_SECONDS, and the compiling note once."""

    def __init__(self, console):
        super().__init__()
        self.console = console
        self._start = self._shown = 0.0
        self._state = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._shown = time.perf_counter()

    def on_epoch_progress(self, epoch, step):
        if compiling(epoch, step, self._state):
            if not self._state.get("noted"):
                self._state["noted"] = True
                say(self.console, f"Epoch {epoch + 1}: {COMPILING}")
            return
        now = time.perf_counter()
        if now - self._shown >= LINE_SECONDS:
            self._shown = now
            say(self.console, f"Epoch {epoch + 1}/{self.params['epochs']} - step {step}/{self.params['steps']} - "
                              f"{format_duration(now - self._start)}")

    def on_epoch_end(self, epoch, logs=None):
        elapsed = format_duration(time.perf_counter() - self._start)
        say(self.console, f"Epoch {epoch + 1}/{self.params['epochs']} - {elapsed}{format_logs(logs or {})}")


class EpochBar(Callback):
    """A rich progress bar over epochs: the epoch, the time elapsed, the best value of the early-stopping monitor
    so far with its epoch and the patience left, and the latest epoch's loss and metrics. A run that ends before
    its last epoch ends the bar complete, with the reason."""

    def __init__(self, progress, stopper):
        super().__init__()
        self.progress, self.stopper = progress, stopper  # stopper: the recipe's BestEpoch
        self.task = None
        self._state, self._last = {}, ""

    def on_train_begin(self, logs=None):
        self.task = self.progress.add_task("Training", total=self.params["epochs"], best="", logs="")
        self._state, self._last = {}, ""

    def on_epoch_progress(self, epoch, step):
        """A long epoch's share done (the bar moves within the epoch) and its steps, or the compiling note."""
        if compiling(epoch, step, self._state):
            self.progress.update(self.task, logs=COMPILING)
            return
        self.progress.update(self.task, completed=epoch + step / self.params["steps"],
                             logs=f"step {step}/{self.params['steps']}" + (f" - {self._last}" if self._last else ""))

    def on_epoch_end(self, epoch, logs=None):
        self._last = format_logs(logs or {}).removeprefix(" - ")
        self.progress.update(self.task, completed=epoch + 1, best=self.best(), logs=self._last)

    def best(self):
        """'best val_loss 0.1524 (epoch 6), patience 14 left': the patience only where it can stop the run."""
        stopper = self.stopper
        if not math.isfinite(stopper.best):
            return ""
        text = f"best {stopper.monitor} {format_number(stopper.best)} (epoch {stopper.best_epoch + 1})"
        if stopper.patience < self.params["epochs"]:
            text += f", patience {stopper.patience - stopper.wait} left"
        return text

    def on_train_end(self, logs=None):
        done = int(self.progress.tasks[self.task].completed)  # epochs ended (an epoch cut short shows a fraction)
        if done == self.params["epochs"]:
            return
        reason = self.model.stop_reason or (f"stopped early: no {self.stopper.monitor} improvement in "
                                            f"{self.stopper.patience} epochs")
        self.progress.update(self.task, total=done, completed=done, logs=reason)


@contextlib.contextmanager
def progress(console, quiet):
    """The per-epoch display, as a function (recorder, best) -> callbacks that recipe.train takes: a progress
    bar on a terminal, plain lines otherwise, nothing when quiet. Under the bar, what the fit prints (the Ctrl-C
    message) is held back and printed after the bar's last line."""
    if quiet:
        yield lambda recorder, stopper: []
    elif not console.is_terminal:
        yield lambda recorder, stopper: [EpochLines(console)]
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column
        fixed = Column(no_wrap=True)
        columns = (TextColumn("Epoch", table_column=fixed), MofNCompleteColumn(table_column=fixed),
                   BarColumn(bar_width=20), TimeElapsedColumn(table_column=fixed),
                   TextColumn("{task.fields[best]}", table_column=fixed),
                   TextColumn("{task.fields[logs]}", table_column=Column(overflow="fold")))
        console.file = console.file  # pinned, so that the bar still draws there while print() is held back
        held = io.StringIO()
        try:
            with contextlib.redirect_stdout(held), Progress(*columns, console=console, redirect_stdout=False) as bar:
                yield lambda recorder, stopper: [EpochBar(bar, stopper)]
        finally:
            if held.getvalue().strip():
                say(console, held.getvalue().strip())
