"""The Ray backend of a sweep: Ray Tune runs the trials, one CPU each, on a new local Ray or on an existing cluster.
Random search takes the sweep's own seeded sample (the very trials the local backend runs); with optuna installed,
search="tpe" lets Optuna's TPE suggest them instead. ASHA, fed once per epoch, stops trials that trail at its rungs.
Imported only for backend="ray": it imports Ray."""
import json
import math
import os

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from ..tabular.runfolder import RAY_DIR

REDUCTION_FACTOR = 3  # at each rung, ASHA keeps the best third


def run_ray(data, space, trials, seed, workers, address, search, board, out, grace_epochs):
    """Run the trials with Ray Tune and report them to `board`. A Ray already initialized in this process is
    used as it is; otherwise this joins `address` (None: a new local Ray with `workers` CPUs) and shuts down after.
    ASHA stops no trial before grace_epochs."""
    owned = not ray.is_initialized()
    if owned:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
    # with verbose=0, Tune then prints nothing: the sweep's own table shows the progress
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        mode = data.monitor.mode
        trainable = tune.with_resources(tune.with_parameters(ray_trial, data=data), {"cpu": 1})
        scheduler = ASHAScheduler(max_t=data.options.epochs + 1,
                                  grace_period=min(grace_epochs, data.options.epochs),
                                  reduction_factor=REDUCTION_FACTOR)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric="score", mode=mode, search_alg=Numbered(trials, space, search, seed,
                                                                                      mode),
                                        scheduler=scheduler, num_samples=len(trials),
                                        max_concurrent_trials=workers),
            run_config=tune.RunConfig(storage_path=str((out / RAY_DIR).resolve()) if out is not None else None,
                                      callbacks=[BoardFeed(board)], verbose=0))
        tuner.fit()
    finally:
        if owned:
            ray.shutdown()


def ray_trial(config, data):
    """A Tune trainable: one trial, with one BLAS thread, reporting its best epoch so far after every epoch (for
    ASHA and the live table) and its result at the end."""
    from .trial import run_trial, single_blas_thread
    single_blas_thread()
    worst = data.monitor.worst

    def score(row):
        value = row.get(data.monitor.name, math.nan)
        return value if math.isfinite(value) else worst
    row, _, _ = run_trial(data, config["trial"],
                          lambda progress: tune.report({"score": score(progress), "progress": json.dumps(progress)}))
    tune.report({"score": score(row), "result": json.dumps(row)})


class Numbered(Searcher):
    """Gives Tune the sweep's trials in order, each numbered (its fit is seeded from the sweep seed and that number,
    as on the local backend), with the sampled hyperparameters or, for search="tpe", those Optuna's TPE suggests."""

    def __init__(self, trials, space, search, seed, mode):
        super().__init__(metric="score", mode=mode)
        self.trials, self.fixed, self.count = trials, space.fixed(), 0
        self.tpe = None
        if search == "tpe":
            import optuna
            from optuna.samplers import TPESampler
            from ray.tune.search.optuna import OptunaSearch
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            self.tpe = OptunaSearch(space=space.to_optuna(), metric="score", mode=mode, sampler=TPESampler(seed=seed))

    def suggest(self, trial_id):
        if self.count == len(self.trials):
            return Searcher.FINISHED
        trial = self.trials[self.count]
        if self.tpe is not None:
            suggested = self.tpe.suggest(trial_id)
            if suggested is None:
                return None
            trial = {**trial, "params": {**self.fixed, **suggested}}
        self.count += 1
        return {"trial": trial}

    def on_trial_result(self, trial_id, result):
        if self.tpe is not None:
            self.tpe.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if self.tpe is not None:
            self.tpe.on_trial_complete(trial_id, result=result, error=error)


class BoardFeed(tune.Callback):
    """Passes what Tune learns about each trial (started, an epoch's progress, the result, stopped by ASHA, an
    error) to the sweep's board, in the driver process."""

    def __init__(self, board):
        self.board = board

    def __getstate__(self):  # Tune pickles its callbacks with the experiment state; the board stays here
        return {"board": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.board.queue(trial.config["trial"])
        self.board.start(trial.config["trial"]["index"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        index = trial.config["trial"]["index"]
        if "result" in result:
            self.board.finish(index, json.loads(result["result"]))
        else:
            self.board.progress(index, json.loads(result["progress"]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        index = trial.config["trial"]["index"]
        if self.board.trials[index]["row"]["status"] == "running":
            self.board.prune(index)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.board.finish(trial.config["trial"]["index"],
                          {"status": "failed", "reason": f"the Ray trial failed: {trial.get_error()}"})
