"""Data-parallel scaling on this machine: samples/s of the course's 3x512 model for P = 1 and 2 processes at
global batches 256..8192, and the all-reduce time against message size; from those, a model of scaling to
N hosts. Writes a section of bench/RESULTS.md with --write.

    python -m bench.dp_scaling [--batches 256,1024,4096,8192] [--write bench/RESULTS.md]

It launches itself under mpiexec (`--worker`) for each P; rank 0 prints one JSON line of measurements.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import workloads
from bench.common import machine, parser

ROWS = 8192  # training rows of the synthetic red-wine-shaped data set


def model_flops_per_sample(spec, n_in):
    """Forward + backward matrix-product FLOPs per training row (dX skipped for the first layer)."""
    total, width = 0, n_in
    for index, (units, _) in enumerate(spec):
        total += 2 * width * units * (3 if index else 2)
        width = units
    return total


def parameter_count(spec, n_in):
    total, width = 0, n_in
    for units, _ in spec:
        total += width * units + units
        width = units
    return total


def worker(batches, distribute):
    """Under mpiexec: time the 3x512 fit at each global batch, then the all-reduce at each size."""
    from course import EpochTimer

    from nbtrain import Sequential, layers
    rng = np.random.default_rng(0)
    X = rng.random((ROWS, 11), dtype=np.float32)
    y = (X @ rng.random(11, dtype=np.float32)).astype(np.float32)
    result = {"samples_per_second": {}, "allreduce_seconds": {}}

    for batch in batches:
        model = Sequential([layers.Dense(units, activation=act) for units, act in workloads.WINE_3X512])
        model.compile(optimizer="adam", loss="mae", device="cpu")
        timer = EpochTimer()
        model.fit(X, y, batch_size=batch, epochs=3, verbose=0, seed=0, callbacks=[timer], distribute=distribute)
        result["samples_per_second"][batch] = ROWS / statistics.median(timer.times[1:])
    if distribute:
        result.update(allreduce_times())
    return result


def allreduce_times():
    """Median seconds of the compiled float32 all-reduce (collective.allreduce_sum) per message size."""
    from numba import njit

    from nbtrain.distributed import Group
    from nbtrain.engine.collective import allreduce_sum

    @njit
    def repeat(buf, comm, times):
        for _ in range(times):
            allreduce_sum(buf, comm)

    group = Group()
    times = {}
    for size in (1 << 10, 1 << 14, 1 << 17, 1 << 19, 531_969, 1 << 21):
        buf = np.ones(size, np.float32)
        repeat(buf, group.handle, 2)
        samples = []
        for _ in range(5):
            group.comm.Barrier()
            start = time.perf_counter()
            repeat(buf, group.handle, 10)
            samples.append((time.perf_counter() - start) / 10)
        times[size * 4] = statistics.median(samples)
    return {"allreduce_seconds": times, "blas_threads": group.blas_threads}


def launch(processes, batches):
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    command = [sys.executable, "-m", "bench.dp_scaling", "--worker", "--batches", ",".join(map(str, batches))]
    if processes:
        command = [mpiexec, "-n", str(processes)] + command + ["--distribute"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    options = parser(__doc__)
    options.add_argument("--batches", default="256,1024,4096,8192")
    options.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    options.add_argument("--distribute", action="store_true", help=argparse.SUPPRESS)
    args = options.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.worker:
        result = worker(batches, "mpi" if args.distribute else None)
        if int(os.environ.get("PMI_RANK", "0")) == 0:
            print(json.dumps(result))
        return

    one = launch(0, batches)  # one plain process, BLAS on all cores
    two = launch(2, batches)  # two MPI ranks, BLAS on one core each
    flops = model_flops_per_sample(workloads.WINE_3X512, 11)
    grad_bytes = 4 * parameter_count(workloads.WINE_3X512, 11)
    rows = ["| global batch | 1 process (2 BLAS threads) samples/s | 2 MPI ranks (1 BLAS thread each) samples/s "
            "| 2 ranks / 1 process |", "| --- | --- | --- | --- |"]
    for batch in batches:
        a, b = one["samples_per_second"][str(batch)], two["samples_per_second"][str(batch)]
        rows.append(f"| {batch} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
    reduce_rows = ["| message | all-reduce time (2 ranks, this machine) | effective GB/s |", "| --- | --- | --- |"]
    for size, seconds in two["allreduce_seconds"].items():
        reduce_rows.append(f"| {int(size) / 1e6:.3f} MB | {seconds * 1e3:.3f} ms | {int(size) / seconds / 1e9:.2f} |")
    per_core = one["samples_per_second"][str(batches[-1])] * flops / os.cpu_count()  # FLOP/s per core
    allreduce_grad = two["allreduce_seconds"][str(grad_bytes)]  # the 531,969-float message is the gradient
    report = "\n".join(rows) + "\n\n" + "\n".join(reduce_rows) + "\n\n" + scaling_model(
        flops, grad_bytes, per_core, allreduce_grad, two["blas_threads"])
    command = " ".join(["python bench/dp_scaling.py"] + sys.argv[1:])
    text = f"\n## Data-parallel training over MPI\n\nMachine: {machine()}\n\nCommand: `{command}`\n\n{report}\n"
    print(text)
    if args.write:
        with open(args.write, "a") as handle:
            handle.write(text)


def scaling_model(flops, grad_bytes, per_core, allreduce_local, blas_threads, hosts=4, cores=16):
    """What the measurements imply for N hosts: the global batch above which data-parallel pays, per model
    width and network speed (a ring all-reduce sends 2(N-1)/N times the gradient over each link)."""
    lines = [
        f"Scaling model. One training row of the 3x512 model costs {flops / 1e6:.2f} MFLOP (forward and backward "
        f"products) and a step all-reduces the whole gradient, {grad_bytes / 1e6:.2f} MB of float32. Measured "
        f"here: {per_core / 1e9:.0f} GFLOP/s per core at the largest batch, and {allreduce_local * 1e3:.2f} ms for "
        f"a {grad_bytes / 1e6:.1f} MB all-reduce between 2 ranks through shared memory ({blas_threads} BLAS thread "
        f"per rank). For {hosts} hosts of {cores} cores each, a step of global batch B costs "
        f"B x flops / ({hosts} x {cores} x rate) plus the all-reduce, against B x flops / ({cores} x rate) on one "
        "host: data-parallel pays above B* = all-reduce x cores x rate / ((1 - 1/hosts) x flops). The network "
        "speeds are links' nominal bandwidths, not measured here; latency is left out.",
        "",
        "| hidden width (3 ReLU layers) | parameters | MFLOP per row | B* at 10 Gb/s | B* at 100 Gb/s |",
        "| --- | --- | --- | --- | --- |"]
    for width in (64, 512, 4096):
        spec = [(width, "relu")] * 3 + [(1, None)]
        f, nbytes = model_flops_per_sample(spec, 11), 4 * parameter_count(spec, 11)
        cells = []
        for link in (1.25e9, 12.5e9):
            ring = 2 * (hosts - 1) / hosts * nbytes / link
            cells.append(f"{ring * cores * per_core / ((1 - 1 / hosts) * f):,.0f} rows")
        lines.append(f"| {width} | {nbytes // 4:,} | {f / 1e6:.3f} | {' | '.join(cells)} |")
    lines += ["", "Both the gradient and the compute per row grow with the square of the width, so B* hardly "
              "depends on the width once it is past the input size: what decides is the global batch against "
              "the network speed."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
