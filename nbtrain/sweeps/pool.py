"""The local backend of a sweep: a pool of spawned worker processes, one trial per worker at a time, each with one
BLAS thread; progress events come back on a queue and every result goes to the board."""
import ctypes
import multiprocessing
import os
import queue
import signal
import tempfile
import threading
import time
from pathlib import Path

PROGRESS_SECONDS = 0.5  # a worker reports a running trial's progress at most this often


_worker = {}  # this worker process's SweepData and event queue, set once by _start_worker


def _start_worker(data, events, parent):
    """Pool initializer: the data arrives once per worker; BLAS is held to one thread; Ctrl-C is left to the
    sweep's process, which stops the pool (SIGINT arrives ignored, see run_local; a pool replacing a worker
    starts it from the sweep's process, so it is ignored here again), and so is SIGTERM (the pool's terminate);
    the worker ends with the sweep's process (`parent`), however that ends."""
    from ..interrupts import leave_to_parent
    from .trial import single_blas_thread
    _end_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    leave_to_parent()
    single_blas_thread()
    _worker.update(data=data, events=events)


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_SECONDS = 1.0  # where there is no parent-death signal, how often a worker looks for its parent


def _end_with(parent):
    """Have this worker killed when the process `parent` ends, even by SIGKILL: Linux's parent-death signal, or
    elsewhere a thread that looks for the parent every PARENT_POLL_SECONDS; at once if it has already ended."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None or prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        def watch():
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_SECONDS)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    elif os.getppid() != parent:  # it ended before the signal was set
        os._exit(1)


def _work(trial):
    """One trial in a pool worker: progress events on the queue while it runs; the result and the model file's
    bytes (for the sweep's process to keep if it is the best) when it ends."""
    from .trial import run_trial
    events, index, last = _worker["events"], trial["index"], [0.0]
    events.put(("start", index))

    def report(row):
        if time.monotonic() - last[0] >= PROGRESS_SECONDS:
            last[0] = time.monotonic()
            events.put(("progress", index, row))
    row, history, model = run_trial(_worker["data"], trial, report)
    return row, history, _model_bytes(model)


def _model_bytes(model):
    if model is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.nbt"
        model.save(path)
        return path.read_bytes()


def run_local(data, trials, workers, board):
    """Run the trials on `workers` spawned processes, at most one trial per worker at a time (so that Ctrl-C
    stops submitting at once); the pool is terminated on the way out, also after Ctrl-C."""
    context = multiprocessing.get_context("spawn")  # fork would copy Numba's and BLAS's threads and locks
    events = context.Queue()
    workers = min(workers, len(trials))
    # workers inherit SIGINT ignored from their first instruction: a Ctrl-C while one is still starting (before
    # its initializer runs) would otherwise kill it with a traceback
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pool = context.Pool(workers, _start_worker, (data, events, os.getpid()))
    finally:
        signal.signal(signal.SIGINT, previous)
    waiting, running = list(reversed(trials)), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                trial = waiting.pop()
                board.queue(trial)
                running[trial["index"]] = pool.apply_async(_work, (trial,))
            _drain(events, board)
            for index, result in list(running.items()):
                if result.ready():
                    del running[index]
                    try:
                        board.finish(index, *result.get())
                    except Exception as exc:  # the worker could not run the trial or send its result back
                        board.finish(index, {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
    finally:
        pool.terminate()
        pool.join()


def _drain(events, board):
    """Pass the workers' progress events to the board, waiting briefly for the first."""
    try:
        event = events.get(timeout=0.1)
        while True:
            getattr(board, event[0])(*event[1:])
            event = events.get_nowait()
    except queue.Empty:
        pass
