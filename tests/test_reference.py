"""Whole fits against an independent NumPy float64 implementation of Keras's formulas: same initial
weights, same batches (shuffle=False), so the loss trajectory and final weights must agree to float32
precision. The reference is written from Keras's documented update rules, not from the engine."""
import numpy as np
import pytest

from nbtrain import Sequential, layers, optimizers


def reference_fit(weights, spec, X, Y, loss, optimizer, batch_size, epochs):
    """Train a dense stack in float64. spec: list of ("dense", act) or ("bn", None) in layer order."""
    w = [np.array(a, np.float64) for a in weights]
    trainable = []  # indices into w of trainable arrays
    i = 0
    for kind, _ in spec:
        trainable += [i, i + 1]
        i += 2 if kind == "dense" else 4
    m = {k: np.zeros_like(w[k]) for k in trainable}
    v = {k: np.zeros_like(w[k]) for k in trainable}
    t = 0
    history = []
    for _ in range(epochs):
        total = 0.0
        for a in range(0, len(X), batch_size):
            x, y = X[a:a + batch_size].astype(np.float64), Y[a:a + batch_size].astype(np.float64)
            cache, h, i = [], x, 0
            for kind, act in spec:
                if kind == "dense":
                    z = h @ w[i] + w[i + 1]
                    out = np.maximum(z, 0) if act == "relu" else (1 / (1 + np.exp(-z)) if act == "sigmoid" else z)
                    cache.append((h, z, out))
                    i += 2
                else:
                    mu, var = h.mean(0), h.var(0)
                    xhat = (h - mu) / np.sqrt(var + 1e-3)
                    out = w[i] * xhat + w[i + 1]
                    w[i + 2] = 0.99 * w[i + 2] + 0.01 * mu
                    w[i + 3] = 0.99 * w[i + 3] + 0.01 * var
                    cache.append((h, xhat, 1 / np.sqrt(var + 1e-3)))
                    i += 4
                h = out
            p, n = h, y.size
            if loss == "mse":
                total += np.sum((p - y) ** 2)
                d = 2 * (p - y) / n
            elif loss == "mae":
                total += np.sum(np.abs(p - y))
                d = np.sign(p - y) / n
            else:  # binary cross-entropy on a sigmoid output, differentiated through the sigmoid
                total += np.sum(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
                d = (p - y) / (p * (1 - p)) / n
            grads = {}
            for (kind, act), layer_cache, start in reversed(list(zip(spec, cache, _starts(spec)))):
                if kind == "dense":
                    h_in, z, out = layer_cache
                    if act == "relu":
                        d = d * (z > 0)
                    elif act == "sigmoid":
                        d = d * out * (1 - out)
                    grads[start], grads[start + 1] = h_in.T @ d, d.sum(0)
                    d = d @ w[start].T
                else:
                    h_in, xhat, inv = layer_cache
                    grads[start], grads[start + 1] = (d * xhat).sum(0), d.sum(0)
                    dxhat = d * w[start]
                    d = inv / len(h_in) * (len(h_in) * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
            t += 1
            for k in trainable:
                g = grads[k]
                if isinstance(optimizer, optimizers.Adam):
                    b1, b2 = optimizer.beta_1, optimizer.beta_2
                    m[k] = b1 * m[k] + (1 - b1) * g
                    v[k] = b2 * v[k] + (1 - b2) * g * g
                    alpha = optimizer.learning_rate * np.sqrt(1 - b2**t) / (1 - b1**t)
                    w[k] = w[k] - alpha * m[k] / (np.sqrt(v[k]) + optimizer.epsilon)
                else:
                    m[k] = optimizer.momentum * m[k] - optimizer.learning_rate * g
                    w[k] = w[k] + m[k]
        history.append(total / Y.size)
    return history, w


def _starts(spec):
    starts, i = [], 0
    for kind, _ in spec:
        starts.append(i)
        i += 2 if kind == "dense" else 4
    return starts


CASES = {
    "relu-mae-adam": ([("dense", "relu"), ("dense", "relu"), ("dense", None)], "mae", optimizers.Adam),
    "bn-mse-sgd": ([("dense", "relu"), ("bn", None), ("dense", None)], "mse",
                   lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9)),
    "sigmoid-bce-adam": ([("dense", "relu"), ("dense", "sigmoid")], "binary_crossentropy",
                         lambda: optimizers.Adam(learning_rate=0.01)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_trajectory_matches_reference(case):
    spec, loss, make_optimizer = CASES[case]
    optimizer = make_optimizer()
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 6)).astype(np.float32)
    if loss == "binary_crossentropy":
        Y = (X[:, :1] + X[:, 1:2] > 0).astype(np.float32)
    else:
        Y = (np.sin(X[:, :1]) + X[:, 1:2] ** 2).astype(np.float32)
    stack = []
    for kind, act in spec:
        stack.append(layers.Dense(8 if len(stack) < len(spec) - 1 else 1, activation=act) if kind == "dense"
                     else layers.BatchNormalization())
    model = Sequential(stack)
    model.build((None, 6), seed=0)
    start = model.get_weights()
    model.compile(optimizer=optimizer, loss=loss)
    history = model.fit(X, Y, batch_size=16, epochs=15, shuffle=False, verbose=0)
    expected, final = reference_fit(start, spec, X, Y, loss, optimizer, 16, 15)
    np.testing.assert_allclose(history.history["loss"], expected, rtol=2e-5)
    assert expected[-1] < 0.7 * expected[0]  # the fit really learned something
    for got, want in zip(model.get_weights(), final):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
