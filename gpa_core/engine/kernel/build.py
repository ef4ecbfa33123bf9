"""Compiling the kernel: once per process, in the background, by a warm-up run (from Numba's disk
cache after the first time on a machine: about a second, against about 50 s of compiling on two
cores), and what GPAFlow asks about it (``available``, ``ready``, ``wait_briefly``, …)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from gpa_core.config import FlowConfig
from gpa_core.engine.flow import GPAFlow
from gpa_core.engine.kernel.jit import AVAILABLE

if AVAILABLE:
    from gpa_core.engine.kernel import step


@dataclass
class _CompileState:
    lock: threading.Lock
    thread: threading.Thread | None = None
    ready: bool = False
    error: str | None = None
    seconds: float | None = None


_STATE = _CompileState(threading.Lock())


def available() -> bool:
    """Whether this Python can have the compiled path at all (Numba importable)."""
    return AVAILABLE


def ready() -> bool:
    """Whether the kernels are compiled (or loaded from Numba's on-disk cache) in this process."""
    return _STATE.ready


def compile_error() -> str | None:
    """Why the kernel could not be compiled (None while compiling or once it is ready)."""
    return _STATE.error


def compile_seconds() -> float | None:
    """Seconds the compile (or cache load) took in this process, once done."""
    return _STATE.seconds


def cache_is_warm() -> bool:
    """Whether Numba's disk cache holds the kernel, for this source and this CPU (loading it takes
    about a second; compiling, about 50 s on two cores). Reads Numba's cache index of the kernel's
    entry point; any doubt counts as cold."""
    if not AVAILABLE:
        return False
    entry = step.advance_members
    try:  # internals of Numba's: if they move, assume the slow case
        index = entry._cache._cache_file._load_index()
        machine = entry.targetctx.codegen().magic_tuple()
        return any(key[1] == machine for key in index)
    except Exception:
        return False


def ensure_compiled(block: bool = True, timeout: float | None = None) -> bool:
    """Compile the kernels (first use on a machine; later processes load Numba's disk cache).

    With ``block=False`` the compile runs in a background thread and this returns at once; the
    eager path serves meanwhile. Returns whether the kernels are ready."""
    if not AVAILABLE:
        return False
    with _STATE.lock:
        if _STATE.ready or _STATE.error is not None:
            return _STATE.ready
        if _STATE.thread is None:
            _STATE.thread = threading.Thread(target=_compile, name="gpa-kernel-compile", daemon=True)
            _STATE.thread.start()
        thread = _STATE.thread
    if block:
        thread.join(timeout)
    return _STATE.ready


def wait_briefly(seconds: float) -> bool:
    """Start the compile if needed and, when Numba's disk cache is warm, wait up to ``seconds`` for
    the load (about a second; every caller waits for the same load, so flows built at once by
    several threads all get the kernel). A cold cache means a compile of about 50 s: then nobody
    waits, and callers go eagerly at once, so the first motion is never held back. Returns readiness."""
    if not AVAILABLE:
        return False
    return ensure_compiled(block=not _STATE.ready and cache_is_warm(), timeout=seconds)


def _compile() -> None:
    start = time.perf_counter()
    try:
        _warm_up()
        _find_blas()
        _STATE.ready = True
    except Exception as exc:  # any compile failure means: stay eager, and say why
        _STATE.error = f"{type(exc).__name__}: {exc}"
    finally:
        _STATE.seconds = time.perf_counter() - start


def _warm_up() -> None:
    """Compile every kernel entry for the argument types GPAFlow passes, by passing them: a tiny
    flow on the compiled path starts (``prepare_members``), takes two steps (``advance_members``)
    and is reconfigured (``project_members``)."""
    rng = np.random.default_rng(0)
    config = FlowConfig(hidden=(3, 3), steps=2, solver="heun", device="cpu", dtype="float32")
    flow = GPAFlow(rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), config, engine="compiled")
    flow.step(2)
    flow.reconfigure(config.replace(L=2.0))


def _find_blas() -> None:
    """Find the BLAS that compiled code calls (SciPy's OpenBLAS, via ``threadpoolctl``) and run it on
    one thread: the kernel multiplies small matrices from its own threads, one per member group, and
    BLAS threads of its own would only add synchronisation and oversubscribe the cores. NumPy's and
    Torch's libraries are untouched. Without ``threadpoolctl`` the BLAS keeps its default. (Two BLAS
    threads for one large member, M = N = 4096, were slower here: OpenBLAS's threads spin between
    products and take the core from the element-wise passes.)"""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return
    for lib in ThreadpoolController().lib_controllers:
        if lib.internal_api == "openblas" and "scipy" in str(lib.filepath).rsplit("/", 2)[-2]:
            lib.set_num_threads(1)
            return
