"""A small distributed fit that tests/test_mpi.py runs under `mpiexec -n 2 python tests/mpi_cache.py OUT_DIR` to
see whether the MPI epoch came from Numba's cache: each rank writes train_epoch's cache hits and misses to
OUT_DIR/rank<r>.json."""
import json
import sys

import numpy as np

from nbtrain import Sequential, layers
from nbtrain.engine import cpu

if __name__ == "__main__":
    from mpi4py import MPI
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=40).astype(np.float32)
    model = Sequential([layers.Dense(4, activation="relu"), layers.Dense(1)])
    model.compile(loss="mae", device="cpu")
    model.fit(X, y, validation_split=0.25, batch_size=8, epochs=2, verbose=0, seed=0, distribute="mpi")
    stats, rank = cpu.kernels(model._configured[1]).train_epoch.stats, MPI.COMM_WORLD.Get_rank()
    with open(f"{sys.argv[1]}/rank{rank}.json", "w") as handle:
        json.dump({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}, handle)
