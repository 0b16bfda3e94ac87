"""Writing files so that nothing is left half-written: every output (model files, run folders, plots, CSVs)
goes through atomic_write, and an output folder is proven writable before any work that will fill it."""
import os
import tempfile

from .errors import InputError


PREFIX, SUFFIX = ".nbtrain-", ".tmp"  # temporary names: .nbtrain-<pid>-<random>.tmp beside the final file


def _remove_leftovers(folder):
    """Delete the temporary files that writers killed mid-save left in folder (their process is gone); a running
    writer's file, on this host, is left alone."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX) and n.endswith(SUFFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except OSError:  # alive, someone else's
            pass


def atomic_write(path, write):
    """Call write(temporary_path) for a file in path's folder, give it the permissions a new file gets, flush it to
    the disk, then rename it to `path`: readers see the old file or the whole new one, never half of one, even
    after a crash. An OSError names `path`, never the temporary file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_leftovers(folder)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=SUFFIX, dir=folder)
        os.close(fd)
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, path) from None
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp):
    if tmp is not None and os.path.exists(tmp):
        os.unlink(tmp)


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
