"""The first run and a warm start, as a new user meets them: README's first command (`nbtrain fit
data/houses.csv --target price_k --drop house_id`) in a fresh process on an empty Numba cache, then again with
the cache that run filled.

    python -m bench.first_run [--repeats 3] [--write bench/RESULTS.md]

Each run is a new process on a temporary NUMBA_CACHE_DIR (so the project's own cache is not touched). It reports
the compilations Numba's event API saw (count, and seconds with nested compilations counted once), the first
fit's seconds, the seconds from before `import nbtrain` to the start and to the end of the first epoch, the whole
process's wall time and its peak RSS.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # as in bench.common, which imports nbtrain: a child must not

COMMAND = "nbtrain fit data/houses.csv --target price_k --drop house_id"


def child(out):
    """One run of README's first command in this process; prints its figures as one JSON line."""
    start = time.perf_counter()
    import nbtrain.cli  # noqa: F401  (timed: the import is part of every start; the command line's Numba settings)
    imported = time.perf_counter()
    import resource
    from numba.core import event
    from nbtrain.callbacks import Callback
    from nbtrain.tabular.fit import fit_table
    from nbtrain.tabular.options import FitOptions

    class Compiles(event.Listener):
        """Counts compilations and their wall seconds, a compilation nested in another counted once."""
        count, seconds, depth = 0, 0.0, 0

        def on_start(self, ev):
            if self.depth == 0:
                self.began = time.perf_counter()
            self.depth += 1
            self.count += 1

        def on_end(self, ev):
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - self.began

    class FirstEpoch(Callback):
        begin = end = None

        def on_epoch_begin(self, epoch, logs=None):
            self.begin = self.begin or time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.end = self.end or time.perf_counter()

    compiles, first = Compiles(), FirstEpoch()
    event.register("numba:compile", compiles)
    os.chdir(ROOT)
    fit_start = time.perf_counter()
    result = fit_table(FitOptions(data="data/houses.csv", target="price_k", drop=("house_id",)), out=out,
                       callbacks=[first])
    done = time.perf_counter()
    print(json.dumps(dict(import_s=imported - start, first_epoch_begin_s=first.begin - start,
                          first_epoch_end_s=first.end - start, fit_s=done - fit_start, compiles=compiles.count,
                          compile_s=compiles.seconds, epochs=len(result.outcome.history["loss"]),
                          rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def run(cache, out):
    """One child process on the cache folder `cache`; its figures with the process's wall seconds added."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.first_run", "--child", out], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), process_s=wall)


def main():
    from bench.common import machine, parser
    args = parser(__doc__, "append the results to this markdown file")
    args.add_argument("--repeats", type=int, default=3, help="warm runs after the cold one [%(default)s]")
    args = args.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "numba-cache")
        runs = [("cold", run(cache, os.path.join(tmp, "cold")))]
        runs += [(f"warm {i + 1}", run(cache, os.path.join(tmp, f"warm{i}"))) for i in range(args.repeats)]
    lines = [f"Machine: {machine()}", f"Command: `{COMMAND}` (README's first command), in a new process each",
             "", "| run | compilations | compile s | first fit s | epochs | import s | to first epoch s "
             "| to end of first epoch s | process s | peak RSS MB |", "| --- |" + " --- |" * 9]
    for name, r in runs:
        lines.append(f"| {name} | {r['compiles']} | {r['compile_s']:.2f} | {r['fit_s']:.2f} | {r['epochs']} | "
                     f"{r['import_s']:.3f} | {r['first_epoch_begin_s']:.3f} | {r['first_epoch_end_s']:.3f} | "
                     f"{r['process_s']:.2f} | {r['rss_mb']:.0f} |")
    report = "\n".join(lines)
    print(report)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n## First run and warm start (`python -m bench.first_run`)\n\n" + report + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # one run, before anything imports nbtrain
        child(sys.argv[2])
    else:
        main()
