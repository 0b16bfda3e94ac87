"""Where nbtrain's compiled kernels are cached: a per-user folder (`NUMBA_CACHE_DIR` when set), never beside the
package's own files, so a reinstall (which deletes the package folder and its __pycache__) or a read-only install
keeps them. Numba checks each entry against a hash of its source file's content (numba >= 0.68), so a reinstall
of the same source is a warm start and a changed source compiles again.

`install()` puts the locator in Numba's list once, before the engine's kernels are decorated; it answers only
for source files inside this package, so other libraries' caches are left where Numba puts them.
"""
import os

from numba.core import caching
from numba.core.caching import _CacheLocator, _SourceFileBackedLocatorMixin
from numba.misc.appdirs import AppDirs

LOCATORS = caching.CacheImpl._locator_classes  # the list Numba walks to place a function's cache

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def folder():
    """The per-user cache folder of nbtrain's kernels (on Linux ~/.cache/nbtrain/numba, or under XDG_CACHE_HOME)."""
    return os.path.join(AppDirs(appname="nbtrain", appauthor=False).user_cache_dir, "numba")


class UserCacheLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """Numba's cache locator for nbtrain's source files: a subfolder of folder() named after the source folder's
    path (two installs in different places keep apart; a reinstall in the same place finds its entries)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(folder(), self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.abspath(py_file).startswith(PACKAGE + os.sep):
            return None
        return super().from_function(py_func, py_file)


def install():
    """Use UserCacheLocator for nbtrain's functions, after Numba's NUMBA_CACHE_DIR locator (which wins when set)."""
    if UserCacheLocator not in LOCATORS:
        LOCATORS.insert(1, UserCacheLocator)


install()  # on import: every module of the engine that decorates kernels imports this module first
