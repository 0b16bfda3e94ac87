"""An Ensemble fitted over MPI: tests/test_ensemble.py runs `mpiexec -n 2 python tests/mpi_ensemble.py OUT_DIR` and
compares each rank's members with the same fit in one process. Each rank writes OUT_DIR/rank<r>.npz."""
import sys

import numpy as np

from nbtrain import Ensemble, Sequential, layers


def fit(distribute=None):
    """Three members of the course's ionosphere network, 103 rows (uneven shares, a partial last batch)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(103, 6)).astype(np.float32)
    Y = (X[:, :1] - 0.5 * X[:, 1:2] > 0).astype(np.float32)
    model = Sequential([layers.Dense(4, activation="relu"), layers.Dense(4, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", device="cpu")
    ensemble = Ensemble(model, members=3)
    history = ensemble.fit(X[:80], Y[:80], validation_data=(X[80:], Y[80:]), batch_size=16, epochs=3, verbose=0,
                           seed=4, distribute=distribute)
    return ensemble.theta, np.array(history.history["val_loss"])


if __name__ == "__main__":
    from mpi4py import MPI
    theta, val_loss = fit("mpi")
    np.savez(f"{sys.argv[1]}/rank{MPI.COMM_WORLD.rank}.npz", theta=theta, val_loss=val_loss)
