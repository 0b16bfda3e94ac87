"""What a sweep shows and writes: the description, the live table (or one line per trial for logs and pipes), the
leaderboard and the summary; and leaderboard.csv, sweep.png and best/, the best trial's run folder as `nbtrain fit`
writes one."""
import importlib.util
import math
import tempfile
import time
import warnings
from pathlib import Path

from ..callbacks import format_metric
from ..files import atomic_write
from ..tabular.runfolder import BEST_DIR, LEADERBOARD_FILE, PLOT_FILE
from ..text import printable
from .board import PARAM_COLUMNS


def save_sweep(board, leaderboard, prep, out):
    """leaderboard.csv, sweep.png (with matplotlib) and the best trial's run folder best/ (model.nbt,
    history.csv, learning_curves.png, as `nbtrain fit` writes them). Returns the paths written, relative to out."""
    atomic_write(out / LEADERBOARD_FILE, lambda tmp: leaderboard.to_csv(tmp, index=False))
    saved = [LEADERBOARD_FILE] + ([PLOT_FILE] if plot(board, leaderboard, out / PLOT_FILE) else [])
    if board.best is not None:
        saved += [f"{BEST_DIR}/{name}" for name in _save_best(board, prep, out / BEST_DIR)]
    return saved


def _save_best(board, prep, folder):
    """The best trial's model as `nbtrain fit` saves one, with the trial's options. A pool worker sent its model
    file; a trial that ran on Ray is fitted again here, with the same seed and epochs, which gives the same
    weights."""
    from ..model import load_network
    from ..tabular.recipe import Outcome
    from ..tabular.runfolder import save_run
    from .trial import run_trial, single_blas_thread, trial_options
    index, history, model_file = board.best
    trial, row = board.trials[index]["trial"], board.trials[index]["row"]
    if model_file is None:
        with single_blas_thread():
            _, history, model = run_trial(board.data, trial, epochs=row["epochs"])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model.nbt").write_bytes(model_file)
            model = load_network(Path(tmp) / "model.nbt", device="cpu")
    folder.mkdir(exist_ok=True)
    status = f"best of a sweep: trial {index}, fit seed {trial['seed']}"
    outcome = Outcome(history, row["best_epoch"], status, row["seconds"], diverged=False)
    return save_run(model, prep, folder, trial_options(board.data.options, trial["params"], board.data.task), outcome)


def plot(board, leaderboard, path):
    """sweep.png (sweep_figure). False without matplotlib or when there is nothing to plot."""
    try:
        figure = sweep_figure(board, leaderboard)
    except ImportError:
        return False
    if figure is None:
        return False
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return True


def sweep_figure(board, leaderboard):
    """The ranking metric against each hyperparameter that varies, one panel each (pruned trials hollow, the best
    one marked), with plain tick labels (0.001, not 10^-3, and none between them on a log axis) and whole numbers
    on an integer hyperparameter's axis. None when there is nothing to plot."""
    from matplotlib.figure import Figure
    from .space import KEYS
    metric = board.data.monitor.name
    scored = leaderboard[leaderboard[metric].notna()]
    if scored.empty or not board.varied:
        return None
    columns = min(3, len(board.varied))
    rows = -(-len(board.varied) // columns)
    figure = Figure(figsize=(4.5 * columns, 3.5 * rows), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for axes, name in zip(panels, board.varied):
        column = PARAM_COLUMNS[name]
        categorical = KEYS[name].kind in (bool, str)
        values = scored[column].astype(str) if categorical else scored[column]
        for status, face in (("done", "tab:blue"), ("pruned", "none")):
            mask = scored["status"] == status
            if not mask.any():
                continue  # no legend entry for what did not happen (a local sweep prunes nothing)
            axes.scatter(values[mask], scored[metric][mask], facecolors=face, edgecolors="tab:blue", label=status)
        best = scored["trial"] == board.best_index
        axes.scatter(values[best], scored[metric][best], marker="*", s=200, color="tab:red", label="best")
        if not categorical:
            _number_ticks(axes.xaxis, scored[column], KEYS[name].kind is int)
        axes.set_xlabel(column)
        axes.set_ylabel(metric)
    panels[0].legend()
    for axes in panels[len(board.varied):]:
        axes.set_visible(False)
    return figure


def _number_ticks(axis, values, integer):
    """A numeric hyperparameter's axis: log scale for positive values spanning 8x or more; plain labels; on an
    integer axis, the values tried when they are few, else whole numbers only."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
    if (values > 0).all() and values.max() >= 8 * values.min():
        axis.axes.set_xscale("log")
    if integer:
        tried = sorted(set(values.tolist()))
        if len(tried) <= 8:
            axis.set_ticks(tried)
        else:
            axis.set_major_locator(MaxNLocator(integer=True))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


# ------------------------------------------------------------------------------------------------ display
class Display:
    """What the user sees: with verbose=2, a description of the sweep, then a live table of the trials on a
    terminal (one line per finished trial otherwise); with verbose >= 1, the leaderboard and what was saved."""

    TOP = 10  # leaderboard rows shown at the end (all of them are in leaderboard.csv)

    def __init__(self, board, verbose):
        from rich.console import Console
        self.board, self.verbose = board, verbose
        self.console = Console(highlight=False)
        self.errors = Console(stderr=True, highlight=False)
        if not self.console.is_terminal:
            self.console.width = 200  # a log or a pipe: let the leaderboard table take its natural width
            if verbose >= 2:
                board.listeners.append(self._line)

    def say(self, level, text):
        if self.verbose >= level:
            self.console.print(printable(text), markup=False, soft_wrap=True)

    def describe(self, source, frame, prep, space, options, workers):
        target, fit, monitor = prep.preprocessing.target, options.fit, self.board.data.monitor
        for warning in prep.warnings:
            if self.verbose >= 1:
                self.errors.print(printable(f"Warning: {warning}"), markup=False, soft_wrap=True)
            else:
                warnings.warn(warning, UserWarning, stacklevel=4)
        task = (f"{target.task} classification of {target.name!r} ({target.mapping(counts=True)})"
                if target.task != "regression" else f"regression of {target.name!r} (standardized for training)")
        self.say(2, f"Data: {'a DataFrame' if hasattr(source, 'columns') else source}: {len(frame)} rows x "
                 f"{len(frame.columns)} columns; {task}; {prep.x.shape[1]} inputs; {len(prep.x)} training rows, "
                 f"{len(prep.x_val)} validation rows (seed {fit.seed})")
        for note in prep.notes:
            self.say(2, f"Note: {note}")
        self.say(2, f"Space: {space.describe()}")
        where = (f"{_count(workers, 'local worker process')} with 1 BLAS thread each" if options.backend == "local"
                 else f"Ray Tune ({'cluster at ' + options.address if options.address else 'a local Ray'}; "
                      f"{options.search} search, ASHA)")
        stops = f"early stopping on val_loss (patience {fit.patience})" if fit.patience else "no early stopping"
        self.say(2, f"Sweep: {_count(self.board.total, 'trial')} on {where}; up to {fit.epochs} epochs each, {stops}; "
                 f"ranked by {monitor.name} ({'higher' if monitor.maximize else 'lower'} is better)")

    def live(self):
        """A live table while the trials run, on a terminal; nothing to hold open otherwise."""
        import contextlib
        if not (self.verbose >= 2 and self.console.is_terminal):
            return contextlib.nullcontext()
        from rich.live import Live
        return Live(console=self.console, get_renderable=self._table, refresh_per_second=4, transient=True)

    def _line(self, index):
        board, row = self.board, self.board.trials[index]["row"]
        score = board.score(index)
        result = (f"{board.data.monitor.name} {format_metric(score)} at epoch {row['best_epoch']} of "
                  f"{_epochs(board, index)}" if score is not None else row.get("reason", ""))
        self.say(2, f"Trial {index} {row['status']}: {result}, {row.get('seconds', 0):.1f} s (best so far: "
                 f"{'none' if board.best is None else 'trial ' + str(board.best_index)}) - "
                 + ", ".join(f"{k} {_cell(v)}" for k, v in self.board.trials[index]["trial"]["params"].items()
                             if k in board.varied))

    def _table(self):
        from rich.table import Table
        board = self.board
        counts = board.counts()
        best = board.best_index
        caption = (f"{len(board.trials) - counts.get('running', 0)} of {board.total} trials ended, "
                   + ", ".join(f"{n} {s}" for s, n in counts.items())
                   + (f"; best so far: trial {best}, {board.data.monitor.name} {format_metric(board.score(best))}"
                      if best is not None else "") + f"; {time.perf_counter() - board.started:.0f} s")
        table = Table(caption=caption)
        for heading in ("trial", "status", "epochs", board.data.monitor.name, *board.varied):
            table.add_column(heading, justify="left" if heading == "status" else "right")
        running = [i for i in board.trials if board.trials[i]["row"]["status"] == "running"]
        ended = [i for i in board.ranked() if i not in running and board.trials[i]["row"]["status"] != "queued"]
        limit = max(5, self.console.height - 8)
        for index in (running + ended)[:limit]:
            row = board.trials[index]["row"]
            score = board.score(index)
            table.add_row(f"{index}{' *' if index == best else ''}", row["status"], _epochs(board, index),
                          "-" if score is None else format_metric(score),
                          *(_cell(board.trials[index]["trial"]["params"][k]) for k in board.varied))
        return table

    def summary(self, leaderboard, out, saved, cause=None):
        """The end: how the sweep ended (`cause`: what stopped it early, "interrupted" or "terminated"), the
        leaderboard, the failures' reasons and what was saved where."""
        from rich.table import Table
        board, seconds = self.board, time.perf_counter() - self.board.started
        counts = ", ".join(f"{n} {s}" for s, n in board.counts().items())
        ran = len(board.trials)
        if cause or ran < board.total or "interrupted" in board.counts():
            self.say(1, f"Sweep {cause or 'interrupted'} after {seconds:.1f} s: {ran} of "
                        f"{_count(board.total, 'trial')} started ({counts})")
        else:
            self.say(1, f"Sweep done: {_count(ran, 'trial')} in {seconds:.1f} s ({60 * ran / seconds:.1f} "
                        f"trials/min): {counts}")
        if self.verbose < 1 or leaderboard.empty:
            return
        metric = board.data.monitor.name
        shown = ["trial", "status", metric, "best_epoch", "epochs", *(PARAM_COLUMNS[k] for k in board.varied),
                 "seconds"]
        table = Table(title=f"Leaderboard ({'top ' + str(self.TOP) + ' of ' if len(leaderboard) > self.TOP else ''}"
                            f"{_count(len(leaderboard), 'trial')}, by {metric})")
        for column in shown:
            table.add_column(column, justify="left" if column == "status" else "right")
        for _, entry in leaderboard.head(self.TOP).iterrows():
            cells = {c: _cell(entry[c], metric=c == metric) for c in shown}
            cells["epochs"] = _epochs(board, entry["trial"])
            table.add_row(*cells.values())
        self.console.print(table)
        capped = [i for i in board.trials if board.capped(i)]
        if capped:
            self.say(1, f"Note: {_count(len(capped), 'trial')} ran all {board.data.options.epochs} epochs without "
                        f"early stopping (marked 'cap': still improving); more --epochs may do better")
        if board.best is not None:
            self.say(1, f"Best: trial {board.best_index}, {metric} {format_metric(board.score(board.best_index))}")
        for entry in leaderboard[leaderboard["status"] == "failed"].itertuples():
            self.say(1, f"Trial {entry.trial} failed: {entry.reason}")
        if out is not None:
            self.say(1, f"Saved {', '.join(saved)} to {out}")
            if PLOT_FILE not in saved and importlib.util.find_spec("matplotlib") is None:
                self.say(1, f"No {PLOT_FILE}: install matplotlib for it (pip install 'nbtrain[plot]')")


def _count(n, noun):
    """'1 trial', '4 trials'; 'process' takes 'es'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def _epochs(board, index):
    """A trial's epochs run, marked 'cap' when the epoch cap cut it (Board.capped)."""
    epochs = str(board.trials[index]["row"].get("epochs", 0))
    return f"{epochs} (cap)" if board.capped(index) else epochs


def _cell(value, metric=False):
    """A table cell: a metric for its scale (format_metric), a setting or a duration in at most four significant
    digits."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "-" if math.isnan(value) else format_metric(value) if metric else f"{value:.4g}"
    return str(value)
