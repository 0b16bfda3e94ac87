"""The CUDA engine against the CPU engine: kernel by kernel on tiny shapes, then whole fits with the same
seed. Runs in its own pytest call with NUMBA_ENABLE_CUDASIM=1 (the simulator, in CI) or on a real GPU."""
import os

import numpy as np
import pytest

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings("ignore:(invalid value|overflow):RuntimeWarning")]
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
pytest.importorskip("numba_cuda", reason="needs the gpu extra: pip install 'nbtrain[gpu]'")

from numba import cuda  # noqa: E402

if not cuda.is_available():
    pytest.skip("no CUDA GPU and not running under NUMBA_ENABLE_CUDASIM=1", allow_module_level=True)

from nbtrain import Sequential, layers, optimizers, regularizers  # noqa: E402
from nbtrain.engine import cpu  # noqa: E402
from nbtrain.engine import cuda as gpu  # noqa: E402
from nbtrain.engine.bundles import Optimizer  # noqa: E402
from nbtrain.engine.plan import (  # noqa: E402
    ACTIVATIONS, LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_HUBER,
    LOSS_MAE, LOSS_MSE, LOSS_SCE, LOSS_SCE_LOGITS, METRIC_AUC, METRIC_BINARY_ACCURACY, METRIC_CATEGORICAL_ACCURACY,
    METRIC_PRECISION, METRIC_RECALL, METRIC_SPARSE_CATEGORICAL_ACCURACY, slots,
)

RTOL = 2e-5


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def f32(rng, *shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def on_gpu(*arrays):
    return [cuda.to_device(a) for a in arrays]


@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True)])
def test_matmul_against_numpy(rng, trans_a, trans_b):
    a = f32(rng, 6, 5) if trans_a else f32(rng, 5, 6)
    b = f32(rng, 7, 6) if trans_b else f32(rng, 6, 7)
    bias = f32(rng, 7)
    d_a, d_b, d_c, d_bias = on_gpu(a, b, np.zeros((5, 7), np.float32), bias)
    gpu._gemm(d_a, d_b, d_c, trans_a, trans_b, d_bias)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b) + bias
    np.testing.assert_allclose(d_c.copy_to_host(), expected, rtol=RTOL, atol=1e-5)


def test_dense_backward_matches_cpu(rng):
    x, w, dy = f32(rng, 6, 5), f32(rng, 5, 3), f32(rng, 6, 3)
    host = [np.zeros((5, 3), np.float32), np.zeros(3, np.float32), np.zeros((6, 5), np.float32)]
    cpu.dense_backward(x, w, dy, *host)
    device = on_gpu(x, w, dy, *[np.zeros_like(h) for h in host])
    gpu.dense_backward(*device)
    for expected, got in zip(host, device[3:]):
        np.testing.assert_allclose(got.copy_to_host(), expected, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS.values()))
def test_activations_match_cpu(rng, act):
    x, dy = f32(rng, 4, 6, scale=3), f32(rng, 4, 6)
    y, dx = np.zeros_like(x), np.zeros_like(x)
    cpu.activation_forward(act, x, y)
    cpu.activation_backward(act, x, y, dy, dx)
    d_x, d_y, d_dy, d_dx = on_gpu(x, np.zeros_like(x), dy, np.zeros_like(x))
    gpu.activation_forward(act, d_x, d_y)
    gpu.activation_backward(act, d_x, d_y, d_dy, d_dx)
    np.testing.assert_allclose(d_y.copy_to_host(), y, rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(d_dx.copy_to_host(), dx, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("invert", [False, True])
def test_normalize_matches_cpu(rng, invert):
    x, dy, mean = f32(rng, 5, 3), f32(rng, 5, 3), f32(rng, 3)
    variance = np.array([4.0, 0.25, 0.0], np.float32)
    y, dx = np.zeros_like(x), np.zeros_like(x)
    cpu.normalize_forward(x, mean, variance, invert, y)
    cpu.normalize_backward(variance, invert, dy, dx)
    d_x, d_mean, d_var, d_y, d_dy, d_dx = on_gpu(x, mean, variance, np.zeros_like(x), dy, np.zeros_like(x))
    gpu.normalize_forward(d_x, d_mean, d_var, invert, d_y)
    gpu.normalize_backward(d_var, invert, d_dy, d_dx)
    np.testing.assert_allclose(d_y.copy_to_host(), y, rtol=RTOL)
    np.testing.assert_allclose(d_dx.copy_to_host(), dx, rtol=RTOL)


def test_dropout_masks_are_identical_to_cpu(rng):
    x, dy = f32(rng, 5, 8), f32(rng, 5, 8)
    mask, y, dx = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    cpu.dropout_forward(x, 0.4, 99, 3, 12, 2, True, mask, y)
    cpu.dropout_backward(mask, dy, dx)
    d_x, d_mask, d_y, d_dy, d_dx = on_gpu(x, *[np.zeros_like(x)] * 2, dy, np.zeros_like(x))
    gpu.dropout_forward(d_x, 0.4, 99, 3, 12, 2, True, d_mask, d_y)
    gpu.dropout_backward(d_mask, d_dy, d_dx)
    np.testing.assert_array_equal(d_mask.copy_to_host(), mask)
    np.testing.assert_array_equal(d_y.copy_to_host(), y)
    np.testing.assert_array_equal(d_dx.copy_to_host(), dx)
    gpu.dropout_forward(d_x, 0.4, 99, 3, 12, 2, False, d_mask, d_y)
    np.testing.assert_array_equal(d_y.copy_to_host(), x)


@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_matches_cpu(rng, train):
    n, m = 7, 5
    x, dy = f32(rng, n, m, scale=2) + 1, f32(rng, n, m)
    gamma, beta = f32(rng, m), f32(rng, m)
    moving = [f32(rng, m), np.abs(f32(rng, m)) + 0.5]
    host = [np.zeros(2 * m, np.float32), np.zeros((n, m), np.float32), np.zeros((n, m), np.float32)]
    host_moving = [a.copy() for a in moving]
    cpu.batchnorm_forward(x, gamma, beta, *host_moving, 0.9, 1e-3, train, *host, n, None)
    grads = [np.zeros(m, np.float32), np.zeros(m, np.float32), np.zeros((n, m), np.float32)]
    cpu.batchnorm_backward(dy, host[1], gamma, host[0], *grads, n, None)
    d_x, d_gamma, d_beta, d_mm, d_mv, d_stats, d_xhat, d_y, d_dy = on_gpu(
        x, gamma, beta, *moving, *[np.zeros_like(h) for h in host], dy)
    gpu.batchnorm_forward(d_x, d_gamma, d_beta, d_mm, d_mv, 0.9, 1e-3, train, d_stats, d_xhat, d_y, n, None)
    d_grads = on_gpu(*[np.zeros_like(g) for g in grads])
    gpu.batchnorm_backward(d_dy, d_xhat, d_gamma, d_stats, *d_grads, n, None)
    for expected, got in zip(host_moving + host + grads, [d_mm, d_mv, d_stats, d_xhat, d_y] + d_grads):
        np.testing.assert_allclose(got.copy_to_host(), expected, rtol=1e-4, atol=1e-5)


ROW_TARGETS = {LOSS_CCE: "one-hot", LOSS_CCE_LOGITS: "one-hot", METRIC_CATEGORICAL_ACCURACY: "one-hot",
               LOSS_SCE: "index", LOSS_SCE_LOGITS: "index", METRIC_SPARSE_CATEGORICAL_ACCURACY: "index"}
METRICS_ONLY = (METRIC_BINARY_ACCURACY, METRIC_CATEGORICAL_ACCURACY, METRIC_SPARSE_CATEGORICAL_ACCURACY)


@pytest.mark.parametrize("code", [LOSS_MAE, LOSS_MSE, LOSS_HUBER, LOSS_BCE, LOSS_BCE_LOGITS, METRIC_BINARY_ACCURACY,
                                  *ROW_TARGETS])
def test_losses_and_metrics_match_cpu(rng, code):
    """Weighted sums and weighted gradients; per-element codes on (9, 2), per-row codes on (9, 3) outputs with
    one-hot or class-index targets."""
    k = 3 if code in ROW_TARGETS else 2
    p = rng.uniform(0.05, 0.95, size=(9, k)).astype(np.float32)
    labels = rng.integers(0, k, size=9)
    y = {"one-hot": np.eye(k, dtype=np.float32)[labels], "index": labels[:, None].astype(np.float32),
         None: rng.integers(0, 2, size=(9, k)).astype(np.float32)}[ROW_TARGETS.get(code)]
    w = rng.uniform(0.0, 2.0, size=9).astype(np.float32)
    total = cuda.to_device(np.zeros(3))
    d_p, d_y, d_w, d_dp = on_gpu(p, y, w, np.zeros_like(p))
    gpu.metric_sum(code, 0.2, d_p, d_y, d_w, total, 1)
    expected = np.zeros(3)
    cpu.metric_sum(code, 0.2, p, y, w, expected, 1)
    np.testing.assert_allclose(total.copy_to_host()[1], expected[1], rtol=1e-5)
    if code not in METRICS_ONLY:
        dp = np.zeros_like(p)
        cpu.loss_backward(code, 0.2, p, y, w, np.float32(0.25), dp)
        gpu.loss_backward(code, 0.2, d_p, d_y, d_w, 0.25, d_dp)
        np.testing.assert_allclose(d_dp.copy_to_host(), dp, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("code, param", [(METRIC_PRECISION, 0.5), (METRIC_RECALL, 0.3), (METRIC_AUC, 20)])
def test_counting_metrics_match_cpu(rng, code, param):
    p = rng.uniform(-0.1, 1.1, size=(9, 2)).astype(np.float32)  # a few outside [0, 1]: the outer buckets
    y = rng.integers(0, 2, size=(9, 2)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, size=9).astype(np.float32)
    width = 1 + slots(code, param)
    expected, total = np.zeros(width), cuda.to_device(np.zeros(width))
    cpu.metric_sum(code, param, p, y, w, expected, 1)
    gpu.metric_sum(code, param, *on_gpu(p, y, w), total, 1)
    np.testing.assert_allclose(total.copy_to_host(), expected, rtol=1e-6)
    assert expected[1:].sum() > 0 and expected[0] == 0


def test_regularize_matches_cpu(rng):
    w, g = f32(rng, 37), f32(rng, 37)
    w[3] = 0.0
    total, host_g = np.zeros(2), g.copy()
    cpu.regularize(w, 0.01, 0.02, 5, 0.5, host_g, total, 1)
    d_total, (d_w, d_g) = cuda.to_device(np.zeros(2)), on_gpu(w, g)
    gpu.regularize(d_w, 0.01, 0.02, 5, 0.5, d_g, d_total, 1)
    np.testing.assert_allclose(d_total.copy_to_host(), total, rtol=1e-6)
    np.testing.assert_allclose(d_g.copy_to_host(), host_g, rtol=RTOL, atol=1e-7)
    assert total[1] == pytest.approx(5 * (0.01 * np.abs(w).sum() + 0.02 * (w.astype(float) ** 2).sum()), rel=1e-6)


@pytest.mark.parametrize("opt", [
    optimizers.Adam(learning_rate=0.01), optimizers.SGD(momentum=0.9, nesterov=True),
    optimizers.AdamW(learning_rate=optimizers.schedules.CosineDecay(0.01, 10, warmup_target=0.02, warmup_steps=2)),
    optimizers.RMSprop(momentum=0.5, weight_decay=0.01), optimizers.RMSprop(centered=True),
    optimizers.SGD(learning_rate=optimizers.schedules.PiecewiseConstantDecay([1, 5], [0.1, 0.05, 0.01])),
], ids=["adam", "sgd-nesterov", "adamw-cosine", "rmsprop-momentum-decay", "rmsprop-centered", "sgd-piecewise"])
def test_optimizer_steps_match_cpu(rng, opt):
    theta, grad = f32(rng, 40), f32(rng, 40)
    slots = [np.abs(f32(rng, 40)) * 0.1, f32(rng, 40) * 0.01]
    hp = opt.hyperparameters()
    host = [theta.copy(), slots[0].copy(), slots[1].copy()]
    kinds = (opt.code, int(opt.schedule()[0]))
    cpu.optimizer_update(*kinds, Optimizer(opt.code, hp, host[1], host[2], opt.schedule()), 3, host[0], grad)
    d_theta, d_grad, d_s1, d_s2 = on_gpu(theta, grad, *slots)
    halted = cuda.to_device(np.zeros(1, np.int64))
    device_opt = Optimizer(opt.code, hp, d_s1, d_s2, opt.schedule())
    gpu.optimizer_update(*kinds, device_opt, 3, d_theta, d_grad, halted)
    for expected, got in zip(host, (d_theta, d_s1, d_s2)):
        np.testing.assert_allclose(got.copy_to_host(), expected, rtol=RTOL, atol=1e-7)
    gpu.optimizer_update(*kinds, device_opt, 3, d_theta, d_grad, cuda.to_device(np.ones(1, np.int64)))
    np.testing.assert_array_equal(d_theta.copy_to_host(), host[0])  # halted: no update


def parity_data(classes=2):
    """20 rows of 5 features; a 0/1 target, or for more classes the class index of a sum of two features."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5)).astype(np.float32)
    if classes == 2:
        return X, (X[:, 0] + X[:, 1] > 0).astype(np.float32)
    return X, np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5]).astype(np.float32)


MODELS = {
    "dropout-batchnorm-bce-adam": (
        lambda: [layers.Dense(6, activation="relu", input_shape=[5]), layers.Dropout(0.3),
                 layers.BatchNormalization(), layers.Dense(1, activation="sigmoid")],
        "binary_crossentropy", lambda: "adam", ["binary_accuracy", "mae", "auc", "precision"]),
    "relu-mae-sgd": (
        lambda: [layers.Dense(4, activation="relu", input_shape=[5]), layers.Dense(3, use_bias=False),
                 layers.Activation("sigmoid"), layers.Dense(1)],
        "mae", lambda: optimizers.SGD(learning_rate=0.1, momentum=0.5), ["mse"]),
    "input-batchnorm-huber-mse": (
        lambda: [layers.BatchNormalization(input_shape=[5]), layers.Dense(4, activation="relu"), layers.Dense(1)],
        "huber", lambda: optimizers.Adam(learning_rate=0.01), ["mse", "binary_crossentropy"]),
    "softmax-sparse-cce-adam": (
        lambda: [layers.Dense(6, activation="gelu", input_shape=[5], kernel_regularizer=regularizers.l2(0.01)),
                 layers.Dropout(0.2), layers.Dense(3, activation="softmax")],
        "sparse_categorical_crossentropy", lambda: "adam", ["accuracy", "sparse_categorical_crossentropy"]),
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_fit_parity_with_cpu(case):
    """Same seed, data and initial weights: the same history and weights on both targets."""
    make_layers, loss, make_optimizer, metrics = MODELS[case]
    X, y = parity_data(3 if "softmax" in case else 2)
    weights = np.linspace(0.5, 1.5, len(X)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        model = Sequential(make_layers())
        model.build(seed=1)
        model.compile(optimizer=make_optimizer(), loss=loss, metrics=metrics, device=device)
        assert model.device == device
        history = model.fit(X, y, sample_weight=weights, validation_split=0.25, batch_size=6, epochs=2, verbose=0,
                            seed=3)
        results[device] = (history.history, model.get_weights(), model.predict(X[:4]),
                           model.evaluate(X, y, sample_weight=weights, verbose=0))
    (h_cpu, w_cpu, p_cpu, e_cpu), (h_gpu, w_gpu, p_gpu, e_gpu) = results["cpu"], results["cuda"]
    assert h_cpu.keys() == h_gpu.keys()
    for key in h_cpu:
        np.testing.assert_allclose(h_gpu[key], h_cpu[key], rtol=1e-4, err_msg=key)
    for a, b in zip(w_gpu, w_cpu):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e_gpu, e_cpu, rtol=1e-4)


def test_non_finite_loss_halts_on_the_device_too():
    X, y = parity_data()
    steps = {}
    for device in ("cpu", "cuda"):
        model = Sequential([layers.Dense(3, activation="relu", input_shape=[5]), layers.Dense(1)])
        model.build(seed=0)
        model.compile(optimizer=optimizers.SGD(learning_rate=1e6), loss="mse", device=device)
        with pytest.warns(RuntimeWarning, match="non-finite"):
            history = model.fit(X, y * 1e10, batch_size=4, epochs=5, verbose=0, seed=0)
        assert all(np.isfinite(w).all() for w in model.get_weights())
        steps[device] = (len(history.epoch), model.optimizer.iterations, model.get_weights())
    assert steps["cpu"][:2] == steps["cuda"][:2]
    for a, b in zip(steps["cpu"][2], steps["cuda"][2]):
        np.testing.assert_allclose(a, b, rtol=1e-4)


def test_auto_picks_cuda_and_callbacks_see_device_weights():
    from nbtrain import callbacks
    X, y = parity_data()
    model = Sequential([layers.Dense(3, activation="relu", input_shape=[5]), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05), loss="mae")
    assert model.device == "cuda"
    seen = []
    record = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(model.get_weights()[0].copy()))
    model.fit(X, y, batch_size=10, epochs=2, verbose=0, seed=0, callbacks=[record])
    assert not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[1], model.get_weights()[0])


# ---------------------------------------------------------------- the contract: one interface, two targets
# Where the two targets' public functions may differ, and why. Everything else must match name for name and
# signature for signature, so the API drives either through the same calls.
ONLY_ON = {
    "upload": "cuda",  # a host array's device copy (Device.put); the CPU works on the host arrays themselves
}
SIGNATURES_DIFFER = {
    # CUDA cannot read a batch's loss without a device-to-host copy per step, so a non-finite loss sets a
    # device flag that the optimizer kernels read and skip on; the CPU checks the loss and returns instead
    "optimizer_update": {"cuda": "(code, schedule, opt, t, theta, grad, halted)",
                         "cpu": "(code, schedule, opt, t, theta, grad)"},
}


def public_functions(module):
    """name -> signature of the functions a target module defines (or binds from walkers) without a leading _."""
    import inspect
    from nbtrain.engine import walkers
    found = {}
    for name, value in vars(module).items():
        function = getattr(value, "py_func", value)
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        if function.__module__ == module.__name__ or name in walkers.WALKERS or name in walkers.TARGET:
            found[name] = str(inspect.signature(function))
    return found


def test_cpu_and_cuda_have_the_same_functions_and_signatures_apart_from_the_listed_differences():
    targets = {"cpu": public_functions(cpu), "cuda": public_functions(gpu)}
    for name in targets["cpu"].keys() | targets["cuda"].keys():
        present = [t for t in targets if name in targets[t]]
        if name in ONLY_ON:
            assert present == [ONLY_ON[name]], f"{name} is listed as {ONLY_ON[name]} only but is on {present}"
            continue
        assert present == ["cpu", "cuda"], f"{name} is defined on {present} only and not listed in ONLY_ON"
        signatures = {t: targets[t][name] for t in targets}
        expected = SIGNATURES_DIFFER.get(name)
        if expected is None:
            assert signatures["cpu"] == signatures["cuda"], f"{name}: cpu{signatures['cpu']} vs cuda{signatures['cuda']}"
        else:
            assert signatures == expected, f"{name} differs otherwise than listed: {signatures}"


def test_both_targets_run_the_same_walker_code():
    """A configuration's walkers on each target are copies of walkers.py's code, named after the configuration."""
    from nbtrain.engine import walkers
    from nbtrain.engine.config import configure
    model = Sequential([layers.Dense(3, activation="relu", input_shape=[5]), layers.Dense(1)])
    model.build(seed=0)
    config = configure(model.plan, LOSS_MSE)
    for name in walkers.WALKERS:
        source = getattr(walkers, name).__code__
        on_cpu, on_gpu = getattr(cpu.kernels(config), name), getattr(gpu.kernels(config), name)
        assert on_cpu.py_func.__code__ is source, f"cpu.{name} is not walkers.{name}"
        assert on_gpu.__code__ is source, f"cuda.{name} is not walkers.{name}"
        assert on_cpu.py_func.__qualname__ == on_gpu.__qualname__ == f"{name}__{config.key}"
