"""Device selection: what "auto", "cpu" and "cuda" resolve to, and the one-line errors when CUDA is missing."""
import importlib.util
import os

import pytest

from nbtrain import Sequential, layers
from nbtrain import engine
from nbtrain.errors import DeviceError


@pytest.fixture
def no_simulator(monkeypatch):
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)


def test_cpu_is_always_cpu():
    assert engine.resolve("cpu") == "cpu"
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        engine.resolve("tpu")


def test_missing_gpu_extra(monkeypatch, no_simulator):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "numba_cuda" else real(name))
    with pytest.raises(DeviceError, match=r"pip install 'nbtrain\[gpu\]'"):
        engine.resolve("cuda")
    assert engine.resolve("auto") == "cpu"


def test_missing_driver(monkeypatch, no_simulator):
    pytest.importorskip("numba_cuda")
    monkeypatch.setattr(engine, "_driver_present", lambda: False)
    with pytest.raises(DeviceError, match="no NVIDIA driver") as info:
        Sequential([layers.Dense(1)]).compile(loss="mae", device="cuda")
    assert "\n" not in str(info.value)
    model = Sequential([layers.Dense(1)])
    model.compile(loss="mae")
    assert model.device == "cpu"


@pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"), reason="the simulator is a GPU")
def test_auto_does_not_import_numba_cuda_without_a_driver(monkeypatch):
    import subprocess
    import sys
    code = ("import sys, nbtrain.engine as e; e._driver_present = lambda: False; "
            "print(e.resolve('auto'), 'numba.cuda' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["cpu", "False"]
