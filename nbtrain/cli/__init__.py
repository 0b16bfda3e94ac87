"""The `nbtrain` command line: the Typer app (app) and its commands, one module per family: fit, use (predict,
evaluate, info), export (ONNX) and sweep; display (the epoch display) and ranks (MPI) serve fit."""
from . import fit, use, export, sweep  # noqa: F401, I001  (each adds its commands to the app; --help lists them in this order)
from .app import app

__all__ = ["app"]
