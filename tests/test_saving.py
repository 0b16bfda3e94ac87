"""Model files: round trips, continued training, and clear errors for files that cannot be read."""
import json
import os
import stat
import zipfile

import numpy as np
import pytest

from modelfiles import npz_bytes, rewrite
from nbtrain import ModelFileError, Sequential, layers, load_model, optimizers
from nbtrain.model import SeedWarning


@pytest.fixture
def trained(regression_data):
    X, y = regression_data
    model = Sequential([layers.Dense(8, activation="relu", input_shape=[5]), layers.Dropout(0.2),
                        layers.BatchNormalization(momentum=0.9), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="huber", metrics=["mae"])
    model.fit(X, y, validation_split=0.2, epochs=3, verbose=0, seed=0)
    return model


def test_round_trip_gives_identical_predictions(trained, regression_data, tmp_path):
    X, _ = regression_data
    path = tmp_path / "model.nbt"
    trained.save(path, metadata={"task": "regression", "columns": ["a", "b"]})
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), trained.predict(X))
    assert loaded.history.history == trained.history.history
    assert loaded.metadata == {"task": "regression", "columns": ["a", "b"]}
    assert loaded.get_config() == trained.get_config()
    assert loaded.compile_config() == trained.compile_config()
    assert loaded.layers[2].momentum == 0.9 and loaded.optimizer.learning_rate == 0.01
    assert [f for f in tmp_path.iterdir()] == [path]  # no temporary file left behind


def test_training_continues_exactly_after_loading(trained, regression_data, tmp_path):
    X, y = regression_data
    trained.save(tmp_path / "m.nbt")
    loaded = load_model(tmp_path / "m.nbt")
    assert loaded.optimizer.iterations == trained.optimizer.iterations > 0
    for model in (trained, loaded):  # the seed seeds the shuffles; the weights were trained or loaded, and stay
        with pytest.warns(SeedWarning, match="trained or set"):
            model.fit(X, y, epochs=2, verbose=0, seed=5)
    for a, b in zip(trained.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_and_uncompiled_models(tmp_path, regression_data):
    with pytest.raises(ValueError, match="build or fit"):
        Sequential([layers.Dense(1)]).save(tmp_path / "x.nbt")
    model = Sequential([layers.Dense(2, input_shape=[5])])
    model.build(seed=0)
    model.save(tmp_path / "plain.nbt")
    loaded = load_model(tmp_path / "plain.nbt")
    assert loaded.loss is None and loaded.metadata is None
    np.testing.assert_array_equal(loaded.predict(regression_data[0]), model.predict(regression_data[0]))


def test_unreadable_files_raise_one_line_errors(trained, tmp_path):
    good = tmp_path / "good.nbt"
    trained.save(good)
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    (tmp_path / "noise.nbt").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "truncated.nbt").write_bytes(good.read_bytes()[:300])
    cases = {
        tmp_path / "absent.nbt": "not found",
        tmp_path: "is a directory",
        tmp_path / "noise.nbt": "not a readable nbtrain model file",
        tmp_path / "truncated.nbt": "not a readable nbtrain model file",
        rewrite(good, tmp_path / "noconfig.nbt", config_json=None): "not a readable nbtrain model file",
        rewrite(good, tmp_path / "other.nbt", config_json=json.dumps({"format": "keras"})): "not an nbtrain model",
        rewrite(good, tmp_path / "newer.nbt", config_json=json.dumps({**config, "format_version": 99})):
            "newer nbtrain",
        rewrite(good, tmp_path / "newer-layout.nbt", config_json=json.dumps({**config, "format_version": 2}),
                weights_npz=None): "newer nbtrain",
        rewrite(good, tmp_path / "pickle.nbt", weights_npz=npz_bytes(weight_0000=np.array([{}], dtype=object))):
            "of type object, not numbers",
        rewrite(good, tmp_path / "shapes.nbt", weights_npz=npz_bytes(
            **{f"weight_{i:04d}": np.zeros(3, np.float32) for i in range(8)})): "inconsistent",
    }
    for path, message in cases.items():
        with pytest.raises(ModelFileError, match=message) as info:
            load_model(path)
        assert "\n" not in str(info.value)


def test_saved_files_get_ordinary_permissions(trained, tmp_path):
    umask = os.umask(0o022)
    try:
        trained.save(tmp_path / "model.nbt")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "model.nbt").stat().st_mode) == 0o644


def test_failed_save_leaves_the_old_file_intact(trained, tmp_path):
    path = tmp_path / "model.nbt"
    trained.save(path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        trained.save(path, metadata={"not json": {1, 2}})
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_a_failed_save_names_the_users_path_and_leaves_nothing(trained, tmp_path):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("not a folder")
    with pytest.raises(NotADirectoryError) as info:
        trained.save(in_the_way / "m.nbt")
    assert str(in_the_way / "m.nbt") in str(info.value) and ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == [in_the_way] and in_the_way.read_text() == "not a folder"


def test_leftovers_of_a_killed_save_are_removed_at_the_next_save(trained, tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    from nbtrain.files import origin, temporary_prefix
    leftover, running = tmp_path / f".nbtrain-{dead}-{origin()}-abc.tmp", tmp_path / f"{temporary_prefix()}def.tmp"
    leftover.write_bytes(b"half a model")
    running.write_bytes(b"a save in progress")
    trained.save(tmp_path / "m.nbt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.nbt", running.name])
