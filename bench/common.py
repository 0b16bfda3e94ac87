"""What every benchmark script shares: the command-line options, the machine line each result records, the
best-of timer and the per-epoch timer."""
import argparse
import os
import platform
import time
from pathlib import Path

from nbtrain import callbacks

ROOT = Path(__file__).resolve().parent.parent
DATA = os.environ.get("NBTRAIN_DATA_DIR", str(ROOT.parent / "shared" / "data"))


def parser(doc, write_help="append the results to this markdown file"):
    """An argument parser with the script's docstring as its description, --data (the course data sets) and
    --write (the markdown file that receives the results)."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--data", default=DATA, help="folder with red-wine.csv and ion.csv [%(default)s]")
    result.add_argument("--write", help=write_help)
    return result


def best_of(fn, repeats):
    """The smallest of `repeats` calls of fn() (each returns seconds): the run least disturbed by the machine."""
    return min(fn() for _ in range(repeats))


def seconds(fn):
    """Wall seconds of fn()."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class EpochTimer(callbacks.Callback):
    """Keeps each epoch's wall time in .times."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def machine():
    """The CPU, its cores, and the versions that decide the figures (Python, numpy, numba, torch)."""
    import numpy as np
    import numba
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
    try:
        import torch
        versions += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        versions += ", torch not installed"
    return f"{cpu}, {os.cpu_count()} cores; {versions}"


def write_section(path, heading, text):
    """Put `text` under the markdown heading `## heading` of the file at path: in place of that section's old text
    (up to the next `## `), or appended when the file has no such section."""
    from pathlib import Path
    path = Path(path)
    lines = path.read_text().splitlines() if path.exists() else []
    title = f"## {heading}"
    body = [title, "", *text.strip("\n").splitlines(), ""]
    if title in lines:
        start = lines.index(title)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = body
    else:
        lines += ["", *body] if lines else body
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
