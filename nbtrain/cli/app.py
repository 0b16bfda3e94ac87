"""The `nbtrain` Typer app and what every command shares: the version flag, the one way an error a user can cause
ends (one line on stderr, exit code 2, no traceback), and console output. The commands live beside it, one module
per family (fit, use, sweep); pandas, Numba and matplotlib are imported inside them so that --help starts fast."""
import contextlib
import math
import warnings
from typing import Annotated

import typer
from typer.core import TyperCommand

from ..distributed import launched_rank
from ..errors import DeviceError, DistributedError, InputError, ModelFileError
from ..text import printable
from ..version import __version__

app = typer.Typer(
    help="Train and use neural networks on tabular data from the command line.\n\n"
         "Start with [bold]nbtrain fit DATA --target COLUMN[/bold]; see [bold]nbtrain COMMAND --help[/bold].",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_show_locals=False)
USER_ERRORS = (InputError, ModelFileError, DeviceError, DistributedError)
USAGE_ERROR = typer.BadParameter.__mro__[1]  # click's UsageError, as the click that Typer runs on defines it


class Command(TyperCommand):
    """Every command's help and usage errors as a click user knows them: DATA (not {DATA}) in the usage line, no
    type shown for a flag, and a bad or missing option in one plain line (exit 2) that lists the valid values."""

    def collect_usage_pieces(self, ctx):
        return [piece.strip("{}") for piece in super().collect_usage_pieces(ctx)]

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""  # what the help shows instead of <bool>
        return params

    def parse_args(self, ctx, args):
        try:
            rest = super().parse_args(ctx, args)
            for param in self.get_params(ctx):  # click's ranges let nan and inf through
                value = ctx.params.get(param.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise typer.BadParameter(f"{value} is not a finite number.", ctx=ctx, param=param)
        except USAGE_ERROR as exc:  # one line, as every other error: the problem, then where the help is
            if isinstance(exc, typer.BadParameter) and hasattr(exc.__cause__, "errors") and exc.param is not None:
                exc.message = plain_message(exc.__cause__.errors()[0], exc.param)
            fail(f"{exc.format_message()} (see: {ctx.command_path} --help)")
        return rest


NUMBER_NAMES = {"int_parsing": "integer", "float_parsing": "number", "bool_parsing": "boolean"}
RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def plain_message(error, param):
    """A value that Typer's validation rejected, in click's words: "'mea' is not one of mae, mse, huber.",
    "0 is not in the range x>=1.", "'x' is not a valid integer." (not the validator's own text)."""
    value, kind = error.get("input"), error.get("type")
    choices = param.type_descriptor.choices
    if choices:
        return f"{value!r} is not one of {', '.join(map(str, choices))}."
    if kind in RANGE_ERRORS:
        low, high = param.min, param.max
        bounds = f"{low}<=x<={high}" if low is not None and high is not None else \
            f"x>={low}" if low is not None else f"x<={high}"
        return f"{value} is not in the range {bounds}."
    if kind in NUMBER_NAMES:
        return f"{value!r} is not a valid {NUMBER_NAMES[kind]}."
    return str(error.get("ctx", {}).get("error", error.get("msg")))


def command(*args, **kwargs):
    """app.command with the Command class: how every nbtrain command is declared."""
    return app.command(*args, cls=Command, **kwargs)


def fail(message):
    """One line on stderr and exit code 2: how every error a user can cause ends (under mpiexec every rank
    exits, and rank 0 alone prints)."""
    if launched_rank() == 0:
        typer.echo(f"Error: {printable(' '.join(str(message).split()))}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def user_errors():
    """Bad data, bad model files and unwritable outputs end in fail(), without a traceback."""
    try:
        yield
    except USER_ERRORS as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else exc)


def make_console(stderr=False, muted=False):
    from rich.console import Console
    return Console(stderr=stderr, highlight=False, quiet=muted)


def say(console, text):
    """A plain line (no rich markup, no control characters from data, never wrapped mid-word into a table-like
    layout)."""
    console.print(printable(text, keep="\n"), markup=False, soft_wrap=True)


def cell(value):
    """Text from data or a model file for a rich table (a cell, a title): shown as it is, never read as markup."""
    from rich.text import Text
    return Text(printable(value))


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """A Python warning under a command (a column of numbers read as text, ...) as one line on stderr."""
    if launched_rank() == 0:
        typer.echo(f"Warning: {printable(' '.join(str(message).split()))}", err=True)


def _version(value: bool):
    if value:
        typer.echo(f"nbtrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """Train and use neural networks on tabular data from the command line."""
    warnings.showwarning = _warning_line
