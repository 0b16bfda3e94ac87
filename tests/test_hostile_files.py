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


def test_a_zip_bomb_is_refused_in_little_memory(good, tmp_path):
    """history.json inflating to 1 GiB from a few MB: refused from its header, in a fresh process that stays small
    (memory, not time: a busy machine would make a timed assertion fail for no fault of the code)."""
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
    script = (f"import re\n"
              f"from nbtrain import load_model, ModelFileError\n"
              f"try:\n    load_model({str(bomb)!r})\nexcept ModelFileError as e:\n    print(e)\n"
              f"peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
              f"print(peak)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "over the limit" in out[0]
    assert float(out[1]) < 300 * 1024, out


def deflated_npy_npz(name, nbytes, compresslevel=1):
    """weights.npz bytes whose member `name` is a real deflated .npy of `nbytes` zeros (float32): a bomb nested
    inside the model file's stored weights.npz."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (nbytes // 4,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as npz:
        with npz.open(name + ".npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            block = bytes(64 << 20)
            for _ in range(nbytes // len(block)):
                member.write(block)
    return buffer.getvalue()


def peak_of_loading(path):
    """(first line printed, peak resident KiB) of load_model(path) in a fresh process; the peak is the kernel's
    high-water mark of that process's memory."""
    script = (f"import re\nfrom nbtrain import load_model, ModelFileError\n"
              f"try:\n    load_model({str(path)!r})\nexcept ModelFileError as e:\n    print(e)\n"
              f"print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.splitlines()
    return out[0], int(out[1])


def test_a_zip_bomb_nested_in_weights_npz_is_refused_from_its_headers(good, tmp_path):
    """A stored weights.npz (nothing to see at the outer level) holding a deflated 2 GiB .npy: the limits apply to
    the members of weights.npz too, so it is refused before anything is inflated."""
    bomb = rewrite(good, tmp_path / "nested.nbt", weights_npz=deflated_npy_npz("weight_0000", 2 << 30))
    assert bomb.stat().st_size < 16 << 20
    message, peak_kb = peak_of_loading(bomb)
    assert "weights.npz member weight_0000.npy would inflate to 2,147,483,7" in message
    assert peak_kb < 120 * 1024, peak_kb  # Python with nbtrain imported is about 36 MB


def test_a_nested_member_under_the_size_limit_is_refused_by_its_compression_ratio(good, tmp_path):
    bomb = rewrite(good, tmp_path / "ratio.nbt", weights_npz=deflated_npy_npz("weight_0000", 256 << 20))
    with pytest.raises(ModelFileError, match="weight_0000.npy is compressed .*x, over the limit"):
        load_model(bomb)


def test_shapes_are_checked_against_the_architecture_before_any_array_is_read(good, tmp_path, monkeypatch):
    arrays = weights_of(good)
    wrong = rewrite(good, tmp_path / "wrong.nbt", weights_npz=npz_bytes(**dict(arrays, weight_0000=np.zeros(
        (3, 5), np.float32))))
    slots = rewrite(good, tmp_path / "slots.nbt", weights_npz=npz_bytes(**dict(arrays, optimizer_slot1=np.zeros(
        7, np.float32))))
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))
    with pytest.raises(ModelFileError, match=r"needs weights of shapes \[\(3, 4\).* holds \[\(3, 5\)"):
        load_model(wrong)
    with pytest.raises(ModelFileError, match=r"optimizer_slot1 has shape \(7,\)"):
        load_model(slots)
    with pytest.raises(ModelFileError, match=r"needs weights of shapes"):
        Sequential([layers.Dense(2, input_shape=[3])]).load_weights(wrong)
    assert reads == []
    load_model(good)
    assert len(reads) == len(arrays)


def test_a_long_history_is_refused_from_its_header_in_little_memory(good, tmp_path):
    """The issue's case: a 64 MB history.json of numbers deflating 37x, under the ratio limit, over the 4 MiB cap."""
    history = json.dumps({"loss": [0.123456789012345] * (4 << 20)}).encode()
    assert len(history) > 64 << 20
    big = rewrite(good, tmp_path / "history.nbt", zipfile.ZIP_DEFLATED, history_json=history)
    message, peak_kb = peak_of_loading(big)
    assert "history.json would inflate to" in message and "over the limit of 4,194,304" in message
    assert peak_kb < 120 * 1024, peak_kb  # Python with nbtrain imported is about 36 MB


def test_json_members_are_bounded_in_depth_and_values_before_they_are_parsed(good, tmp_path):
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    deep = "[" * 100_000 + "]" * 100_000
    cases = {
        rewrite(good, tmp_path / "deep-config.nbt", config_json=json.dumps({**config, "x": "[[["})[:-1] + ", \"y\": "
                + deep + "}"): "config.json nests 100,001 levels deep",
        rewrite(good, tmp_path / "deep-history.nbt", history_json=deep): "history.json nests 100,000 levels",
        rewrite(good, tmp_path / "deep-metadata.nbt", metadata_json='{"a": ' + deep + "}"): "metadata.json nests",
        rewrite(good, tmp_path / "many.nbt", history_json=json.dumps({"loss": [0] * 600_000})):
            "history.json holds 600,000 values, over the limit of 500,000",
        rewrite(good, tmp_path / "big-metadata.nbt", metadata_json=json.dumps({"a": "x" * (5 << 20)})):
            "metadata.json would inflate to",
    }
    for path, message in cases.items():
        with pytest.raises(ModelFileError, match=message) as info:
            load_model(path)
        assert "\n" not in str(info.value)


def test_a_model_file_with_more_entries_than_nbtrain_writes_is_refused_before_its_directory_is_parsed(good, tmp_path):
    many = tmp_path / "many.nbt"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(many, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        for i in range(100):
            dst.writestr(f"extra{i}", b"")
    with pytest.raises(ModelFileError, match="lists 103 entries, over the limit of 16"):
        load_model(many)


def test_nbtrain_never_saves_a_model_file_it_would_refuse_to_read(good, tmp_path):
    model = load_model(good)
    model.history.history = {"loss": [0.123456789012345] * 300_000}
    with pytest.raises(ModelFileError, match="history.json would be .* bytes, over the limit"):
        model.save(tmp_path / "long.nbt")
    assert not (tmp_path / "long.nbt").exists()
