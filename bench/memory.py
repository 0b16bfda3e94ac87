"""Peak memory of `nbtrain fit` and `nbtrain predict` on a generated table (default 2,000,000 rows x 20 float
columns and a numeric target, written to a temporary folder and deleted), for one process and for P MPI ranks
(each rank's own peak), and the seconds to read and prepare the table (streaming.prepare_file, and with --old
read_table then prepare as before, each in a fresh process). Writes a section of bench/RESULTS.md with --write.

    python -m bench.memory [--rows 2000000] [--columns 20] [--ranks 2] [--write bench/RESULTS.md]

Each measured command runs in a fresh process that records its own peak resident set (getrusage's ru_maxrss) when
it exits, so the figure is that process's alone, whatever else the machine runs; times depend on the load.
"""
import argparse
import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, parser

GENERATE_ROWS = 100_000  # rows written at a time
READERS = {"stream": "streaming.prepare_file", "whole": "read_table + prepare (before issue 28)"}


def generate(path, rows, columns, seed=0):
    """A CSV of `columns` float features x0.. and a target y, written in blocks."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=columns)
    with open(path, "w") as handle:
        for start in range(0, rows, GENERATE_ROWS):
            x = rng.normal(size=(min(GENERATE_ROWS, rows - start), columns))
            frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(columns)]).assign(y=x @ weights)
            frame.to_csv(handle, index=False, header=start == 0, float_format="%.6g")


def child(report, argv):
    """Run nbtrain's command line with `argv` in this process; at exit write {rank: peak bytes} to `report`."""
    from nbtrain.distributed import launched_rank

    def record():
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        Path(f"{report}.{launched_rank()}").write_text(json.dumps(peak))
    atexit.register(record)
    if argv[0] == "prepare":  # the reading and preparation alone, timed
        source, how = argv[1], argv[2]
        start = time.perf_counter()
        if how == "stream":
            from nbtrain.tabular.streaming import prepare_file
            prepare_file(source, "y")
        else:
            from nbtrain.tabular.preprocessing import prepare
            from nbtrain.tabular.reading import read_table
            prepare(read_table(source), "y")
        Path(f"{report}.seconds").write_text(json.dumps(time.perf_counter() - start))
        return
    from nbtrain.cli import app
    sys.argv = ["nbtrain", *argv]
    app(prog_name="nbtrain")


def measure(folder, name, argv, ranks=1):
    """({rank: peak MB}, seconds, wall seconds) of `argv` run by child() in fresh processes (under mpiexec for
    ranks > 1)."""
    report = folder / name
    command = [sys.executable, "-m", "bench.memory", "--child", str(report), "--", *map(str, argv)]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
        command = [mpiexec, "-n", str(ranks), *command]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    peaks = {int(p.suffix[1:]): json.loads(p.read_text()) / 2**20 for p in folder.glob(f"{name}.[0-9]*")}
    seconds = folder / f"{name}.seconds"
    return peaks, json.loads(seconds.read_text()) if seconds.exists() else None, wall


def main():
    options = parser(__doc__)
    options.add_argument("--rows", type=int, default=2_000_000)
    options.add_argument("--columns", type=int, default=20)
    options.add_argument("--ranks", type=int, default=2)
    options.add_argument("--old", action="store_true", help="also time read_table + prepare (needs ~1.3 GB per "
                                                            "million rows of 20 columns)")
    options.add_argument("--child", help=argparse.SUPPRESS)
    if "--child" in sys.argv:
        split = sys.argv.index("--")
        child(sys.argv[sys.argv.index("--child") + 1], sys.argv[split + 1:])
        return
    args = options.parse_args()
    matrix = args.rows * args.columns * 4 / 2**20
    with tempfile.TemporaryDirectory(prefix="nbtrain-memory-") as tmp:
        folder = Path(tmp)
        data = folder / "big.csv"
        generate(data, args.rows, args.columns)
        size = data.stat().st_size / 2**20
        fit = ["fit", data, "--target", "y", "--layers", "32", "--epochs", "1", "--quiet"]
        rows = []
        baseline, _, _ = measure(folder, "baseline", ["--version"])
        rows.append(("`nbtrain --version` (the import baseline)", baseline, None))
        for how, label in READERS.items():
            if how != "whole" or args.old:
                peaks, seconds, _ = measure(folder, f"prepare-{how}", ["prepare", data, how])
                rows.append((f"read and prepare: {label}", peaks, seconds))
        peaks, _, wall = measure(folder, "fit1", fit + ["--out", folder / "run1"])
        rows.append(("`nbtrain fit` (1 epoch), 1 process", peaks, wall))
        peaks, _, wall = measure(folder, "fitP", fit + ["--out", folder / "runP", "--distributed", "mpi"], args.ranks)
        rows.append((f"`nbtrain fit --distributed mpi` (1 epoch), {args.ranks} ranks, per rank", peaks, wall))
        peaks, _, wall = measure(folder, "predict", ["predict", folder / "run1" / "model.nbt", data, "-o",
                                                     folder / "predictions.csv"])
        rows.append(("`nbtrain predict`, 1 process", peaks, wall))
    lines = [f"Table: {args.rows:,} rows x {args.columns} float columns and a target, a {size:,.0f} MiB CSV; "
             f"its float32 matrix is {matrix:,.0f} MiB.", "",
             "| what | peak RSS (MiB; per rank) | per million rows | x the matrix | seconds |",
             "| --- | --- | --- | --- | --- |"]
    for label, peaks, seconds in rows:
        top = max(peaks.values())
        shown = " / ".join(f"{peaks[r]:,.0f}" for r in sorted(peaks))
        lines.append(f"| {label} | {shown} | {top / (args.rows / 1e6):,.0f} | {top / matrix:.1f} | "
                     f"{'' if seconds is None else f'{seconds:.1f}'} |")
    load = os.getloadavg()
    command = " ".join(["python -m bench.memory"] + sys.argv[1:])
    text = (f"\n## Memory of fit and predict on a large table\n\nMachine: {machine()}; load average at the end "
            f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (shared with other engineers' tests: the peaks are each "
            f"process's own, the seconds are noisy).\n\nCommand: `{command}`\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.write:
        with open(args.write, "a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
