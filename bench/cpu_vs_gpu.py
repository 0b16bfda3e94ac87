"""Samples per second: nbtrain CPU vs nbtrain CUDA (and PyTorch CUDA where installed), in one run.

    python bench/cpu_vs_gpu.py [--batches 32,512,2048,8192] [--widths 64,512,4096] [--write FILE]

Model: the course's red-wine shape (11 inputs, three ReLU layers of `width` units, 1 output, MAE, Adam).
For each (width, batch) cell a fit runs 3 epochs of `steps` batches on synthetic data; the epoch time is the
median of epochs 2 and 3 (the data and weights are resident, so it is kernel time plus launch overhead);
the transfer time is that of copying the data set to the device once (what a fit pays up front).
Targets not present on this machine are reported as "not measured" (never estimated).
Then the course workloads end to end on each target (ionosphere 1000 epochs, red wine 20 epochs).
"""
import statistics
import sys
import time

import numpy as np

from bench import course, workloads
from bench.common import EpochTimer, machine, parser
from nbtrain import Sequential, layers


def synthetic(rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((rows, 11), dtype=np.float32)
    return X, (X @ rng.random(11, dtype=np.float32)).astype(np.float32)


def nbtrain_epoch_seconds(device, width, batch, steps):
    X, y = synthetic(batch * steps)
    model = Sequential([layers.Dense(width, activation="relu"), layers.Dense(width, activation="relu"),
                        layers.Dense(width, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mae", device=device)
    timer = EpochTimer()
    model.fit(X, y, batch_size=batch, epochs=3, verbose=0, seed=0, callbacks=[timer])
    return statistics.median(timer.times[1:])


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
            samples = batch * args.steps
            cpu_rate = samples / nbtrain_epoch_seconds("cpu", width, batch, args.steps)
            if have["cuda"]:
                gpu_rate = samples / nbtrain_epoch_seconds("cuda", width, batch, args.steps)
                gpu = f"{gpu_rate:,.0f} ({transfer_seconds(samples) * 1e3:.2f} ms)"
                ratio = f"{gpu_rate / cpu_rate:.1f}x"
            else:
                gpu, ratio = "not measured (no CUDA GPU)", "-"
            torch_cell = (f"{samples / torch_cuda_epoch_seconds(width, batch, args.steps):,.0f}" if have["torch-cuda"]
                          else "not measured")
            rows.append(f"| {width} | {batch} | {cpu_rate:,.0f} | {gpu} | {torch_cell} | {ratio} |")
            print(rows[-1], flush=True)

    ion, wine = workloads.ionosphere(args.data), workloads.red_wine(args.data)
    end_to_end = ["| course workload, end to end | nbtrain CPU | nbtrain CUDA |", "| --- | --- | --- |"]
    for name, data, spec, loss, batch, epochs in (
            ("ionosphere 4-4-1, batch 512, 1000 epochs", ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 1000),
            ("red wine 3x512, batch 256, 20 epochs", wine, workloads.WINE_3X512, "mae", 256, 20)):
        cells = []
        for device in ("cpu", "cuda"):
            if have[device]:
                course.nbtrain_fit(data, spec, loss, batch, 2, device=device)  # compile the kernels
                cells.append(f"{course.nbtrain_fit(data, spec, loss, batch, epochs, device=device):.3f} s")
            else:
                cells.append("not measured (no CUDA GPU)")
        end_to_end.append(f"| {name} | {' | '.join(cells)} |")
    report = f"Machine: {machine()}\n\n" + "\n".join(rows) + "\n\n" + "\n".join(end_to_end) + "\n"
    print(report)
    if args.write:
        command = " ".join(["python bench/cpu_vs_gpu.py"] + sys.argv[1:])
        with open(args.write, "a") as handle:
            handle.write(f"\n## nbtrain CPU vs CUDA\n\nCommand: `{command}`\n\n{report}")


if __name__ == "__main__":
    main()
