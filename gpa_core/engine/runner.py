"""A background runner for one live GPA flow (one per browser session), with immutable snapshots.

The runner owns a :class:`~gpa_core.engine.flow.GPAFlow` (an ensemble of K ≥ 1 members) and a worker
thread that advances it in step-chunks on the Torch device. Whoever displays the run (a Streamlit
page, a notebook, a benchmark) only ever reads :class:`Snapshot` objects: frozen, read-only NumPy
copies of the particles, the target, φ on a grid with −∇φ arrows (member 0, 2-D runs), a bounded
history of the kinetic energy (3.3) and the divergence estimate, statuses, steps per second, and
messages. The worker never calls any UI code.

API::

    r = Runner(source, target, configs, *, generated=None, grid=True, max_history=2000,
               idle_timeout=120.0, max_frames=120, trail_length=12, trail_particles=60)
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
message, error, trails (T, P, d) of member 0, configs and the data's extent; plus CSV helpers.

Threading: every change to the flow happens on the worker thread (or, for a brand-new flow, on
the caller before the worker ever sees it). Commands go through a queue guarded by one condition
variable; a paused worker waits on it (no busy loop). A worker that is not polled for
``idle_timeout`` seconds pauses and exits (the run is kept; the next command starts a new worker).
Any exception in the worker (out of memory, a bug) becomes ``state == "error"`` with the text in
``Snapshot.error``: never a silent dead thread.
"""

from __future__ import annotations

import io
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch

from gpa_core.config import ConfigError, FlowConfig, check_batch
from gpa_core.devices import describe_device
from gpa_core.engine.flow import LIVE_FIELDS, GPAFlow, History, MemberSummary

__all__ = [
    "HISTORY_FIELDS",
    "Frame",
    "HistoryData",
    "PhiGrid",
    "Runner",
    "RunnerState",
    "Snapshot",
    "UpdateKind",
    "data_extent",
    "nearest_neighbour_spacing",
    "nondegenerate_box",
]

RunnerState = Literal["ready", "playing", "paused", "finished", "error", "stopped"]
UpdateKind = Literal["unchanged", "live", "reset"]

HISTORY_FIELDS: tuple[str, ...] = History.FIELDS
"""The recorded quantities, each (R, K): time, kinetic_energy, divergence, max_speed,
lipschitz_bound, max_exp_arg."""

SMALL_PROBLEM = 4000  # M + N below this: one intra-op thread (per-op overhead dominates)
TARGET_CHUNK_SECONDS = 0.1  # at full speed a chunk lasts about this long (keeps commands responsive)
GRID_INTERVAL = 0.25  # seconds between φ-grid evaluations while playing
GRID_SIZE = 48  # φ heat-map resolution (GRID_SIZE²)
ARROW_SIZE = 15  # −∇φ arrows on an ARROW_SIZE² lattice


# ---------------------------------------------------------------------------------------------------
# Snapshot pieces
# ---------------------------------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view (snapshots are immutable: readers share arrays without copying)."""
    a = np.asarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class PhiGrid:
    """φ of one member on a regular 2-D grid and −∇φ (the velocity field) on a coarser lattice."""

    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    phi: np.ndarray  # (ny, nx): phi[j, i] = φ(xs[i], ys[j])
    ax: np.ndarray  # (P,) arrow bases
    ay: np.ndarray  # (P,)
    u: np.ndarray  # (P,) −∂φ/∂x
    v: np.ndarray  # (P,) −∂φ/∂y
    n: int  # the step whose φ this is
    member: int = 0


@dataclass(frozen=True)
class HistoryData:
    """A bounded, downsampled copy of the flow's history: ``step`` (R,), the rest (R, K).

    ``stride`` is how many recorded rows one kept row stands for (1 until the store first fills)."""

    step: np.ndarray
    time: np.ndarray
    kinetic_energy: np.ndarray
    divergence: np.ndarray
    max_speed: np.ndarray
    lipschitz_bound: np.ndarray
    max_exp_arg: np.ndarray
    stride: int = 1

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def member(self, k: int) -> dict[str, np.ndarray]:
        """1-D arrays of member ``k`` (and ``step``)."""
        out = {"step": self.step}
        out.update({name: getattr(self, name)[:, k] for name in HISTORY_FIELDS})
        return out


@dataclass(frozen=True)
class Frame:
    """One recorded state of member 0 for an animation."""

    step: int
    t: float
    particles: np.ndarray  # (M, d) float32


@dataclass(frozen=True)
class Snapshot:
    """Everything a view needs, frozen: NumPy arrays are read-only and never change afterwards.

    ``version`` grows with every published snapshot; ``run_id`` changes when the run is reset
    (new particles), so a view can restart trails and keep zoom within one run."""

    version: int
    run_id: int
    state: RunnerState
    playing: bool
    n: int
    K: int
    M: int
    N: int
    d: int
    t: np.ndarray  # (K,) physical time per member
    particles: np.ndarray  # (K, M, d)
    target: np.ndarray  # (K, N, d)
    generated: np.ndarray | None  # (K, G, d)
    grid: PhiGrid | None
    history: HistoryData
    status: tuple[str, ...]  # per member: running | converged | diverged
    finished: tuple[bool, ...]
    diverged_at: tuple[float | None, ...]
    reason: tuple[str, ...]
    summary: tuple[MemberSummary, ...]
    steps_per_second: float
    device: str
    engine: str  # "compiled" or "eager": which path computes the run
    engine_reason: str  # why that path
    message: str
    error: str | None
    trails: np.ndarray | None  # (T, P, d): the last T positions of P particles of member 0
    spacing: tuple[float, ...]  # per member: median nearest-neighbour distance (member 0 only; else NaN)
    configs: tuple[FlowConfig, ...]
    extent: tuple[np.ndarray, np.ndarray]  # (lo (d,), hi (d,)) of source ∪ target at the start
    wall_time: float = field(default=0.0, compare=False)  # time.monotonic() at publication

    @property
    def any_diverged(self) -> bool:
        return any(s == "diverged" for s in self.status)

    def particles_csv(self, member: int = 0) -> str:
        """The particles of one member as CSV text (header x1, …, xd)."""
        return _csv(self.particles[member], [f"x{i + 1}" for i in range(self.d)])

    def history_csv(self) -> str:
        """The (downsampled) history as CSV: one row per recorded step and member."""
        h = self.history
        rows = []
        for k in range(self.K):
            block = np.column_stack(
                [h.step.astype(np.float64), np.full(len(h), float(k))]
                + [getattr(h, f)[:, k] for f in HISTORY_FIELDS]
            )
            rows.append(block)
        table = np.concatenate(rows) if rows else np.zeros((0, 2 + len(HISTORY_FIELDS)))
        return _csv(table, ["step", "member", *HISTORY_FIELDS], int_columns=(0, 1))

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The history as a dict of arrays (for ``np.savez``)."""
        return {"step": self.history.step, **{f: getattr(self.history, f) for f in HISTORY_FIELDS}}


def _csv(table: np.ndarray, header: Sequence[str], int_columns: Sequence[int] = ()) -> str:
    table = np.asarray(table, dtype=np.float64).reshape(-1, len(header))
    fmt = ["%d" if j in int_columns else "%.9g" for j in range(len(header))]
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=fmt, delimiter=",", header=",".join(header), comments="")
    return buf.getvalue()


_F32_EPS = float(np.finfo(np.float32).eps)


def nondegenerate_box(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box [lo, hi] with no side of (almost) zero length, so that degenerate data (a constant
    coordinate, all points identical) do not give a sliver of a view: a side shorter than 1e-3 of the
    longest gets the longest one's length; a box that is a point within float32's resolution gets sides
    of max(1, 1e-4·|centre|). Widened sides stay centred on the data; the others are kept exactly."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    centre, span = (lo + hi) / 2, hi - lo
    size = max(1.0, float(np.max(np.abs(centre), initial=0.0)))
    longest = float(np.max(span, initial=0.0))
    side = longest if longest > 4 * _F32_EPS * size else max(1.0, 1e-4 * size)
    short = ~(span >= 1e-3 * side)
    return np.where(short, centre - side / 2, lo), np.where(short, centre + side / 2, hi)


def data_extent(*clouds: np.ndarray, pad: float = 0.08, reach: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """A padded bounding box (lo, hi) of point clouds (..., d), ignoring non-finite values. Per
    coordinate the box is the data's range cut to ``reach`` times the 10–90 % quantile range beyond
    those quantiles, so the far outliers of heavy-tailed data do not squash the view (for Gaussian data
    this cut lies beyond 5σ: the whole range)."""
    pts = np.concatenate(
        [np.asarray(c, dtype=np.float64).reshape(-1, np.asarray(c).shape[-1]) for c in clouds]
    )
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.size == 0:
        d = np.asarray(clouds[0]).shape[-1]
        return np.full(d, -1.0), np.full(d, 1.0)
    q10, q90 = np.quantile(pts, 0.1, axis=0), np.quantile(pts, 0.9, axis=0)
    core = q90 - q10
    lo = np.maximum(pts.min(axis=0), q10 - reach * core)
    hi = np.minimum(pts.max(axis=0), q90 + reach * core)
    span = hi - lo
    # a constant coordinate or a single point still gets a box the φ grid and the view can use
    return nondegenerate_box(lo - pad * span, hi + pad * span)


def nearest_neighbour_spacing(points: np.ndarray, max_points: int = 2000, seed: int = 0) -> float:
    """Median distance from a point to its nearest neighbour (over a random subset of at most
    ``max_points`` points, which overstates the spacing of larger clouds); NaN for fewer than 2."""
    from scipy.spatial import cKDTree

    x = np.asarray(points, dtype=np.float64)
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 2:
        return math.nan
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), size=max_points, replace=False)]
    dist, _ = cKDTree(x).query(x, k=2)
    return float(np.median(dist[:, 1]))


# ---------------------------------------------------------------------------------------------------
# Bounded stores
# ---------------------------------------------------------------------------------------------------


class _HistoryStore:
    """At most ``capacity`` rows: when full, every other row is dropped and the stride doubles, so
    the kept rows stay evenly spaced over the whole run (a log of any length in bounded memory)."""

    def __init__(self, K: int, capacity: int) -> None:
        self.K = K
        self.capacity = max(4, int(capacity))
        self.stride = 1
        self.seen = 0  # rows offered so far
        self.step = np.zeros(0, dtype=np.int64)
        self.values = {name: np.zeros((0, K)) for name in HISTORY_FIELDS}
        self.latest: tuple[np.ndarray, dict[str, np.ndarray]] | None = None

    def extend(self, steps: np.ndarray, values: dict[str, np.ndarray]) -> None:
        if steps.size == 0:
            return
        self.latest = (steps[-1:].copy(), {k: v[-1:].copy() for k, v in values.items()})
        index = self.seen + np.arange(steps.size)
        self.seen += steps.size
        keep = index % self.stride == 0
        # always new arrays (never in place): published snapshots share the old ones
        self.step = np.concatenate([self.step, steps[keep]])
        self.values = {k: np.concatenate([self.values[k], values[k][keep]]) for k in HISTORY_FIELDS}
        while self.step.size > self.capacity:
            self.step = self.step[::2].copy()
            self.values = {k: v[::2].copy() for k, v in self.values.items()}
            self.stride *= 2

    def data(self) -> HistoryData:
        step, values = self.step, self.values
        if self.latest is not None and (step.size == 0 or step[-1] != self.latest[0][0]):
            step = np.concatenate([step, self.latest[0]])  # the curves end at the current value
            values = {k: np.concatenate([values[k], self.latest[1][k]]) for k in HISTORY_FIELDS}
        return HistoryData(
            step=_frozen(step), **{k: _frozen(values[k]) for k in HISTORY_FIELDS}, stride=self.stride
        )


class _FrameStore:
    """At most ``capacity`` frames of member 0, evenly spaced in steps (stride doubles when full)."""

    def __init__(self, capacity: int, max_bytes: int = 24 * 2**20) -> None:
        self.capacity = max(2, int(capacity))
        self.max_bytes = max_bytes
        self.every = 1
        self.frames: list[Frame] = []

    def offer(self, n: int, t: float, particles: np.ndarray) -> None:
        if self.frames and (n == self.frames[-1].step or n % self.every):
            return
        p = _frozen(np.asarray(particles, dtype=np.float32).copy())
        limit = max(2, min(self.capacity, self.max_bytes // max(1, p.nbytes)))
        self.frames.append(Frame(int(n), float(t), p))
        while len(self.frames) > limit:
            self.every *= 2
            self.frames = [f for f in self.frames if f.step % self.every == 0] or self.frames[-1:]
            if len(self.frames) > limit:  # steps not aligned to the new stride (a live Δt/step change)
                self.frames = self.frames[::2]


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


_FIELD_LABELS = {"dt": "Δt", "alpha": "α", "inner_steps": "m_max", "lr": "learning rate", "L": "L", "f": "f"}


def _changed_fields(old: Sequence[FlowConfig], new: Sequence[FlowConfig]) -> list[str]:
    names = []
    for f in fields(FlowConfig):
        if not f.compare:
            continue
        if any(getattr(a, f.name) != getattr(b, f.name) for a, b in zip(old, new, strict=False)):
            names.append(f.name)
    return names


@dataclass
class _Run:
    """One flow plus what the runner derives from it (owned by the worker once handed over)."""

    run_id: int
    flow: GPAFlow
    history: _HistoryStore
    frames: _FrameStore
    extent: tuple[np.ndarray, np.ndarray]
    target: np.ndarray
    trail_index: np.ndarray
    trails: deque = field(default_factory=deque)
    grid: PhiGrid | None = None
    grid_time: float = -math.inf
    spacing: tuple[float, ...] = ()


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
    ) -> None:
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be positive seconds, got {idle_timeout!r}")
        self.grid_enabled = bool(grid)
        self.max_history = int(max_history)
        self.max_frames = int(max_frames)
        self.idle_timeout = float(idle_timeout)
        self.trail_length = max(0, int(trail_length))
        self.trail_particles = max(0, int(trail_particles))
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
        self._source = np.array(source, dtype=np.float64)
        self._target = np.array(target, dtype=np.float64)
        self._generated = None if generated is None else np.array(generated, dtype=np.float64)
        run = self._build_run(self._source, self._target, self._generated, self._configs)
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
                status != "diverged" and snap.n < c.steps
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
        self._swap(
            self._source, self._target, self._generated, self._configs, "reset to step 0", keep_playing=False
        )

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
        labels = ", ".join(_FIELD_LABELS.get(n, n) for n in changed) or "notes"
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
            reason = ", ".join(_FIELD_LABELS.get(n, n) for n in changed if n not in LIVE_FIELDS)
            reason = f"{reason} cannot change during a run"
        self._swap(self._source, self._target, self._generated, new, f"reset: {reason}", keep_playing=True)
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
        self._swap(
            np.array(source, dtype=np.float64),
            np.array(target, dtype=np.float64),
            None if generated is None else np.array(generated, dtype=np.float64),
            new,
            "reset: new data",
            keep_playing=True,
        )

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

    def _build_run(
        self,
        source: np.ndarray,
        target: np.ndarray,
        generated: np.ndarray | None,
        configs: tuple[FlowConfig, ...],
    ) -> _Run:
        flow = GPAFlow(source, target, configs, generated=generated)
        self._run_counter += 1
        tgt = _frozen(flow.target())
        extent = data_extent(source, target)
        extent = (_frozen(extent[0]), _frozen(extent[1]))
        rng = np.random.default_rng(0)
        p = min(self.trail_particles, flow.M)
        trail_index = np.sort(rng.choice(flow.M, size=p, replace=False)) if p else np.zeros(0, dtype=np.int64)
        run = _Run(
            run_id=self._run_counter,
            flow=flow,
            history=_HistoryStore(flow.K, self.max_history),
            frames=_FrameStore(self.max_frames),
            extent=extent,
            target=tgt,
            trail_index=trail_index,
            trails=deque(maxlen=max(1, self.trail_length)),
        )
        particles = flow.particles()
        run.frames.offer(0, 0.0, particles[0])
        if self.trail_length and p:
            run.trails.append(particles[0][trail_index])
        self._harvest(run)
        self._compute_grid(run)
        return run

    def _swap(
        self,
        source: np.ndarray,
        target: np.ndarray,
        generated: np.ndarray | None,
        configs: tuple[FlowConfig, ...],
        message: str,
        *,
        keep_playing: bool,
    ) -> None:
        with self._cond:
            self._check_open()
        run = self._build_run(source, target, generated, configs)  # may raise: nothing changed then
        with self._cond:
            self._check_open()
            self._source, self._target, self._generated, self._configs = source, target, generated, configs
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
            xs=_frozen(xs),
            ys=_frozen(ys),
            phi=_frozen(phi[:g].reshape(GRID_SIZE, GRID_SIZE)),
            ax=_frozen(agx.ravel()),
            ay=_frozen(agy.ravel()),
            u=_frozen(-grad[g:, 0]),
            v=_frozen(-grad[g:, 1]),
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
            t=_frozen(flow.t.detach().cpu().numpy().copy()),
            particles=_frozen(parts),
            target=run.target,
            generated=None if gen is None else _frozen(gen),
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
            trails=None if trails is None else _frozen(trails),
            spacing=run.spacing if len(run.spacing) == flow.K else (math.nan,) * flow.K,
            configs=tuple(flow.configs),
            extent=run.extent,
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
