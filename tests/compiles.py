"""Fits that tests/test_compile.py runs in a fresh process, `python tests/compiles.py OUT.json MODEL...`, to count
what Numba compiles: for each model in turn, the qualified names of the functions compiled while it was fitted
(Numba's event API), written as {model: {"names": [...], "key": its configuration's key or null}} to OUT.json. The models are README's first command (`readme`),
the course's red wine and ionosphere models, a multiclass model, and a small model (`small`) and the same with one
activation more (`small-tanh`)."""
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from numba.core import event

ROOT = Path(__file__).resolve().parent.parent


def readme():
    from nbtrain.tabular.fit import fit_table
    from nbtrain.tabular.options import FitOptions
    with tempfile.TemporaryDirectory() as out:
        fit_table(FitOptions(data=str(ROOT / "data" / "houses.csv"), target="price_k", drop=("house_id",), epochs=1),
                  out=os.path.join(out, "run"))


def small(extra_activation=False):
    """A small regression through the API; with extra_activation, the same with a tanh layer added."""
    from nbtrain import Sequential, layers
    stack = [layers.Dense(8, activation="relu", input_shape=[5])]
    stack += [layers.Dense(8, activation="tanh")] if extra_activation else []
    model = Sequential(stack + [layers.Dense(1)])
    model.compile(optimizer="adam", loss="mae")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(64, 5)), rng.normal(size=64), validation_split=0.25, batch_size=16, epochs=1,
              verbose=0, seed=0)
    model.predict(rng.normal(size=(4, 5)))
    return model._configured[1].key


def course(name):
    sys.path.append(str(ROOT))  # after the nbtrain being tested (PYTHONPATH may name a copy of the package)
    from bench import workloads
    from nbtrain import Sequential, layers
    data = os.environ["NBTRAIN_DATA_DIR"]
    stack, split, loss, metrics = {
        "red-wine": (workloads.WINE_3X512, workloads.red_wine, "mae", []),
        "ionosphere": (workloads.ION_4_4_1, workloads.ionosphere, "binary_crossentropy", ["binary_accuracy"]),
        "multiclass": (workloads.WINE_CLASSES_3X512, workloads.red_wine_classes, "sparse_categorical_crossentropy",
                       ["accuracy"]),
    }[name]
    (X, y), (Xv, yv) = split(data)
    model = Sequential([layers.Dense(units, activation=act) for units, act in stack])
    model.compile(optimizer="adam", loss=loss, metrics=metrics)
    model.fit(X, y, validation_data=(Xv, yv), batch_size=256, epochs=1, verbose=0, seed=0)
    model.predict(Xv)


class Names(event.Listener):
    def __init__(self):
        self.names = []

    def on_start(self, ev):
        self.names.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass


if __name__ == "__main__":
    out, models = sys.argv[1], sys.argv[2:]
    found = {}
    for model in models:
        listener = Names()
        with event.install_listener("numba:compile", listener):
            key = small(extra_activation=model == "small-tanh") if model.startswith("small") else None
            if model == "readme":
                readme()
            elif key is None:
                course(model)
        found[model] = {"names": listener.names, "key": key}
    Path(out).write_text(json.dumps(found))
