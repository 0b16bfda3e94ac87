"""Writing files so that nothing is left half-written: every output (model files, run folders, plots, CSVs)
goes through atomic_write, and an output folder is proven writable before any work that will fill it."""
import os
import tempfile

from .errors import InputError


def atomic_write(path, write):
    """Call write(temporary_path) for a file in path's folder, give it the permissions a new file gets, then
    rename it to `path`: readers see the old file or the whole new one, never half of one."""
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".nbtrain-", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def writable_folder(path):
    """Create the folder `path` (with its parents) and prove it writable before any work that will write there:
    an InputError saying so otherwise, so that nothing is computed only to be lost."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"cannot write to the output directory {path}: {exc.strerror or exc}") from None
    return path
