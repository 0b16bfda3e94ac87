"""Writing files and folders so that nothing is left half-written: every output file (model files, plots, CSVs)
goes through atomic_write, and a run folder through FolderClaim (claimed, and so proven writable, before any work
that will fill it; filled beside its place, then renamed in whole)."""
import ctypes
import errno
import fcntl
import functools
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

PREFIX, SUFFIX = ".nbtrain-", ".tmp"  # temporary names: .nbtrain-<pid>-<origin>-<random>.tmp beside the final file
LOCK_PREFIX = PREFIX + "lock-"  # a folder's claim: .nbtrain-lock-<name> beside it


@functools.cache
def origin():
    """Where this process's pids mean something: a hash of the host name, the boot and the PID namespace. A
    temporary whose name carries another origin is another host's, boot's or container's (on a shared volume),
    whose pid cannot be checked from here."""
    parts = [os.uname().nodename]
    for read in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                 lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(read())
        except OSError:
            parts.append("")
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:12]


def temporary_prefix():
    """The start of this process's temporary names: .nbtrain-<pid>-<origin>-."""
    return f"{PREFIX}{os.getpid()}-{origin()}-"


def _dead(name):
    """Whether the temporary `name` was left by a process that is provably gone: its origin is this one's (same
    host, boot and PID namespace) and its pid is not alive. Another origin's, or an older name without one, is
    never judged dead."""
    pid, _, rest = name[len(PREFIX):].partition("-")
    if not pid.isdigit() or rest.partition("-")[0] != origin():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        pass
    return False


def _remove_leftovers(folder):
    """Delete the temporary files and folders that writers killed mid-save left in folder (provably dead: see
    _dead), and locks that no process holds; a running writer's, and any other host's or container's, are left
    alone."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(LOCK_PREFIX):
            fd = _flock(path, create=False)
            if fd is not None:
                _discard(path)
                os.close(fd)
        elif name.endswith(SUFFIX) and _dead(name):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _discard(path)


def atomic_write(path, write):
    """Call write(temporary_path) for a file beside what `path` names, flush it to the disk, then rename it over
    that: readers see the old file or the whole new one, never half of one, even after a crash. Written through
    what is at the path: a symlink is followed (its target replaced, the link kept); an existing file's mode (and
    owner, where allowed) carries over, a new one gets the umask's; a device, FIFO or socket is written into, in
    place, never replaced. An OSError names `path`, never the temporary file."""
    path = os.fspath(path)
    target = _through_links(path)
    try:
        found = os.stat(target)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, path) from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        return write_stream(write, lambda: open(target, "wb"), path)
    folder = os.path.dirname(os.path.abspath(target))
    _remove_leftovers(folder)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(), suffix=SUFFIX, dir=folder)
        os.close(fd)
        write(tmp)
        _take_over(tmp, found)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _discard(tmp)
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, path) from None
    except BaseException:
        _discard(tmp)
        raise


def write_stream(write, opener, name):
    """Call write(temporary_path) for a file in a private temporary folder, then copy it into what opener()
    opens (standard output, a device, a FIFO): written in place, in one go. An OSError names `name`."""
    try:
        with tempfile.TemporaryDirectory(prefix=PREFIX) as folder:
            tmp = os.path.join(folder, "output")
            write(tmp)
            with open(tmp, "rb") as source, opener() as stream:
                shutil.copyfileobj(source, stream)
                stream.flush()
    except OSError as exc:
        if exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, name) from None


def _through_links(path):
    """What writing to `path` writes: the file its symlinks lead to, or `path` itself (no link, or a link the
    kernel resolves but no path names, such as /dev/stdout on a pipe: written in place)."""
    if not os.path.islink(path):
        return path
    real = os.path.realpath(path)
    return path if os.path.exists(path) and not os.path.exists(real) else real


def _take_over(tmp, found):
    """Give the new file the mode (and owner, where allowed) of the file it replaces, or a new file's mode."""
    if found is None:
        os.chmod(tmp, _new_mode(0o666))
        return
    for owner in ((found.st_uid, found.st_gid), (-1, found.st_gid)):
        try:
            os.chown(tmp, *owner)
            break
        except OSError:
            pass
    os.chmod(tmp, stat.S_IMODE(found.st_mode))


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


class FolderChanged(Exception):
    """At commit, the folder at a claim's path was not the one found at claim time (it appeared, or was replaced),
    or held what the claim may not replace: the path was left as it is, and the staging folder kept at `kept`."""

    def __init__(self, path, why, kept):
        super().__init__(f"{path} {why}")
        self.path, self.why, self.kept = path, why, kept


class FolderClaim:
    """A folder written whole or not at all: claiming it locks `.nbtrain-lock-<name>` beside it (an flock, so a
    killed claimant's lock is free again) and makes a staging folder beside it (.nbtrain-<pid>-<origin>-*.tmp) to
    fill; commit() renames the staging folder into place, abandon() removes it. Only the folder found at `path`
    at claim time may be replaced (an atomic exchange, the old one removed after), and only while foreign(folder)
    (None: nothing may be replaced) finds nothing in it that the claim may not replace. Until commit, `path` is
    untouched; nothing is left beside it after."""

    def __init__(self, path, foreign=None):
        self.path, self.stage, self.foreign = os.fspath(path), None, foreign
        parent = os.path.dirname(os.path.abspath(self.path))
        self._made = _missing_folders(parent)
        os.makedirs(parent, exist_ok=True)
        self._lock_path = os.path.join(parent, LOCK_PREFIX + os.path.basename(os.path.abspath(self.path)))
        self._lock = _flock(self._lock_path)
        if self._lock is None:
            self._remove_made()
            raise FolderBusy(self.path)
        try:
            self._found, self._held = _identity(self.path), None
            if self._found is not None:  # held open, its inode cannot be reused by a folder made there later
                self._held = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                self._found = _identity(self.path)
            _remove_leftovers(parent)
            self.stage = tempfile.mkdtemp(prefix=temporary_prefix(), suffix=SUFFIX, dir=parent)
            os.chmod(self.stage, _new_mode(0o777))
        except BaseException:
            self._unlock()
            raise

    def commit(self):
        """Put the staging folder in place of `path`: where nothing is, or over the folder found there at claim
        time when foreign() finds nothing in it. Otherwise FolderChanged, with `path` left as it is and the
        staging folder kept beside it; an OSError names `path` and leaves it as it was."""
        try:
            why = self._refusal(self.path)
            if why is None and _identity(self.path) is None:  # free (the old folder, if any, was removed)
                if _renameat2(self.stage, self.path, RENAME_NOREPLACE) is False:
                    os.rename(self.stage, self.path)  # no renameat2: a folder appearing just now may be replaced
                self.stage = None
            elif why is None:
                _exchange(self.stage, self.path)  # the old folder is now at self.stage
                why = self._refusal(self.stage)
                if why is not None:  # it changed between the check and the exchange: put it back
                    self._put_back()
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):  # RENAME_NOREPLACE, or a rename onto a full folder
                why = "appeared while this run was written"
            else:
                self.abandon()
                raise type(exc)(exc.errno, exc.strerror, self.path) from None
        if why is not None:
            kept = self._keep()
            raise FolderChanged(self.path, why, kept)
        self.abandon()

    def _put_back(self):
        """Exchange the folders again after a refusal; should that fail, the user's folder is at the staging path
        and is never removed from there (the run is given up instead)."""
        try:
            _exchange(self.stage, self.path)
        except OSError:
            self.stage = None
            raise

    def _refusal(self, folder):
        """Why the folder now at `folder` (the path, or after an exchange the staging folder) may not be replaced,
        or None."""
        now = _identity(folder)
        if now is None and folder == self.path:
            return None
        if self._found is None:
            return "appeared while this run was written"
        if now != self._found:
            return "was replaced by another folder while this run was written"
        if self.foreign is None:
            return "already exists"
        entry = self.foreign(folder)
        return None if entry is None else f"holds {entry}, which nbtrain did not write"

    def _keep(self):
        """Rename the staging folder to the first free name <path>.new, <path>.new-2, ...; its new path."""
        for n in range(1, 1000):
            kept = f"{self.path}.new" + (f"-{n}" if n > 1 else "")
            try:
                if _renameat2(self.stage, kept, RENAME_NOREPLACE) is False:
                    if os.path.lexists(kept):
                        continue
                    os.rename(self.stage, kept)
            except FileExistsError:
                continue
            except OSError:
                break
            self.stage = None
            self._unlock()
            return kept
        kept, self.stage = self.stage, None  # no free name: left under its temporary one
        self._unlock()
        return kept

    def abandon(self):
        """Remove the staging folder (what was written there) and release the claim."""
        if self.stage is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None
        self._unlock()

    def _unlock(self):
        if getattr(self, "_held", None) is not None:
            os.close(self._held)
            self._held = None
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


def _identity(path):
    """(device, inode) of what is at `path` (not following a symlink), or None when nothing is."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


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


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # linux/fs.h


def _renameat2(a, b, flags):
    """renameat2(a, b, flags): True when done, False where the system lacks it (or the flag); an OSError
    otherwise (FileExistsError for RENAME_NOREPLACE onto something)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), b)


def _exchange(a, b):
    """Swap the folders at `a` and `b` in one step (renameat2 RENAME_EXCHANGE); where the system lacks it, two
    renames with `b` moved aside first."""
    if _renameat2(a, b, RENAME_EXCHANGE):
        return
    aside = a[:-len(SUFFIX)] + "-old" + SUFFIX  # a leftover of this process, should it die between the renames
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
