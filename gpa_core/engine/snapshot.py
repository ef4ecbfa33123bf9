"""What a live run shows, frozen: :class:`Snapshot` (particles, target, φ on a grid, bounded history,
statuses, trails — read-only NumPy arrays), its pieces, the stores the runner fills them from, and the
data-extent helpers that fix a figure's axes. Built by :class:`~gpa_core.engine.runner.Runner`."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gpa_core.config import FlowConfig
from gpa_core.engine.flow import History, MemberSummary

RunnerState = Literal["ready", "playing", "paused", "finished", "error", "stopped"]

HISTORY_FIELDS: tuple[str, ...] = History.FIELDS
"""The recorded quantities, each (R, K): time, kinetic_energy, divergence, max_speed,
lipschitz_bound, max_exp_arg."""


def frozen(a: np.ndarray) -> np.ndarray:
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
class DistanceSeries:
    """A distance to the target (the runner's ``distance``, W₂ in the playground) along a run with
    generated points (member 0), measured every so often (not every step): ``step``, ``time``,
    ``generated`` (of the generated points, paper §4) and ``particles`` (of the trained particles, for
    comparison), each (R,)."""

    step: np.ndarray
    time: np.ndarray
    generated: np.ndarray
    particles: np.ndarray

    def __len__(self) -> int:
        return int(self.step.shape[0])


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
    distances: DistanceSeries | None = None  # W₂ of the generated points (and particles) over time
    wall_time: float = field(default=0.0, compare=False)  # time.monotonic() at publication

    @property
    def any_diverged(self) -> bool:
        return any(s == "diverged" for s in self.status)

    def particles_csv(self, member: int = 0) -> str:
        """The particles of one member as CSV text (header x1, …, xd)."""
        return _csv(self.particles[member], [f"x{i + 1}" for i in range(self.d)])

    def generated_csv(self, member: int = 0) -> str:
        """The generated points of one member as CSV text (header x1, …, xd); ValueError without any."""
        if self.generated is None:
            raise ValueError("this run has no generated points")
        return _csv(self.generated[member], [f"x{i + 1}" for i in range(self.d)])

    def distances_csv(self) -> str:
        """W₂ to the target over time (step, time, W2_generated, W2_particles); empty without any."""
        s = self.distances
        if s is None:
            return _csv(np.zeros((0, 4)), ["step", "time", "w2_generated", "w2_particles"], (0,))
        table = np.column_stack([s.step.astype(np.float64), s.time, s.generated, s.particles])
        return _csv(table, ["step", "time", "w2_generated", "w2_particles"], int_columns=(0,))

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


class HistoryStore:
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
            step=frozen(step), **{k: frozen(values[k]) for k in HISTORY_FIELDS}, stride=self.stride
        )


class DistanceStore:
    """At most ``capacity`` W₂ measurements, thinned like :class:`HistoryStore` (every other one
    dropped when full), so a long run keeps evenly spread measurements in bounded memory."""

    def __init__(self, capacity: int = 400) -> None:
        self.capacity = max(4, int(capacity))
        self.rows: list[tuple[int, float, float, float]] = []
        self.last_step = -1

    def offer(self, step: int, time: float, generated: float, particles: float) -> None:
        self.rows.append((int(step), float(time), float(generated), float(particles)))
        self.last_step = int(step)
        if len(self.rows) > self.capacity:
            self.rows = self.rows[:-1:2] + self.rows[-1:]  # keep the latest measurement

    def data(self) -> DistanceSeries:
        a = np.asarray(self.rows, dtype=np.float64).reshape(-1, 4)
        return DistanceSeries(
            step=frozen(a[:, 0].astype(np.int64)),
            time=frozen(a[:, 1].copy()),
            generated=frozen(a[:, 2].copy()),
            particles=frozen(a[:, 3].copy()),
        )


class FrameStore:
    """At most ``capacity`` frames of member 0, evenly spaced in steps (stride doubles when full)."""

    def __init__(self, capacity: int, max_bytes: int = 24 * 2**20) -> None:
        self.capacity = max(2, int(capacity))
        self.max_bytes = max_bytes
        self.every = 1
        self.frames: list[Frame] = []

    def offer(self, n: int, t: float, particles: np.ndarray) -> None:
        if self.frames and (n == self.frames[-1].step or n % self.every):
            return
        p = frozen(np.asarray(particles, dtype=np.float32).copy())
        limit = max(2, min(self.capacity, self.max_bytes // max(1, p.nbytes)))
        self.frames.append(Frame(int(n), float(t), p))
        while len(self.frames) > limit:
            self.every *= 2
            self.frames = [f for f in self.frames if f.step % self.every == 0] or self.frames[-1:]
            if len(self.frames) > limit:  # steps not aligned to the new stride (a live Δt/step change)
                self.frames = self.frames[::2]
