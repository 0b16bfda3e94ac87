"""The search space of `nbtrain sweep`: the TOML format, the default spaces, seeded sampling, and a clear error for
every wrong key, value or range, raised before any trial starts."""
import importlib.util

import pytest

from nbtrain import InputError
from nbtrain.sweeps.space import KEYS, default_space, load_space, parse_space

FULL = """
layers = [1, 2, 3]
units = { log_uniform = [16, 512] }
lr = { log_uniform = [1e-4, 1e-2] }
batch_size = { choices = [32, 64, 128] }
dropout = { uniform = [0.0, 0.5] }
batchnorm = [false, true]
optimizer = "adam"
loss = ["mae", "huber"]
"""


def write(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_a_full_space_file(tmp_path):
    space = load_space(write(tmp_path, FULL), "regression")
    assert space.varied == ["layers", "units", "lr", "batch_size", "dropout", "batchnorm", "loss"]
    assert space.fixed() == {"optimizer": "adam"}
    for trial in space.sample(200, seed=1):
        assert trial["layers"] in (1, 2, 3) and trial["batch_size"] in (32, 64, 128)
        assert type(trial["units"]) is int and 16 <= trial["units"] <= 512
        assert 1e-4 <= trial["lr"] <= 1e-2 and 0.0 <= trial["dropout"] <= 0.5
        assert trial["batchnorm"] in (False, True) and trial["loss"] in ("mae", "huber")
    lrs = sorted(t["lr"] for t in space.sample(400, seed=2))
    assert lrs[len(lrs) // 2] == pytest.approx(1e-3, rel=0.3)  # log-uniform: the median is the geometric mean


def test_keys_left_out_keep_fits_defaults():
    trial = parse_space({"lr": [0.01, 0.001]}, "regression").sample(1, seed=0)[0]
    assert {k: v for k, v in trial.items() if k != "lr"} == {
        "layers": 3, "units": 512, "batch_size": 256, "dropout": 0.0, "batchnorm": False, "optimizer": "adam",
        "loss": "mae"}
    assert parse_space({}, "regression").sample(1, seed=0)[0]["lr"] is None  # the optimizer's own default


def test_sampling_is_seeded():
    space = default_space("regression")
    assert space.sample(10, seed=3) == space.sample(10, seed=3)
    assert space.sample(10, seed=3) != space.sample(10, seed=4)
    assert space.sample(10, seed=3)[:4] == space.sample(4, seed=3)


def test_default_spaces():
    regression, binary = default_space("regression"), default_space("binary")
    assert regression.varied == binary.varied == ["layers", "units", "lr", "batch_size", "dropout", "batchnorm"]
    assert regression.fixed() == {"optimizer": "adam", "loss": "mae"}  # one loss, so val_loss compares trials
    assert binary.fixed() == {"optimizer": "adam"}  # binary classification always uses binary_crossentropy
    assert "lr log-uniform 0.0001..0.01" in regression.describe() and "batchnorm false|true" in regression.describe()


@pytest.mark.parametrize("text, message", [
    ("learning_rate = [0.1]", "unknown key 'learning_rate'; the keys are layers, units, lr"),
    ("lr = { log_uniform = [0.01, 0.001] }", "'lr': log_uniform needs low < high, got [0.01, 0.001]"),
    ("lr = { uniform = [0.01, 0.01] }", "'lr': uniform needs low < high"),
    ("units = { log_uniform = [0, 64] }", "'units' must be between 1 and 65536, got 0"),
    ("lr = { log_uniform = [0.0, 0.1] }", "'lr' must be between 1e-12 and 10, got 0.0"),
    ("dropout = { uniform = [0.0, 1.0] }", "'dropout' must be between 0 and 0.9, got 1.0"),
    ("dropout = [0.1, -0.1]", "'dropout' must be between 0 and 0.9, got -0.1"),
    ("units = [16, 32.5]", "'units' must be int values, got 32.5"),
    ("batchnorm = [true, 1]", "'batchnorm' must be bool values, got 1"),
    ("optimizer = [\"adam\", \"rmsprop\"]", "'optimizer' must be one of 'adam', 'sgd', got 'rmsprop'"),
    ("loss = \"hinge\"", "'loss' must be one of 'mae', 'mse', 'huber', got 'hinge'"),
    ("layers = []", "'layers': choices needs a non-empty array"),
    ("lr = { log_uniform = [0.001] }", "'lr': log_uniform needs [low, high]"),
    ("lr = { log_uniform = [0.001, 0.1], uniform = [0.1, 0.2] }", "'lr' must be a value, an array of choices, or a "
                                                                  "table with one of choices, uniform, log_uniform"),
    ("lr = { normal = [0.001, 0.1] }", "table with one of choices, uniform, log_uniform"),
    ("optimizer = { uniform = [1, 2] }", "'optimizer': uniform needs a numeric key; use choices for str values"),
    ("lr = [0.001,", "is not valid TOML"),
])
def test_errors_name_the_file_the_key_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as error:
        load_space(path, "regression")
    assert message in str(error.value) and str(path) in str(error.value)


def test_loss_is_for_regression_only():
    with pytest.raises(InputError, match="'loss' applies to regression"):
        parse_space({"loss": ["mae", "mse"]}, "binary")


def test_missing_space_file(tmp_path):
    with pytest.raises(InputError, match="space file not found"):
        load_space(tmp_path / "nope.toml", "regression")


@pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna is not installed")
def test_the_space_as_optuna_distributions(tmp_path):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    dists = load_space(write(tmp_path, FULL), "regression").to_optuna()
    assert set(dists) == {"layers", "units", "lr", "batch_size", "dropout", "batchnorm", "loss"}
    assert dists["units"] == IntDistribution(16, 512, log=True)
    assert dists["lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["dropout"] == FloatDistribution(0.0, 0.5)
    assert dists["layers"] == CategoricalDistribution((1, 2, 3))


def test_every_key_has_a_default_of_its_type():
    for name, key in KEYS.items():
        assert key.default is None if name == "lr" else type(key.default) is key.kind
