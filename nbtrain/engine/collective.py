"""Sums across processes for data-parallel training, callable from the compiled epoch.

`comm` is None in a single process, or under MPI an int64 array (distributed.Group.handle): [rank, size, the
address of MPI_Allreduce, the handles of MPI_COMM_WORLD, MPI_FLOAT, MPI_DOUBLE and MPI_SUM, the byte size of a
handle]. Which implementation a call compiles to is decided by comm's *type* when Numba compiles the caller: with
None every function here compiles to (almost) nothing and never imports MPI; with an array, MPI_Allreduce is called
through the address the array holds (`_allreduce`), so the compiled code holds no pointer of this process and is
cached like the rest: an MPI fit compiles its epoch once per machine, not once per run.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import cache  # noqa: F401  (first: the kernels below cache in the per-user folder)

RANK, SIZE, ALLREDUCE, COMM_WORLD, FLOAT, DOUBLE, SUM, HANDLE_BYTES = range(8)  # the slots of an MPI comm array


def _is_none(comm):
    return comm is None or isinstance(comm, types.NoneType)


def _allreduce_call(handle_bits):
    """An intrinsic calling int MPI_Allreduce(const void *send, void *recv, int count, MPI_Datatype, MPI_Op, MPI_Comm)
    at the address `fn` (int64), the handles passed as ints of handle_bits bits (MPICH) or as pointers (Open MPI)."""
    @intrinsic
    def call(typingctx, fn, send, recv, count, dtype, op, comm):
        signature = types.int32(types.int64, types.intp, types.intp, types.int64, types.int64, types.int64,
                                types.int64)

        def codegen(context, builder, sig, args):
            byte_pointer, int32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            handle = int32 if handle_bits == 32 else byte_pointer
            function = ir.FunctionType(int32, [byte_pointer, byte_pointer, int32, handle, handle, handle])
            target = builder.inttoptr(args[0], function.as_pointer())
            as_handle = (lambda v: builder.trunc(v, int32)) if handle_bits == 32 else \
                (lambda v: builder.inttoptr(v, byte_pointer))
            return builder.call(target, [builder.inttoptr(args[1], byte_pointer), builder.inttoptr(args[2], byte_pointer),
                                         builder.trunc(args[3], int32), as_handle(args[4]), as_handle(args[5]),
                                         as_handle(args[6])])
        return signature, codegen
    return call


_allreduce_int_handles, _allreduce_pointer_handles = _allreduce_call(32), _allreduce_call(64)


def allreduce_sum(buf, comm):
    """Replace buf (float32 or float64, 1-D, contiguous) by its element-wise sum over all ranks."""
    raise TypeError("allreduce_sum is only callable from compiled code")


@overload(allreduce_sum)
def _allreduce_sum(buf, comm):
    if _is_none(comm):
        return lambda buf, comm: None
    kind = FLOAT if buf.dtype == types.float32 else DOUBLE

    def impl(buf, comm):
        recv = np.empty_like(buf)
        args = (comm[ALLREDUCE], buf.ctypes.data, recv.ctypes.data, buf.size, comm[kind], comm[SUM], comm[COMM_WORLD])
        if comm[HANDLE_BYTES] == 4:
            failed = _allreduce_int_handles(*args)
        else:
            failed = _allreduce_pointer_handles(*args)
        if failed:
            raise RuntimeError("MPI_Allreduce failed")
        buf[:] = recv
    return impl


@njit(cache=True)
def share(n, comm):
    """(start, stop) of this rank's contiguous share of n rows: ranks take nearly equal consecutive parts."""
    if comm is None:
        return 0, n
    rank, size = comm[RANK], comm[SIZE]
    return rank * n // size, (rank + 1) * n // size
