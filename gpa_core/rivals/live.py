"""Rival flows advanced in a background thread, with play, pause, stop and frozen snapshots, as
:class:`~gpa_core.engine.runner.Runner` does for GPA (the compare page runs both side by side).

    r = RivalRunner(source, target, configs, labels=None)   # bad input raises here, nothing runs
    r.play(); r.pause(); r.stop()
    snap = r.snapshot()   # RivalSnapshot: particles (R, M, d), t, summaries, histories, state
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from gpa_core.config import RivalConfig
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.rivals.flow import RivalFlow, RivalSummary

CHUNK_SECONDS = 0.1  # a chunk of steps lasts about this long, so pause and stop answer quickly
MAX_CHUNK = 1000


@dataclass(frozen=True)
class RivalSnapshot:
    """What the rival flows show, frozen: ``state`` ("ready" | "playing" | "paused" | "finished" |
    "error" | "stopped"), their labels and configurations, the widths they use (σ or blur, None for the
    energy kernel), times ``t`` (R,), particles (R, M, d), the target (N, d), which have finished,
    their summaries, their histories (each a dict of 1-D arrays: step, time, kinetic_energy,
    objective, max_speed, marginal_error; at most ``max_history`` rows, evenly thinned), each flow's
    measured steps per second (R,) and the error of a failed run."""

    state: str
    labels: tuple[str, ...]
    configs: tuple[RivalConfig, ...]
    widths: tuple[float | None, ...]
    t: np.ndarray
    particles: np.ndarray
    target: np.ndarray
    finished: tuple[bool, ...]
    summaries: tuple[RivalSummary, ...]
    histories: tuple[dict[str, np.ndarray], ...]
    steps_per_second: tuple[float, ...]
    error: str | None = None

    @property
    def n(self) -> int:
        """The most steps any flow has done."""
        return max((s.steps for s in self.summaries), default=0)


def _thin(history: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    n = len(history["step"])
    if n <= rows:
        return history
    keep = np.unique(np.linspace(0, n - 1, rows).round().astype(int))
    return {name: values[keep] for name, values in history.items()}


class RivalRunner:
    """The rival flows of ``configs`` from ``source`` (M, d) toward ``target`` (N, d), stepped in a
    daemon thread (a :class:`~gpa_core.jobs.EnsembleJob`) in chunks of about :data:`CHUNK_SECONDS`.
    Like the GPA Runner, it pauses itself when nobody has asked for a snapshot for ``idle_timeout``
    seconds (a closed browser tab does not keep a core busy); :meth:`play` resumes."""

    def __init__(
        self,
        source: np.ndarray,
        target: np.ndarray,
        configs: Sequence[RivalConfig],
        labels: Sequence[str] | None = None,
        *,
        max_history: int = 2000,
        idle_timeout: float = 300.0,
    ) -> None:
        configs = tuple(configs)
        if not configs:
            raise ValueError("give at least one rival flow")
        self.labels = tuple(labels) if labels is not None else tuple(c.name for c in configs)
        if len(self.labels) != len(configs):
            raise ValueError(f"{len(configs)} configurations but {len(self.labels)} labels")
        self.flows = [RivalFlow(source, target, c) for c in configs]
        self.configs = configs
        self.max_history = int(max_history)
        self.idle_timeout = float(idle_timeout)
        self._last_poll = time.monotonic()
        self._target = np.array(target, dtype=np.float64)
        self._target.setflags(write=False)
        self._playing = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        self._sps = [0.0] * len(configs)
        self._state = "ready"
        self._job = EnsembleJob(self._work, name="rivals", threads=None)
        self._snapshot = self._make_snapshot()

    # -- commands -----------------------------------------------------------------------------
    def play(self) -> None:
        """Run (or resume) the flows in the background (not after :meth:`stop`)."""
        self._last_poll = time.monotonic()
        self._playing.set()
        if self._job.started_at is None and not self._stopped:
            self._job.start()

    start = play

    def pause(self) -> None:
        """Pause after the current chunk; :meth:`play` resumes."""
        self._playing.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (waits up to ``timeout`` s); the last snapshot stays readable. Stopped before
        it ever played, it says "stopped" and is done (there is no thread to end)."""
        self._stopped = True
        self._job.cancel()
        self._playing.set()
        self._job.join(timeout)

    cancel = stop

    @property
    def done(self) -> bool:
        """Whether the thread has ended (finished, stopped or failed), or was stopped before it began."""
        return self._job.done or (self._stopped and self._job.started_at is None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (at most ``timeout`` s); whether it has ended."""
        return self._job.join(timeout)

    def snapshot(self) -> RivalSnapshot:
        """The latest snapshot, with the state of the thread (a failure's message in ``error``)."""
        self._last_poll = time.monotonic()
        with self._lock:
            snap = self._snapshot
        job = self._job
        if job.error is not None:
            return replace(snap, state="error", error=f"{type(job.error).__name__}: {job.error}")
        if (job.done or self.done) and job.cancelled and snap.state != "finished":
            return replace(snap, state="stopped")
        if snap.state in ("playing", "paused") and not self._playing.is_set() and not job.done:
            return replace(snap, state="paused")
        return snap

    # -- the worker ---------------------------------------------------------------------------
    def _work(self, control: JobControl) -> None:
        chunk = 1
        total = sum(f.config.steps for f in self.flows)
        while not all(f.finished() for f in self.flows):
            if time.monotonic() - self._last_poll > self.idle_timeout:
                self._playing.clear()  # nobody is watching: pause (play resumes)
                self._state = "paused"
                self._publish()
            while not self._playing.wait(0.1):
                control.check()
            control.check()
            self._state = "playing"
            seconds = 0.0
            for k, flow in enumerate(self.flows):
                if flow.finished():
                    continue
                start = time.perf_counter()
                done = flow.step(chunk)
                spent = time.perf_counter() - start
                seconds += spent
                if spent > 0 and done:
                    self._sps[k] = done / spent
            if seconds > 0:
                chunk = int(min(MAX_CHUNK, max(1, chunk * CHUNK_SECONDS / seconds)))
            control.report(sum(f.n for f in self.flows), total)
            self._publish()
        self._state = "finished"
        self._publish()

    def _publish(self) -> None:
        snap = self._make_snapshot()
        with self._lock:
            self._snapshot = snap

    def _make_snapshot(self) -> RivalSnapshot:
        particles = np.stack([f.particles() for f in self.flows])
        particles.setflags(write=False)
        t = np.array([f.t for f in self.flows])
        t.setflags(write=False)
        return RivalSnapshot(
            state=self._state,
            labels=self.labels,
            configs=self.configs,
            widths=tuple(f.width for f in self.flows),
            t=t,
            particles=particles,
            target=self._target,
            finished=tuple(f.finished() for f in self.flows),
            summaries=tuple(f.summary() for f in self.flows),
            histories=tuple(_thin(f.history_arrays(), self.max_history) for f in self.flows),
            steps_per_second=tuple(self._sps),
        )
