"""Samples per second: nbtrain CPU vs nbtrain CUDA (and PyTorch CUDA where installed), in one run.

    python bench/cpu_vs_gpu.py [--batches 32,512,2048,8192] [--widths 64,512,4096] [--write FILE]

Model: the course's red-wine shape (11 inputs, three ReLU layers of `width` units, 1 output, MAE, Adam).
For each (width, batch) cell a fit runs 3 epochs of `steps` batches on synthetic data; the epoch time is the
median of epochs 2 and 3 (the data and weights are resident, so it is kernel time plus launch overhead);
the transfer time is that of copying the data set to the device once (what a fit pays up front).
Targets not present on this machine are reported as "not measured" (never estimated).
Then the course workloads end to end on each target (ionosphere 1000 epochs, red wine 20 epochs).
Before any speed is printed, the CUDA fit is checked against the CPU fit of the same seed: every epoch's loss and
every weight array after the timed steps must agree to float32 rounding (`disagreement`); a cell whose fits do not
agree shows why, and no speed.
"""
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from bench import course, workloads
from bench.common import EpochTimer, machine, parser
from nbtrain import Sequential, layers


def synthetic(rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, 11), dtype=np.float32)
    return X, (X @ rng.random(11, dtype=np.float32)).astype(np.float32)


# the CUDA and CPU fits agree when every epoch's loss and every weight array (in relative L2 norm) differ by at most
# this: float32 sums in another order over a few steps; the end-to-end fits (up to 1000 epochs) drift further apart
CELL_RTOL = 1e-3
END_TO_END_RTOL = 1e-2


@dataclass
class Run:
    """One fit: its epochs' wall seconds, its epochs' losses and the weights after the last step."""
    times: list
    losses: list
    weights: list


def disagreement(cpu, gpu, rtol):
    """Why the CUDA fit does not compute what the CPU fit does (None when it does, to `rtol`)."""
    if len(cpu.losses) != len(gpu.losses):
        return f"{len(gpu.losses)} epochs on CUDA, {len(cpu.losses)} on the CPU"
    for epoch, (a, b) in enumerate(zip(cpu.losses, gpu.losses)):
        if not abs(a - b) <= rtol * abs(a):
            return f"epoch {epoch + 1} loss {b:.6g} on CUDA, {a:.6g} on the CPU"
    for index, (a, b) in enumerate(zip(cpu.weights, gpu.weights)):
        error = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), np.finfo(np.float32).tiny))
        if not error <= rtol:  # also NaN
            return f"weight array {index} differs by {error:.2g} (relative L2) from the CPU's"
    return None


def nbtrain_run(device, width, batch, steps):
    """3 epochs of `steps` batches of the red-wine-shaped model on `device`, seed 0."""
    X, y = synthetic(batch * steps)
    model = Sequential([layers.Dense(width, activation="relu"), layers.Dense(width, activation="relu"),
                        layers.Dense(width, activation="relu"), layers.Dense(1)])
    model.build((None, X.shape[1]), seed=0)
    model.compile(optimizer="adam", loss="mae", device=device)
    timer = EpochTimer()
    history = model.fit(X, y, batch_size=batch, epochs=3, verbose=0, seed=0, callbacks=[timer])
    return Run(timer.times, history.history["loss"], model.get_weights())


def epoch_seconds(run):
    return statistics.median(run.times[1:])


def transfer_seconds(rows):
    from numba import cuda
    X, y = synthetic(rows)
    cuda.synchronize()
    start = time.perf_counter()
    cuda.to_device(X), cuda.to_device(y)
    cuda.synchronize()
    return time.perf_counter() - start


def torch_cuda_epoch_seconds(width, batch, steps):
    import torch
    from torch import nn
    X, y = (torch.tensor(a, device="cuda") for a in synthetic(batch * steps))
    model = nn.Sequential(nn.Linear(11, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                          nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        order = torch.randperm(len(X), device="cuda")
        for a in range(0, len(X), batch):
            idx = order[a:a + batch]
            optimizer.zero_grad()
            loss = (model(X[idx])[:, 0] - y[idx]).abs().mean()
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def cell_row(width, batch, steps, have):
    """The table row of one (width, batch) cell: speeds only when the CUDA fit agrees with the CPU fit."""
    samples = batch * steps
    cpu = nbtrain_run("cpu", width, batch, steps)
    cpu_rate = samples / epoch_seconds(cpu)
    if have["cuda"]:
        gpu = nbtrain_run("cuda", width, batch, steps)
        problem = disagreement(cpu, gpu, CELL_RTOL)
        if problem:
            return f"| {width} | {batch} | refused: CUDA and CPU disagree ({problem}) | - | - | - |"
        gpu_rate = samples / epoch_seconds(gpu)
        gpu_cell = f"{gpu_rate:,.0f} ({transfer_seconds(samples) * 1e3:.2f} ms)"
        ratio = f"{gpu_rate / cpu_rate:.1f}x"
    else:
        gpu_cell, ratio = "not measured (no CUDA GPU)", "-"
    torch_cell = (f"{samples / torch_cuda_epoch_seconds(width, batch, steps):,.0f}" if have["torch-cuda"]
                  else "not measured")
    return f"| {width} | {batch} | {cpu_rate:,.0f} | {gpu_cell} | {torch_cell} | {ratio} |"


def course_run(data, spec, loss, batch, epochs, device):
    """A course workload's fit on `device` (kernels already compiled) as a Run with its wall time."""
    (X, y), (Xv, yv) = data
    X, y, Xv, yv = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, y, Xv, yv))
    model = course.nbtrain_model(spec, X.shape[1], 0)
    model.compile(optimizer="adam", loss=loss, device=device)
    start = time.perf_counter()
    history = model.fit(X, y, validation_data=(Xv, yv), batch_size=batch, epochs=epochs, verbose=0, seed=0)
    return Run([time.perf_counter() - start], history.history["loss"], model.get_weights())


def end_to_end_row(name, data, spec, loss, batch, epochs, have):
    """The row of one course workload: the CUDA time only when its fit agrees with the CPU's."""
    runs = {}
    for device in ("cpu", "cuda"):
        if have[device]:
            course_run(data, spec, loss, batch, 2, device)  # compile the kernels
            runs[device] = course_run(data, spec, loss, batch, epochs, device)
    if "cuda" not in runs:
        return f"| {name} | {runs['cpu'].times[0]:.3f} s | not measured (no CUDA GPU) |"
    problem = disagreement(runs["cpu"], runs["cuda"], END_TO_END_RTOL)
    if problem:
        return f"| {name} | refused: CUDA and CPU disagree ({problem}) | - |"
    return f"| {name} | {runs['cpu'].times[0]:.3f} s | {runs['cuda'].times[0]:.3f} s |"


def available():
    from nbtrain.engine import resolve
    targets = {"cpu": True, "cuda": resolve("auto") == "cuda"}
    try:
        import torch
        targets["torch-cuda"] = torch.cuda.is_available()
    except ImportError:
        targets["torch-cuda"] = False
    return targets


def main():
    options = parser(__doc__, "append the tables to this markdown file")
    options.add_argument("--batches", default="32,128,512,2048,8192")
    options.add_argument("--widths", default="64,512,1024,4096")
    options.add_argument("--steps", type=int, default=4, help="batches per epoch")
    args = options.parse_args()
    have = available()
    rows = ["| width | batch | nbtrain CPU samples/s | nbtrain CUDA samples/s (transfer once) | PyTorch CUDA samples/s "
            "| CUDA / CPU |", "| --- | --- | --- | --- | --- | --- |"]
    for width in map(int, args.widths.split(",")):
        for batch in map(int, args.batches.split(",")):
            rows.append(cell_row(width, batch, args.steps, have))
            print(rows[-1], flush=True)

    ion, wine = workloads.ionosphere(args.data), workloads.red_wine(args.data)
    end_to_end = ["| course workload, end to end | nbtrain CPU | nbtrain CUDA |", "| --- | --- | --- |"]
    for name, data, spec, loss, batch, epochs in (
            ("ionosphere 4-4-1, batch 512, 1000 epochs", ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 1000),
            ("red wine 3x512, batch 256, 20 epochs", wine, workloads.WINE_3X512, "mae", 256, 20)):
        end_to_end.append(end_to_end_row(name, data, spec, loss, batch, epochs, have))
    report = f"Machine: {machine()}\n\n" + "\n".join(rows) + "\n\n" + "\n".join(end_to_end) + "\n"
    print(report)
    if args.write:
        command = " ".join(["python bench/cpu_vs_gpu.py"] + sys.argv[1:])
        with open(args.write, "a") as handle:
            handle.write(f"\n## nbtrain CPU vs CUDA\n\nCommand: `{command}`\n\n{report}")


if __name__ == "__main__":
    main()
