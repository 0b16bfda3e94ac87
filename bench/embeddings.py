"""What the numerical embeddings cost on the CPU: seconds per epoch of one network with no embedding, with
PeriodicEmbedding() and with PiecewiseLinearEmbedding() (their defaults) in front, on 30,000 synthetic rows of 12
features (batch 256, then Dense 256, 256, 1; Adam, MSE; one BLAS thread, so the load of other work matters less).

    python -m bench.embeddings [--epochs 3]

Each model is compiled and warmed by a first short fit; the figure is the best of the timed epochs (the one least
disturbed by other work), printed after the machine line and the load average.
"""
import argparse
import os

import numpy as np

from nbtrain import Sequential, layers

from .common import best_of, machine, seconds


def seconds_per_epoch(front, X, y, epochs):
    model = Sequential([layers.Input(shape=(X.shape[1],)), *front, layers.Dense(256, activation="relu"),
                        layers.Dense(256, activation="relu"), layers.Dense(1)])
    model.build(seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(X[:512], y[:512], batch_size=256, verbose=0, threads=1)  # compiles
    return best_of(lambda: seconds(lambda: model.fit(X, y, batch_size=256, verbose=0, threads=1)), epochs), \
        model.count_params()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"{machine()}; load average {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30000, 12)).astype(np.float32)
    y = np.sin(X).sum(axis=1)
    piecewise = layers.PiecewiseLinearEmbedding()
    piecewise.adapt(X)
    for name, front in (("no embedding", []), ("PeriodicEmbedding()", [layers.PeriodicEmbedding()]),
                        ("PiecewiseLinearEmbedding()", [piecewise])):
        seconds, params = seconds_per_epoch(front, X, y, args.epochs)
        print(f"{name:28s} {seconds:6.2f} s/epoch  {params:,} parameters")


if __name__ == "__main__":
    main()
