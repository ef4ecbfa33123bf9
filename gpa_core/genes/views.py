"""2-D views of latent data: seeded UMAP (paper Fig. 8, random_state 100) and a PCA projection."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

import numpy as np

from gpa_core.genes.encoder import LatentError

__all__ = ["pca_2d", "umap_embedding", "warm_up_umap", "warm_up_umap_in_background"]

_umap_lock = threading.Lock()


_umap_cache_enabled = False


def _enable_umap_numba_cache() -> int:
    """Turn on numba's on-disk cache for umap-learn's jitted functions; returns how many.

    umap-learn declares ``cache=True`` on one function only, so every new process recompiles its
    kernels (tens of seconds on a slow machine). ``Dispatcher.enable_caching()`` is what
    ``cache=True`` does; called before the first compile, later processes load the machine code
    from disk (first UMAP call ≈ a warm one). numba stores it next to umap's sources, or in the
    user-wide cache folder when that is not writable (its own fallback), so NUMBA_CACHE_DIR is not
    needed. Idempotent; failures only cost speed.
    """
    global _umap_cache_enabled
    if _umap_cache_enabled:
        return 0
    _umap_cache_enabled = True
    import importlib

    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba always comes with umap-learn
        return 0
    count = 0
    for name in (
        "umap.umap_",
        "umap.layouts",
        "umap.utils",
        "umap.distances",
        "umap.sparse",
        "umap.spectral",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and str(getattr(obj, "__module__", "")).startswith("umap"):
                try:
                    obj.enable_caching()
                    count += 1
                except Exception:  # an uncacheable function just stays uncached
                    continue
    return count


def umap_embedding(
    Z: np.ndarray,
    random_state: int = 100,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
) -> np.ndarray:
    """UMAP of Z to 2-D (float32, (n, 2)), seeded: the same input and seed give the same output.

    ``random_state=100`` as in the paper's Fig. 8. A seed makes umap-learn single-threaded.
    ``n_neighbors`` is capped at n − 1; ``n_epochs=None`` is umap-learn's default (500 for
    small data; fewer is faster and coarser). The first call in a process imports umap-learn and, the
    very first time on a machine, compiles its numba kernels (cached on disk afterwards, see
    :func:`_enable_umap_numba_cache`): call :func:`warm_up_umap` early, e.g. in a background thread.
    """
    Z = np.asarray(Z, dtype=np.float32)
    if Z.ndim != 2 or Z.shape[0] < 4:
        raise LatentError(f"UMAP needs a 2-D array with at least 4 points, got shape {Z.shape}.")
    if not np.isfinite(Z).all():
        raise LatentError("UMAP input contains NaN or infinite values.")
    import umap

    _enable_umap_numba_cache()
    nn = int(max(2, min(n_neighbors, Z.shape[0] - 1)))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=nn,
        min_dist=min_dist,
        random_state=random_state,
        n_epochs=n_epochs,
        init="spectral" if Z.shape[0] > 10 else "random",
    )
    with _umap_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", spectral-init fallbacks
        emb = reducer.fit_transform(Z)
    return np.asarray(emb, dtype=np.float32)


_warm_seconds: float | None = None
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up_umap() -> float:
    """Trigger umap-learn's numba compilation once per process; returns the seconds it took
    (≈0 on later calls). Safe to call from a background thread."""
    global _warm_seconds
    t0 = time.perf_counter()
    with _warm_lock:  # a second caller waits for the first one's compile, then returns its wait
        if _warm_seconds is not None:
            return 0.0 if time.perf_counter() - t0 < 0.5 else time.perf_counter() - t0
        rng = np.random.default_rng(0)
        umap_embedding(rng.standard_normal((48, 5)).astype(np.float32), random_state=0, n_neighbors=10)
        _warm_seconds = time.perf_counter() - t0
        return _warm_seconds


def warm_up_umap_in_background(
    wait_for: Callable[[], bool] | None = None, patience: float = 600.0
) -> threading.Thread:
    """Run :func:`warm_up_umap` in a daemon thread, once per process (later calls return the same
    thread). With ``wait_for`` (e.g. the GPA kernel's ``ready``), it first waits until that is true or
    ``patience`` seconds have passed, so that two compiles do not share the CPU. ``app.py`` calls it
    at start, so the latent page's first UMAP does not wait for the compile (137 s once on 2 cores)."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is not None:
            return _warm_thread

        def run() -> None:
            deadline = time.monotonic() + patience
            while wait_for is not None and not wait_for() and time.monotonic() < deadline:
                time.sleep(1.0)
            try:
                warm_up_umap()
            except Exception:  # a failed warm-up only costs the first UMAP its compile time
                pass

        _warm_thread = threading.Thread(target=run, name="gpa-umap-warm-up", daemon=True)
        _warm_thread.start()
        return _warm_thread


def pca_2d(Z: np.ndarray) -> np.ndarray:
    """The first two principal coordinates of Z (centred), (n, 2) float64; deterministic signs."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[0] < 2:
        raise LatentError(f"pca_2d needs a 2-D array with at least 2 points, got shape {Z.shape}.")
    Zc = Z - Z.mean(axis=0)
    U, S, Vt = np.linalg.svd(Zc, full_matrices=False)
    k = min(2, S.shape[0])
    signs = np.sign(Vt[np.arange(k), np.abs(Vt[:k]).argmax(axis=1)])
    out = np.zeros((Z.shape[0], 2))
    out[:, :k] = U[:, :k] * S[:k] * signs
    return out
