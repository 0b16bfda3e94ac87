"""How a fit shows its epochs on the command line: a rich progress bar on a terminal, one plain line per epoch
(like Keras's verbose=2) for logs and pipes, or nothing when quiet; a long epoch also shows its steps as it runs,
and a first epoch that has not taken a step yet says that the kernels are compiling; then how the fit ended, in
Keras's words. Numbers are shown for their scale (callbacks.format_metric)."""
import contextlib
import io
import math
import time

from ..callbacks import Callback, format_duration, format_metric
from .app import say


COMPILING = "compiling the kernels for this machine (first run only)"
COMPILE_SECONDS = 2.0  # a first epoch without a step for this long is compiling (loading the cache takes ~1 s)
LINE_SECONDS = 10.0  # a long epoch's step line, at most this often


def metric_logs(logs):
    """' - loss: 0.1462 - mae: 13.41' with each number for its scale (callbacks.format_metric)."""
    return "".join(f" - {k}: {format_metric(v)}" for k, v in logs.items())


def ending(outcome, monitor, patience, min_delta):
    """How a fit ended, in Keras's words: 'Training stopped at epoch 96: no val_loss improvement of more than
    min_delta 0.001 in 20 epochs; restoring the weights of epoch 81 (the best val_loss)'. EarlyStopping counts
    patience only from improvements beyond min_delta; the best epoch is the strictly best one."""
    ran = len(outcome.history["loss"])
    if outcome.status == "stopped early":
        delta = f" of more than min_delta {min_delta:g}" if min_delta else ""
        what = f"stopped at epoch {ran}: no {monitor} improvement{delta} in {patience} epochs"
    elif outcome.status == "all epochs done":
        what = f"ran all {ran} epochs"
    else:
        what = outcome.status
    return f"Training {what}; restoring the weights of epoch {outcome.best} (the best {monitor})"


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
        say(self.console, f"Epoch {epoch + 1}/{self.params['epochs']} - {elapsed}{metric_logs(logs or {})}")


class EpochBar(Callback):
    """A rich progress bar over epochs: the epoch running (1 during the first) of the most there can be, the time
    elapsed, the best value of the early-stopping monitor so far with its epoch and the patience left, and the
    latest epoch's loss and metrics. The total never changes: a run that ends early leaves the bar where it
    stopped, and the fit's last lines say why (ending)."""

    def __init__(self, progress, stopper):
        super().__init__()
        self.progress, self.stopper = progress, stopper  # stopper: the recipe's BestEpoch
        self.task = None
        self._state, self._last, self._ended = {}, "", 0

    def on_train_begin(self, logs=None):
        self.task = self.progress.add_task("Training", total=self.params["epochs"], epoch=self._counter(1), best="",
                                           logs="")
        self._state, self._last, self._ended = {}, "", 0

    def _counter(self, epoch):
        """The epoch number padded to the total's width, so that the bar does not move as the count grows."""
        return f"{epoch:>{len(str(self.params['epochs']))}}"

    def on_epoch_begin(self, epoch, logs=None):
        self.progress.update(self.task, epoch=self._counter(epoch + 1))

    def on_epoch_progress(self, epoch, step):
        """A long epoch's share done (the bar moves within the epoch) and its steps, or the compiling note."""
        if compiling(epoch, step, self._state):
            self.progress.update(self.task, logs=COMPILING)
            return
        self.progress.update(self.task, completed=epoch + step / self.params["steps"],
                             logs=f"step {step}/{self.params['steps']}" + (f" - {self._last}" if self._last else ""))

    def on_epoch_end(self, epoch, logs=None):
        self._last, self._ended = metric_logs(logs or {}).removeprefix(" - "), epoch + 1
        self.progress.update(self.task, completed=epoch + 1, best=self.best(), logs=self._last)

    def best(self):
        """' | best val_loss 0.1524 (epoch 6), patience 14 left', after the logs: the patience only where it can stop
        the run."""
        stopper = self.stopper
        if not math.isfinite(stopper.best):
            return ""
        text = f" | best {stopper.monitor} {format_metric(stopper.best)} (epoch {stopper.best_epoch + 1})"
        if stopper.patience < self.params["epochs"]:
            text += f", patience {stopper.patience - stopper.wait} left"
        return text

    def on_train_end(self, logs=None):
        """An epoch cut short by a signal is not recorded: the bar goes back to the epochs that ended."""
        self.progress.update(self.task, epoch=self._counter(self._ended), completed=self._ended, logs=self._last)


BAR_WIDTH = 20


def fitted_logs(console):
    """The bar's last column: the latest logs, then the best epoch so far, cut with an ellipsis to what the
    terminal's width leaves beside the fixed columns (a row that wraps redraws badly and pushes the bar around)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class FittedLogs(ProgressColumn):
        def render(self, task):
            fixed = len(f"Epoch {task.fields['epoch']}/{task.total}") + BAR_WIDTH + len("0:00:00") + 3  # 3 gaps
            text = Text(task.fields["logs"] + task.fields["best"], no_wrap=True, overflow="ellipsis")
            text.truncate(max(1, console.width - fixed - 1), overflow="ellipsis")
            return text
    return FittedLogs()


@contextlib.contextmanager
def progress(console, quiet):
    """The per-epoch display, as a function (recorder, best) -> callbacks that recipe.train takes: a progress
    bar on a terminal, plain lines otherwise, nothing when quiet. Under the bar, anything printed to standard output
    during the fit is held back and printed after the bar's last line, so that the bar is not torn."""
    if quiet:
        yield lambda recorder, stopper: []
    elif not console.is_terminal:
        yield lambda recorder, stopper: [EpochLines(console)]
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column
        fixed = Column(no_wrap=True)
        columns = (TextColumn("Epoch {task.fields[epoch]}/{task.total}", table_column=fixed),
                   BarColumn(bar_width=BAR_WIDTH), TimeElapsedColumn(table_column=fixed), fitted_logs(console))
        console.file = console.file  # pinned, so that the bar still draws there while print() is held back
        held = io.StringIO()
        try:
            with contextlib.redirect_stdout(held), Progress(*columns, console=console, redirect_stdout=False) as bar:
                yield lambda recorder, stopper: [EpochBar(bar, stopper)]
        finally:
            if held.getvalue().strip():
                say(console, held.getvalue().strip())
