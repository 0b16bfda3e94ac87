"""Every code of the engine's tables has its kernel and its checks (issue 24): the walkers dispatch each op kind,
activation, loss and metric by a configuration flag; unknown codes are errors when a model is planned, never a
silent default; every activation and loss has a float64 finite-difference gradient test; and a callback's change
of any optimizer hyperparameter reaches the compiled epoch."""
import inspect

import numpy as np
import pytest

from nbtrain import Sequential, callbacks, layers, optimizers
from nbtrain.engine import walkers
from nbtrain.engine.config import ACTIVATIONS, OBJECTIVES, OPS, configure
from nbtrain.engine.plan import ACT_LINEAR, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_SCE, LOSS_SCE_LOGITS

from test_gradients import ACTIVATION_REFERENCES, LOSS_REFERENCES

WALKER_SOURCE = inspect.getsource(walkers)


@pytest.mark.parametrize("name", sorted({**OPS, **ACTIVATIONS, **OBJECTIVES}))
def test_every_code_is_dispatched_by_the_walkers(name):
    assert f"USE_{name} and" in WALKER_SOURCE, f"walkers.py does not dispatch {name}"


def test_every_activation_and_loss_has_a_gradient_check():
    # linear adds no op; the fused logit losses and the categorical ones have their own parametrized checks
    # (test_gradients.test_categorical_losses, test_whole_network)
    missing_acts = set(ACTIVATIONS.values()) - set(ACTIVATION_REFERENCES) - {ACT_LINEAR}
    losses = {code for name, code in OBJECTIVES.items() if name.startswith("LOSS_")}
    categorical = {LOSS_CCE, LOSS_CCE_LOGITS, LOSS_SCE, LOSS_SCE_LOGITS}
    missing_losses = losses - set(LOSS_REFERENCES) - categorical
    assert not missing_acts and not missing_losses, (missing_acts, missing_losses)


def test_unknown_codes_are_refused_when_the_model_is_planned():
    model = Sequential([layers.Dense(2, input_shape=[3]), layers.Dense(1)])
    model.build(seed=0)
    with pytest.raises(ValueError, match="no kernel for code"):
        configure(model.plan, loss_code=99)
    table = model.plan.table.copy()
    table[0, 0] = 42
    with pytest.raises(ValueError, match="no kernel for code"):
        configure(type(model.plan)(**{**vars(model.plan), "table": table}), loss_code=0)
    with pytest.raises(ValueError, match="unknown activation"):
        layers.Dense(2, activation="swishy")


def run(change, epochs=2):
    """Weights after `epochs` epochs of SGD on fixed data, `change(optimizer)` applied by a callback before epoch 2."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=32).astype(np.float32)
    model = Sequential([layers.Dense(4, activation="relu", input_shape=[3]), layers.Dense(1)])
    model.build(seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    hook = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs=None: epoch == 1 and change(model.optimizer))
    model.fit(X, y, batch_size=8, epochs=epochs, verbose=0, seed=0, callbacks=[hook])
    return model.get_weights()


@pytest.mark.parametrize("name, value", [("momentum", 0.9), ("weight_decay", 0.5), ("learning_rate", 0.2)])
def test_a_callback_that_changes_any_optimizer_hyperparameter_changes_the_next_epoch(name, value):
    unchanged = run(lambda opt: None)
    changed = run(lambda opt: setattr(opt, name, value))
    assert any(not np.array_equal(a, b) for a, b in zip(unchanged, changed)), f"setting {name} had no effect"
