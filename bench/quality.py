"""How good `nbtrain fit`'s defaults are, and how fast: the command line's default recipe (through
tabular.fit.fit_table, as `nbtrain fit` runs it) against the previous recipe (`--recipe course`),
scikit-learn's HistGradientBoosting with its defaults and scikit-learn's MLP pipeline (imputation, standard
scaling, one-hot encoding, MLPRegressor/MLPClassifier with their defaults), on the shared tables: California
housing (regression), red wine as a regression and as 6 classes, ionosphere (binary). Each seed makes one 80/20
split of the table (the same test rows for every method); nbtrain fits the 80% as `nbtrain fit` would (its own
validation split inside it) and every method is scored on the 20%: RMSE and MAE, or accuracy and log loss, and
the seconds of the fit (reading and preprocessing included; nbtrain's kernels already compiled by an untimed
1-epoch fit of each table and recipe). --synthetic times the default recipe on a generated 30,000-row table of
a dozen mixed columns.

    python -m bench.quality --write bench/RESULTS.md
    python -m bench.quality --tables california --methods default --seeds 0 --set epochs=40   (tuning)
"""
import ast
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .common import machine, parser, write_section

# name: (file, target, task, columns to drop)
TABLES = {"california": ("california-housing.csv", "median_house_value", "regression", ()),
          "wine": ("red-wine.csv", "quality", "regression", ()),
          "wine-classes": ("red-wine.csv", "quality", "multiclass", ()),
          "ionosphere": ("ion.csv", "Class", "binary", ())}  # read as nbtrain reads it: its first column is the index
METHODS = ("default", "course", "hgb", "mlp")
SYNTHETIC_ROWS = 30_000


def split(frame, seed):
    """(training rows, test rows): a seeded 80/20 split, the same for every method."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(0.8 * len(frame)))
    return frame.iloc[order[:cut]], frame.iloc[order[cut:]]


def fit_nbtrain(recipe, overrides, train, test, target, task, drop, folder, epochs=None):
    """(seconds, Scores on `test`) of fit_table on `train` written as a CSV, as `nbtrain fit --recipe recipe`."""
    from nbtrain.tabular.apply import evaluation
    from nbtrain.tabular.fit import fit_table
    from nbtrain.tabular.options import FitOptions
    path = Path(folder) / "train.csv"
    train.to_csv(path, index=False)
    options = replace(FitOptions(data=str(path), target=target, task=task, recipe=recipe, drop=drop), **overrides)
    if epochs:
        options = replace(options, epochs=epochs)
    started = time.perf_counter()
    result = fit_table(options, out=Path(folder) / f"run-{time.monotonic_ns()}")
    seconds = time.perf_counter() - started
    return seconds, evaluation(result.model, result.prep.preprocessing, test, "the test rows", [])[1]


def _encoded(frames, target, drop):
    """Features of the frames for scikit-learn: text columns as category codes of the first frame's levels, with
    which columns are text."""
    import pandas as pd
    first = frames[0].drop(columns=[target, *drop])
    text = [c for c in first.columns if not pd.api.types.is_numeric_dtype(first[c])]
    out = []
    for frame in frames:
        x = frame.drop(columns=[target, *drop]).copy()
        for c in text:
            x[c] = pd.Categorical(x[c], categories=sorted(first[c].dropna().unique())).codes.astype(float)
            x.loc[x[c] < 0, c] = np.nan
        out.append(x)
    return out, [c in text for c in first.columns]


def fit_sklearn(method, train, test, target, task, drop):
    """(seconds, Scores on `test`) of HistGradientBoosting (defaults; text columns as its categorical features) or
    scikit-learn's MLP pipeline (median imputation and standard scaling, one-hot text, MLP defaults)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from nbtrain.tabular.apply import classifier_scores, regression_scores
    started = time.perf_counter()
    (x, x_test), text = _encoded([train, test], target, drop)
    regression = task == "regression"
    if method == "hgb":
        model = (HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier)(
            categorical_features=text, random_state=0)
    else:
        numeric = [i for i, t in enumerate(text) if not t]
        prep = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                                  ("text", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                         OneHotEncoder(handle_unknown="ignore")),
                                   [i for i, t in enumerate(text) if t])])
        model = make_pipeline(prep, (MLPRegressor if regression else MLPClassifier)(random_state=0))
    y = train[target].to_numpy()
    model.fit(x.to_numpy(), y)
    seconds = time.perf_counter() - started
    if regression:
        return seconds, regression_scores(model.predict(x_test.to_numpy()), test[target].to_numpy(float))
    classes = list(model.classes_)
    codes = np.array([classes.index(v) for v in test[target]])
    return seconds, classifier_scores(codes, model.predict_proba(x_test.to_numpy()))


def synthetic(seed=0):
    """A generated regression table of SYNTHETIC_ROWS rows: 8 numeric columns (two skewed, one with gaps) and 4
    text columns (3 to 30 levels), the target a nonlinear function of both with noise."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    n = SYNTHETIC_ROWS
    numbers = rng.normal(size=(n, 8))
    numbers[:, 0] = np.exp(numbers[:, 0])
    numbers[:, 1] = rng.pareto(3.0, n)
    levels = [3, 7, 12, 30]
    codes = [rng.integers(0, k, n) for k in levels]
    y = (np.sin(numbers[:, 2]) * 3 + numbers[:, 3] * numbers[:, 4] + np.log1p(numbers[:, 0]) + 0.5 * numbers[:, 1]
         + sum((c % 3 - 1) * 0.8 for c in codes) + rng.normal(scale=0.5, size=n))
    frame = pd.DataFrame(numbers, columns=[f"x{i}" for i in range(8)])
    frame.loc[rng.random(n) < 0.05, "x5"] = np.nan
    for i, c in enumerate(codes):
        frame[f"c{i}"] = [f"level{v}" for v in c]
    frame["y"] = y
    return frame


def table_rows(results):
    """Markdown rows: per table and method, each metric's mean over the seeds (range in brackets) and seconds."""
    rows = []
    for (table, method), runs in results.items():
        names = ["rmse", "mae"] if "rmse" in runs[0][1].metrics else ["accuracy", "log_loss"]
        cells = []
        for name in names:
            values = [scores.metrics[name] for _, scores in runs]
            digits = 4 if np.mean(values) < 100 else 0
            low, mean, high = (f"{v:,.{digits}f}" for v in (min(values), np.mean(values), max(values)))
            cells.append(f"{name} {mean} ({low} to {high})")
        seconds = [s for s, _ in runs]
        rows.append(f"| {table} | {method} | {'; '.join(cells)} | {np.mean(seconds):.1f} ({min(seconds):.1f} to "
                    f"{max(seconds):.1f}) |")
    return rows


def main():
    from nbtrain.tabular.reading import read_table
    from nbtrain.utils import set_random_seed  # noqa: F401 (imports numba's first, outside the timed fits)
    args = parser(__doc__)
    args.add_argument("--tables", default=",".join(TABLES), help="comma-separated, of " + ", ".join(TABLES))
    args.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    args.add_argument("--seeds", default="0,1,2", help="the splits' seeds [%(default)s]")
    args.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a FitOptions field for the default recipe's fits (tuning), e.g. epochs=40")
    args.add_argument("--synthetic", action="store_true", help="also time the default recipe on the 30,000-row "
                                                               "synthetic table")
    opts = args.parse_args()
    overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in opts.set)}
    seeds = [int(s) for s in opts.seeds.split(",")]
    methods = opts.methods.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in opts.tables.split(","):
            file, target, task, drop = TABLES[name]
            frame = read_table(Path(opts.data) / file)
            for method in methods:
                if method in ("default", "course"):  # compile untimed
                    fit_nbtrain(method, {}, *split(frame, 0), target, task, drop, folder, epochs=1)
                for seed in seeds:
                    train, test = split(frame, seed)
                    if method in ("default", "course"):
                        run = fit_nbtrain(method, overrides if method == "default" else {}, train, test, target,
                                          task, drop, folder)
                    else:
                        run = fit_sklearn(method, train, test, target, task, drop)
                    results.setdefault((name, method), []).append(run)
                    print(name, method, seed, f"{run[0]:.1f} s", {k: round(v, 4) for k, v in run[1].metrics.items()},
                          flush=True)
        if opts.synthetic:
            frame = synthetic()
            fit_nbtrain("default", {}, *split(frame, 0), "y", "regression", (), folder, epochs=1)
            for seed in seeds:
                run = fit_nbtrain("default", overrides, *split(frame, seed), "y", "regression", (), folder)
                results.setdefault(("synthetic", "default"), []).append(run)
                print("synthetic default", seed, f"{run[0]:.1f} s", run[1].metrics, flush=True)
    with open("/proc/loadavg") as load:
        average = load.read().split()[0]
    text = "\n".join([f"`python -m bench.quality {' '.join(__import__('sys').argv[1:])}` on {machine()}; load "
                      f"average {average} at the end (other engineers' tests share the 2 cores). Seeds {opts.seeds} "
                      f"of an 80/20 split; mean (range) over the seeds; seconds of each fit.", "",
                      "| table | method | test quality | seconds |", "| --- | --- | --- | --- |",
                      *table_rows(results)])
    print(text)
    if opts.write:
        write_section(opts.write, "Quality of the defaults against trees and scikit-learn's MLP (bench/quality.py)",
                      text)


if __name__ == "__main__":
    main()
