"""How a fit shows its epochs on the command line: a rich progress bar on a terminal, one plain line per epoch
(like Keras's verbose=2) for logs and pipes, or nothing when quiet."""
import contextlib
import time

from ..callbacks import Callback, format_duration, format_logs
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
    """A rich progress bar over epochs that shows the latest epoch's loss and metrics."""

    def __init__(self, progress):
        super().__init__()
        self.progress = progress
        self.task = None

    def on_train_begin(self, logs=None):
        self.task = self.progress.add_task("Training", total=self.params["epochs"], logs="")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.update(self.task, advance=1, logs=format_logs(logs or {}).removeprefix(" - "))


@contextlib.contextmanager
def progress(console, quiet):
    """The per-epoch display: a progress bar on a terminal, plain lines otherwise, nothing when quiet."""
    if quiet:
        yield []
    elif not console.is_terminal:
        yield [EpochLines(console)]
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column
        fixed = Column(no_wrap=True)
        columns = (TextColumn("Epoch", table_column=fixed), MofNCompleteColumn(table_column=fixed),
                   BarColumn(bar_width=20), TimeElapsedColumn(table_column=fixed),
                   TextColumn("{task.fields[logs]}", table_column=Column(overflow="fold")))
        with Progress(*columns, console=console) as progress:
            yield [EpochBar(progress)]
