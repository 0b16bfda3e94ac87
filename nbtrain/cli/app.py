"""The `nbtrain` Typer app and what every command shares: the version flag, the one way an error a user can cause
ends (one line on stderr, exit code 2, no traceback), and console output. The commands live beside it, one module
per family (fit, use, sweep); pandas, Numba and matplotlib are imported inside them so that --help starts fast."""
import contextlib
from typing import Annotated

import typer

from ..distributed import launched_rank
from ..errors import DeviceError, DistributedError, InputError, ModelFileError
from ..version import __version__

app = typer.Typer(
    help="Train and use neural networks on tabular data from the command line.\n\n"
         "Start with [bold]nbtrain fit DATA --target COLUMN[/bold]; see [bold]nbtrain COMMAND --help[/bold].",
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_show_locals=False)
USER_ERRORS = (InputError, ModelFileError, DeviceError, DistributedError)


def fail(message):
    """One line on stderr and exit code 2: how every error a user can cause ends (under mpiexec every rank
    exits, and rank 0 alone prints)."""
    if launched_rank() == 0:
        typer.echo(f"Error: {' '.join(str(message).split())}", err=True)
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
    """A plain line (no rich markup, never wrapped mid-word into a table-like layout)."""
    console.print(text, markup=False, soft_wrap=True)


def _version(value: bool):
    if value:
        typer.echo(f"nbtrain {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False):
    """Train and use neural networks on tabular data from the command line."""
