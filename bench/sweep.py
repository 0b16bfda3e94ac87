"""Trials per minute of a hyperparameter sweep, four ways, on the same seeded trials; append the results to RESULTS.md.

    python -m bench.sweep [--data ../shared/data] [--ion-epochs 100] [--wine-epochs 20] [--write bench/RESULTS.md]

Workloads: 32 ionosphere-sized trials (ion.csv, binary) and 8 red-wine-sized trials (red-wine.csv, regression),
drawn from nbtrain's default space (1-3 hidden layers of 16-512 units, lr 1e-4..1e-2, batch 32-256, dropout,
batchnorm) with seed 0. Every trial trains all its epochs (patience 0), so every mode does the same work:
  1. one fit after another in one process (nbtrain's run_trial; BLAS free to use every core),
  2. nbtrain.sweep(backend="local"): one worker process per core, one BLAS thread each,
  3. nbtrain.sweep(backend="ray") on a local Ray started by the sweep (ASHA's first rung put at the last epoch,
     so that it stops no trial),
  4. the same trials written with Keras 3 (torch backend) in a plain loop, one after another.
Each time includes reading and preparing the CSV; the breakdown says where the rest goes.
"""
import os
import sys
import time
from pathlib import Path

from bench.common import machine, parser

WORKLOADS = {"ion": ("ion.csv", "Class", 32), "wine": ("red-wine.csv", "quality", 8)}


def prepared(path, target):
    """(SweepData-ready arrays, task, target scale, seconds to read and prepare the table)."""
    from nbtrain.tabular.preprocessing import prepare
    from nbtrain.tabular.reading import read_table
    start = time.perf_counter()
    prep = prepare(read_table(path), target, seed=0)
    return prep, time.perf_counter() - start


def trials_for(task, n):
    from nbtrain.sweeps.space import default_space
    from nbtrain.sweeps.trial import trial_seed
    return [{"index": i, "seed": trial_seed(0, i), "params": p} for i, p in enumerate(default_space(task).sample(n, 0))]


def sequential(path, target, n, epochs):
    """Seconds for n trials fitted one after another in this process, and the summed fit seconds."""
    from nbtrain.monitor import Monitor
    from nbtrain.sweeps.trial import SweepData, run_trial
    from nbtrain.tabular.options import FitOptions
    start = time.perf_counter()
    prep, _ = prepared(path, target)
    spec = prep.preprocessing.target
    data = SweepData(prep.x, prep.y, prep.x_val, prep.y_val, spec.task, spec.scale,
                     FitOptions(epochs=epochs, patience=0, min_delta=0.0, device="cpu"), Monitor("val_loss"))
    fits = sum(run_trial(data, trial)[0]["seconds"] for trial in trials_for(spec.task, n))
    return time.perf_counter() - start, fits


def swept(path, target, n, epochs, backend, grace):
    """Seconds for nbtrain.sweep(...) of n trials, and the summed seconds of the trials' fits."""
    import nbtrain
    start = time.perf_counter()
    board = nbtrain.sweep(path, target, trials=n, backend=backend, epochs=epochs, patience=0, verbose=0,
                          grace_epochs=grace)
    wall = time.perf_counter() - start
    assert (board["status"] == "done").all(), board[["status", "reason"]]
    return wall, board["seconds"].sum()


def keras_loop(path, target, n, epochs):
    """Seconds for the same trials written with Keras 3 (torch backend): build, compile, fit, one after another."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
    start = time.perf_counter()
    prep, _ = prepared(path, target)
    spec = prep.preprocessing.target
    for trial in trials_for(spec.task, n):
        p = trial["params"]
        keras.utils.set_random_seed(trial["seed"])
        stack = [keras.Input(shape=(prep.x.shape[1],))]
        for _ in range(p["layers"]):
            stack.append(keras.layers.Dense(p["units"], activation="relu"))
            if p["dropout"]:
                stack.append(keras.layers.Dropout(p["dropout"]))
            if p["batchnorm"]:
                stack.append(keras.layers.BatchNormalization())
        binary = spec.task == "binary"
        model = keras.Sequential(stack + [keras.layers.Dense(1, activation="sigmoid" if binary else None)])
        model.compile(keras.optimizers.Adam(p["lr"]), "binary_crossentropy" if binary else "mae")
        model.fit(prep.x, prep.y, validation_data=(prep.x_val, prep.y_val), batch_size=p["batch_size"],
                  epochs=epochs, verbose=0)
    return time.perf_counter() - start


def breakdown(wall, fits, mode, n):
    """The fits' seconds summed over the trials, and the wall time that they do not explain."""
    if fits is None:
        return "-"
    parallel = 1 if mode.startswith("one process") else min(n, os.cpu_count())
    return f"fits {fits:.1f} s summed; {wall - fits / parallel:.1f} s beyond fits / {parallel}"


def peer_versions():
    from importlib.metadata import PackageNotFoundError, version
    found = []
    for name in ("keras", "ray", "optuna", "threadpoolctl"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def ray_start_seconds():
    import ray
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    seconds = time.perf_counter() - start
    ray.shutdown()
    return seconds


def main():
    options = parser(__doc__)
    options.add_argument("--ion-epochs", type=int, default=100)
    options.add_argument("--wine-epochs", type=int, default=20)
    args = options.parse_args()
    grace = max(args.ion_epochs, args.wine_epochs)  # ASHA's first rung at the end: nothing is pruned
    sequential(Path(args.data) / "ion.csv", "Class", 1, 2)  # compile (or load) the kernels once
    rows, notes = [], []
    for name, epochs in (("ion", args.ion_epochs), ("wine", args.wine_epochs)):
        file, target, n = WORKLOADS[name]
        path = Path(args.data) / file
        _, load = prepared(path, target)
        label = f"{n} {'ionosphere' if name == 'ion' else 'red-wine'}-sized trials, {epochs} epochs each"
        results = {"one process, one fit after another": sequential(path, target, n, epochs),
                   f"local pool, {min(n, os.cpu_count())} workers x 1 BLAS thread": swept(path, target, n, epochs,
                                                                                          "local", grace),
                   "Ray Tune on a local Ray": swept(path, target, n, epochs, "ray", grace)}
        try:
            results["Keras 3 (torch backend), plain loop"] = (keras_loop(path, target, n, epochs), None)
        except ImportError:
            notes.append("Keras is not installed: no Keras figures (pip install keras)")
        for mode, (wall, fits) in results.items():
            rows.append((label, mode, f"{wall:.1f} s", f"{60 * n / wall:.1f}", breakdown(wall, fits, mode, n)))
        notes.append(f"{label}: reading and preparing the CSV took {load * 1e3:.0f} ms")
    notes.append(f"a local ray.init() alone took {ray_start_seconds():.1f} s")
    table = ["| workload | mode | wall time | trials per minute | where the time goes (fit seconds summed over "
             "trials; the rest: start-up, kernel cache loads, data shipping, scheduling) |",
             "| --- | --- | --- | --- | --- |"] + [f"| {' | '.join(row)} |" for row in rows]
    command = "python -m bench.sweep " + " ".join(sys.argv[1:])
    text = "\n".join(["## Sweeps", "", f"Machine: {machine()}; {peer_versions()}", "", f"Command: `{command}`", "",
                      *table, "", *[f"- {note}" for note in notes], ""])
    print(text)
    if args.write:
        with open(args.write, "a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
