"""Softmax classifiers against PyTorch: the same initial weights and the same batches (shuffle=False) give PyTorch's
loss trajectory, cross-entropy on the logits, to 2e-3 relative over 51 steps, and the same final weights; with class
weights too, reduced as Keras reduces them (the weighted sum over the batch size; PyTorch's own `weight=` argument
divides by the batch's weight sum instead, so the reference weights the unreduced losses)."""
import numpy as np
import pytest

from nbtrain import Sequential, layers, optimizers, regularizers

torch = pytest.importorskip("torch", reason="the reference trajectories need PyTorch (the test extra installs it)")

ROWS, BATCH, EPOCHS = 96, 32, 17  # 3 equal batches per epoch: an epoch's loss is the mean of its steps' losses


def data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=ROWS)
    X = rng.normal(size=(ROWS, 6)).astype(np.float32)
    X[np.arange(ROWS), labels] += 1.5
    return X, labels


def torch_fit(weights, X, labels, optimizer, class_weight, l2=0.0):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 4))
    with torch.no_grad():
        for module, (kernel, bias) in zip((net[0], net[2]), (weights[0:2], weights[2:4])):
            module.weight.copy_(torch.from_numpy(kernel.T.copy()))
            module.bias.copy_(torch.from_numpy(bias))
    opt = {"sgd": lambda: torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
           "adam": lambda: torch.optim.Adam(net.parameters(), lr=0.01, eps=1e-7),
           # decoupled decay before the step, theta -= lr * wd * theta: Keras 3's rule, torch's AdamW
           "adamw": lambda: torch.optim.AdamW(net.parameters(), lr=0.01, eps=1e-7, weight_decay=0.05)}[optimizer]()
    table = torch.tensor([class_weight.get(c, 1.0) for c in range(4)]) if class_weight else torch.ones(4)
    epochs = []
    for _ in range(EPOCHS):
        steps = []
        for a in range(0, ROWS, BATCH):
            x, t = torch.from_numpy(X[a:a + BATCH]), torch.from_numpy(labels[a:a + BATCH])
            rows = torch.nn.functional.cross_entropy(net(x), t, reduction="none")
            loss = (table[t] * rows).sum() / len(t)
            loss = loss + l2 * ((net[0].weight ** 2).sum() + (net[2].weight ** 2).sum())  # the L2 penalty, by hand
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(loss.item())
        epochs.append(np.mean(steps))
    final = [net[0].weight.T, net[0].bias, net[2].weight.T, net[2].bias]
    return np.array(epochs), [p.detach().numpy() for p in final]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("class_weight", [None, {0: 1.0, 1: 2.5, 2: 0.5, 3: 1.0}])
def test_softmax_cross_entropy_follows_pytorch(optimizer, class_weight):
    X, labels = data()
    model = Sequential([layers.Dense(10, activation="relu", input_shape=[6]), layers.Dense(4, activation="softmax")])
    model.build(seed=3)
    start = model.get_weights()
    opt = optimizers.SGD(learning_rate=0.05, momentum=0.9) if optimizer == "sgd" else optimizers.Adam(0.01)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    history = model.fit(X, labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, class_weight=class_weight,
                        verbose=0, seed=0)
    expected, final = torch_fit(start, X, labels, optimizer, class_weight)
    np.testing.assert_allclose(history.history["loss"], expected, rtol=2e-3)
    assert expected[-1] < 0.7 * expected[0]  # the trajectory goes somewhere
    for got, want in zip(model.get_weights(), final):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)


def test_l2_penalty_and_adamw_follow_pytorch():
    """kernel_regularizer=l2 on both Dense layers and AdamW(weight_decay=0.05): PyTorch with the penalty added to the
    loss by hand and torch.optim.AdamW gives the same trajectory (the reported loss includes the penalty)."""
    X, labels = data()
    l2 = 0.01
    model = Sequential([layers.Dense(10, activation="relu", input_shape=[6], kernel_regularizer=regularizers.l2(l2)),
                        layers.Dense(4, activation="softmax", kernel_regularizer=regularizers.l2(l2))])
    model.build(seed=3)
    start = model.get_weights()
    model.compile(optimizer=optimizers.AdamW(0.01, weight_decay=0.05), loss="sparse_categorical_crossentropy")
    history = model.fit(X, labels, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0, seed=0)
    expected, final = torch_fit(start, X, labels, "adamw", None, l2)
    np.testing.assert_allclose(history.history["loss"], expected, rtol=2e-3)
    for got, want in zip(model.get_weights(), final):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-4)
