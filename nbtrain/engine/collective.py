"""Sums across processes for data-parallel training, callable from the compiled epoch.

`comm` is None in a single process or an int64 array [rank, size] under MPI. Which implementation a
call compiles to is decided by comm's *type* when Numba compiles the caller: with None every function
here compiles to (almost) nothing and never imports MPI, so the single-process kernels stay cacheable;
with an array, numba-mpi's allreduce is called. (numba-mpi functions use ctypes pointers, so Numba cannot
cache the MPI specializations: a distributed run compiles its epoch once per process.)
"""
import numpy as np
from numba import njit, types
from numba.extending import overload


def _is_none(comm):
    return comm is None or isinstance(comm, types.NoneType)


def allreduce_sum(buf, comm):
    """Replace buf (float32 or float64, 1-D, contiguous) by its element-wise sum over all ranks."""
    raise TypeError("allreduce_sum is only callable from compiled code")


@overload(allreduce_sum)
def _allreduce_sum(buf, comm):
    if _is_none(comm):
        return lambda buf, comm: None
    import numba_mpi

    if buf.dtype == types.float32:
        def impl(buf, comm):
            # numba-mpi 1.3 maps no float32 type: sum the floats in pairs as complex64 (exact float32 sums)
            n = buf.size
            send = np.zeros(n + (n & 1), np.float32)
            send[:n] = buf
            recv = np.empty_like(send)
            if numba_mpi.allreduce(send.view(np.complex64), recv.view(np.complex64), numba_mpi.Operator.SUM):
                raise RuntimeError("MPI_Allreduce failed")
            buf[:] = recv[:n]
        return impl

    def impl(buf, comm):
        recv = np.empty_like(buf)
        if numba_mpi.allreduce(buf, recv, numba_mpi.Operator.SUM):
            raise RuntimeError("MPI_Allreduce failed")
        buf[:] = recv
    return impl


@njit(cache=True)
def share(n, comm):
    """(start, stop) of this rank's contiguous share of n rows: ranks take nearly equal consecutive parts."""
    if comm is None:
        return 0, n
    rank, size = comm[0], comm[1]
    return rank * n // size, (rank + 1) * n // size
