"""Ctrl-C (SIGINT) and SIGTERM (what `docker stop`, SLURM and Kubernetes send) during a fit: each asks the running
epoch to end at the end of its current step instead of killing the process, so what was trained can be kept."""
import signal
import threading

from .engine.bundles import STOP

SIGNALS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
_left_to_parent = False  # set in worker processes whose parent stops them (a sweep's pool)


def leave_to_parent():
    """In a worker process that its parent stops (SIGTERM from a pool's terminate): fits here take no signal over,
    so SIGTERM keeps killing at once."""
    global _left_to_parent
    _left_to_parent = True


class StopRequests:
    """A with-block in which SIGINT and SIGTERM write their number into control[STOP] (the engine reads it after
    every step). Only signals left at their default disposition are taken over (a sweep worker that ignores SIGINT
    keeps ignoring it), only in the main thread; a second SIGINT raises KeyboardInterrupt as usual. The previous
    handlers come back at the end."""

    def __init__(self, control):
        self.control = control
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and not _left_to_parent:
            defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
            for signum, default in defaults.items():
                if signal.getsignal(signum) is default:
                    self.previous[signum] = signal.signal(signum, self._request)
        return self

    def _request(self, signum, frame):
        if self.control[STOP] and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.control[STOP] = signum

    @property
    def cause(self):
        """"interrupted" (SIGINT), "terminated" (SIGTERM) or None when no stop was asked for."""
        return SIGNALS.get(int(self.control[STOP]))

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False


class Stopped(KeyboardInterrupt):
    """What a SignalStop raises: SIGINT or SIGTERM ended the running work (`cause` "interrupted" or "terminated")."""

    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause


class SignalStop:
    """A with-block for work stopped by raising (a sweep, whose trials run elsewhere): while `armed`, SIGINT and
    SIGTERM raise Stopped; once disarmed (saving what finished), the first one is only recorded and a second one
    raises. `cause` is the first one's ("interrupted", "terminated") or None. As StopRequests: only signals at
    their default disposition, only in the main thread; the previous handlers come back at the end."""

    def __init__(self):
        self.cause, self.armed, self.previous = None, True, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
            for signum, default in defaults.items():
                if signal.getsignal(signum) is default:
                    self.previous[signum] = signal.signal(signum, self._stop)
        return self

    def _stop(self, signum, frame):
        first = self.cause is None
        self.cause = self.cause or SIGNALS[signum]
        if self.armed or not first:
            raise Stopped(SIGNALS[signum])

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
