"""A long computation in a background thread, with progress, partial results and cancel, so that
pages never block. Jobs still running when the interpreter exits are cancelled and waited for (up to
:data:`EXIT_WAIT_S`): a daemon thread torn down inside a Torch operation aborts the whole process
("terminate called without an active exception", exit status 134)."""

from __future__ import annotations

import atexit
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import torch

EXIT_WAIT_S = 10.0  # at exit, wait this long in all for running jobs to reach their next check()


# ============================================================================================= jobs
class JobCancelled(Exception):
    """Raised inside a job's function by ``JobControl.check()`` after ``cancel()``."""


class JobControl:
    """Handed to a job's function: report progress, publish partial results, notice cancellation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self.done = 0.0
        self.total = 1.0
        self.message = ""
        self._partial: Any = None
        self.version = 0

    def report(self, done: float, total: float, message: str | None = None) -> None:
        """Progress so far: ``done`` of ``total`` units, and optionally what is being done."""
        with self._lock:
            self.done, self.total = float(done), float(total)
            if message is not None:
                self.message = message

    def publish(self, value: Any) -> None:
        """Make ``value`` the partial result a page shows while the job runs."""
        with self._lock:
            self._partial = value
            self.version += 1

    @property
    def partial(self) -> Any:
        with self._lock:
            return self._partial

    @property
    def cancel_event(self) -> threading.Event:
        return self._event

    def cancelled(self) -> bool:
        """Whether the page asked the job to stop."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise JobCancelled once the page has asked the job to stop (call it between units of work)."""
        if self._event.is_set():
            raise JobCancelled()


class EnsembleJob:
    """A long computation in a daemon thread owned by gpa_core: ``fn(control)`` runs there; pages poll
    ``progress``/``partial`` and may ``cancel()``. The thread sets ``torch.set_num_threads(threads)``
    (None: leave it) before it starts."""

    def __init__(
        self, fn: Callable[[JobControl], Any], *, name: str = "ensemble", threads: int | None = 1
    ) -> None:
        self.fn = fn
        self.name = name
        self.threads = threads
        self.control = JobControl()
        self._thread: threading.Thread | None = None
        self._result: Any = None
        self._error: BaseException | None = None
        self._traceback = ""
        self.started_at: float | None = None
        self.ended_at: float | None = None

    def start(self) -> EnsembleJob:
        """Start the thread (once); returns the job."""
        if self._thread is not None:
            raise RuntimeError("this job was already started")
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name=f"gpa-{self.name}", daemon=True)
        _RUNNING.add(self)
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            if self.threads is not None:
                torch.set_num_threads(int(self.threads))
            self._result = self.fn(self.control)
        except JobCancelled:
            pass
        except BaseException as exc:  # reported to the page, never raised in the server
            self._error = exc
            self._traceback = traceback.format_exc()
        finally:
            self.ended_at = time.perf_counter()

    def cancel(self) -> None:
        """Ask the job to stop at its next ``check()``; its partial result stays."""
        self.control.cancel_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (at most ``timeout`` s); whether it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self.control.cancelled()

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def error_text(self) -> str:
        return self._traceback

    @property
    def result(self) -> Any:
        return self._result

    @property
    def partial(self) -> Any:
        return self.control.partial

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.perf_counter()
        return end - self.started_at

    @property
    def fraction(self) -> float:
        c = self.control
        return min(1.0, max(0.0, c.done / c.total)) if c.total > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, extrapolated from progress so far (None before any progress)."""
        f = self.fraction
        if f <= 0 or self.done:
            return None
        return self.elapsed * (1 - f) / f


#: The jobs started and not yet collected (weakly held: a finished, forgotten job just drops out).
_RUNNING: weakref.WeakSet[EnsembleJob] = weakref.WeakSet()


@atexit.register
def _stop_running_jobs() -> None:
    """At exit: cancel every running job and wait for them (up to EXIT_WAIT_S in all)."""
    jobs = [job for job in list(_RUNNING) if job.running]
    for job in jobs:
        job.cancel()
    deadline = time.monotonic() + EXIT_WAIT_S
    for job in jobs:
        job.join(max(0.0, deadline - time.monotonic()))
