"""The Keras course's workloads, shared by the benchmarks and the tests: data splits and model stacks."""
from pathlib import Path

import pandas as pd


def course_split(df, target):
    """The course's recipe: 70/30 split with random_state=0, min-max scaling with training statistics,
    constant columns (NaN after scaling) dropped. Returns (X_train, y_train), (X_valid, y_valid)."""
    train = df.sample(frac=0.7, random_state=0)
    valid = df.drop(train.index)
    low, high = train.min(axis=0), train.max(axis=0)
    train, valid = (train - low) / (high - low), (valid - low) / (high - low)
    train, valid = train.dropna(axis=1), valid.dropna(axis=1)
    return (train.drop(target, axis=1), train[target]), (valid.drop(target, axis=1), valid[target])


def red_wine(data_dir):
    return course_split(pd.read_csv(Path(data_dir) / "red-wine.csv"), "quality")


def red_wine_classes(data_dir):
    """Red wine with its quality (3 to 8) as classes: the course's scaled features, the class index as target."""
    df = pd.read_csv(Path(data_dir) / "red-wine.csv")
    classes = {q: i for i, q in enumerate(sorted(df["quality"].unique()))}
    (X, _), (Xv, _) = course_split(df, "quality")
    return (X, df.loc[X.index, "quality"].map(classes)), (Xv, df.loc[Xv.index, "quality"].map(classes))


def ionosphere(data_dir):
    df = pd.read_csv(Path(data_dir) / "ion.csv", index_col=0)
    df["Class"] = df["Class"].map({"good": 0, "bad": 1})
    return course_split(df, "Class")


# (units, activation) of each Dense layer
WINE_3X512 = [(512, "relu"), (512, "relu"), (512, "relu"), (1, None)]
ION_4_4_1 = [(4, "relu"), (4, "relu"), (1, "sigmoid")]
WINE_CLASSES_3X512 = [(512, "relu"), (512, "relu"), (512, "relu"), (6, "softmax")]
