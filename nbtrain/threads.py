"""How many BLAS threads nbtrain's matrix products use, set around its own work only (fit, evaluate, predict) and
restored when that ends: a count given by hand (the `threads` argument, or the NBTRAIN_THREADS variable), or else
the cores that other work leaves free, read when the work starts and again between epochs. OpenBLAS's threads spin
while they wait, so a two-thread product on cores that other processes also run waits for a thread that is not
running: beside two busy processes on 2 cores a 3x512 epoch took 18 times its quiet time with two threads and 1.3
times with one (bench/contention.py)."""
import glob
import os
import threading
import time

from .errors import InputError
from .utils import available_cores

VARIABLE = "NBTRAIN_THREADS"  # the BLAS threads of every fit, evaluate and predict that is given none
PROBE_SECONDS = 1.0  # the automatic count follows the load at most this often (a reading serves that long)
# OpenBLAS runs a product of at most this many multiply-adds (M x N x K) on one thread whatever the setting
# (interface/gemm.c: SMP_THRESHOLD_MIN x GEMM_MULTITHREAD_THRESHOLD), so smaller work needs no policy
ONE_THREAD_WORK = 65536 * 4


def requested(threads=None):
    """The thread count asked for by hand: `threads`, else NBTRAIN_THREADS; None (or "auto") for the automatic one."""
    source = "threads"
    if threads is None:
        threads, source = os.environ.get(VARIABLE, "").strip() or None, VARIABLE
    if threads is None or threads == "auto":
        return None
    try:
        count = int(threads)
    except (TypeError, ValueError):
        count = 0
    if isinstance(threads, bool) or count < 1 or str(count) != str(threads).strip():
        raise InputError(f"{source} must be a positive whole number of BLAS threads or 'auto', got {threads!r}")
    return count


def others_running():
    """Threads of other processes running or waiting for a core right now: the kernel's count of runnable threads
    (/proc/loadavg) less this process's own (its idle OpenBLAS workers spin, and count); 0 where /proc is missing."""
    try:
        with open("/proc/loadavg") as file:
            runnable = int(file.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    own = 0
    for path in glob.glob("/proc/self/task/*/stat"):
        try:
            with open(path) as file:
                own += file.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):  # a thread that ended meanwhile
            pass
    return max(0, runnable - own)


def free_cores():
    """The cores of this process's share that other processes leave free now (at least 1)."""
    return max(1, min(available_cores(), (os.cpu_count() or 1) - others_running()))


def recent_free_cores():
    """free_cores(), read again when the last reading is PROBE_SECONDS old (calls in a loop, predict on one row
    after another, pay for a reading once a second)."""
    now = time.monotonic()
    if _shared["read"] is None or now - _shared["read"][0] >= PROBE_SECONDS:
        _shared["read"] = (now, free_cores())
    return _shared["read"][1]


_lock = threading.Lock()
_shared = {"users": 0, "controller": None, "limiter": None, "ceiling": 1, "read": None}


def _controller():
    """threadpoolctl's controller of the BLAS libraries loaded here, SciPy's included (np.dot in the compiled
    kernels calls it), found once."""
    if _shared["controller"] is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS that the compiled kernels call)
        from threadpoolctl import ThreadpoolController
        _shared["controller"] = ThreadpoolController().select(user_api="blas")
    return _shared["controller"]


class BlasThreads:
    """The thread policy of one fit, evaluate or predict, as a with-block: the count by hand, or the automatic one,
    never more than the caller's own BLAS setting (a joblib worker's share, an MPI rank's, OPENBLAS_NUM_THREADS).
    The setting is process-wide: blocks running at once in one process's threads share it, and the last one out
    restores the caller's. `work`, the multiply-adds of the largest product (rows x parameters bounds it), lets an
    automatic block whose products all run on one thread anyway leave BLAS alone."""

    def __init__(self, threads=None, work=None):
        self.fixed = requested(threads)
        self.threads, self.probed = None, 0.0
        self.idle = self.fixed is None and work is not None and work <= ONE_THREAD_WORK

    def __enter__(self):
        if self.idle:
            return self
        with _lock:
            controller = _controller()
            if _shared["users"] == 0:
                _shared["ceiling"] = max([lib.num_threads for lib in controller.lib_controllers] or [1])
                _shared["limiter"] = controller.limit(limits=None)  # changes nothing; remembers the caller's setting
            _shared["users"] += 1
        self.adapt(now=True)
        return self

    def adapt(self, now=False):
        """Set the count: the fixed one once; the automatic one again when PROBE_SECONDS have passed (call it between
        epochs, when no product runs)."""
        if self.idle:
            return
        if self.fixed is not None:
            threads = self.fixed
        elif now or time.monotonic() - self.probed >= PROBE_SECONDS:
            self.probed = time.monotonic()
            threads = min(_shared["ceiling"], recent_free_cores())
        else:
            return
        if threads != self.threads:
            self.threads = threads
            with _lock:
                _controller().limit(limits=threads)

    def __exit__(self, *exc):
        if self.idle:
            return False
        with _lock:
            _shared["users"] -= 1
            if _shared["users"] == 0:
                _shared["limiter"].restore_original_limits()
                _shared["limiter"] = None
                _release(_controller())
        return False


def _release(controller):
    """Let other Python threads set the BLAS threads again: threadpoolctl (3.8 on) lets only one thread at a time
    control a pthreads OpenBLAS, the first that set it, for as long as that thread lives."""
    for kind in {type(lib) for lib in controller.lib_controllers}:
        if hasattr(kind, "clear_controlling_thread"):
            kind.clear_controlling_thread()  # only when this thread holds it
