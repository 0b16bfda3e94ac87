"""Fits that tests/test_mpi.py runs under `mpiexec -n P python tests/mpi_fit.py OUT_DIR` and compares with the
same fits in one process. Each rank writes its history and weights to OUT_DIR/rank<r>.npz."""
import sys

import numpy as np

from nbtrain import Sequential, layers, optimizers, regularizers

CASES = {
    "plain": (lambda: [layers.Dense(16, activation="relu"), layers.Dense(1)], 16),
    "dropout": (lambda: [layers.Dense(16, activation="relu"), layers.Dropout(0.3), layers.Dense(1)], 16),
    "batchnorm": (lambda: [layers.Dense(16, activation="relu"), layers.BatchNormalization(),
                           layers.Dense(8, activation="relu"), layers.Dense(1)], 16),
    # batches of one row: one rank's share of every batch is empty, and batchnorm must still agree
    "batchnorm-batch-of-one": (lambda: [layers.BatchNormalization(), layers.Dense(4, activation="relu"),
                                        layers.Dense(1)], 1),
    # softmax over 3 classes, sparse categorical cross-entropy, class weights, an L2 penalty
    "multiclass": (lambda: [layers.Dense(16, activation="relu", kernel_regularizer=regularizers.l2(1e-3)),
                            layers.Dropout(0.2), layers.Dense(3, activation="softmax")], 16),
}
MULTICLASS = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
CLASS_WEIGHT = {0: 1.0, 1: 2.0, 2: 0.5}


def data():
    """103 training rows (uneven shares, a partial last batch) and 31 validation rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(134, 6)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2]).astype(np.float32)
    return (X[:103], y[:103]), (X[103:], y[103:])


def fit(case, distribute=None, epochs=3):
    make_layers, batch_size = CASES[case]
    (X, y), (Xv, yv) = data()
    multiclass = case == "multiclass"
    if multiclass:  # the regression target cut into 3 classes
        y, yv = (np.digitize(a, [-0.5, 0.5]).astype(np.float32) for a in (y, yv))
    model = Sequential(make_layers())
    model.build((None, 6), seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01), device="cpu",
                  **(MULTICLASS if multiclass else dict(loss="mae", metrics=["mse"])))
    history = model.fit(X, y, validation_data=(Xv, yv), batch_size=batch_size, epochs=epochs, verbose=0, seed=5,
                        distribute=distribute, class_weight=CLASS_WEIGHT if multiclass else None)
    return history.history, model.get_weights()


if __name__ == "__main__":
    from mpi4py import MPI
    results = {}
    for name in CASES:
        history, weights = fit(name, "mpi")
        results.update({f"{name}/history/{k}": np.array(v) for k, v in history.items()})
        results.update({f"{name}/weight/{i}": w for i, w in enumerate(weights)})
    np.savez(f"{sys.argv[1]}/rank{MPI.COMM_WORLD.Get_rank()}.npz", **results)
