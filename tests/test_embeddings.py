"""Numerical and categorical embeddings (layers.PeriodicEmbedding, layers.Embedding, layers.Flatten): their kernels
against formulas and central finite differences in float64, the whole network's gradient, saving, ONNX, one-line
errors, and (marked cuda) the CUDA kernels and a fit against the CPU's. Every model here has one architecture
(Embedding, Flatten, PeriodicEmbedding, Dense), so the engine compiles few configurations."""
import math

import numpy as np
import pytest

from nbtrain import InputError, Sequential, layers, load_model, optimizers
from nbtrain.engine import cpu
from nbtrain.engine.bundles import Objective, Pass, Weights
from nbtrain.engine.config import configure
from nbtrain.engine.plan import LOSS_MSE, columns, net, workspace
from test_gradients import assert_close, numeric_grad


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def periodic_reference(x, c):
    """rtdl's _Periodic: (n, F) -> (n, F, 2K) = [cos v, sin v], v = 2 pi c x, flattened feature by feature."""
    v = 2 * math.pi * c[None] * x[:, :, None]
    return np.concatenate([np.cos(v), np.sin(v)], axis=2).reshape(len(x), -1)


def test_periodic_kernels(rng):
    x, c = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)) * 0.3
    r = rng.normal(size=(5, 24))
    y = np.zeros((5, 24))

    def f():
        cpu.periodic_forward(x, c, y)
        return np.sum(r * y)

    f()
    np.testing.assert_allclose(y, periodic_reference(x, c), rtol=1e-12, atol=1e-14)
    dc, dx = np.zeros_like(c), np.zeros_like(x)
    cpu.periodic_backward(x, c, y, r, dc, dx)
    assert_close(dc, numeric_grad(f, c))
    assert_close(dx, numeric_grad(f, x))
    cpu.periodic_backward(x, c, y, r, dc, np.zeros((5, 0)))  # the first op: no input gradient, the same dc
    assert_close(dc, numeric_grad(f, c))


def test_feature_dense_kernels(rng):
    n, m, a, o = 4, 3, 5, 2
    x, w, b = rng.normal(size=(n, m * a)), rng.normal(size=(m * a, o)), rng.normal(size=(m, o))
    r = rng.normal(size=(n, m * o))
    y = np.zeros((n, m * o))

    def f():
        cpu.feature_dense_forward(x, w, b, y)
        return np.sum(r * y)

    f()
    expected = np.einsum("nfa,fao->nfo", x.reshape(n, m, a), w.reshape(m, a, o)) + b  # rtdl's _NLinear
    np.testing.assert_allclose(y, expected.reshape(n, -1), rtol=1e-12)
    dw, db, dx = np.zeros_like(w), np.zeros_like(b), np.zeros_like(x)
    cpu.feature_dense_backward(x, w, r, dw, db, dx)
    for analytic, wrt in ((dw, w), (db, b), (dx, x)):
        assert_close(analytic, numeric_grad(f, wrt))


def embedding_case(rng, n=6):
    """Input columns [number, code < 3, number, code < 4] with two tables (3 and 4 rows, width 2) stacked: the
    numbers come out first, then each code's row."""
    x = np.c_[rng.normal(size=n), rng.integers(0, 3, n), rng.normal(size=n), rng.integers(0, 4, n)]
    tables = rng.normal(size=7 * 2)
    layout = np.array([2.0, -1, 0, 0, 0, 3, 2, -1, 0, 1, 3, 4, 4])
    return x, tables, layout


def test_embedding_kernels(rng):
    x, tables, layout = embedding_case(rng)
    r = rng.normal(size=(len(x), 6))
    y = np.zeros((len(x), 6))

    def f():
        cpu.embedding_forward(x, tables, layout, y)
        return np.sum(r * y)

    f()
    stacked = tables.reshape(7, 2)
    expected = np.c_[x[:, [0, 2]], stacked[x[:, 1].astype(int)], stacked[3 + x[:, 3].astype(int)]]
    np.testing.assert_array_equal(y, expected)
    dtables, dx = np.full_like(tables, np.nan), np.full_like(x, np.nan)  # overwritten, not accumulated
    cpu.embedding_backward(x, layout, r, dtables, dx)
    assert_close(dtables, numeric_grad(f, tables))
    np.testing.assert_array_equal(dx, np.c_[r[:, 0], 0 * r[:, 0], r[:, 1], 0 * r[:, 0]])


def model_layers(embedding=None, n_in=4):
    """The one architecture of this module: category codes embedded, numbers passed on, all of them through
    periodic embeddings and a Dense output."""
    return [layers.Input(shape=(n_in,)), embedding or layers.Embedding([3, 4], 2, columns=[1, 3]), layers.Flatten(),
            layers.PeriodicEmbedding(n_frequencies=3, frequency_init_scale=0.3, embedding_dim=2), layers.Dense(1)]


def table(rng, n=40):
    """Rows of [number, code < 3, number, code < 4] and a target that needs both kinds of column."""
    x, _, _ = embedding_case(rng, n)
    return x.astype(np.float32), (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - (x[:, 3] == 2)).astype(np.float32)


def test_whole_network_gradient(rng):
    """train_step's gradient through Embedding (two tables, passed-through columns), PeriodicEmbedding (its
    frequencies, per-feature dense map and ReLU) and Dense, in float64, against finite differences."""
    model = Sequential(model_layers())
    model.build(seed=0)
    x, y = table(rng, 7)
    x, y = x.astype(np.float64), y[:, None].astype(np.float64)
    plan = model.plan
    theta, state = model.theta.astype(np.float64), model.state.astype(np.float64)
    ws = workspace(plan, len(x), 1, np.float64)
    objective = Objective(LOSS_MSE, 1.0, np.zeros(0, np.int64), np.zeros(0), np.ones(1, np.int64))
    config = configure(plan, LOSS_MSE)
    assert [config.constants[f"USE_OP_{kind}"] for kind in ("EMBEDDING", "PERIODIC", "FEATURE_DENSE", "DROPOUT")] \
        == [True, True, True, False]
    train_step = cpu.kernels(config).train_step
    w = np.ones(len(x))

    def loss(g=None):
        total = np.zeros(1)
        train_step(net(plan), Weights(theta, state), ws if g is None else ws._replace(grad=g), objective, x, y, w,
                   Pass(True, 5, 3, 0, len(x), None), total)
        return total[0] / (len(x) * columns(LOSS_MSE, 1))

    loss()
    analytic = ws.grad.copy()
    assert_close(analytic, numeric_grad(lambda: loss(np.zeros_like(ws.grad)), theta))
    tables = sum(v.size for v in plan.variables if v.layer == 1)
    assert np.abs(analytic).max() > 1e-3 and np.count_nonzero(analytic[:tables]) > 0
    assert [v.name for v in plan.variables] == ["embeddings_0", "embeddings_1", "frequencies", "kernel", "bias",
                                                "kernel", "bias"]


def test_keras_style_shared_table_predicts_its_formula(rng):
    """Embedding(5, 3) on every column (one table, as Keras) then Flatten: each row is its codes' table rows side by
    side, and the rest of the network computes rtdl's formula on them."""
    model = Sequential(model_layers(layers.Embedding(5, 3), n_in=2))
    x = rng.integers(0, 5, size=(6, 2)).astype(np.float32)
    table_, c, kernel, bias, dense, dense_bias = [w.astype(np.float64) for w in model.get_weights()]
    h = table_[x.astype(int)].reshape(6, 6)
    waves = periodic_reference(h, c).reshape(6, 6, 6)
    z = np.maximum(np.einsum("nfa,fad->nfd", waves, kernel) + bias, 0).reshape(6, -1)
    np.testing.assert_allclose(model.predict(x), z @ dense + dense_bias, rtol=1e-4, atol=1e-5)
    assert model.layers[1].output_width(2) == 6 and model.count_params() == 5 * 3 + 6 * 3 + 6 * 6 * 2 + 6 * 2 + 13
    assert np.abs(table_).max() <= 0.05 and np.abs(c).max() <= 0.9  # Keras's "uniform"; rtdl's 3 sigma


def fitted(rng, device="cpu"):
    """A model of this module's architecture fitted on table(rng) for a few epochs, its history and data."""
    model = Sequential(model_layers())
    model.build(seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse", device=device)
    x, y = table(rng)
    history = model.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1)
    return model, history.history["loss"], x


def test_fit_learns_saves_and_exports(rng, tmp_path):
    """Training lowers the loss; the saved model predicts the same; the ONNX graph (Gather of the codes, the
    periodic features, a per-feature MatMul) gives predict's outputs in onnxruntime."""
    model, losses, x = fitted(rng)
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.nbt")
    loaded = load_model(tmp_path / "m.nbt")
    assert [type(layer).__name__ for layer in loaded.layers] == ["InputLayer", "Embedding", "Flatten",
                                                                 "PeriodicEmbedding", "Dense"]
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    assert loaded.layers[3].get_config() == model.layers[3].get_config()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    onnx = pytest.importorskip("onnx", reason="ONNX export needs the onnx extra (the test extra installs it)")
    ort = pytest.importorskip("onnxruntime", reason="the export is checked in onnxruntime (the test extra installs it)")
    model.export(tmp_path / "m.onnx")
    assert {"Gather", "Cos", "Sin", "MatMul"} <= {node.op_type for node in onnx.load(tmp_path / "m.onnx").graph.node}
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Embedding(0, 2), "input_dim must be a positive integer"),
    (lambda: layers.Embedding(3, 2.5), "output_dim must be a positive integer"),
    (lambda: layers.Embedding(3, 2, embeddings_initializer="unifrom"), "did you mean 'uniform'"),
    (lambda: layers.Embedding(3, 2, columns=[1, 1]), "distinct input column numbers"),
    (lambda: layers.Embedding([3, 4], 2, columns=[0]), "2 input_dim sizes for 1 columns"),
    (lambda: layers.PeriodicEmbedding(n_frequencies=0), "n_frequencies must be a positive integer"),
    (lambda: layers.PeriodicEmbedding(frequency_init_scale=0), "frequency_init_scale must be positive"),
    (lambda: layers.PeriodicEmbedding(activation="rleu"), "did you mean 'relu'"),
    (lambda: layers.PiecewiseLinearEncoding(n_bins=0), "PiecewiseLinearEncoding n_bins must be a positive integer"),
    (lambda: layers.PiecewiseLinearEmbedding(embedding_dim=-2), "embedding_dim must be a positive integer"),
])
def test_bad_arguments_are_one_line_errors(make, message):
    with pytest.raises(ValueError, match=message) as error:
        make()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("layer_list, message", [
    ([layers.Input(shape=(3,)), layers.Embedding(3, 2, columns=[3])], "column 3 is not among the input's 3 columns"),
    ([layers.Input(shape=(3,)), layers.Dense(2), layers.Embedding(3, 2)], "must be the model's first computing"),
])
def test_bad_layouts_are_refused_when_built(layer_list, message):
    with pytest.raises(ValueError, match=message):
        Sequential(layer_list).build()


@pytest.mark.parametrize("bad, shown", [(0.5, "0.5"), (-1.0, "-1"), (3.0, "3")])
def test_codes_outside_the_tables_are_refused_before_the_engine_runs(rng, bad, shown):
    """fit, evaluate and predict refuse a code that is not a whole number in [0, input_dim), in one line naming
    the column, the value and its row; the weights stay as they were."""
    model = Sequential(model_layers())
    model.build(seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x, y = table(rng, 8)
    x[5, 1] = bad
    weights = model.get_weights()
    for call in (lambda: model.fit(x, y, verbose=0), lambda: model.evaluate(x, y, verbose=0),
                 lambda: model.predict(x)):
        with pytest.raises(InputError, match=rf"input column 1 has {shown} at row 5 .*whole numbers in \[0, 3\)"):
            call()
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)



# ---------------------------------------------------------------- piecewise-linear encoding and embedding
EDGES = np.array([[-1.0, -0.2, 0.3, 1.0, 2.0],  # four bins
                  [0.0, 1.0, 3.0, 3.0, 3.0],  # two bins, padded with the last edge
                  [0.0, 2.0, 2.0, 2.0, 2.0],  # one bin: unclipped on both sides
                  [1.0, 1.0, 1.0, 1.0, 1.0]])  # a constant feature: no bin


def piecewise_reference(x, edges):
    """rtdl's _PiecewiseLinearEncodingImpl, feature by feature, with a feature's unused bins 0."""
    out = np.zeros((len(x), edges.shape[0], edges.shape[1] - 1))
    for f, e in enumerate(edges):
        k = int(np.sum(np.diff(e) > 0))
        z = (x[:, f:f + 1] - e[:k]) / np.diff(e)[:k]
        if k > 1:
            z = np.c_[np.minimum(z[:, :1], 1.0), np.clip(z[:, 1:k - 1], 0.0, 1.0), np.maximum(z[:, k - 1:], 0.0)]
        out[:, f, :k] = z
    return out.reshape(len(x), -1)


def test_piecewise_kernels(rng):
    x = rng.normal(size=(9, 4)) * 2
    r = rng.normal(size=(9, 16))
    y = np.zeros((9, 16))

    def f():
        cpu.piecewise_forward(x, EDGES, y)
        return np.sum(r * y)

    f()
    np.testing.assert_allclose(y, piecewise_reference(x, EDGES), rtol=1e-12)
    assert (y[:, 0] <= 1).all() and (y[:, 3] >= 0).all() and (y[:, 14:] == 0).all()
    dx = np.zeros_like(x)
    cpu.piecewise_backward(x, EDGES, r, dx)
    assert_close(dx, numeric_grad(f, x))


def test_adapt_takes_quantile_bins(rng):
    """rtdl's compute_bins: n_bins + 1 quantiles per feature, repeats dropped (a feature of 3 values gets 2 bins,
    padded with its last edge); refit to data of another width once built is refused."""
    x = np.c_[rng.normal(size=200), rng.integers(0, 3, 200)]
    layer = layers.PiecewiseLinearEncoding(n_bins=4)
    layer.adapt(x)
    np.testing.assert_allclose(layer.adapted[0], np.quantile(x[:, 0], [0, 0.25, 0.5, 0.75, 1]), rtol=1e-6)
    np.testing.assert_array_equal(layer.adapted[1], [0, 1, 2, 2, 2])
    model = Sequential([layers.Input(shape=(2,)), layer])
    np.testing.assert_array_equal(model.get_weights()[0], layer.adapted)
    with pytest.raises(ValueError, match="adapt data has 3 features but the layer was built for 2"):
        layer.adapt(np.c_[x, x[:, 0]])


def test_piecewise_embedding_fits_saves_and_exports(rng, tmp_path):
    """A PiecewiseLinearEmbedding model learns; saved and loaded it predicts the same (its edges included); its
    ONNX graph gives predict's outputs in onnxruntime, outside the adapted range too."""
    x = rng.normal(size=(60, 3)).astype(np.float32)
    x[:, 2] = rng.integers(0, 3, 60)
    y = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 + x[:, 2]
    embedding = layers.PiecewiseLinearEmbedding(n_bins=4, embedding_dim=2)
    embedding.adapt(x)
    model = Sequential([layers.Input(shape=(3,)), embedding, layers.Dense(1)])
    model.build(seed=0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss="mse")
    losses = model.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1).history["loss"]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.nbt")
    loaded = load_model(tmp_path / "m.nbt")
    assert loaded.layers[1].get_config() == embedding.get_config()
    np.testing.assert_array_equal(loaded.get_weights()[0], embedding.adapted)
    wide = np.r_[x, 3 * x].astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(wide), model.predict(wide))
    ort = pytest.importorskip("onnxruntime", reason="the export is checked in onnxruntime (the test extra installs it)")
    model.export(tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": wide})[0], model.predict(wide), rtol=1e-5, atol=1e-5)

# ---------------------------------------------------------------- the CUDA kernels (simulator in CI, or a GPU)
@pytest.fixture
def gpu():
    """The CUDA engine module, where CUDA (or its simulator) is there."""
    pytest.importorskip("numba_cuda", reason="needs the gpu extra: pip install 'nbtrain[gpu]'")
    from numba import cuda
    if not cuda.is_available():
        pytest.skip("no CUDA GPU and not running under NUMBA_ENABLE_CUDASIM=1")
    from nbtrain.engine import cuda as module
    return module


@pytest.mark.cuda
def test_cuda_kernels_match_cpu(gpu, rng):
    """The periodic, per-feature dense, embedding and piecewise-linear kernels, forward and backward, on both
    targets in float32."""
    from numba import cuda
    codes, tables, layout = embedding_case(rng, 5)
    given = {name: a.astype(np.float32) for name, a in (
        ("x", rng.normal(size=(5, 3))), ("c", rng.normal(size=(3, 4)) * 0.3), ("w", rng.normal(size=(24, 2))),
        ("b", rng.normal(size=(3, 2))), ("codes", codes), ("tables", tables), ("x4", rng.normal(size=(5, 4)) * 2),
        ("edges", EDGES), ("dy0", rng.normal(size=(5, 24))), ("dy1", rng.normal(size=(5, 6))),
        ("dy2", rng.normal(size=(5, 6))), ("dy3", rng.normal(size=(5, 16))))}
    shapes = {"waves": (5, 24), "dc": (3, 4), "dx": (5, 3), "y": (5, 6), "dw": (24, 2), "db": (3, 2),
              "dwaves": (5, 24), "e": (5, 6), "dt": (14,), "dcodes": (5, 4), "pw": (5, 16), "dx4": (5, 4)}
    host = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    dev = {name: cuda.to_device(a) for name, a in host.items()}
    for module, out, a in ((cpu, host, given), (gpu, dev, {k: cuda.to_device(v) for k, v in given.items()})):
        module.periodic_forward(a["x"], a["c"], out["waves"])
        module.periodic_backward(a["x"], a["c"], out["waves"], a["dy0"], out["dc"], out["dx"])
        module.feature_dense_forward(out["waves"], a["w"], a["b"], out["y"])
        module.feature_dense_backward(out["waves"], a["w"], a["dy1"], out["dw"], out["db"], out["dwaves"])
        module.embedding_forward(a["codes"], a["tables"], layout, out["e"])
        module.embedding_backward(a["codes"], layout, a["dy2"], out["dt"], out["dcodes"])
        module.piecewise_forward(a["x4"], a["edges"], out["pw"])
        module.piecewise_backward(a["x4"], a["edges"], a["dy3"], out["dx4"])
    for name, expected in host.items():
        assert np.abs(expected).max() > 0, name
        np.testing.assert_allclose(dev[name].copy_to_host(), expected, rtol=2e-5, atol=1e-5, err_msg=name)


@pytest.mark.cuda
def test_cuda_fit_matches_cpu(gpu):
    """The same seed, data and initial weights: the same losses, weights and predictions on both targets."""
    results = {device: fitted(np.random.default_rng(3), device) for device in ("cpu", "cuda")}
    (cpu_model, cpu_losses, x), (gpu_model, gpu_losses, _) = results["cpu"], results["cuda"]
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for a, b in zip(gpu_model.get_weights(), cpu_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu_model.predict(x), cpu_model.predict(x), rtol=1e-4, atol=1e-6)
