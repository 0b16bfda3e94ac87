"""Writing files and folders so that nothing is left half-written: every output file (model files, plots, CSVs)
goes through atomic_write, and a run folder through FolderClaim (claimed, and so proven writable, before any work
that will fill it; filled beside its place, then renamed in whole)."""
import ctypes
import errno
import fcntl
import os
import shutil
import tempfile

PREFIX, SUFFIX = ".nbtrain-", ".tmp"  # temporary names: .nbtrain-<pid>-<random>.tmp beside the final file
LOCK_PREFIX = PREFIX + "lock-"  # a folder's claim: .nbtrain-lock-<name> beside it


def _remove_leftovers(folder):
    """Delete the temporary files and folders that writers killed mid-save left in folder (their process is gone),
    and locks that no process holds; a running writer's, on this host, are left alone."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        if name.startswith(LOCK_PREFIX):
            fd = _flock(os.path.join(folder, name), create=False)
            if fd is not None:
                _discard(os.path.join(folder, name))
                os.close(fd)
            continue
        if not name.endswith(SUFFIX):
            continue
        pid = name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _discard(path)
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
        os.chmod(tmp, _new_mode(0o666))
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


def _new_mode(mode):
    """The permissions a new file (0o666) or folder (0o777) gets under the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def _discard(tmp):
    try:
        if tmp is not None:
            os.unlink(tmp)
    except OSError:
        pass


class FolderBusy(Exception):
    """Another live process holds the claim on a folder."""


class FolderClaim:
    """A folder written whole or not at all: claiming it locks `.nbtrain-lock-<name>` beside it (an flock, so a
    killed claimant's lock is free again) and makes a staging folder beside it (.nbtrain-<pid>-*.tmp) to fill;
    commit() renames the staging folder into place (over an existing folder, an atomic exchange, the old one
    removed after), abandon() removes it. Until commit, `path` is untouched; nothing is left beside it after."""

    def __init__(self, path):
        self.path, self.stage = os.fspath(path), None
        parent = os.path.dirname(os.path.abspath(self.path))
        self._made = _missing_folders(parent)
        os.makedirs(parent, exist_ok=True)
        self._lock_path = os.path.join(parent, LOCK_PREFIX + os.path.basename(os.path.abspath(self.path)))
        self._lock = _flock(self._lock_path)
        if self._lock is None:
            self._remove_made()
            raise FolderBusy(self.path)
        try:
            _remove_leftovers(parent)
            self.stage = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=SUFFIX, dir=parent)
            os.chmod(self.stage, _new_mode(0o777))
        except BaseException:
            self._unlock()
            raise

    def commit(self):
        """Put the staging folder in place of `path` (which may exist only when it is to be replaced); an OSError
        names `path` and leaves it as it was."""
        try:
            if os.path.lexists(self.path):
                _exchange(self.stage, self.path)  # the old folder is now at self.stage
            else:
                os.rename(self.stage, self.path)
                self.stage = None
        except OSError as exc:
            self.abandon()
            raise type(exc)(exc.errno, exc.strerror, self.path) from None
        self.abandon()

    def abandon(self):
        """Remove the staging folder (what was written there) and release the claim."""
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None
        self._unlock()

    def _unlock(self):
        if self._lock is not None:
            _discard(self._lock_path)
            os.close(self._lock)
            self._lock = None
            if not os.path.lexists(self.path):
                self._remove_made()

    def _remove_made(self):
        """Remove the parent folders this claim created, when nothing was put in them."""
        for folder in self._made:
            try:
                os.rmdir(folder)
            except OSError:
                break


def _missing_folders(folder):
    """The folders that os.makedirs(folder) would create, deepest first."""
    missing = []
    while folder and not os.path.lexists(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _flock(path, create=True):
    """A descriptor holding an exclusive flock on `path` (created unless told), or None when a live process holds
    it (or, with create=False, when it is gone)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
        except FileNotFoundError:
            if create:
                raise
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder before us removed the file as we opened it: lock the new one


RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a, b):
    """Swap the folders at `a` and `b` in one step (renameat2 RENAME_EXCHANGE); where the system lacks it, two
    renames with `b` moved aside first."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), b)
    aside = a[:-len(SUFFIX)] + "-old" + SUFFIX  # a leftover of this process, should it die between the renames
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)

