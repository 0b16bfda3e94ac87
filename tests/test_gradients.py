"""Every backward kernel against central finite differences of its forward, in float64."""
import numpy as np
import pytest

from nbtrain import Sequential, layers, regularizers
from nbtrain.engine import cpu
from nbtrain.engine.bundles import Objective, Pass, Weights
from nbtrain.engine.config import configure
from nbtrain.engine.plan import (
    ACT_ELU, ACT_GELU, ACT_LEAKY_RELU, ACT_LINEAR, ACT_MISH, ACT_RELU, ACT_SELU, ACT_SIGMOID, ACT_SILU, ACT_SOFTMAX,
    ACT_SOFTPLUS, ACT_TANH,
    LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CCE, LOSS_CCE_LOGITS, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SCE, LOSS_SCE_LOGITS,
    METRIC_CATEGORICAL_ACCURACY, METRIC_SPARSE_CATEGORICAL_ACCURACY, columns, net, workspace,
)

H = 1e-6
RTOL = 1e-6


def numeric_grad(f, x):
    """Central differences of scalar f() with respect to every element of x (perturbed in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        up = f()
        flat[i] = old - H
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * H)
    return g


def assert_close(analytic, numeric):
    scale = max(1.0, np.abs(numeric).max())
    np.testing.assert_allclose(analytic, numeric, rtol=0, atol=RTOL * scale * 100)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_dense(rng):
    x, w, b = rng.normal(size=(7, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    r = rng.normal(size=(7, 3))
    y = np.zeros((7, 3))

    def f():
        cpu.dense_forward(x, w, b, y)
        return np.sum(r * y)

    f()
    np.testing.assert_allclose(y, x @ w + b, rtol=1e-12)
    dw, db, dx = np.zeros_like(w), np.zeros_like(b), np.zeros_like(x)
    cpu.dense_backward(x, w, r, dw, db, dx)
    for analytic, wrt in ((dw, w), (db, b), (dx, x)):
        assert_close(analytic, numeric_grad(f, wrt))


def test_dense_without_bias_or_input_gradient(rng):
    x, w, r = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    y, dw = np.zeros((4, 2)), np.zeros((3, 2))
    cpu.dense_forward(x, w, np.zeros(0), y)
    np.testing.assert_allclose(y, x @ w, rtol=1e-12)
    cpu.dense_backward(x, w, r, dw, np.zeros(0), np.zeros((4, 0)))
    np.testing.assert_allclose(dw, x.T @ r, rtol=1e-12)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


ACTIVATION_REFERENCES = {  # Keras's formulas and defaults
    ACT_LINEAR: lambda x: x, ACT_RELU: lambda x: np.maximum(x, 0), ACT_SIGMOID: lambda x: 1 / (1 + np.exp(-x)),
    ACT_SOFTMAX: softmax, ACT_TANH: np.tanh, ACT_ELU: lambda x: np.where(x > 0, x, np.expm1(x)), ACT_GELU: gelu,
    ACT_LEAKY_RELU: lambda x: np.where(x > 0, x, 0.2 * x), ACT_SOFTPLUS: lambda x: np.log1p(np.exp(x)),
    ACT_SILU: lambda x: x / (1 + np.exp(-x)), ACT_MISH: lambda x: x * np.tanh(np.log1p(np.exp(x))),
    ACT_SELU: lambda x: 1.05070098 * np.where(x > 0, x, 1.67326324 * np.expm1(x)),
}


@pytest.mark.parametrize("act", sorted(ACTIVATION_REFERENCES))
def test_activations(rng, act):
    x = rng.normal(size=(6, 4)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU, elu and leaky ReLU away from their kinks
    r = rng.normal(size=(6, 4))
    y = np.zeros_like(x)

    def f():
        cpu.activation_forward(act, x, y)
        return np.sum(r * y)

    f()
    np.testing.assert_allclose(y, ACTIVATION_REFERENCES[act](x), rtol=1e-12, atol=1e-15)
    dx = np.zeros_like(x)
    cpu.activation_backward(act, x, y, r, dx)
    assert_close(dx, numeric_grad(f, x))


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([[-800.0, -50.0, 0.0, 50.0, 800.0]], np.float32)
    y = np.zeros_like(x)
    cpu.activation_forward(ACT_SIGMOID, x, y)
    assert np.all(np.isfinite(y)) and y[0, 0] == 0.0 and y[0, 2] == 0.5 and y[0, 4] == 1.0


@pytest.mark.parametrize("invert", [False, True])
def test_normalize(rng, invert):
    x, r = rng.normal(size=(6, 3)) * 2, rng.normal(size=(6, 3))
    mean, variance = rng.normal(size=3), np.array([4.0, 0.25, 0.0])  # a constant feature: divided by 1e-7
    y = np.zeros_like(x)

    def f():
        cpu.normalize_forward(x, mean, variance, invert, y)
        return np.sum(r * y)

    f()
    s = np.maximum(np.sqrt(variance), 1e-7)
    np.testing.assert_allclose(y, mean + x * s if invert else (x - mean) / s, rtol=1e-12)
    dx = np.zeros_like(x)
    cpu.normalize_backward(variance, invert, r, dx)
    np.testing.assert_allclose(dx, r * s if invert else r / s, rtol=1e-12)
    if invert:
        assert_close(dx, numeric_grad(f, x))


def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4]], np.float32)
    y = np.zeros_like(x)
    cpu.activation_forward(ACT_SOFTMAX, x, y)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, softmax(x.astype(np.float64)), rtol=1e-6)


def test_dropout(rng):
    x, r = rng.normal(size=(50, 40)), rng.normal(size=(50, 40))
    mask, y = np.zeros_like(x), np.zeros_like(x)
    rate = 0.3

    def f():
        cpu.dropout_forward(x, rate, 7, 1, 3, 0, True, mask, y)
        return np.sum(r * y)

    f()
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - rate))
    assert abs(kept.mean() - (1 - rate)) < 0.03
    np.testing.assert_allclose(y, x * mask)
    dx = np.zeros_like(x)
    cpu.dropout_backward(mask, r, dx)
    assert_close(dx, numeric_grad(f, x))
    cpu.dropout_forward(x, rate, 7, 1, 3, 0, False, mask, y)
    np.testing.assert_array_equal(y, x)


def test_dropout_masks_depend_on_global_row_only(rng):
    """Rows drawn as the second half of a batch (row0 = 4) get the masks the full batch gives them."""
    x = np.ones((8, 5))
    full, half = np.zeros_like(x), np.zeros((4, 5))
    cpu.dropout_forward(x, 0.5, 11, 2, 9, 0, True, full, np.zeros_like(x))
    cpu.dropout_forward(x[4:], 0.5, 11, 2, 9, 4, True, half, np.zeros((4, 5)))
    np.testing.assert_array_equal(full[4:], half)
    other = np.zeros_like(x)
    cpu.dropout_forward(x, 0.5, 11, 2, 10, 0, True, other, np.zeros_like(x))
    assert not np.array_equal(full, other)


def test_batchnorm_training(rng):
    n, m = 9, 4
    x = rng.normal(size=(n, m)) * 2 + 1
    gamma, beta = rng.normal(size=m), rng.normal(size=m)
    r = rng.normal(size=(n, m))
    mm, mv = np.zeros(m), np.ones(m)
    stats, xhat, y = np.zeros(2 * m), np.zeros((n, m)), np.zeros((n, m))

    def f():
        cpu.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, True, stats, xhat, y, n, None)
        return np.sum(r * y)

    f()
    expected = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3) + beta
    np.testing.assert_allclose(y, expected, rtol=1e-10)
    dgamma, dbeta, dx = np.zeros(m), np.zeros(m), np.zeros((n, m))
    cpu.batchnorm_backward(r, xhat, gamma, stats, dgamma, dbeta, dx, n, None)
    for analytic, wrt in ((dgamma, gamma), (dbeta, beta), (dx, x)):
        assert_close(analytic, numeric_grad(f, wrt))


def test_batchnorm_moving_statistics_and_inference(rng):
    n, m = 16, 3
    x = rng.normal(size=(n, m)) * 3 + 2
    gamma, beta = np.ones(m), np.zeros(m)
    mm, mv = np.zeros(m), np.ones(m)
    stats, xhat, y = np.zeros(2 * m), np.zeros((n, m)), np.zeros((n, m))
    cpu.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, True, stats, xhat, y, n, None)
    np.testing.assert_allclose(mm, 0.01 * x.mean(0), rtol=1e-12)  # Keras: moving*momentum + batch*(1-momentum)
    np.testing.assert_allclose(mv, 0.99 + 0.01 * x.var(0), rtol=1e-12)  # biased batch variance, as Keras 3
    cpu.batchnorm_forward(x, gamma, beta, mm, mv, 0.99, 1e-3, False, stats, xhat, y, n, None)
    np.testing.assert_allclose(y, (x - mm) / np.sqrt(mv + 1e-3), rtol=1e-12)


LOSS_REFERENCES = {
    LOSS_MAE: lambda p, y: np.abs(p - y),
    LOSS_MSE: lambda p, y: (p - y) ** 2,
    LOSS_HUBER: lambda p, y: np.where(np.abs(p - y) <= 1.0, 0.5 * (p - y) ** 2, np.abs(p - y) - 0.5),
    LOSS_BCE: lambda p, y: -(y * np.log(p) + (1 - y) * np.log(1 - p)),
    LOSS_BCE_LOGITS: lambda z, y: -(y * np.log(1 / (1 + np.exp(-z))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-z)))),
}


@pytest.mark.parametrize("code", sorted(LOSS_REFERENCES))
def test_losses(rng, code):
    if code == LOSS_BCE:
        p, y = rng.uniform(0.05, 0.95, size=(8, 2)), rng.integers(0, 2, size=(8, 2)).astype(float)
    elif code == LOSS_BCE_LOGITS:
        p, y = rng.normal(size=(8, 2)) * 3, rng.integers(0, 2, size=(8, 2)).astype(float)
    else:
        p, y = rng.normal(size=(8, 2)) * 2, rng.normal(size=(8, 2))
    np.testing.assert_allclose(loss_sum(code, 1.0, p, y), LOSS_REFERENCES[code](p, y).sum(), rtol=1e-10)
    dp = np.zeros_like(p)
    cpu.loss_backward(code, 1.0, p, y, np.ones(len(p)), 1.0, dp)
    assert_close(dp, numeric_grad(lambda: loss_sum(code, 1.0, p, y), p))


def loss_sum(code, param, p, y, w=None):
    """The summed loss as the engine accumulates it (metric_sum adds into a float64 slot), rows weighted by w."""
    total = np.zeros(2)
    cpu.metric_sum(code, param, p, y, np.ones(len(p)) if w is None else w, total, 1)
    return total[1]


def categorical_case(rng, code, n=7, k=4):
    """Outputs (probabilities from a softmax, or logits) and targets (one-hot rows, or class indices) for `code`."""
    z = rng.normal(size=(n, k)) * 2
    labels = rng.integers(0, k, size=n)
    p = z if code in (LOSS_CCE_LOGITS, LOSS_SCE_LOGITS) else softmax(z) * rng.uniform(0.5, 2.0, size=(n, 1))
    y = np.eye(k)[labels] if code in (LOSS_CCE, LOSS_CCE_LOGITS) else labels[:, None].astype(float)
    return p, y, labels


def categorical_reference(code, p, labels, smoothing):
    """-sum t log q per row, in float64 from the formulas: q = softmax(z) for logits, else p normalized (no value
    here comes near the 1e-7 clip); t the one-hot target, label-smoothed towards 1/k."""
    k = p.shape[1]
    logq = (np.log(softmax(p)) if code in (LOSS_CCE_LOGITS, LOSS_SCE_LOGITS)
            else np.log(p / p.sum(axis=1, keepdims=True)))
    t = np.eye(k)[labels] * (1 - smoothing) + smoothing / k
    return -(t * logq).sum(axis=1)


@pytest.mark.parametrize("code, smoothing", [(LOSS_CCE, 0.0), (LOSS_CCE, 0.2), (LOSS_CCE_LOGITS, 0.0),
                                             (LOSS_CCE_LOGITS, 0.2), (LOSS_SCE, 0.0), (LOSS_SCE_LOGITS, 0.0)])
def test_categorical_losses(rng, code, smoothing):
    """Value and gradient of each categorical cross-entropy (per row), weighted rows, against the formulas and
    finite differences; label smoothing (one-hot codes only, as Keras) moves targets towards 1/k."""
    p, y, labels = categorical_case(rng, code)
    w = rng.uniform(0.0, 3.0, size=len(p))
    expected = (w * categorical_reference(code, p, labels, smoothing)).sum()
    np.testing.assert_allclose(loss_sum(code, smoothing, p, y, w), expected, rtol=1e-10)
    dp = np.zeros_like(p)
    cpu.loss_backward(code, smoothing, p, y, w, 0.5, dp)
    assert_close(dp, 0.5 * numeric_grad(lambda: loss_sum(code, smoothing, p, y, w), p))


def test_categorical_cross_entropy_clips_as_keras():
    """A zero probability for the true class costs -log(1e-7), Keras's clip, not infinity."""
    p = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    y = np.array([[0.0], [1.0]], np.float32)
    np.testing.assert_allclose(loss_sum(LOSS_SCE, 0.0, p, y), -np.log(1e-7) - np.log(0.5), rtol=1e-5)


def test_categorical_logits_are_stable():
    z = np.array([[500.0, -500.0, 0.0]], np.float32)
    assert np.isclose(loss_sum(LOSS_SCE_LOGITS, 0.0, z, np.array([[1.0]], np.float32)), 1000.0)


def test_categorical_accuracies(rng):
    p = rng.uniform(size=(50, 4))
    labels = rng.integers(0, 4, size=50)
    hits = (p.argmax(axis=1) == labels).astype(float)
    w = rng.uniform(size=50)
    assert loss_sum(METRIC_SPARSE_CATEGORICAL_ACCURACY, 0.0, p, labels[:, None].astype(float), w) == \
        pytest.approx((w * hits).sum(), rel=1e-12)
    assert loss_sum(METRIC_CATEGORICAL_ACCURACY, 0.0, p, np.eye(4)[labels], w) == pytest.approx((w * hits).sum(),
                                                                                                   rel=1e-12)


def test_element_losses_weight_rows(rng):
    p, y, w = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.uniform(size=6)
    assert loss_sum(LOSS_MSE, 0.0, p, y, w) == pytest.approx((w[:, None] * (p - y) ** 2).sum(), rel=1e-12)
    dp = np.zeros_like(p)
    cpu.loss_backward(LOSS_MSE, 0.0, p, y, w, 0.25, dp)
    np.testing.assert_allclose(dp, 0.25 * w[:, None] * 2 * (p - y), rtol=1e-12)


def test_huber_delta(rng):
    p, y = rng.normal(size=(20, 1)) * 3, np.zeros((20, 1))
    delta = 0.7
    e = np.abs(p)
    expected = np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta)).sum()
    np.testing.assert_allclose(loss_sum(LOSS_HUBER, delta, p, y), expected, rtol=1e-12)


def test_bce_logits_is_stable():
    z = np.array([[-200.0], [200.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    assert np.isclose(loss_sum(LOSS_BCE_LOGITS, 0.0, z, y), 400.0)


def network_and_batch(n=6, seed=0):
    model = Sequential([
        layers.Dense(5, activation="relu", input_shape=[4]),
        layers.Normalization(mean=[0.1, 0.2, 0.0, 0.3, 0.5], variance=[1.5, 0.5, 2.0, 1.0, 0.8]),
        layers.Dropout(0.25),
        layers.BatchNormalization(),
        layers.Dense(3, use_bias=False),
        layers.Activation("sigmoid"),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.build(seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = rng.integers(0, 2, size=(n, 1)).astype(np.float64)
    return model, x, y


def multiclass_network_and_batch(loss_code, n=6, seed=0):
    model = Sequential([
        layers.Dense(5, activation="gelu", input_shape=[4]),
        layers.BatchNormalization(),
        layers.Dense(4, activation="softmax"),
        layers.Dense(4, activation="elu", kernel_regularizer=regularizers.l1_l2(0.01, 0.02),
                     bias_regularizer=regularizers.l2(0.03)),
        layers.Activation("tanh"),
        layers.Dense(4, activation="leaky_relu"),
        layers.Activation("softplus"),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    model.build(seed=seed)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    y = np.eye(3)[labels] if loss_code == LOSS_CCE else labels[:, None].astype(np.float64)
    return model, rng.normal(size=(n, 4)), y


@pytest.mark.parametrize("loss_code", [LOSS_BCE, LOSS_MSE, LOSS_HUBER, LOSS_CCE, LOSS_SCE])
def test_whole_network(loss_code):
    """train_step's gradient of the whole network (dropout, batchnorm, fused sigmoid + BCE; hidden softmax, gelu,
    elu, tanh, leaky ReLU, softplus and the fused softmax + categorical cross-entropy; l1 and l2 penalties) in
    float64, weighted rows."""
    if loss_code in (LOSS_CCE, LOSS_SCE):
        model, x, y = multiclass_network_and_batch(loss_code)
    else:
        model, x, y = network_and_batch()
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=len(x))
    plan = model.plan
    theta = model.theta.astype(np.float64)
    state = model.state.astype(np.float64)
    ws = workspace(plan, x.shape[0], y.shape[1], np.float64)
    objective = Objective(loss_code, 1.0, np.zeros(0, np.int64), np.zeros(0), np.ones(1, np.int64))

    def loss(g=None):
        total = np.zeros(1)
        cpu.kernels(configure(plan, loss_code)).train_step(net(plan), Weights(theta, state), ws if g is None else ws._replace(grad=g), objective, x, y, w,
                       Pass(True, 5, 3, 0, x.shape[0], None), total)
        return total[0] / (x.shape[0] * columns(loss_code, y.shape[1]))

    loss()
    analytic = ws.grad.copy()
    numeric = numeric_grad(lambda: loss(np.zeros_like(ws.grad)), theta)
    assert np.abs(analytic).max() > 1e-3
    assert_close(analytic, numeric)
