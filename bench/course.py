"""Time the Keras course's workloads with nbtrain and (when installed) PyTorch in one run; write RESULTS.md.

    python -m bench.course [--data ../shared/data] [--repeats 3] [--write bench/RESULTS.md]

Measures (all on this machine, in this run, so the ratios compare like with like):
  1. ionosphere 4-4-1, batch 512, exactly 1000 epochs with validation: wall time of the whole fit.
  2. red wine 3x512, batch 256: seconds per epoch (training + validation), the achieved GFLOP/s, and NumPy's
     float32 matmul GFLOP/s on the same matrix shapes (the ceiling for an sgemm-bound epoch).
  3. red wine's quality as 6 classes, 3x512 + softmax, sparse categorical cross-entropy, batch 256: seconds
     per epoch.
  4. time to the end of the first epoch in a fresh process with a warm compile cache, and where it goes.
"""
import subprocess
import sys
import time

import numpy as np

from bench import workloads
from bench.common import best_of, machine, parser, write_section


def nbtrain_model(spec, n_in, seed):
    from nbtrain import Sequential, layers
    model = Sequential([layers.Dense(units, activation=act) for units, act in spec])
    model.build((None, n_in), seed=seed)
    return model


def nbtrain_fit(data, spec, loss, batch_size, epochs, seed=0, device="cpu"):
    """Seconds for model.fit(...) of a fresh model (compile cache already warm)."""
    (X, y), (Xv, yv) = data
    X, y, Xv, yv = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, y, Xv, yv))
    model = nbtrain_model(spec, X.shape[1], seed)
    model.compile(optimizer="adam", loss=loss, device=device)
    start = time.perf_counter()
    model.fit(X, y, validation_data=(Xv, yv), batch_size=batch_size, epochs=epochs, verbose=0, seed=seed)
    return time.perf_counter() - start


def torch_network(spec, width, loss):
    """The stack as a PyTorch nn.Sequential (Glorot-uniform weights, zero biases, as Keras and nbtrain start) and its
    loss function, a sigmoid or softmax output folded into the loss as PyTorch users write it."""
    from torch import nn
    stack = []
    for units, act in spec:
        linear = nn.Linear(width, units)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        stack.append(linear)
        if act == "relu":
            stack.append(nn.ReLU())
        width = units
    return nn.Sequential(*stack), {"mae": nn.L1Loss(), "bce": nn.BCEWithLogitsLoss(), "cce": nn.CrossEntropyLoss()}[loss]


def torch_fit(data, spec, loss, batch_size, epochs, seed=0):
    """Seconds for the same fit written as a PyTorch user would (torch_epochs)."""
    return sum(torch_epochs(data, spec, loss, batch_size, epochs, seed)[0])


def torch_epochs(data, spec, loss, batch_size, epochs, seed=0, budget=None):
    """The fit as a PyTorch user writes it: DataLoader, train loop, no_grad validation. Returns each epoch's wall
    seconds and the last validation loss; with a budget (seconds) it ends early once two epochs took that long."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    (X, y), (Xv, yv) = data
    tensors = [torch.tensor(np.asarray(a, dtype=np.float32)) for a in (X, y, Xv, yv)]
    if loss == "cce":  # class indices for cross_entropy
        X, y, Xv, yv = tensors[0], tensors[1].long(), tensors[2], tensors[3].long()
    else:
        X, y, Xv, yv = tensors[0], tensors[1][:, None], tensors[2], tensors[3][:, None]
    model, loss_fn = torch_network(spec, X.shape[1], loss)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    times, val_loss = [], None
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            batch_loss = loss_fn(model(xb), yb)
            batch_loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(Xv), yv).item()
        times.append(time.perf_counter() - start)
        if budget is not None and len(times) >= 2 and sum(times) >= budget:
            break
    return times, val_loss


def compiled_epoch_seconds(data, spec, loss, batch_size, epochs, seed=0):
    """Seconds per epoch of the compiled epoch alone (the configuration's train_epoch called in a loop, no callbacks
    or logs): the difference to a whole fit's epoch is fit's per-epoch Python."""
    from nbtrain.engine import Device
    from nbtrain.engine.bundles import Loop
    (X, y), (Xv, yv) = data
    X, Xv = (np.ascontiguousarray(a, dtype=np.float32) for a in (X, Xv))
    y, yv = (np.ascontiguousarray(a, dtype=np.float32)[:, None] for a in (y, yv))
    model = nbtrain_model(spec, X.shape[1], seed)
    model.compile(optimizer="adam", loss=loss)
    model.fit(X, y, validation_data=(Xv, yv), batch_size=batch_size, epochs=1, verbose=0, seed=seed)
    opt, rows = model.optimizer, min(batch_size, len(X))
    logs, objective = np.zeros(2), model._objective(1)
    device = Device("cpu")
    with device.session(model.plan, model._configuration(objective), model.theta, model.state, max(rows, len(Xv)),
                        1, opt.engine_state()) as session:
        data = session.data(X, y, np.ones(len(X), np.float32), Xv, yv, np.ones(len(Xv), np.float32))
        loop = Loop(rows, True, seed, np.zeros(2, np.int64))
        start = time.perf_counter()
        for epoch in range(epochs):
            session.kernels.train_epoch(session.net, session.weights, session.opt, session.ws, objective, data, loop,
                                        epoch, logs, None)
    return (time.perf_counter() - start) / epochs


def matmul_flops(spec, n_in, rows, val_rows):
    """FLOPs of one epoch's matrix products: forward, dW and dX (not for the first layer) per batch, plus
    the validation forward pass. Element-wise work is not counted."""
    total, width = 0, n_in
    for index, (units, _) in enumerate(spec):
        per_row = 2 * width * units
        total += rows * per_row * (3 if index else 2) + val_rows * per_row
        width = units
    return total


def numpy_matmul_seconds(spec, n_in, rows, val_rows, batch_size, repeats):
    """Best time for NumPy to do exactly the epoch's products, shape for shape, in float32."""
    rng = np.random.default_rng(0)
    products, width = [], n_in
    for index, (units, _) in enumerate(spec):
        w = rng.normal(size=(width, units)).astype(np.float32)
        for n in [batch_size] * (rows // batch_size) + ([rows % batch_size] if rows % batch_size else []):
            x, dy = rng.normal(size=(n, width)).astype(np.float32), rng.normal(size=(n, units)).astype(np.float32)
            products += [(x, w), (x.T, dy)] + ([(dy, w.T)] if index else [])
        products.append((rng.normal(size=(val_rows, width)).astype(np.float32), w))
        width = units
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a, b in products:
            np.dot(a, b)
        best = min(best, time.perf_counter() - start)
    return best


FIRST_EPOCH = """
import time; t0 = time.perf_counter()
import numpy as np; import nbtrain; t1 = time.perf_counter()
from nbtrain.engine import cpu; t2 = time.perf_counter()
rng = np.random.default_rng(0); X = rng.random((246, 33), dtype=np.float32); y = (X[:, 0] > .5).astype(np.float32)
m = nbtrain.Sequential([nbtrain.layers.Dense(4, activation="relu"), nbtrain.layers.Dense(4, activation="relu"),
                        nbtrain.layers.Dense(1, activation="sigmoid")])
m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["binary_accuracy"])
m.fit(X, y, validation_split=0.3, batch_size=512, epochs=1, verbose=0); t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def first_epoch():
    """(process wall time to the end of epoch 1, import nbtrain, import numba + load kernels, first fit)."""
    subprocess.run([sys.executable, "-c", FIRST_EPOCH], check=True, capture_output=True)  # warm the cache
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", FIRST_EPOCH], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    return (wall, *map(float, out.split()))


def main():
    options = parser(__doc__, "write the results table to this markdown file")
    options.add_argument("--repeats", type=int, default=3)
    options.add_argument("--wine-epochs", type=int, default=20)
    args = options.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False

    ion, wine = workloads.ionosphere(args.data), workloads.red_wine(args.data)
    nbtrain_fit(ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 2)  # compile (or load) the kernels
    rows = []

    ion_nb = best_of(lambda: nbtrain_fit(ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 1000), args.repeats)
    ion_pt = (best_of(lambda: torch_fit(ion, workloads.ION_4_4_1, "bce", 512, 1000), args.repeats)
              if have_torch else None)
    rows.append(("ionosphere 4-4-1, batch 512, 1000 epochs + validation: whole fit",
                 f"{ion_nb:.3f} s ({ion_nb / 1000 * 1e6:.0f} us/epoch)",
                 f"{ion_pt:.3f} s" if ion_pt else "not installed",
                 f"**{ion_pt / ion_nb:.0f}x** faster" if ion_pt else "-"))
    ion_core = best_of(lambda: compiled_epoch_seconds(ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 1000),
                       args.repeats)
    rows.append(("ionosphere: where an epoch's time goes", f"{ion_core * 1e6:.0f} us compiled epoch",
                 f"{(ion_nb / 1000 - ion_core) * 1e6:.0f} us of fit's per-epoch Python (callbacks, logs)", "-"))

    epochs = args.wine_epochs
    wine_nb = best_of(lambda: nbtrain_fit(wine, workloads.WINE_3X512, "mae", 256, epochs), args.repeats) / epochs
    wine_pt = (best_of(lambda: torch_fit(wine, workloads.WINE_3X512, "mae", 256, epochs), args.repeats) / epochs
               if have_torch else None)
    rows.append(("red wine 3x512, batch 256: seconds per epoch (train + validation)", f"{wine_nb * 1e3:.1f} ms",
                 f"{wine_pt * 1e3:.1f} ms" if wine_pt else "not installed",
                 f"**{wine_pt / wine_nb:.2f}x**" if wine_pt else "-"))

    (X, _), (Xv, _) = wine
    flops = matmul_flops(workloads.WINE_3X512, X.shape[1], len(X), len(Xv))
    numpy_s = numpy_matmul_seconds(workloads.WINE_3X512, X.shape[1], len(X), len(Xv), 256, args.repeats)
    rows.append(("red wine 3x512: matmul GFLOP/s achieved per epoch vs NumPy float32 matmul on the same shapes",
                 f"{flops / wine_nb / 1e9:.1f} GFLOP/s", f"NumPy: {flops / numpy_s / 1e9:.1f} GFLOP/s",
                 f"**{numpy_s / wine_nb:.0%}** of NumPy"))
    rows.append(("red wine 3x512: where an epoch's time goes", f"{numpy_s * 1e3:.1f} ms matrix products (NumPy's time)",
                 f"{(wine_nb - numpy_s) * 1e3:.1f} ms the rest: bias, ReLU, MAE, column sums, Adam over 531,969 "
                 "parameters, batch gathers", "-"))

    classes = workloads.red_wine_classes(args.data)
    cce = "sparse_categorical_crossentropy"
    nbtrain_fit(classes, workloads.WINE_CLASSES_3X512, cce, 256, 1)  # compile (or load) the multiclass kernels
    cls_nb = best_of(lambda: nbtrain_fit(classes, workloads.WINE_CLASSES_3X512, cce, 256, epochs), args.repeats) / epochs
    cls_pt = (best_of(lambda: torch_fit(classes, workloads.WINE_CLASSES_3X512, "cce", 256, epochs), args.repeats)
              / epochs if have_torch else None)
    rows.append(("red wine quality as 6 classes, 3x512 + softmax, sparse categorical cross-entropy, batch 256: "
                 "seconds per epoch", f"{cls_nb * 1e3:.1f} ms", f"{cls_pt * 1e3:.1f} ms" if cls_pt else "not installed",
                 f"**{cls_pt / cls_nb:.2f}x**" if cls_pt else "-"))

    wall, t_import, t_kernels, t_fit = first_epoch()
    rows.append(("time to the end of the first epoch, fresh process, warm compile cache", f"{wall:.2f} s",
                 f"import nbtrain {t_import:.2f} s, load kernels {t_kernels:.2f} s, build + fit {t_fit:.2f} s",
                 "target < 1.5 s"))

    table = ["| workload | nbtrain | peer (PyTorch CPU) / breakdown | ratio |", "| --- | --- | --- | --- |"]
    table += [f"| {' | '.join(row)} |" for row in rows]
    report = "\n".join(table)
    print(f"Machine: {machine()}\n\n{report}")
    if args.write:
        write_section(args.write, "The course workloads: nbtrain vs PyTorch on the CPU",
                      f"Machine: {machine()}\n\nCommand: `python -m bench.course --repeats {args.repeats} --wine-epochs "
                      f"{epochs} --write {args.write}` (best of {args.repeats}; compile cache warm)\n\n{report}")

if __name__ == "__main__":
    main()
