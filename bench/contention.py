"""Seconds per epoch of the same fits on a quiet machine and beside k busy processes (k = 1, 2; started and stopped
here), nbtrain against PyTorch in one run; write the table to RESULTS.md.

    python -m bench.contention [--data ../shared/data] [--epochs 4] [--write bench/RESULTS.md]

Three sizes: ionosphere 4-4-1 (batch 32), a wide 3x512 MAE regression (8,192 x 100 synthetic rows, batch 256) and
`nbtrain fit`'s default network on the California housing table as the command line prepares it. Each runs as
nbtrain with its automatic BLAS threads (nbtrain.threads), nbtrain with a thread per core (the default before the
policy), and PyTorch with its default threads. Every size is validated first: both frameworks must bring the
validation loss well under a constant prediction's. An epoch's time is the mean over the timed epochs (what a fit
takes, preemptions included), after one untimed epoch.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench import workloads
from bench.common import EpochTimer, machine, parser, write_section
from bench.course import nbtrain_model, torch_epochs

# a busy process: spins until stopped, or until its parent is gone (killed before it could stop the children)
BUSY = [sys.executable, "-c", "import os\nparent = os.getppid()\nprint('spinning', flush=True)\n"
        "while os.getppid() == parent: pass"]
SANE = 0.8  # a validated fit's validation loss is at most this share of a constant prediction's
TARGET_SLOWDOWN = 2.5  # issue 25: beside two busy processes an epoch takes at most this many quiet epochs


class Workload:
    """One model size: its data ((X, y), (Xv, yv), float32, y 1-D), layers, loss, batch size and epoch counts."""

    def __init__(self, name, data, spec, loss, batch_size, check_epochs, timed_epochs):
        self.name, self.data, self.spec, self.loss, self.batch_size = name, data, spec, loss, batch_size
        self.check_epochs, self.timed_epochs = check_epochs, timed_epochs

    def untouched(self):
        """Whether nbtrain's policy leaves BLAS alone for this fit: its largest product (the batch or a validation
        chunk, times the parameters, bounds it) runs on one thread whatever the setting."""
        from nbtrain.model import EVAL_ROWS
        from nbtrain.threads import ONE_THREAD_WORK
        (X, _), (Xv, _) = self.data
        widths = [X.shape[1]] + [units for units, _ in self.spec]
        params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
        return max(self.batch_size, min(len(Xv), EVAL_ROWS)) * params <= ONE_THREAD_WORK

    def baseline(self):
        """The validation loss of a constant prediction (the training median for MAE, the training rate for BCE)."""
        (_, y), (_, yv) = self.data
        if self.loss == "mae":
            return float(np.mean(np.abs(yv - np.median(y))))
        p = float(np.clip(y.mean(), 1e-7, 1 - 1e-7))
        return float(-np.mean(yv * np.log(p) + (1 - yv) * np.log(1 - p)))


def as_arrays(split):
    (X, y), (Xv, yv) = split
    X, Xv = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, Xv))
    y, yv = (np.ascontiguousarray(a, dtype=np.float32).ravel() for a in (y, yv))
    return (X, y), (Xv, yv)


def wide_data(rows=8192, width=100, seed=0):
    """The issue's wide case: 100 standard-normal inputs, a smooth target of ten of them, 20% held out."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, width)).astype(np.float32)
    y = np.tanh(X[:, :10].sum(axis=1) / 3) + 0.05 * rng.standard_normal(rows)
    cut = rows * 4 // 5
    return as_arrays(((X[:cut], y[:cut]), (X[cut:], y[cut:])))


def housing_data(folder):
    """California housing as `nbtrain fit --recipe course` prepares it (scaling, one-hot text, validation split)."""
    import pandas as pd
    from nbtrain.tabular.options import FitOptions
    from nbtrain.tabular.preprocessing import prepare
    options = FitOptions(recipe="course").resolved()
    prep = prepare(pd.read_csv(Path(folder) / "california-housing.csv"), "median_house_value", scaling=options.scale,
                   val_split=options.val_split, seed=options.seed)
    return as_arrays(((prep.x, prep.y), (prep.x_val, prep.y_val)))


def workload_list(folder, epochs):
    from nbtrain.tabular.options import FitOptions
    cli = FitOptions(recipe="course").resolved()
    return [
        Workload("ionosphere 4-4-1, batch 32", as_arrays(workloads.ionosphere(folder)), workloads.ION_4_4_1, "bce",
                 32, 150, 100),
        Workload("wide 3x512, 8,192 x 100, batch 256", wide_data(), workloads.WINE_3X512, "mae", 256, 3, epochs),
        Workload(f"CLI course recipe {'x'.join(map(str, cli.layers))} on California housing, batch {cli.batch_size}",
                 housing_data(folder), [(units, "relu") for units in cli.layers] + [(1, None)], "mae",
                 cli.batch_size, 2, epochs),
    ]


def kernels_threads():
    """The thread count of the BLAS that the compiled kernels call (SciPy's OpenBLAS)."""
    from threadpoolctl import threadpool_info
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"
               and "scipy_openblas-" in lib["filepath"])


def nbtrain_epochs(work, epochs, threads=None, budget=None):
    """(each epoch's seconds, the last validation loss, the BLAS threads the fit chose) of a fresh model; with a
    budget (seconds) the fit ends early once two epochs took that long."""
    from nbtrain import callbacks
    (X, y), (Xv, yv) = work.data
    model = nbtrain_model(work.spec, X.shape[1], seed=0)
    model.compile(optimizer="adam", loss="binary_crossentropy" if work.loss == "bce" else work.loss, device="cpu")
    timer, chosen = EpochTimer(), []

    def look(epoch, logs):
        if not epoch:
            chosen.append(kernels_threads())
        if budget is not None and epoch and sum(timer.times) >= budget:
            model.stop_training = True
    seen = callbacks.LambdaCallback(on_epoch_end=look)
    history = model.fit(X, y, validation_data=(Xv, yv), batch_size=work.batch_size, epochs=epochs, verbose=0, seed=0,
                        callbacks=[timer, seen], threads=threads)
    return timer.times, history.history["val_loss"][-1], chosen[0]


def validate(work):
    """Both frameworks' validation losses after work.check_epochs; SystemExit when either is not sane."""
    limit = SANE * work.baseline()
    ours = nbtrain_epochs(work, work.check_epochs)[1]
    theirs = torch_epochs(work.data, work.spec, work.loss, work.batch_size, work.check_epochs)[1]
    line = (f"{work.name}: validation loss after {work.check_epochs} epochs nbtrain {ours:.4f}, PyTorch "
            f"{theirs:.4f}, constant prediction {work.baseline():.4f}")
    print(line, flush=True)
    if not (ours <= limit and theirs <= limit):
        raise SystemExit(f"not validated (both must be at most {SANE} x the constant prediction's): {line}")
    return line


def measure(work, budget):
    """Mean seconds per timed epoch: nbtrain automatic (with the threads it chose), nbtrain a thread per core,
    PyTorch; each fit ends early once `budget` seconds have passed (after one timed epoch at least)."""
    epochs = work.timed_epochs + 1
    auto, _, chosen = nbtrain_epochs(work, epochs, budget=budget)
    every_core = nbtrain_epochs(work, epochs, threads=os.cpu_count(), budget=budget)[0]
    torch_times = torch_epochs(work.data, work.spec, work.loss, work.batch_size, epochs, budget=budget)[0]
    return {"auto": np.mean(auto[1:]), "threads": chosen, "cores": np.mean(every_core[1:]),
            "torch": np.mean(torch_times[1:])}


def spinning(k):
    """k busy processes, each running once this returns."""
    children = [subprocess.Popen(BUSY, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    for child in children:
        child.stdout.readline()
    return children


def scheduling():
    """A sentence on how the kernel shares the cores between sessions, where it groups them (autogroup)."""
    try:
        grouped = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return ""
    return (" The kernel groups processes by session (autogroup): while other users' sessions are busy, this "
            "benchmark's session, the fit and its busy processes together, gets only its share of the cores."
            if grouped else "")


def load_line(busy=0):
    """The machine's load: the load averages and the other processes' runnable threads now, less `busy` of ours."""
    from nbtrain.threads import others_running
    one, five, _ = os.getloadavg()
    return (f"load average {one:.2f} (1 min), {five:.2f} (5 min); {max(0, others_running() - busy)} runnable threads "
            "of other users")


def run(work_list, levels, budget):
    """{(size, k): figures}, and a load line per level (read with its busy processes running)."""
    results, loads = {}, {}
    for k in levels:
        children = spinning(k)
        try:
            loads[k] = load_line(k)
            print(f"beside {k} busy: {loads[k]}", flush=True)
            for work in work_list:
                results[work.name, k] = measure(work, budget)
                print(f"  {work.name}: {results[work.name, k]}", flush=True)
        finally:
            for child in children:
                child.kill()
                child.wait()
    return results, loads


def table(work_list, levels, results):
    rows = ["| model | busy processes | nbtrain (automatic threads) | nbtrain, a thread per core | PyTorch "
            "| nbtrain / PyTorch |", "| --- | --- | --- | --- | --- | --- |"]
    for work in work_list:
        quiet = results[work.name, levels[0]]
        for k in levels:
            r = results[work.name, k]

            def cell(key):
                return f"{r[key] * 1e3:.1f} ms" + ("" if k == levels[0] else f" ({r[key] / quiet[key]:.1f}x quiet)")
            threads = "BLAS untouched" if work.untouched() else f"{r['threads']} thread{'s' * (r['threads'] > 1)}"
            rows.append(f"| {work.name} | {k} | {cell('auto')}, {threads} | "
                        f"{cell('cores')} | {cell('torch')} | {r['auto'] / r['torch']:.2g} |")
    return "\n".join(rows)


def verdicts(work_list, levels, results):
    """The issue's targets, checked on these figures, one line each."""
    lines, worst = [], levels[-1]
    for work in work_list:
        quiet, loaded = results[work.name, levels[0]], results[work.name, worst]
        slowdown = loaded["auto"] / quiet["auto"]
        lines.append(f"- {work.name}: beside {worst} busy processes {slowdown:.1f}x its quiet epoch (target at most "
                     f"{TARGET_SLOWDOWN}x: {'met' if slowdown <= TARGET_SLOWDOWN else 'NOT met'}); "
                     f"{loaded['auto'] / loaded['torch']:.2g}x PyTorch's epoch under the same load (target at most 1: "
                     f"{'met' if loaded['auto'] <= loaded['torch'] else 'NOT met'})")
    return "\n".join(lines)


def main():
    options = parser(__doc__)
    options.add_argument("--epochs", type=int, default=4, help="timed epochs of the wide and CLI-sized fits")
    options.add_argument("--budget", type=float, default=6.0, help="seconds after which a timed fit ends early "
                                                                    "(it keeps one timed epoch at least)")
    options.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="the busy process counts [0 1 2]")
    args = options.parse_args()
    import torch
    work_list = workload_list(args.data, args.epochs)
    before = load_line()
    checks = [validate(work) for work in work_list]
    results, loads = run(work_list, args.busy, args.budget)
    after = load_line()
    report = (f"Machine: {machine()}; PyTorch with its default {torch.get_num_threads()} threads.\n\n"
              f"Load from other users: {before} before, {after} after; with this benchmark's busy processes "
              "running: " + "; ".join(f"{k} busy: {line}" for k, line in loads.items()) + "." + scheduling()
              + " \"quiet\" is 0 busy processes of this benchmark's.\n\n"
              "Validated first: " + "; ".join(checks) + ".\n\n" + table(work_list, args.busy, results) + "\n\n"
              + verdicts(work_list, args.busy, results))
    print(report)
    if args.write:
        command = f"python -m bench.contention --epochs {args.epochs} --budget {args.budget} --write {args.write}"
        write_section(args.write, "A fit beside busy processes: nbtrain vs PyTorch (issue 25)",
                      f"Command: `{command}`\n\n{report}")


if __name__ == "__main__":
    main()
