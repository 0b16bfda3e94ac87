"""Hyperparameter sweeps: many fits of one prepared table, run side by side by a local process pool (default) or
by Ray Tune, shown live, ranked in a leaderboard, with the best model saved as `nbtrain fit` saves one.
`nbtrain.sweep(...)` is the Python API; `nbtrain sweep` is the command line."""
import importlib.util
import math
import multiprocessing
import queue
import signal
import tempfile
import time
from pathlib import Path

from .errors import InputError
from .utils import available_cores

BACKENDS = ("local", "ray")
SEARCHES = ("random", "tpe")
LEADERBOARD_FILE, PLOT_FILE, BEST_DIR = "leaderboard.csv", "sweep.png", "best"
PARAM_COLUMNS = {"layers": "layers", "units": "units", "lr": "lr", "batch_size": "batch_size", "dropout": "dropout",
                 "batchnorm": "batchnorm", "optimizer": "optimizer", "loss": "loss_function"}
PROGRESS_SECONDS = 0.5  # a worker reports a running trial's progress at most this often


def sweep(data, target, trials=20, space=None, backend="local", address=None, workers=None, metric="val_loss",
          seed=0, out=None, *, task="auto", scale="standard", drop=(), val=None, val_split=0.2, epochs=500,
          patience=20, min_delta=0.001, search="random", verbose=2):
    """Train `trials` models on `data` (a CSV or Parquet path, or a DataFrame) with hyperparameters drawn from
    `space` (a TOML file, a dict of the same shape, or None for the default space of the task) and return the
    leaderboard, best first, as a DataFrame. The data options are `nbtrain fit`'s: the preprocessing is fitted
    once, on the training rows, and shared by every trial. backend="local" runs `workers` processes (default:
    one per core) with one BLAS thread each; backend="ray" runs Ray Tune with ASHA on a new local Ray or on the
    cluster at `address` ("auto" or "host:port"), with random search or, given optuna, search="tpe". With `out`,
    leaderboard.csv, sweep.png and the best model (best/model.nbt, usable by `nbtrain predict`) are written
    there. Ctrl-C stops the sweep and returns (and saves) what finished. verbose: 2 describes the sweep and shows
    the trials as they run, 1 only the result, 0 nothing. On the local backend, call this from
    under `if __name__ == "__main__":` in a script: the worker processes import the script."""
    from .data import prepare, read_table
    from .space import default_space, load_space, parse_space
    from .trial import SweepData, trial_seed
    _check_options(trials, backend, address, workers, search)
    frame = data if hasattr(data, "columns") else read_table(data)
    prep = prepare(frame, target, task=task, scaling=scale, drop=drop, val_split=val_split, seed=seed,
                   validation=None if val is None else val if hasattr(val, "columns") else read_table(val))
    spec = prep.preprocessing.target
    space = (default_space(spec.task) if space is None else parse_space(space, spec.task) if isinstance(space, dict)
             else load_space(space, spec.task))
    _check_metric(metric, spec.task, len(prep.x_val) > 0, space)
    if out is not None:
        from .io import writable_folder
        out = writable_folder(Path(out))  # before any trial starts
    shared = SweepData(prep.x, prep.y, prep.x_val, prep.y_val, spec.task, spec.scale, epochs, patience, min_delta,
                       metric)
    workers = workers or (min(trials, available_cores()) if backend == "local" else None)
    board = Board(shared, trials, list(space.varied))
    sampled = [{"index": i, "seed": trial_seed(seed, i), "params": params}
               for i, params in enumerate(space.sample(trials, seed))]
    display = Display(board, verbose)
    display.describe(data, frame, prep, space, backend, workers, address, search, seed)
    try:
        with display.live():
            if backend == "local":
                run_local(shared, sampled, workers, board)
            else:
                from .sweep_ray import run_ray
                run_ray(shared, space, sampled, seed, workers, address, search, board, out)
    except KeyboardInterrupt:
        pass
    board.stop()
    leaderboard = board.leaderboard()
    saved = _save(board, leaderboard, prep, out, _record(data, val, task, scale, val_split, seed, epochs, patience,
                                                         min_delta)) if out is not None else []
    display.summary(leaderboard, out, saved)
    return leaderboard


def _check_options(trials, backend, address, workers, search):
    """Options that are wrong whatever the data: reported before the data is read."""
    if trials < 1:
        raise InputError(f"the number of trials must be at least 1, got {trials}")
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if search not in SEARCHES:
        raise InputError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if backend == "local" and (address is not None or search != "random"):
        raise InputError(f"{'--address' if address is not None else '--search tpe'} needs --backend ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise InputError("--backend ray needs Ray Tune: pip install 'nbtrain[ray]'")
    if search == "tpe" and importlib.util.find_spec("optuna") is None:
        raise InputError("--search tpe needs Optuna: pip install optuna")


def log_names(task, has_val):
    """What every trial logs: the loss and the recipe's metric for the task, and their val_ versions."""
    names = ["loss", "binary_accuracy" if task == "binary" else "mae"]
    return names + ([f"val_{n}" for n in names] if has_val else [])


def _check_metric(metric, task, has_val, space):
    """The metric must be one that every trial logs, and comparable across trials."""
    names = log_names(task, has_val)
    if metric not in names:
        raise InputError(f"the metric {metric!r} is not logged here; choose one of {', '.join(names)}")
    if metric in ("loss", "val_loss") and "loss" in space.varied:
        raise InputError(f"the space varies 'loss', so {metric} is not comparable between trials; rank them "
                         f"with --metric {'val_mae' if has_val else 'mae'}")


# ------------------------------------------------------------------------------------------------ the local pool
_worker = {}  # this worker process's SweepData and event queue, set once by _start_worker


def _start_worker(data, events):
    """Pool initializer: the data arrives once per worker; BLAS is held to one thread; Ctrl-C is left to the
    sweep's process, which stops the pool (SIGINT arrives ignored, see run_local; a pool replacing a worker
    starts it from the sweep's process, so it is ignored here again)."""
    from .trial import single_blas_thread
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    single_blas_thread()
    _worker.update(data=data, events=events)


def _work(trial):
    """One trial in a pool worker: progress events on the queue while it runs; the result and the model file's
    bytes (for the sweep's process to keep if it is the best) when it ends."""
    from .trial import run_trial
    events, index, last = _worker["events"], trial["index"], [0.0]
    events.put(("start", index))

    def report(row):
        if time.monotonic() - last[0] >= PROGRESS_SECONDS:
            last[0] = time.monotonic()
            events.put(("progress", index, row))
    row, history, model = run_trial(_worker["data"], trial, report)
    return row, history, _model_bytes(model)


def _model_bytes(model):
    if model is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.nbt"
        model.save(path)
        return path.read_bytes()


def run_local(data, trials, workers, board):
    """Run the trials on `workers` spawned processes, at most one trial per worker at a time (so that Ctrl-C
    stops submitting at once); the pool is terminated on the way out, also after Ctrl-C."""
    context = multiprocessing.get_context("spawn")  # fork would copy Numba's and BLAS's threads and locks
    events = context.Queue()
    workers = min(workers, len(trials))
    # workers inherit SIGINT ignored from their first instruction: a Ctrl-C while one is still starting (before
    # its initializer runs) would otherwise kill it with a traceback
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = context.Pool(workers, _start_worker, (data, events))
    finally:
        signal.signal(signal.SIGINT, previous)
    waiting, running = list(reversed(trials)), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                trial = waiting.pop()
                board.queue(trial)
                running[trial["index"]] = pool.apply_async(_work, (trial,))
            _drain(events, board)
            for index, result in list(running.items()):
                if result.ready():
                    del running[index]
                    try:
                        board.finish(index, *result.get())
                    except Exception as exc:  # the worker could not run the trial or send its result back
                        board.finish(index, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
    finally:
        pool.terminate()
        pool.join()


def _drain(events, board):
    """Pass the workers' progress events to the board, waiting briefly for the first."""
    try:
        event = events.get(timeout=0.1)
        while True:
            getattr(board, event[0])(*event[1:])
            event = events.get_nowait()
    except queue.Empty:
        pass


# ------------------------------------------------------------------------------------------------ the board
class Board:
    """The trials of a sweep as they run: each one's status, epochs and best-epoch metrics so far, and the best
    finished trial with what saving it takes. Backends report to it; the display and the leaderboard read it."""

    def __init__(self, data, total, varied):
        self.data, self.total, self.varied = data, total, varied
        self.trials = {}  # index -> {"trial": the trial, "row": its status and metrics so far}
        self.best = None  # (index, history, model file bytes or None) of the best finished trial
        self.started = time.perf_counter()
        self.listeners = []  # called with the index of each trial that ends

    def queue(self, trial):
        self.trials[trial["index"]] = {"trial": trial, "row": {"status": "queued", "epochs": 0}}

    def start(self, index):
        if self.trials[index]["row"]["status"] == "queued":  # a late event may come after the trial ended
            self.trials[index]["row"]["status"] = "running"

    def progress(self, index, row):
        if self.trials[index]["row"]["status"] in ("queued", "running"):
            self.trials[index]["row"].update(row, status="running")

    def finish(self, index, row, history=None, model_file=None):
        self.trials[index]["row"] = row
        score = self.score(index)
        if row["status"] == "done" and score is not None and (self.best is None or self.better(score, self.best[0])):
            self.best = (index, history, model_file)
        for listener in self.listeners:
            listener(index)

    def prune(self, index):
        """A trial that the scheduler stopped: its metrics are those of its best epoch so far."""
        row = self.trials[index]["row"]
        self.finish(index, {**row, "status": "pruned", "reason": f"stopped by ASHA after {row['epochs']} epochs"})

    def stop(self):
        """After Ctrl-C: trials still running are recorded as interrupted; queued ones never ran."""
        for index, entry in list(self.trials.items()):
            if entry["row"]["status"] == "queued":
                del self.trials[index]
            elif entry["row"]["status"] == "running":
                entry["row"] = {**entry["row"], "status": "interrupted", "reason": "the sweep was interrupted"}

    def score(self, index):
        """The trial's metric at its best epoch, or None when it has none (yet)."""
        value = self.trials[index]["row"].get(self.data.metric)
        return value if value is not None and math.isfinite(value) else None

    def better(self, score, index):
        other = self.score(index)
        return other is None or (score > other if self.data.maximize else score < other)

    @property
    def best_index(self):
        return self.best[0] if self.best else None

    def counts(self):
        statuses = [entry["row"]["status"] for entry in self.trials.values()]
        return {s: statuses.count(s) for s in ("running", "done", "pruned", "failed", "interrupted")
                if statuses.count(s)}

    def ranked(self):
        """Trial indices, best first: scored trials by score (ties by index), then the others by index."""
        sign = -1 if self.data.maximize else 1

        def key(index):
            score = self.score(index)
            return (score is None, sign * score if score is not None else 0, index)
        return sorted(self.trials, key=key)

    def leaderboard(self):
        """One row per trial, best first: status, the ranking metric, the other metrics at the best epoch, the
        epochs, the hyperparameters, the fit seed, the seconds taken and why a trial failed or stopped."""
        import pandas as pd
        names = [self.data.metric] + [n for n in log_names(self.data.task, len(self.data.x_val) > 0)
                                      if n != self.data.metric]
        rows = []
        for index in self.ranked():
            trial, row = self.trials[index]["trial"], self.trials[index]["row"]
            rows.append({"trial": index, "status": row["status"], **{n: row.get(n, math.nan) for n in names},
                         "best_epoch": row.get("best_epoch", math.nan), "epochs": row.get("epochs", 0),
                         **{PARAM_COLUMNS[k]: v for k, v in trial["params"].items()}, "seed": trial["seed"],
                         "seconds": round(row.get("seconds", math.nan), 3), "reason": row.get("reason", "")})
        columns = ["trial", "status", *names, "best_epoch", "epochs", *PARAM_COLUMNS.values(), "seed", "seconds",
                   "reason"]
        return pd.DataFrame(rows, columns=[c for c in columns if not rows or c in rows[0]])



# ------------------------------------------------------------------------------------------------ saving
def _record(data, val, task, scale, val_split, seed, epochs, patience, min_delta):
    """The options of `nbtrain fit` that every trial shares, as the best model's training record keeps them."""
    def name(source):
        return None if source is None else "DataFrame" if hasattr(source, "columns") else str(source)
    return {"data": name(data), "val": name(val), "task": task, "scale": scale, "val_split": val_split,
            "seed": seed, "epochs": epochs, "patience": patience, "min_delta": min_delta}


def _save(board, leaderboard, prep, out, record):
    """leaderboard.csv, sweep.png (with matplotlib) and the best trial's run folder best/ (model.nbt,
    history.csv, learning_curves.png, as `nbtrain fit` writes them). Returns the paths written, relative to out."""
    from .io import atomic_write
    atomic_write(out / LEADERBOARD_FILE, lambda tmp: leaderboard.to_csv(tmp, index=False))
    saved = [LEADERBOARD_FILE] + ([PLOT_FILE] if plot(board, leaderboard, out / PLOT_FILE) else [])
    if board.best is not None:
        saved += [f"{BEST_DIR}/{name}" for name in _save_best(board, prep, out / BEST_DIR, record)]
    return saved


def _save_best(board, prep, folder, record):
    """The best trial's model as `nbtrain fit` saves one. A pool worker sent its model file; a trial that ran on
    Ray is fitted again here, with the same seed and epochs, which gives the same weights."""
    from .cli import _save_run
    from .io import load_model
    from .trial import run_trial, single_blas_thread
    index, history, model_file = board.best
    trial, row = board.trials[index]["trial"], board.trials[index]["row"]
    if model_file is None:
        with single_blas_thread():
            _, history, model = run_trial(board.data, trial, epochs=row["epochs"])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model.nbt").write_bytes(model_file)
            model = load_model(Path(tmp) / "model.nbt", device="cpu")
    params = trial["params"]
    args = {**record, "loss": "binary_crossentropy" if board.data.task == "binary" else params["loss"],
            "layers": ",".join([str(params["units"])] * params["layers"]), "dropout": params["dropout"],
            "batchnorm": params["batchnorm"], "batch_size": params["batch_size"], "optimizer": params["optimizer"],
            "lr": params["lr"]}
    folder.mkdir(exist_ok=True)
    status = f"best of a sweep: trial {index}, fit seed {trial['seed']}"
    return _save_run(model, prep, folder, args, history, row["best_epoch"], status, row["seconds"])


def plot(board, leaderboard, path):
    """sweep.png: the ranking metric against each hyperparameter that varies, one panel each (pruned trials
    hollow, the best one marked). False without matplotlib or when there is nothing to plot."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    from .io import atomic_write
    from .space import KEYS
    metric = board.data.metric
    scored = leaderboard[leaderboard[metric].notna()]
    if scored.empty or not board.varied:
        return False
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
            axes.scatter(values[mask], scored[metric][mask], facecolors=face, edgecolors="tab:blue", label=status)
        best = scored["trial"] == board.best_index
        axes.scatter(values[best], scored[metric][best], marker="*", s=200, color="tab:red", label="best")
        if not categorical and (scored[column] > 0).all() and scored[column].max() >= 8 * scored[column].min():
            axes.set_xscale("log")
        axes.set_xlabel(column)
        axes.set_ylabel(metric)
    panels[0].legend()
    for axes in panels[len(board.varied):]:
        axes.set_visible(False)
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    return True


# ------------------------------------------------------------------------------------------------ display
class Display:
    """What the user sees: with verbose=2, a description of the sweep, then a live table of the trials on a
    terminal (one line per finished trial otherwise); with verbose >= 1, the leaderboard and what was saved."""

    TOP = 10  # leaderboard rows shown at the end (all of them are in leaderboard.csv)

    def __init__(self, board, verbose):
        from rich.console import Console
        self.board, self.verbose = board, verbose
        self.console = Console(highlight=False)
        if not self.console.is_terminal:
            self.console.width = 200  # a log or a pipe: let the leaderboard table take its natural width
            if verbose >= 2:
                board.listeners.append(self._line)

    def say(self, level, text):
        if self.verbose >= level:
            self.console.print(text, markup=False, soft_wrap=True)

    def describe(self, source, frame, prep, space, backend, workers, address, search, seed):
        target, data = prep.preprocessing.target, self.board.data
        task = (f"binary classification of {target.name!r} ("
                + ", ".join(f"{label!r} -> {i}" for i, label in enumerate(target.labels)) + ")"
                if target.task == "binary" else f"regression of {target.name!r} (standardized for training)")
        self.say(2, f"Data: {'a DataFrame' if hasattr(source, 'columns') else source}: {len(frame)} rows x "
                 f"{len(frame.columns)} columns; {task}; {prep.x.shape[1]} inputs; {len(prep.x)} training rows, "
                 f"{len(prep.x_val)} validation rows (seed {seed})")
        for note in prep.notes:
            self.say(2, f"Note: {note}")
        self.say(2, f"Space: {space.describe()}")
        where = (f"{workers} local worker processes with 1 BLAS thread each" if backend == "local" else
                 f"Ray Tune ({'cluster at ' + address if address else 'a local Ray'}; {search} search, ASHA)")
        stops = f"early stopping on val_loss (patience {data.patience})" if data.patience else "no early stopping"
        self.say(2, f"Sweep: {self.board.total} trials on {where}; up to {data.epochs} epochs each, {stops}; ranked by "
                 f"{data.metric} ({'higher' if data.maximize else 'lower'} is better)")

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
        result = (f"{board.data.metric} {score:.4g} at epoch {row['best_epoch']} of {row['epochs']}"
                  if score is not None else row.get("reason", ""))
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
                   + (f"; best so far: trial {best}, {board.data.metric} {board.score(best):.4g}" if best is not None
                      else "") + f"; {time.perf_counter() - board.started:.0f} s")
        table = Table(caption=caption)
        for heading in ("trial", "status", "epochs", board.data.metric, *board.varied):
            table.add_column(heading, justify="left" if heading == "status" else "right")
        running = [i for i in board.trials if board.trials[i]["row"]["status"] == "running"]
        ended = [i for i in board.ranked() if i not in running and board.trials[i]["row"]["status"] != "queued"]
        limit = max(5, self.console.height - 8)
        for index in (running + ended)[:limit]:
            row = board.trials[index]["row"]
            score = board.score(index)
            table.add_row(f"{index}{' *' if index == best else ''}", row["status"], str(row.get("epochs", 0)),
                          "-" if score is None else f"{score:.4g}",
                          *(_cell(board.trials[index]["trial"]["params"][k]) for k in board.varied))
        return table

    def summary(self, leaderboard, out, saved):
        from rich.table import Table
        board, seconds = self.board, time.perf_counter() - self.board.started
        counts = ", ".join(f"{n} {s}" for s, n in board.counts().items())
        ran = len(board.trials)
        if ran < board.total or "interrupted" in board.counts():
            self.say(1, f"Sweep interrupted after {seconds:.1f} s: {ran} of {board.total} trials started ({counts})")
        else:
            self.say(1, f"Sweep done: {ran} trials in {seconds:.1f} s ({60 * ran / seconds:.1f} trials/min): {counts}")
        if self.verbose < 1 or leaderboard.empty:
            return
        metric = board.data.metric
        shown = ["trial", "status", metric, "best_epoch", "epochs", *(PARAM_COLUMNS[k] for k in board.varied),
                 "seconds"]
        table = Table(title=f"Leaderboard ({'top ' + str(self.TOP) + ' of ' if len(leaderboard) > self.TOP else ''}"
                            f"{len(leaderboard)} trials, by {metric})")
        for column in shown:
            table.add_column(column, justify="left" if column == "status" else "right")
        for _, entry in leaderboard.head(self.TOP).iterrows():
            table.add_row(*(_cell(entry[c]) for c in shown))
        self.console.print(table)
        if board.best is not None:
            self.say(1, f"Best: trial {board.best_index}, {metric} {board.score(board.best_index):.4g}")
        for entry in leaderboard[leaderboard["status"] == "failed"].itertuples():
            self.say(1, f"Trial {entry.trial} failed: {entry.reason}")
        if out is not None:
            self.say(1, f"Saved {', '.join(saved)} to {out}")
            if PLOT_FILE not in saved:
                self.say(1, f"No {PLOT_FILE}: install matplotlib for it (pip install 'nbtrain[plot]')")


def _cell(value):
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)
