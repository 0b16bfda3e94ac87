"""The `nbtrain` command line: the Typer app (app) and its commands, one module per family: fit, use (predict,
evaluate, info), export (ONNX) and sweep; display (the epoch display) and ranks (MPI) serve fit."""
import os

# LLVM's optimization level 1 in the processes the command line owns (its own, and the sweep workers and MPI ranks it
# starts, which inherit it): 6 to 12% less compile time than Numba's default 3 at the same training speed within
# noise (`python -m bench.opt_level`, bench/RESULTS.md). Read when Numba starts, so set before anything imports it;
# a level the user set is kept, and `import nbtrain` alone never sets it.
os.environ.setdefault("NUMBA_OPT", "1")

from . import fit, use, export, sweep  # noqa: E402, F401, I001  (each adds its commands to the app; --help lists them in this order)
from .app import app  # noqa: E402

__all__ = ["app"]
