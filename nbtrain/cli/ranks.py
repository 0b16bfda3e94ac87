"""The command line under mpiexec: the process group of `--distributed mpi`, and a crash on one rank ending the
whole job instead of leaving the others waiting in a collective."""
import contextlib

import typer

from .app import USER_ERRORS


def process_group(distributed):
    """The MPI process group of `fit --distributed mpi` (None for one process)."""
    if distributed == "none":
        return None
    from ..distributed import Group
    return Group()


@contextlib.contextmanager
def abort_job_on_crash(group):
    """Under MPI, an unexpected error on one rank would leave the others waiting in a collective forever:
    report it and abort the whole job."""
    try:
        yield
    except (typer.Exit, *USER_ERRORS, OSError):
        raise
    except Exception as exc:
        if group is None:
            raise
        typer.echo(f"Error: rank {group.rank}: {type(exc).__name__}: {exc}", err=True)
        group.abort(2)
