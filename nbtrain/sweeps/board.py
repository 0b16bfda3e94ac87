"""The board of a sweep: every trial's status, epochs and best-epoch metrics as the backends report them, the best
finished trial (with what saving it takes), and the leaderboard. Trials are scored and ranked by the sweep's
monitor, the one rule for which way a metric improves."""
import math
import time

from ..tabular.recipe import task_metric

PARAM_COLUMNS = {"layers": "layers", "units": "units", "lr": "lr", "batch_size": "batch_size", "dropout": "dropout",
                 "batchnorm": "batchnorm", "optimizer": "optimizer", "loss": "loss_function"}


CAPPED = "capped: ran all {} epochs, still improving within the patience; more --epochs may do better"


def log_names(task, has_val):
    """What every trial logs: the loss and the recipe's metric for the task, and their val_ versions."""
    names = ["loss", task_metric(task)]
    return names + ([f"val_{n}" for n in names] if has_val else [])


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
        value = self.trials[index]["row"].get(self.data.monitor.name)
        return value if value is not None and math.isfinite(value) else None

    def better(self, score, index):
        other = self.score(index)
        return other is None or self.data.monitor.is_improvement(score, other)

    def capped(self, index):
        """Whether a finished trial was cut by the epoch cap: it ran every epoch with early stopping on, so its
        metric was still improving within the patience and more epochs may do better."""
        row, options = self.trials[index]["row"], self.data.options
        return row["status"] == "done" and bool(options.patience) and row.get("epochs", 0) >= options.epochs

    @property
    def best_index(self):
        return self.best[0] if self.best else None

    def counts(self):
        statuses = [entry["row"]["status"] for entry in self.trials.values()]
        return {s: statuses.count(s) for s in ("running", "done", "pruned", "failed", "interrupted")
                if statuses.count(s)}

    def ranked(self):
        """Trial indices, best first: scored trials by score (ties by index), then the others by index."""
        def key(index):
            score = self.score(index)
            return (score is None, self.data.monitor.sort_key(score) if score is not None else 0, index)
        return sorted(self.trials, key=key)

    def leaderboard(self):
        """One row per trial, best first: status, the ranking metric, the other metrics at the best epoch, the
        epochs, the hyperparameters, the fit seed, the seconds taken and why a trial failed or stopped."""
        import pandas as pd
        metric = self.data.monitor.name
        names = [metric] + [n for n in log_names(self.data.task, len(self.data.x_val) > 0) if n != metric]
        rows = []
        for index in self.ranked():
            trial, row = self.trials[index]["trial"], self.trials[index]["row"]
            rows.append({"trial": index, "status": row["status"], **{n: row.get(n, math.nan) for n in names},
                         "best_epoch": row.get("best_epoch", math.nan), "epochs": row.get("epochs", 0),
                         **{PARAM_COLUMNS[k]: v for k, v in trial["params"].items()}, "seed": trial["seed"],
                         "seconds": round(row.get("seconds", math.nan), 3),
                         "reason": CAPPED.format(row["epochs"]) if self.capped(index) else row.get("reason", "")})
        columns = ["trial", "status", *names, "best_epoch", "epochs", *PARAM_COLUMNS.values(), "seed", "seconds",
                   "reason"]
        return pd.DataFrame(rows, columns=[c for c in columns if not rows or c in rows[0]])
