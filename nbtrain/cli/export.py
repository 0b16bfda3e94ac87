"""`nbtrain export`: a model from nbtrain fit, with its preprocessing, as one ONNX file any runtime can serve."""
import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from .app import command, make_console, say, user_errors
from .options import ModelFile

EXPORT_HELP = (
    "Export a model from nbtrain fit, preprocessing included, as an ONNX graph.\n\n"
    "The graph takes the raw table's feature columns as named inputs, each of shape (rows, 1): numbers as float64 "
    "(NaN for missing), text as strings (\"\" for missing); it imputes, scales and one-hot encodes as nbtrain "
    "does, and returns what nbtrain predict returns: prediction (the value in the target's units, or the label), "
    "and probability (binary, of the label coded 1) or probabilities (multiclass, one column per class in the "
    "order nbtrain info lists them). Opsets: ai.onnx 17, ai.onnx.ml 3. Needs the onnx extra.")


@command(help=EXPORT_HELP, epilog="[bold]Examples[/bold] (after nbtrain fit --help's)\n\n"
         "  nbtrain export runs/houses/model.nbt --onnx houses.onnx")
def export(
    model: ModelFile,
    onnx: Annotated[Path, typer.Option("--onnx", metavar="FILE", help="The ONNX file to write (replaced if it "
                                                                      "exists; - for standard output).")],
):
    with user_errors():
        from ..tabular.export import write_table_model
        from ..tabular.runfolder import load_run
        net, pre = load_run(model)
        to_stdout = str(onnx) == "-"
        try:
            if to_stdout:
                from ..files import write_stream
                write_stream(lambda tmp: write_table_model(net, pre, tmp),
                             lambda: contextlib.nullcontext(sys.stdout.buffer), "standard output")
            else:
                write_table_model(net, pre, onnx)
        except ImportError as exc:
            from ..errors import InputError
            raise InputError(str(exc)) from None
        say(make_console(stderr=True), f"Wrote {'the model to standard output' if to_stdout else onnx}: inputs "
                                       f"{', '.join(f.name for f in pre.features)}")
