"""Model files built to hurt: each is refused with a one-line ModelFileError before it can exhaust memory or
reach a traceback, in the API and on the command line (exit 2, one line). The files are built here; nothing is
downloaded."""
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from typer.testing import CliRunner

from modelfiles import npz_bytes, rewrite
from nbtrain import ModelFileError, Sequential, layers, load_model
from nbtrain.cli import app


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "good.nbt"
    model = Sequential([layers.Dense(4, activation="relu", input_shape=[3]), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mae")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(20, 3)), rng.normal(size=20), epochs=2, verbose=0, seed=0)
    model.save(path)
    return path


def weights_of(path):
    with np.load(io.BytesIO(zipfile.ZipFile(path).read("weights.npz"))) as arrays:
        return {k: arrays[k] for k in arrays.files}


def lying_npz(name, shape):
    """An npz whose member's .npy header claims `shape` but holds 16 bytes of data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
        archive.writestr(name + ".npy", header.getvalue() + bytes(16))
    return buffer.getvalue()


def hostile(good, tmp_path):
    """{file: what its error says}."""
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    huge = json.loads(json.dumps(config))
    huge["model"]["layers"] = [{"class_name": "Dense", "config": {"name": f"d{i}", "units": 200000}} for i in range(3)]
    arrays = weights_of(good)
    nan = dict(arrays, weight_0000=np.full_like(arrays["weight_0000"], np.nan))
    big = dict(arrays, weight_0000=np.zeros((1 << 21,), np.float32))  # 8 MiB of zeros: about 1000x compression
    return {
        rewrite(good, tmp_path / "bomb.nbt", zipfile.ZIP_DEFLATED, history_json=b" " * (100 << 20)): "history.json",
        rewrite(good, tmp_path / "huge-layers.nbt", config_json=json.dumps(huge)): "needs weights of shapes",
        rewrite(good, tmp_path / "nan.nbt", weights_npz=npz_bytes(**nan)): "NaN or infinite",
        rewrite(good, tmp_path / "lying-header.nbt", weights_npz=lying_npz("weight_0000", (1 << 20, 1 << 20))):
            "larger than the bytes it holds",
        rewrite(good, tmp_path / "history-types.nbt", history_json=json.dumps({"loss": ["a", {}]})):
            "not a list of numbers",
        rewrite(good, tmp_path / "width.nbt", config_json=json.dumps({**config, "input_width": "3"})): "input width",
        rewrite(good, tmp_path / "layers-type.nbt", config_json=json.dumps({**config, "model": {"layers": 5}})):
            "not a list of layers",
        rewrite(good, tmp_path / "big-npz.nbt", zipfile.ZIP_DEFLATED, weights_npz=npz_bytes(**big)): "compressed",
    }


def test_hostile_model_files_are_one_line_errors(good, tmp_path):
    for path, message in hostile(good, tmp_path).items():
        with pytest.raises(ModelFileError, match=message) as info:
            load_model(path)
        assert "\n" not in str(info.value), path.name


def test_the_command_line_refuses_them_with_exit_2_and_one_line(good, tmp_path):
    runner = CliRunner()
    for path, message in hostile(good, tmp_path).items():
        result = runner.invoke(app, ["info", str(path)])
        assert result.exit_code == 2, (path.name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.output, (path.name, result.output)


def test_a_zip_bomb_is_refused_quickly_in_little_memory(good, tmp_path):
    """history.json inflating to 1 GiB from a few MB: refused from its header, in a fresh process that stays small."""
    bomb = tmp_path / "bomb.nbt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for name in src.namelist():
            if name != "history.json":
                dst.writestr(name, src.read(name))
        with dst.open("history.json", "w", force_zip64=True) as member:
            block = b" " * (64 << 20)
            for _ in range(16):
                member.write(block)
    assert bomb.stat().st_size < 8 << 20
    # peak RSS from the kernel's high-water mark of this process's memory (ru_maxrss would carry pytest's over exec)
    script = (f"import re, time; t = time.perf_counter()\n"
              f"from nbtrain import load_model, ModelFileError\n"
              f"try:\n    load_model({str(bomb)!r})\nexcept ModelFileError as e:\n    print(e)\n"
              f"peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
              f"print(time.perf_counter() - t, peak)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "over the limit" in out[0]
    seconds, rss_kb = map(float, out[1].split())
    assert seconds < 1.0 and rss_kb < 300 * 1024, out
