"""How every kernel function is compiled (:func:`jit`), and the Numba disk cache they share.

Numba caches a function in the ``__pycache__`` beside its file, stamped with that one file's hash:
it does not notice that a function it calls, defined in another file, has changed (Numba's
documentation says so), so a kernel split over several modules would load stale code after an edit.
Here every kernel function's cache entry is stamped instead with the hash of the whole package's
sources and of the code tables compiled into it (:mod:`~gpa_core.engine.kernel.codes`, generated
from the config's Literals and the history's fields): any edit of the kernel, or of a name it codes,
recompiles it all, and a cache that loads is never stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

from gpa_core.engine.kernel import codes

try:  # in requirements.txt; where it cannot be imported, the eager path is the only one
    from numba import njit
    from numba.core import caching
except ImportError:  # pragma: no cover - exercised only where numba is missing
    njit = None

#: whether this Python can compile the kernel at all
AVAILABLE = njit is not None

#: LLVM's fast-math flags for every kernel function: ``reassoc`` vectorises sums at the target's
#: width and ``contract`` fuses multiply-adds where the CPU has FMA; never 'nnan'/'ninf', since ∞ is
#: an outcome (an overflowing objective) and must compare as ∞
FLAGS = {"reassoc", "contract"}


@cache
def package_stamp() -> str:
    """The hash of the kernel package's sources and of its code tables (what its machine code is
    made of), standing for each kernel function's own source hash in Numba's cache index."""
    digest = hashlib.sha256(repr(codes.TABLES).encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


if AVAILABLE:

    class _PackageStamped:
        """A cache locator mixin: the package's stamp instead of the function's file's."""

        def get_source_stamp(self) -> str:
            return package_stamp()

    class _CacheImpl(caching.CompileResultCacheImpl):
        # Numba's own file-backed locators (NUMBA_CACHE_DIR, the __pycache__ beside the file, the
        # user's cache), each stamped with the package's hash
        _locator_classes = [  # noqa: RUF012 - overrides Numba's class attribute of that form
            type(locator.__name__, (_PackageStamped, locator), {})
            for locator in caching.CacheImpl._locator_classes
            if issubclass(locator, caching._SourceFileBackedLocatorMixin)
        ]

    class _KernelCache(caching.FunctionCache):
        _impl_class = _CacheImpl


def jit(function: Callable) -> Callable:
    """``function`` compiled as every kernel function is: no Python objects, the GIL released (member
    groups run on threads of their own), ``FLAGS``, NumPy's error model (x/0 is ∞ or NaN, never an
    exception) and the package-stamped disk cache."""
    dispatcher = njit(nogil=True, fastmath=FLAGS, error_model="numpy")(function)
    dispatcher._cache = _KernelCache(function)  # what njit(cache=True) sets, with the package's stamp
    return dispatcher
