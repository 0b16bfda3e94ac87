"""bench/cpu_vs_gpu.py prints a CUDA speed only for a fit that computes what the CPU fit computes. Runs in its own
pytest call with NUMBA_ENABLE_CUDASIM=1 (the simulator: tiny shapes) or on a real GPU."""
import re

import numpy as np
import pytest

from bench import cpu_vs_gpu, workloads

pytestmark = pytest.mark.cuda
pytest.importorskip("numba_cuda", reason="needs the gpu extra: pip install 'nbtrain[gpu]'")

from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("no CUDA GPU and not running under NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

HAVE = {"cpu": True, "cuda": True, "torch-cuda": False}
SPEED = re.compile(r"\| [\d,]+ \| [\d,]+ \([\d.]+ ms\) \|")  # a CPU and a CUDA samples/s cell


def cells(row):
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def perturb(monkeypatch, name, change):
    """Make the benchmark's CUDA fits (`name`: nbtrain_run or course_run) return a changed result."""
    real = getattr(cpu_vs_gpu, name)

    def changed(*args):
        run = real(*args)
        if "cuda" in args:
            change(run)
        return run
    monkeypatch.setattr(cpu_vs_gpu, name, changed)


def test_a_cell_whose_fits_agree_shows_its_speeds():
    row = cpu_vs_gpu.cell_row(4, 8, 2, HAVE)
    assert "refused" not in row and SPEED.search(row), row
    width, batch, cpu_rate, gpu_cell, _, ratio = cells(row)
    assert (width, batch) == ("4", "8") and float(cpu_rate.replace(",", "")) > 0 and ratio.endswith("x")


@pytest.mark.parametrize("change, reason", [
    (lambda run: run.weights.__setitem__(0, run.weights[0] * np.float32(1.01)),
     "weight array 0 differs by 0.01 (relative L2) from the CPU's"),
    (lambda run: run.weights.__setitem__(2, run.weights[2] + np.float32(np.nan)), "weight array 2 differs by nan"),
    (lambda run: run.losses.__setitem__(1, run.losses[1] * 1.01), "epoch 2 loss"),
])
def test_a_perturbed_cuda_result_is_refused_with_no_speed(monkeypatch, change, reason):
    perturb(monkeypatch, "nbtrain_run", change)
    row = cpu_vs_gpu.cell_row(4, 8, 2, HAVE)
    assert f"refused: CUDA and CPU disagree ({reason}" in row
    assert not SPEED.search(row) and " s |" not in row and "x |" not in row


def tiny_course_data():
    rng = np.random.default_rng(0)
    X, Xv = rng.random((24, 5), dtype=np.float32), rng.random((8, 5), dtype=np.float32)
    return (X, (X[:, 0] > 0.5).astype(np.float32)), (Xv, (Xv[:, 0] > 0.5).astype(np.float32))


def test_an_end_to_end_workload_shows_times_only_when_the_fits_agree(monkeypatch):
    args = ("tiny 4-4-1", tiny_course_data(), workloads.ION_4_4_1, "binary_crossentropy", 8, 2, HAVE)
    name, cpu_time, gpu_time = cells(cpu_vs_gpu.end_to_end_row(*args))
    assert name == "tiny 4-4-1" and cpu_time.endswith(" s") and gpu_time.endswith(" s")
    perturb(monkeypatch, "course_run", lambda run: run.weights.__setitem__(0, run.weights[0] + np.float32(0.1)))
    row = cpu_vs_gpu.end_to_end_row(*args)
    assert "refused: CUDA and CPU disagree (weight array 0 differs by" in row and " s |" not in row


def test_float32_rounding_is_agreement():
    rng = np.random.default_rng(1)
    weights = [rng.normal(size=(64, 64)).astype(np.float32), rng.normal(size=64).astype(np.float32)]
    cpu = cpu_vs_gpu.Run([1.0], [0.5, 0.25], weights)
    rounded = [np.nextafter(w, np.float32(np.inf)) for w in weights]  # one unit in the last place everywhere
    assert cpu_vs_gpu.disagreement(cpu, cpu_vs_gpu.Run([1.0], [0.5 * (1 + 1e-6), 0.25], rounded), 1e-3) is None
    assert "epochs" in cpu_vs_gpu.disagreement(cpu, cpu_vs_gpu.Run([1.0], [0.5], weights), 1e-3)
