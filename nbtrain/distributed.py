"""Data-parallel training over MPI: the process group, and the agreements every rank must reach (the seed,
the starting weights, the data, errors) so that P processes give the model one process gives.

Imported only for distribute="mpi": mpi4py initializes MPI when it is imported.
"""
import hashlib
import os

import numpy as np

from .errors import DistributedError, InputError
from .utils import available_cores, limit_blas_threads

RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")


def launched_rank():
    """This process's rank as the MPI launcher announced it (0 when not launched by mpiexec); needs no MPI."""
    return next((int(os.environ[v]) for v in RANK_VARIABLES if v in os.environ), 0)


class Group:
    """MPI_COMM_WORLD with the few collective steps a distributed fit needs."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise DistributedError(f"distribute='mpi' needs mpi4py and an MPI library ({exc}): "
                                   "pip install 'nbtrain[mpi]'") from None
        self.mpi = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.handle = self._handle()  # what the compiled epoch takes as `comm`
        self.blas_threads = self._share_cores()

    def _handle(self):
        """The int64 array the compiled epoch takes as comm (engine/collective.py): rank, size, MPI_Allreduce's
        address in this process and the handles it needs, read at run time so that the compiled code is cached."""
        import ctypes
        MPI = self.mpi
        library = ctypes.CDLL(_mpi_library(), mode=ctypes.RTLD_GLOBAL)
        address = ctypes.cast(library.MPI_Allreduce, ctypes.c_void_p).value
        handles = [MPI._handleof(h) for h in (MPI.COMM_WORLD, MPI.FLOAT, MPI.DOUBLE, MPI.SUM)]
        return np.array([self.rank, self.size, address, *handles, MPI._sizeof(MPI.Comm)], np.int64)

    def _share_cores(self):
        """Give each rank its share of this host's cores for BLAS (default pools oversubscribe them: two ranks
        on two cores made an epoch 700 times slower)."""
        ranks_here = self.comm.Split_type(self.mpi.COMM_TYPE_SHARED).Get_size()
        threads = max(1, available_cores() // ranks_here)
        self._blas_limit = limit_blas_threads(threads)
        return threads

    def broadcast(self, value):
        """Rank 0's value (any picklable object) on every rank."""
        return self.comm.bcast(value, root=0)

    def broadcast_array(self, array):
        """Overwrite the contiguous `array` in place with rank 0's copy."""
        self.comm.Bcast(array, root=0)

    def identical(self, *arrays):
        """Whether every rank holds the same bytes in `arrays`."""
        digest = hashlib.sha256()
        for a in arrays:  # hashed in place: no copy of the training matrix
            digest.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8))
        return len(set(self.comm.allgather(digest.hexdigest()))) == 1

    def first_error(self, error):
        """Every rank passes its error (or None); all get the first one, as 'rank r: message', or None."""
        errors = self.comm.allgather(None if error is None else str(error))
        return next((f"rank {r}: {e}" if self.size > 1 else e for r, e in enumerate(errors) if e is not None), None)

    def run(self, action, everywhere=True):
        """action() on every rank (everywhere=False: on rank 0 alone, its result broadcast to all); an InputError
        on any rank stops every rank with the first one's message."""
        result = error = None
        if everywhere or self.rank == 0:
            try:
                result = action()
            except InputError as exc:
                error = exc
        message = self.first_error(error)
        if message:
            raise InputError(message)
        return result if everywhere else self.broadcast(result)

    def abort(self, code=2):
        """End every rank of the job (for errors that happen where the other ranks cannot hear of them)."""
        self.comm.Abort(code)


def _mpi_library():
    """The path of the MPI library mpi4py runs on (loaded in this process), for MPI_Allreduce's address."""
    import psutil
    from pathlib import Path
    for mapped in psutil.Process().memory_maps():
        stem = Path(mapped.path).name
        if stem.startswith("lib") and any(f"{name}." in stem for name in ("mpich", "mpi", "impi", "msmpi")):
            return mapped.path
    raise DistributedError("cannot find the MPI library mpi4py loaded (libmpi or libmpich)")
