"""LLVM's optimization level (NUMBA_OPT) against compile time and run time, each level in fresh processes on an
empty cache of its own, in one run:

    python -m bench.opt_level [--data ../shared/data] [--levels 1 2 3] [--repeats 3] [--write bench/RESULTS.md]

For each level: the compile seconds (Numba's event API, nested compilations counted once) of README's first command
on the empty cache, then in a second process on that cache the course's ionosphere fit (1000 epochs with
validation) and red wine 3x512 (seconds per epoch), best of `repeats`. NUMBA_OPT is read when Numba starts, so a
level is only ever set for a whole process (nbtrain never sets it on import).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT

COLD = """
import json, time
from numba.core import event
from nbtrain.tabular.fit import fit_table
from nbtrain.tabular.options import FitOptions
seconds, depth, began = [0.0], [0], [0.0]
class Compiles(event.Listener):
    def on_start(self, ev):
        began[0] = time.perf_counter() if depth[0] == 0 else began[0]
        depth[0] += 1
    def on_end(self, ev):
        depth[0] -= 1
        seconds[0] += time.perf_counter() - began[0] if depth[0] == 0 else 0.0
event.register("numba:compile", Compiles())
fit_table(FitOptions(data="data/houses.csv", target="price_k", drop=("house_id",), epochs=1), out={out!r})
print(json.dumps(dict(compile_s=seconds[0])))
"""

WARM = """
import json
from bench import workloads
from bench.common import best_of
from bench.course import nbtrain_fit
ion, wine = workloads.ionosphere({data!r}), workloads.red_wine({data!r})
nbtrain_fit(ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 2)
nbtrain_fit(wine, workloads.WINE_3X512, "mae", 256, 1)
ion_s = best_of(lambda: nbtrain_fit(ion, workloads.ION_4_4_1, "binary_crossentropy", 512, 1000), {repeats})
wine_s = best_of(lambda: nbtrain_fit(wine, workloads.WINE_3X512, "mae", 256, 10), {repeats}) / 10
print(json.dumps(dict(ion_s=ion_s, wine_ms=wine_s * 1e3)))
"""


def child(code, level, cache):
    env = dict(os.environ, NUMBA_OPT=str(level), NUMBA_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    from bench.common import machine, parser
    args = parser(__doc__, "append the results to this markdown file")
    args.add_argument("--levels", type=int, nargs="+", default=[1, 2, 3])
    args.add_argument("--repeats", type=int, default=3)
    args = args.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for level in args.levels:
            cache = os.path.join(tmp, f"cache{level}")
            start = time.perf_counter()
            cold = child(COLD.format(out=os.path.join(tmp, f"run{level}")), level, cache)
            cold_s = time.perf_counter() - start
            warm = child(WARM.format(data=args.data, repeats=args.repeats), level, cache)
            rows.append(f"| {level} | {cold['compile_s']:.2f} | {cold_s:.2f} | {warm['ion_s'] * 1e3:.1f} | "
                        f"{warm['wine_ms']:.1f} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report = "\n".join([f"Machine: {machine()}; load average {load:.2f} at the end",
                        "Command: `python -m bench.opt_level` (each level: a fresh cache, then a warm process)", "",
                        "| NUMBA_OPT | compile s (README's command, cold) | cold process s | ionosphere, 1000 epochs ms "
                        "| red wine 3x512, ms per epoch |", "| --- | --- | --- | --- | --- |", *rows])
    print(report)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n## LLVM's optimization level (`python -m bench.opt_level`, issue 24 item 3)\n\n" + report + "\n")


if __name__ == "__main__":
    main()
