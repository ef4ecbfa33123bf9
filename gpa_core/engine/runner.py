"""A background runner for one live GPA flow (one per browser session), with immutable snapshots.

The runner owns a :class:`~gpa_core.engine.flow.GPAFlow` (an ensemble of K ≥ 1 members) and a worker
thread that advances it in step-chunks on the Torch device. Whoever displays the run (a Streamlit
page, a notebook, a benchmark) only ever reads :class:`Snapshot` objects: frozen, read-only NumPy
copies of the particles, the target, φ on a grid with −∇φ arrows (member 0, 2-D runs), a bounded
history of the kinetic energy (3.3) and the divergence estimate, statuses, steps per second, and
messages. The worker never calls any UI code.

API::

    r = Runner(source, target, configs, *, generated=None, grid=True, max_history=2000,
               idle_timeout=120.0, max_frames=120, trail_length=12, trail_particles=60,
               distance=None, distance_interval=0.5)
    r.play(); r.pause(); r.step_once(n=1); r.reset()
    r.set_speed(steps_per_frame=None, frame_interval=0.2)   # None: full speed
    r.update(configs)          # live when only LIVE_FIELDS change; otherwise a reset (said in .message)
    r.replace_data(source, target, configs=None, generated=None)   # new data: a reset
    snap = r.snapshot()        # the latest Snapshot; marks the runner as polled
    snap = r.wait_for(version, timeout=5.0)   # block until a snapshot newer than ``version``
    snap = r.wait_idle(timeout=10.0)          # block until queued commands (a step, a reset) are done
    r.frames()                 # recorded (step, t, particles of member 0) for an animation
    r.stop()                   # join the thread, free tensors (and the CUDA cache)
    r.alive; r.playing; r.closed

A Snapshot holds: version, run_id (changes on every reset), state ("ready" | "playing" | "paused" |
"finished" | "error" | "stopped"), playing, n, K/M/N/d, t (K,), particles (K, M, d), target (K, N, d),
generated, grid (PhiGrid of member 0 in 2-D, or None), history (HistoryData, bounded and downsampled),
per-member status / finished / diverged_at / reason / summary / spacing, steps_per_second, device,
message, error, trails (T, P, d) of member 0, configs and the data's extent; plus CSV helpers. With
generated points (paper §4: fresh source samples moved by the learned fields, never trained on),
``distance`` (a function of two clouds, e.g. ``functools.partial(gpa_core.ot.wasserstein2,
max_points=400)``: the engine does not import the OT code) gives ``distances``: the generated points'
distance to the target over time, and the trained particles' beside it (member 0, measured every
``distance_interval`` seconds while playing, at every single step command and at the end; subsample in
``distance`` to keep it cheap beside the run).

Threading: every change to the flow happens on the worker thread (or, for a brand-new flow, on
the caller before the worker ever sees it). Commands go through a queue guarded by one condition
variable; a paused worker waits on it (no busy loop). A worker that is not polled for
``idle_timeout`` seconds pauses and exits (the run is kept; the next command starts a new worker).
Any exception in the worker (out of memory, a bug) becomes ``state == "error"`` with the text in
``Snapshot.error``: never a silent dead thread.
"""

from __future__ import annotations

import atexit
import math
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from gpa_core.config import LIVE_FIELDS, ConfigError, FlowConfig, check_batch, field_label
from gpa_core.devices import describe_device
from gpa_core.engine.flow import GPAFlow, History
from gpa_core.engine.snapshot import (
    HISTORY_FIELDS,
    DistanceStore,
    Frame,
    FrameStore,
    HistoryStore,
    PhiGrid,
    RunnerState,
    Snapshot,
    data_extent,
    frozen,
    nearest_neighbour_spacing,
)

__all__ = ["Runner", "UpdateKind"]

UpdateKind = Literal["unchanged", "live", "reset"]

SMALL_PROBLEM = 4000  # M + N below this: one intra-op thread (per-op overhead dominates)
TARGET_CHUNK_SECONDS = 0.1  # at full speed a chunk lasts about this long (keeps commands responsive)
GRID_INTERVAL = 0.25  # seconds between φ-grid evaluations while playing
GRID_SIZE = 48  # φ heat-map resolution (GRID_SIZE²)
ARROW_SIZE = 15  # −∇φ arrows on an ARROW_SIZE² lattice
DISTANCE_INTERVAL = 0.5  # seconds between distance measurements of the generated points while playing


# ---------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------


def _as_configs(configs: FlowConfig | Sequence[FlowConfig]) -> tuple[FlowConfig, ...]:
    if isinstance(configs, FlowConfig):
        return (configs,)
    out = tuple(configs)
    if not all(isinstance(c, FlowConfig) for c in out):
        raise ConfigError("configs must be a FlowConfig or a sequence of FlowConfig")
    return check_batch(out)


def _changed_fields(old: Sequence[FlowConfig], new: Sequence[FlowConfig]) -> list[str]:
    names = []
    for f in fields(FlowConfig):
        if not f.compare:
            continue
        if any(getattr(a, f.name) != getattr(b, f.name) for a, b in zip(old, new, strict=False)):
            names.append(f.name)
    return names


class _Data(NamedTuple):
    """A run's point clouds (float64 copies): source (M, d), target (N, d), generated (G, d) or None."""

    source: np.ndarray
    target: np.ndarray
    generated: np.ndarray | None

    @classmethod
    def of(cls, source: Any, target: Any, generated: Any = None) -> _Data:
        def copy(a: Any) -> np.ndarray:
            return np.array(a, dtype=np.float64)

        return cls(copy(source), copy(target), None if generated is None else copy(generated))


@dataclass
class _Run:
    """One flow plus what the runner derives from it (owned by the worker once handed over)."""

    run_id: int
    flow: GPAFlow
    history: HistoryStore
    frames: FrameStore
    extent: tuple[np.ndarray, np.ndarray]
    target: np.ndarray
    trail_index: np.ndarray
    trails: deque = field(default_factory=deque)
    grid: PhiGrid | None = None
    grid_time: float = -math.inf
    spacing: tuple[float, ...] = ()
    distances: DistanceStore | None = None  # W₂ of the generated points over time (with generated)
    distance_time: float = -math.inf


class Runner:
    """Runs one GPA ensemble in a background thread and publishes :class:`Snapshot` objects.

    ``source`` (M, d) or (K, M, d), ``target`` (N, d) or (K, N, d), ``configs`` one FlowConfig or K
    of them (members may differ in PER_MEMBER_FIELDS). Invalid input raises ``ConfigError`` here,
    in the caller's thread, and leaves nothing running."""

    def __init__(
        self,
        source: np.ndarray,
        target: np.ndarray,
        configs: FlowConfig | Sequence[FlowConfig],
        *,
        generated: np.ndarray | None = None,
        grid: bool = True,
        max_history: int = 2000,
        idle_timeout: float = 120.0,
        max_frames: int = 120,
        trail_length: int = 12,
        trail_particles: int = 60,
        distance: Callable[[np.ndarray, np.ndarray], float] | None = None,
        distance_interval: float = DISTANCE_INTERVAL,
    ) -> None:
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout!r}")
        self.grid_enabled = bool(grid)
        self.max_history = int(max_history)
        self.max_frames = int(max_frames)
        self.idle_timeout = float(idle_timeout)
        self.trail_length = max(0, int(trail_length))
        self.trail_particles = max(0, int(trail_particles))
        self.distance = distance
        self.distance_interval = max(0.0, float(distance_interval))
        self._cond = threading.Condition()
        self._commands: deque[tuple[str, Any]] = deque()
        self._thread: threading.Thread | None = None
        self._worker_running = False
        self._stop_requested = False
        self._closed = False
        self._playing = False
        self._state: RunnerState = "ready"
        self._steps_per_frame: int | None = None
        self._frame_interval = 0.0
        self._last_poll = time.monotonic()
        self._version = 0
        self._run_counter = 0
        self._message = ""
        self._error: str | None = None
        self._sps = 0.0
        self._sec_per_step: float | None = None
        self._configs = _as_configs(configs)
        self._data = _Data.of(source, target, generated)
        run = self._build_run(self._data, self._configs)
        self._run: _Run | None = run
        self._current_run_id = run.run_id
        with self._cond:
            self._publish(self._make_snapshot(run))

    # -- public API -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the worker thread is running now."""
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def configs(self) -> tuple[FlowConfig, ...]:
        return self._configs

    def play(self) -> None:
        """Advance continuously (at the speed set by :meth:`set_speed`)."""
        with self._cond:
            self._check_open()
            self._last_poll = time.monotonic()
            if self._state == "error":
                self._message = "the run failed: reset to start again"
                return
            snap = self._snapshot
            more = any(
                status not in ("diverged", "stopped") and snap.n < c.steps
                for status, c in zip(snap.status, self._configs, strict=False)
            )
            if self._state == "finished" and more:
                self._state = "paused"  # more steps were allowed (a live change of steps)
            if self._state == "finished":
                self._message = "the run is finished: raise the number of steps (T = steps·Δt) or reset"
                self._snapshot = self._replace_snapshot(message=self._message)
                return
            self._playing = True
            self._ensure_worker()
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._playing = False
            self._commands.append(("publish", None))
            if not self._closed:
                self._ensure_worker()
            self._cond.notify_all()

    def step_once(self, n: int = 1) -> None:
        """Pause and advance exactly ``n`` steps (for members not finished)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive whole number of steps, got {n!r}")
        with self._cond:
            self._check_open()
            self._last_poll = time.monotonic()
            self._playing = False
            self._commands.append(("step", n))
            self._ensure_worker()
            self._cond.notify_all()

    def set_speed(self, steps_per_frame: int | None = None, frame_interval: float = 0.2) -> None:
        """``steps_per_frame`` steps every ``frame_interval`` seconds, or ``None``: full speed (chunks
        sized to take about 0.1 s)."""
        if steps_per_frame is not None and (
            isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int) or steps_per_frame < 1
        ):
            raise ValueError(
                f"steps_per_frame must be a positive whole number or None, got {steps_per_frame!r}"
            )
        if not 0 <= frame_interval <= 60:
            raise ValueError(f"frame_interval must be in [0, 60] seconds, got {frame_interval!r}")
        with self._cond:
            self._steps_per_frame = steps_per_frame
            self._frame_interval = float(frame_interval) if steps_per_frame is not None else 0.0
            self._cond.notify_all()

    def reset(self) -> None:
        """Back to step 0 with the same data and configuration: the same seeds give the same start."""
        self._swap(self._data, self._configs, "reset to step 0", keep_playing=False)

    def update(self, configs: FlowConfig | Sequence[FlowConfig]) -> UpdateKind:
        """Apply new configurations. Changes only to ``LIVE_FIELDS`` (Δt, L, lr, m_max, f, α, steps, …)
        take effect at the next chunk and keep the particles; any other change (network shape, seed,
        number of members, device…) resets the run, and the snapshot's message says so."""
        new = _as_configs(configs)
        with self._cond:
            self._check_open()
            old = self._configs
        if new == old and [c.notes for c in new] == [c.notes for c in old]:
            return "unchanged"
        changed = _changed_fields(old, new)
        labels = ", ".join(field_label(n) for n in changed) or "notes"
        if len(new) == len(old) and all(name in LIVE_FIELDS for name in changed):
            with self._cond:
                self._configs = new
                self._commands.append(("reconfigure", (new, f"{labels} changed live (particles kept)")))
                self._ensure_worker()
                self._cond.notify_all()
            return "live"
        if len(new) != len(old):
            reason = f"the number of members changed ({len(old)} → {len(new)})"
        else:
            reason = ", ".join(field_label(n) for n in changed if n not in LIVE_FIELDS)
            reason = f"{reason} cannot change during a run"
        self._swap(self._data, new, f"reset: {reason}", keep_playing=True)
        return "reset"

    def replace_data(
        self,
        source: np.ndarray,
        target: np.ndarray,
        configs: FlowConfig | Sequence[FlowConfig] | None = None,
        *,
        generated: np.ndarray | None = None,
    ) -> None:
        """New data (and optionally configurations): always a reset. Invalid input raises here and
        leaves the current run untouched."""
        new = self._configs if configs is None else _as_configs(configs)
        self._swap(_Data.of(source, target, generated), new, "reset: new data", keep_playing=True)

    def snapshot(self) -> Snapshot:
        """The latest snapshot; counts as a poll (keeps an idle worker alive)."""
        with self._cond:
            self._last_poll = time.monotonic()
            return self._snapshot

    def wait_for(self, version: int, timeout: float = 5.0) -> Snapshot:
        """Block until a snapshot newer than ``version`` exists (or ``timeout``); return the latest."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._last_poll = time.monotonic()
            while self._snapshot.version <= version and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._snapshot

    def wait_idle(self, timeout: float = 10.0) -> Snapshot:
        """Block until every queued command is done and no chunk is in progress (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._commands or self._busy) and self._worker_running and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
            return self._snapshot

    def frames(self) -> list[Frame]:
        """The recorded frames of member 0 (bounded, evenly spaced), for an animation."""
        with self._cond:
            run = self._run
            return list(run.frames.frames) if run is not None else []

    def stop(self, timeout: float = 10.0) -> None:
        """Stop for good: join the worker, drop the flow's tensors (and the CUDA cache)."""
        with self._cond:
            if self._closed and self._thread is None:
                return
            self._closed = True
            self._stop_requested = True
            self._playing = False
            self._commands.clear()
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            if thread is None or not thread.is_alive():
                self._thread = None
                self._release()
            self._state = "stopped"
            self._snapshot = self._replace_snapshot(state="stopped", playing=False, message="stopped")
            self._cond.notify_all()

    # -- internals: caller side -------------------------------------------------------------------
    _busy = False
    last_traceback: str = ""

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this runner has been stopped; create a new one")

    def _build_run(self, data: _Data, configs: tuple[FlowConfig, ...]) -> _Run:
        source, target = data.source, data.target
        flow = GPAFlow(source, target, configs, generated=data.generated)
        self._run_counter += 1
        tgt = frozen(flow.target())
        extent = data_extent(source, target)
        extent = (frozen(extent[0]), frozen(extent[1]))
        rng = np.random.default_rng(0)
        p = min(self.trail_particles, flow.M)
        trail_index = np.sort(rng.choice(flow.M, size=p, replace=False)) if p else np.zeros(0, dtype=np.int64)
        run = _Run(
            run_id=self._run_counter,
            flow=flow,
            history=HistoryStore(flow.K, self.max_history),
            frames=FrameStore(self.max_frames),
            extent=extent,
            target=tgt,
            trail_index=trail_index,
            trails=deque(maxlen=max(1, self.trail_length)),
        )
        particles = flow.particles()
        run.frames.offer(0, 0.0, particles[0])
        if self.trail_length and p:
            run.trails.append(particles[0][trail_index])
        if flow.G is not None and self.distance is not None:
            run.distances = DistanceStore()
            self._measure_distances(run, particles)
        self._harvest(run)
        self._compute_grid(run)
        return run

    def _swap(
        self, data: _Data, configs: tuple[FlowConfig, ...], message: str, *, keep_playing: bool
    ) -> None:
        """Build a new run from ``data`` and ``configs`` and hand it to the worker (a reset)."""
        with self._cond:
            self._check_open()
        run = self._build_run(data, configs)  # may raise: nothing changed then
        with self._cond:
            self._check_open()
            self._data, self._configs = data, configs
            self._current_run_id = run.run_id
            self._message = message
            self._error = None
            if not keep_playing:
                self._playing = False
            self._state = "playing" if self._playing else "ready"
            self._sec_per_step = None
            self._sps = 0.0
            snap = self._make_snapshot(run)  # safe: the worker has not seen this flow yet
            self._publish(snap)
            self._commands.append(("swap", run))
            self._last_poll = time.monotonic()
            self._ensure_worker()
            self._cond.notify_all()

    def _ensure_worker(self) -> None:
        """Start a worker if none is running (call with the lock held)."""
        if self._worker_running or self._closed:
            return
        previous = self._thread
        self._worker_running = True
        self._stop_requested = False
        self._thread = threading.Thread(target=self._worker, args=(previous,), name="gpa-runner", daemon=True)
        _LIVE.add(self)
        self._thread.start()

    # -- internals: worker side -------------------------------------------------------------------
    def _worker(self, previous: threading.Thread | None) -> None:
        if previous is not None and previous.is_alive():
            previous.join()  # the old worker is on its way out: never two on one flow
        try:
            run = self._run
            if run is not None and run.flow.M + run.flow.N < SMALL_PROBLEM:
                torch.set_num_threads(1)
            while True:
                cmd = self._next_command()  # marks the runner busy as it hands out the command
                if cmd is None:
                    return
                kind, arg = cmd
                try:
                    self._handle(kind, arg)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()
        except BaseException as exc:  # out of memory, a bug: make it visible, never a silent dead thread
            self._fail(exc)
        finally:
            with self._cond:
                self._worker_running = False
                if self._stop_requested:
                    self._release()
                self._cond.notify_all()

    def _next_command(self) -> tuple[str, Any] | None:
        """Wait for the next thing to do: a queued command, a chunk while playing, or exit (stop/idle).
        A command leaves the queue and the runner turns busy in one step under the lock, so
        ``wait_idle`` never sees an empty queue and an idle runner while a command is in hand."""
        with self._cond:
            while True:
                if self._stop_requested:
                    return None
                if self._commands:
                    self._busy = True
                    return self._commands.popleft()
                now = time.monotonic()
                idle = now - self._last_poll
                if idle >= self.idle_timeout:
                    if self._playing:
                        self._playing = False
                        self._message = f"paused: nobody looked for {self.idle_timeout:g} s"
                        self._state = "paused"
                        self._snapshot = self._replace_snapshot(
                            state="paused", playing=False, message=self._message
                        )
                        self._cond.notify_all()
                    return None
                if self._playing and self._state not in ("error", "finished"):
                    self._busy = True
                    return ("chunk", None)
                self._cond.wait(min(1.0, self.idle_timeout - idle))

    def _handle(self, kind: str, arg: Any) -> None:
        run = self._run
        if kind == "swap":
            old, self._run = self._run, arg
            if old is not None and old is not arg:
                del old
                _empty_cuda_cache(arg.flow.device)
            return
        if run is None:
            return
        if kind == "chunk":
            self._chunk(run)
        elif kind == "step":
            self._advance(run, int(arg))
            self._after_advance(run, force=True)
        elif kind == "reconfigure":
            configs, message = arg
            try:
                run.flow.reconfigure(configs)
            except ConfigError as exc:
                with self._cond:
                    self._configs = tuple(run.flow.configs)
                    self._message = f"could not apply the change: {exc}"
                self._after_advance(run, force=True)
                return
            with self._cond:
                self._message = f"{message} at step {run.flow.n}"
                if self._state == "finished" and not all(run.flow.finished(k) for k in range(run.flow.K)):
                    self._state = "playing" if self._playing else "paused"
            self._after_advance(run, force=True)
        elif kind == "publish":
            self._after_advance(run, force=True)

    def _chunk(self, run: _Run) -> None:
        start = time.monotonic()
        with self._cond:
            per_frame, interval = self._steps_per_frame, self._frame_interval
        if per_frame is None:
            spp = self._sec_per_step
            n = 1 if spp is None else int(min(500, max(1, TARGET_CHUNK_SECONDS / max(spp, 1e-6))))
        else:
            n = per_frame
        self._advance(run, n)
        self._after_advance(run, force=False)
        if interval > 0:  # slow motion: wait out the rest of the frame (wakes early for commands)
            with self._cond:
                deadline = start + interval
                while self._playing and not self._commands and not self._stop_requested:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)

    def _advance(self, run: _Run, n: int) -> None:
        t0 = time.perf_counter()
        taken = run.flow.step(n)
        elapsed = time.perf_counter() - t0
        if taken:
            per = elapsed / taken
            self._sec_per_step = per if self._sec_per_step is None else 0.7 * self._sec_per_step + 0.3 * per
            rate = taken / max(elapsed, 1e-9)
            self._sps = rate if self._sps <= 0 else 0.7 * self._sps + 0.3 * rate

    def _after_advance(self, run: _Run, *, force: bool) -> None:
        """Harvest history, record frames/trails, maybe evaluate φ, publish a snapshot."""
        flow = run.flow
        self._harvest(run)
        particles = flow.particles()
        t0 = float(flow.t[0])
        run.frames.offer(flow.n, t0, particles[0])
        if self.trail_length and run.trail_index.size:
            run.trails.append(particles[0][run.trail_index])
        now = time.monotonic()
        if force or now - run.grid_time >= GRID_INTERVAL:
            self._compute_grid(run, particles)
        done = all(flow.finished(k) for k in range(flow.K))
        if run.distances is not None and (force or done or now - run.distance_time >= self.distance_interval):
            self._measure_distances(run, particles)
        with self._cond:
            if run.run_id != self._current_run_id:
                return  # a reset overtook this chunk
            if done and self._state != "error":
                if self._playing or self._state != "finished":
                    self._message = self._finish_message(flow)
                self._playing = False
                self._state = "finished"
            elif self._state != "error":
                self._state = "playing" if self._playing else "paused"
        snap = self._make_snapshot(run, particles=particles)
        with self._cond:
            if run.run_id == self._current_run_id:
                self._publish(snap)

    def _finish_message(self, flow: GPAFlow) -> str:
        parts = []
        for s in flow.summary():
            if s.status == "diverged":
                parts.append(f"diverged at t = {s.diverged_at:.4g}")
            elif s.status == "stopped":
                parts.append(f"stopped at t = {s.t:.4g} by the rule D ≤ ε ({s.reason})")
            elif s.status == "converged":
                parts.append(f"converged by t = {s.t:.4g}")
            else:
                parts.append(f"reached T = {s.t:.4g}")
        if len(parts) > 1:
            parts = [f"member {k}: {p}" for k, p in enumerate(parts)]
        return "finished — " + "; ".join(parts)

    def _harvest(self, run: _Run) -> None:
        """Move the flow's new history rows into the bounded store; the flow keeps only its last row
        (``status``/``summary`` read it), so nothing grows without limit."""
        h = run.flow.history
        if len(h) == 0:
            return
        last_step = int(run.history.latest[0][0]) if run.history.latest is not None else -1
        new = h.step > last_step
        if new.any():
            run.history.extend(h.step[new], {name: getattr(h, name)[new] for name in HISTORY_FIELDS})
        if len(h) > 1:
            keep = History()
            keep.step = h.step[-1:].copy()
            for name in HISTORY_FIELDS:
                setattr(keep, name, getattr(h, name)[-1:].copy())
            run.flow.history = keep

    def _measure_distances(self, run: _Run, particles: np.ndarray) -> None:
        """The distance of member 0's generated points and of its particles to the target, once per
        step."""
        flow, store, distance = run.flow, run.distances, self.distance
        if store is None or distance is None or flow.n == store.last_step:
            return
        gen = flow.generated()
        if gen is None:
            return

        def w2(points: np.ndarray) -> float:
            if not np.isfinite(points).all():
                return math.nan
            try:
                return float(distance(points, run.target[0]))
            except (ValueError, RuntimeError):  # a solver that stopped short: a gap, not a failed run
                return math.nan

        store.offer(flow.n, float(flow.t[0]), w2(gen[0]), w2(particles[0]))
        run.distance_time = time.monotonic()

    def _compute_grid(self, run: _Run, particles: np.ndarray | None = None) -> None:
        """The slower read-outs of member 0, refreshed every GRID_INTERVAL s while playing: the
        particles' nearest-neighbour spacing and (2-D) φ on a grid with −∇φ arrows."""
        flow = run.flow
        parts = flow.particles() if particles is None else particles
        run.spacing = (nearest_neighbour_spacing(parts[0]),) + (math.nan,) * (flow.K - 1)
        run.grid_time = time.monotonic()
        if not self.grid_enabled or flow.d != 2:
            return
        lo, hi = run.extent
        xs = np.linspace(lo[0], hi[0], GRID_SIZE)
        ys = np.linspace(lo[1], hi[1], GRID_SIZE)
        gx, gy = np.meshgrid(xs, ys)
        ax1 = np.linspace(lo[0], hi[0], ARROW_SIZE + 2)[1:-1]
        ay1 = np.linspace(lo[1], hi[1], ARROW_SIZE + 2)[1:-1]
        agx, agy = np.meshgrid(ax1, ay1)
        pts = np.concatenate(
            [np.column_stack([gx.ravel(), gy.ravel()]), np.column_stack([agx.ravel(), agy.ravel()])]
        )
        phi, grad = flow.potential(pts, member=0)
        g = GRID_SIZE * GRID_SIZE
        run.grid = PhiGrid(
            xs=frozen(xs),
            ys=frozen(ys),
            phi=frozen(phi[:g].reshape(GRID_SIZE, GRID_SIZE)),
            ax=frozen(agx.ravel()),
            ay=frozen(agy.ravel()),
            u=frozen(-grad[g:, 0]),
            v=frozen(-grad[g:, 1]),
            n=flow.n,
            member=0,
        )
        run.grid_time = time.monotonic()

    def _make_snapshot(self, run: _Run, particles: np.ndarray | None = None) -> Snapshot:
        flow = run.flow
        parts = flow.particles() if particles is None else particles
        summary = tuple(flow.summary())
        gen = flow.generated()
        trails = np.stack(list(run.trails)) if run.trails else None
        return Snapshot(
            version=self._version + 1,
            run_id=run.run_id,
            state=self._state,
            playing=self._playing,
            n=int(flow.n),
            K=flow.K,
            M=flow.M,
            N=flow.N,
            d=flow.d,
            t=frozen(flow.t.detach().cpu().numpy().copy()),
            particles=frozen(parts),
            target=run.target,
            generated=None if gen is None else frozen(gen),
            grid=run.grid,
            history=run.history.data(),
            status=tuple(s.status for s in summary),
            finished=tuple(flow.finished(k) for k in range(flow.K)),
            diverged_at=tuple(s.diverged_at for s in summary),
            reason=tuple(s.reason for s in summary),
            summary=summary,
            steps_per_second=float(self._sps),
            device=describe_device(flow.device),
            engine=flow.engine,
            engine_reason=flow.engine_reason,
            message=self._message,
            error=self._error,
            trails=None if trails is None else frozen(trails),
            spacing=run.spacing if len(run.spacing) == flow.K else (math.nan,) * flow.K,
            configs=tuple(flow.configs),
            extent=run.extent,
            distances=None if run.distances is None else run.distances.data(),
            wall_time=time.monotonic(),
        )

    def _replace_snapshot(self, **changes: Any) -> Snapshot:
        """The current snapshot with a few plain fields changed (call with the lock held)."""
        import dataclasses

        self._version += 1
        return dataclasses.replace(
            self._snapshot, version=self._version, wall_time=time.monotonic(), **changes
        )

    def _publish(self, snap: Snapshot) -> None:
        """Make ``snap`` current (call with the lock held)."""
        import dataclasses

        self._version += 1
        if snap.version != self._version:
            snap = dataclasses.replace(snap, version=self._version)
        self._snapshot = snap
        self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, torch.OutOfMemoryError):
            text = f"out of memory on the device ({exc}); try fewer particles or a smaller network"
        with self._cond:
            self.last_traceback = traceback.format_exc(limit=8)
            self._playing = False
            self._state = "error"
            self._error = text
            self._message = f"the run failed: {text}"
            self._snapshot = self._replace_snapshot(
                state="error", playing=False, error=text, message=self._message
            )
            self._cond.notify_all()
        run = self._run
        if run is not None:
            _empty_cuda_cache(run.flow.device)

    def _release(self) -> None:
        """Drop the flow and its tensors (call with the lock held, worker gone)."""
        run, self._run = self._run, None
        if run is not None:
            device = run.flow.device
            del run
            _empty_cuda_cache(device)


def _empty_cuda_cache(device: torch.device) -> None:
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()


#: Runners that have started a worker (weakly held).
_LIVE: weakref.WeakSet[Runner] = weakref.WeakSet()


@atexit.register
def _stop_live_runners() -> None:
    """At exit, stop every runner whose worker still runs (a daemon thread torn down inside a Torch
    operation or a compiled kernel aborts the process, exit status 134); 2 s each at most."""
    for runner in list(_LIVE):
        if runner._thread is not None and runner._thread.is_alive():
            runner.stop(timeout=2.0)
