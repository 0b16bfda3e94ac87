"""Shared-weight members (SharedMembers, TabM-style) against the single model on California housing: the test RMSE
(in units of $100,000) and the fit's seconds, same layers, optimizer, batch size and epochs.

    python -m bench.shared_members [--members 8] [--adapters first] [--epochs 250] [--seeds 0 1]

The rows are split 80/20 (seed 0) into training and test rows; numeric columns are filled with the training
median and standardized with the training statistics, ocean_proximity one-hot coded."""
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import machine, parser, seconds
from nbtrain import SharedMembers, Sequential, layers, optimizers

TARGET = "median_house_value"
LEARNING_RATE = 2e-3


def california(folder):
    """(X_train, y_train), (X_test, y_test) as float32, the target in $100,000."""
    df = pd.read_csv(Path(folder) / "california-housing.csv")
    df = pd.concat([df.drop(columns="ocean_proximity"), pd.get_dummies(df["ocean_proximity"], dtype=float)], axis=1)
    order = np.random.default_rng(0).permutation(len(df))
    cut = int(0.8 * len(df))
    train, test = df.iloc[order[:cut]], df.iloc[order[cut:]]
    features = [c for c in df.columns if c != TARGET]
    fill = train[features].median()
    mean, std = train[features].fillna(fill).mean(), train[features].fillna(fill).std().replace(0, 1)

    def matrix(part):
        return (((part[features].fillna(fill) - mean) / std).to_numpy(np.float32),
                (part[TARGET].to_numpy(np.float32) / 1e5)[:, None])
    return matrix(train), matrix(test)


def network(width):
    return Sequential([layers.Dense(width, activation="relu"), layers.Dense(width, activation="relu"),
                       layers.Dense(1)])


def rmse(p, y):
    return float(np.sqrt(np.mean((p - y) ** 2)))


def run(members, adapters, train, test, epochs, width, seed):
    """(test RMSE, the members' mean test RMSE, seconds of the fit) of the single network (members 0) or of
    SharedMembers."""
    model = network(width) if members == 0 else SharedMembers(network(width), members, adapters)
    model.compile(optimizers.Adam(LEARNING_RATE), "mse", device="cpu")
    took = seconds(lambda: model.fit(*train, batch_size=256, epochs=epochs, verbose=0, seed=seed))
    each = [model.predict(test[0])] if members == 0 else model.predict(test[0], members=True)
    return rmse(model.predict(test[0]), test[1]), float(np.mean([rmse(p, test[1]) for p in each])), took


def main():
    args = parser(__doc__)
    args.add_argument("--members", type=int, default=8)
    args.add_argument("--adapters", choices=("first", "all"), default="first")
    args.add_argument("--epochs", type=int, default=250)
    args.add_argument("--width", type=int, default=64)
    args.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    options = args.parse_args()
    train, test = california(options.data)
    lines = [f"California housing, {len(train[0])} training and {len(test[0])} test rows, Dense({options.width}) x2 "
             f"ReLU, Adam {LEARNING_RATE:g}, batch 256, {options.epochs} epochs; {machine()}",
             "| model | seed | test RMSE ($100k) | members' mean RMSE | fit seconds |", "| --- | --- | --- | --- | --- |"]
    for seed in options.seeds:
        for members in (0, options.members):
            error, each, took = run(members, options.adapters, train, test, options.epochs, options.width, seed)
            name = "single model" if members == 0 else f"SharedMembers({members}, {options.adapters!r})"
            lines.append(f"| {name} | {seed} | {error:.4f} | {each:.4f} | {took:.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if options.write:
        with open(options.write, "a") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
