"""How a fit shows its epochs on the command line: a rich progress bar on a terminal, one plain line per epoch
(like Keras's verbose=2) for logs and pipes, or nothing when quiet."""
import contextlib
import io
import math
import time

from ..callbacks import Callback, format_duration, format_logs, format_number
from .app import say


class EpochLines(Callback):
    """One plain line per epoch, like Keras's verbose=2, for logs and pipes."""

    def __init__(self, console):
        super().__init__()
        self.console = console
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed = format_duration(time.perf_counter() - self._start)
        say(self.console, f"Epoch {epoch + 1}/{self.params['epochs']} - {elapsed}{format_logs(logs or {})}")


class EpochBar(Callback):
    """A rich progress bar over epochs: the epoch, the time elapsed, the best value of the early-stopping monitor
    so far with its epoch and the patience left, and the latest epoch's loss and metrics. A run that ends before
    its last epoch ends the bar complete, with the reason."""

    def __init__(self, progress, stopper):
        super().__init__()
        self.progress, self.stopper = progress, stopper
        self.task = None

    def on_train_begin(self, logs=None):
        self.task = self.progress.add_task("Training", total=self.params["epochs"], best="", logs="")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.task, advance=1, best=self.best(), logs=format_logs(logs or {}).removeprefix(" - "))

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
        done = int(self.progress.tasks[self.task].completed)
        if done == self.params["epochs"]:
            return
        reason = self.model.stop_reason or (f"stopped early: no {self.stopper.monitor} improvement in "
                                            f"{self.stopper.patience} epochs")
        self.progress.update(self.task, total=done, completed=done, logs=reason)


@contextlib.contextmanager
def progress(console, quiet):
    """The per-epoch display, as a function (recorder, stopper) -> callbacks that recipe.train takes: a progress
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
