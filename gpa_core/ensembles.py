"""Batched ensembles: compare runs, the stability map over (L, Δt) (§6) and the heavy-tail study (§7).

Everything here is built on :class:`gpa_core.flow.GPAFlow` advancing K independent members together.

- **Grid** — :func:`stability_grid`: log-spaced L × Δt (at most 8 × 8), every cell a run to the horizon T
  with ``steps = round(T / Δt)``.
- **Outcome** — :func:`classify`: *diverged* (the engine flagged non-finite values or a runaway, with the
  physical time), *converged* (over the last part of the run the particles would move less than a small
  fraction of the target's spread), or *still moving*.
- **Scheduling** — :func:`plan_batches` groups members into batched flows (``sequential``, ``by_steps``
  or ``packed``) and :func:`run_members` advances them, optionally on several worker threads, dropping
  finished or diverged members from a batch (``compact``) so that no work is spent on them.
- **Heavy tails** — :data:`HEAVY_TAIL_CASES` (Table 1 with the paper's reported outcomes) and the seed
  sweep :func:`run_heavy_tails` with overflow diagnostics (:func:`overflow_diagnostics`).
- **Jobs** — :class:`EnsembleJob`: a computation in a background thread with progress, partial results
  and cancel, so that pages never block.

No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import threading
import time
import traceback
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from .config import PER_MEMBER_FIELDS, ConfigError, FlowConfig, authors_numerics
from .devices import cpu_threads
from .flow import GPAFlow, History, MemberSummary

__all__ = [
    "COMPARE_PRESETS",
    "FLOAT32_EXP_LIMIT",
    "FLOAT64_EXP_LIMIT",
    "HEAVY_TAIL_CASES",
    "MAX_AXIS",
    "MAX_COMPARE",
    "CellResult",
    "ComparePreset",
    "CompareRun",
    "CompareSpec",
    "ConvergenceCriteria",
    "EnsembleError",
    "EnsembleJob",
    "EnsembleStats",
    "GridCell",
    "HeavyTailCase",
    "HeavyTailMember",
    "HeavyTailResult",
    "HeavyTailSettings",
    "JobControl",
    "MemberRun",
    "MetricTracker",
    "Outcome",
    "OverflowDiagnostics",
    "StabilityGrid",
    "StabilityResult",
    "classify",
    "classify_run",
    "compare_presets",
    "data_scale",
    "heavy_tail_members",
    "keep_widget_state",
    "log_spaced",
    "member_step_flops",
    "overflow_diagnostics",
    "parse_playground_params",
    "plan_batches",
    "playground_params",
    "quality",
    "run_heavy_tails",
    "run_members",
    "run_stability",
    "sample_pair",
    "select_members",
    "stability_grid",
    "steps_for",
]

MAX_AXIS = 8  # at most 8 values of L and of Δt in a stability map
MAX_COMPARE = 8  # at most 8 runs on the compare page
FLOAT32_EXP_LIMIT = math.log(float(np.finfo(np.float32).max))  # ≈ 88.72: e^x overflows beyond it
FLOAT64_EXP_LIMIT = math.log(float(np.finfo(np.float64).max))  # ≈ 709.78

Strategy = Literal["sequential", "by_steps", "packed"]
STRATEGIES: tuple[str, ...] = ("sequential", "by_steps", "packed")


class EnsembleError(ValueError):
    """Bad input to an ensemble (grid, schedule, heavy-tail settings); the message names the field."""


# ============================================================================================ data
def sample_pair(
    source_spec: str, target_spec: str, M: int, N: int, *, data_seed: int = 0, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The source (M, d) and target (N, d) samples of a run: the source drawn with ``data_seed``, the
    target with ``data_seed + 1`` (dataset specs as in :func:`gpa_core.datasets.parse_spec`)."""
    from .datasets import sample_spec

    source = sample_spec(source_spec, int(M), seed=int(data_seed), dim=dim)
    target = sample_spec(target_spec, int(N), seed=int(data_seed) + 1, dim=dim)
    return np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)


def data_scale(points: np.ndarray) -> float:
    """The spread of a point cloud: sqrt(mean |x − x̄|²) (at least 1e-12)."""
    pts = np.asarray(points, dtype=np.float64)
    centred = pts - pts.mean(axis=0, keepdims=True)
    return max(float(np.sqrt((centred**2).sum(axis=1).mean())), 1e-12)


def member_step_flops(config: FlowConfig, M: int, N: int, d: int) -> float:
    """Floating-point operations of one particle step of one member (matrix products only).

    Per inner step a forward and a backward pass (input and weight gradients) over the M + N points
    (≈ 3 forward passes), then one forward + input-gradient pass for ∇φ (≈ 2 forward passes); a forward
    pass costs 2 Σ_l w_l w_{l+1} per point. Heun doubles it."""
    widths = [d, *config.hidden, 1]
    forward = 2.0 * sum(a * b for a, b in itertools.pairwise(widths))
    per_stage = (3.0 * config.inner_steps + 2.0) * forward * (M + N)
    return per_stage * (2.0 if config.solver == "heun" else 1.0)


# ============================================================================================ grid
def log_spaced(low: float, high: float, n: int, *, name: str = "values") -> tuple[float, ...]:
    """``n`` log-spaced values from ``low`` to ``high`` (both included; one value: ``low``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= int(n) <= MAX_AXIS:
        raise EnsembleError(
            f"{name}: the number of values must be a whole number from 1 to {MAX_AXIS}; got {n!r}"
        )
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise EnsembleError(
            f"{name}: the range must be two positive numbers; got {low!r}, {high!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo > 0 and hi > 0):
        raise EnsembleError(f"{name}: the range must be two positive finite numbers; got {low!r}, {high!r}")
    if hi < lo:
        raise EnsembleError(f"{name}: the upper end {hi:g} is below the lower end {lo:g}")
    if int(n) == 1:
        return (lo,)
    return tuple(float(v) for v in np.logspace(math.log10(lo), math.log10(hi), int(n)))


def steps_for(T: float, dt: float) -> int:
    """Particle steps to reach the horizon T with step Δt: round(T / Δt), at least 1."""
    if not (math.isfinite(T) and T > 0):
        raise EnsembleError(f"the horizon T must be a positive number; got {T!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise EnsembleError(f"Δt must be a positive number; got {dt!r}")
    return max(1, round(T / dt))


@dataclass(frozen=True)
class GridCell:
    """One cell of the stability map: a run with Lipschitz constant L and time step Δt."""

    index: int  # position in StabilityGrid.cells (row-major: i_L * n_dt + i_dt)
    i_L: int
    i_dt: int
    config: FlowConfig

    @property
    def L(self) -> float:
        return self.config.L

    @property
    def dt(self) -> float:
        return self.config.dt

    @property
    def steps(self) -> int:
        return self.config.steps

    @property
    def L_dt(self) -> float:
        """LΔt: the largest distance a particle can move in one step (§6's implicit Δx)."""
        return self.config.L * self.config.dt

    @property
    def label(self) -> str:
        L = "∞" if math.isinf(self.L) else f"{self.L:.3g}"
        return f"L = {L}, Δt = {self.dt:.3g}"


@dataclass(frozen=True)
class StabilityGrid:
    """An L × Δt grid of runs to the horizon T sharing data, seed and every other setting."""

    Ls: tuple[float, ...]
    dts: tuple[float, ...]
    T: float
    base: FlowConfig
    cells: tuple[GridCell, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.Ls), len(self.dts)

    def cell(self, i_L: int, i_dt: int) -> GridCell:
        return self.cells[i_L * len(self.dts) + i_dt]

    @property
    def configs(self) -> list[FlowConfig]:
        return [c.config for c in self.cells]

    @property
    def member_steps(self) -> int:
        """Total particle steps over all cells."""
        return sum(c.steps for c in self.cells)


def stability_grid(
    base: FlowConfig,
    *,
    T: float = 100.0,
    L_range: tuple[float, float] = (0.1, 100.0),
    dt_range: tuple[float, float] = (0.01, 1.0),
    n_L: int = 8,
    n_dt: int = 8,
    Ls: Sequence[float] | None = None,
    dts: Sequence[float] | None = None,
) -> StabilityGrid:
    """The L × Δt grid (log-spaced, at most 8 × 8) of runs to the horizon T, each with
    ``steps = round(T / Δt)``; every other field comes from ``base``. Explicit ``Ls``/``dts`` lists
    override the ranges (L may include ``math.inf``)."""
    L_values = tuple(float(v) for v in Ls) if Ls is not None else log_spaced(*L_range, n_L, name="L")
    dt_values = tuple(float(v) for v in dts) if dts is not None else log_spaced(*dt_range, n_dt, name="Δt")
    for name, values in (("L", L_values), ("Δt", dt_values)):
        if not 1 <= len(values) <= MAX_AXIS:
            raise EnsembleError(f"{name}: a stability map takes 1 to {MAX_AXIS} values; got {len(values)}")
        if len(set(values)) != len(values):
            raise EnsembleError(f"{name}: values must be distinct; got {values}")
    if any(not (math.isfinite(dt) and dt > 0) for dt in dt_values):
        raise EnsembleError(f"Δt values must be positive numbers; got {dt_values}")
    if any(math.isnan(L) or L <= 0 for L in L_values):
        raise EnsembleError(f"L values must be positive numbers (or inf); got {L_values}")
    if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
        raise EnsembleError(f"the horizon T must be a positive number; got {T!r}")
    cells = []
    for i_L, L in enumerate(L_values):
        for i_dt, dt in enumerate(dt_values):
            try:
                config = base.replace(L=L, dt=dt, steps=steps_for(T, dt))
            except ConfigError as exc:
                raise EnsembleError(f"cell L = {L:g}, Δt = {dt:g}: {exc}") from exc
            cells.append(GridCell(len(cells), i_L, i_dt, config))
    return StabilityGrid(L_values, dt_values, float(T), base, tuple(cells))


# ========================================================================================= outcome
class Outcome(enum.StrEnum):
    """How a run ended."""

    CONVERGED = "converged"
    MOVING = "still moving"
    DIVERGED = "diverged"

    @property
    def symbol(self) -> str:
        return {"converged": "✓", "still moving": "→", "diverged": "✗"}[self.value]


@dataclass(frozen=True)
class ConvergenceCriteria:
    """A run has *converged* when, over the last ``window`` fraction of its horizon,

    1. its particles' root-mean-square speed √I (I the kinetic energy (3.3)) times that duration is at
       most ``move_tol`` times the target's spread (they would move less than that fraction of the
       target's size), and
    2. its mean kinetic energy there is at most ``slowdown`` times the largest recorded one (the particles
       have slowed down: Theorem 2.5's "practically stop"; a run crawling at the speed limit L has not).

    ``abs_tol``: a final kinetic energy below it also counts as converged (the engine's own test)."""

    window: float = 0.1
    move_tol: float = 0.1
    slowdown: float = 0.05
    abs_tol: float = 1e-6

    def __post_init__(self) -> None:
        if not 0 < self.window <= 1:
            raise EnsembleError(f"window must be in (0, 1] (a fraction of the horizon); got {self.window!r}")
        if not self.move_tol > 0:
            raise EnsembleError(f"move_tol must be positive; got {self.move_tol!r}")
        if not 0 < self.slowdown <= 1:
            raise EnsembleError(f"slowdown must be in (0, 1]; got {self.slowdown!r}")
        if not self.abs_tol >= 0:
            raise EnsembleError(f"abs_tol must be ≥ 0; got {self.abs_tol!r}")


def classify(
    time: np.ndarray,
    kinetic_energy: np.ndarray,
    *,
    diverged_at: float | None,
    horizon: float,
    scale: float,
    criteria: ConvergenceCriteria | None = None,
) -> Outcome:
    """The outcome of one run from its recorded times and kinetic energies (see ConvergenceCriteria)."""
    if diverged_at is not None:
        return Outcome.DIVERGED
    crit = criteria or ConvergenceCriteria()
    t = np.asarray(time, dtype=np.float64)
    ke = np.asarray(kinetic_energy, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(ke)
    if not ok.any():
        return Outcome.MOVING
    t, ke = t[ok], ke[ok]
    if ke[-1] < crit.abs_tol:
        return Outcome.CONVERGED
    duration = crit.window * float(horizon)
    tail_mean = max(float(ke[t >= t[-1] - duration].mean()), 0.0)
    still = math.sqrt(tail_mean) * duration <= crit.move_tol * scale
    slowed = tail_mean <= crit.slowdown * float(ke.max()) * (1 + 1e-9)  # (1 + ε): round-off of the mean
    return Outcome.CONVERGED if still and slowed else Outcome.MOVING


# ======================================================================================== metrics
def quality(
    particles: np.ndarray, target: np.ndarray, metrics: Sequence[str] = ("w2",), *, blur: float = 0.05
) -> dict[str, float]:
    """Distances from particles to target by ``gpa_core.metrics``: "w2" (exact W₂) and/or "sinkhorn"
    (debiased Sinkhorn divergence, blur ``blur``). A metric that fails (OT solver not converged,
    non-finite input) gives NaN rather than an exception."""
    from . import metrics as mt

    out: dict[str, float] = {}
    for name in metrics:
        try:
            if name == "w2":
                out[name] = float(mt.wasserstein2(particles, target))
            elif name == "sinkhorn":
                out[name] = float(mt.sinkhorn_divergence(particles, target, blur=blur))
            else:
                raise EnsembleError(f"unknown metric {name!r}; known: w2, sinkhorn")
        except EnsembleError:
            raise
        except Exception:  # a metric failing must not end an ensemble
            out[name] = math.nan
    return out


# ===================================================================================== scheduling
def _batch_key(config: FlowConfig) -> tuple[Any, ...]:
    """Fields that members of one batch must share (all but PER_MEMBER_FIELDS)."""
    return tuple(
        (f.name, getattr(config, f.name))
        for f in dataclasses.fields(FlowConfig)
        if f.name not in PER_MEMBER_FIELDS and f.compare
    )


def plan_batches(
    configs: Sequence[FlowConfig],
    *,
    strategy: Strategy = "packed",
    max_batch: int = 64,
    workers: int = 1,
    group: Callable[[int], Hashable] | None = None,
) -> list[list[int]]:
    """Split members 0..n-1 into batches (lists of member indices) to run as batched flows.

    Members of a batch always share the non-per-member fields (and ``group(i)`` if given).
    ``sequential``: one member per batch. ``by_steps``: members with equal ``steps`` (in a stability map,
    equal Δt) together, at most ``max_batch`` per batch. ``packed``: members sorted by ``steps`` and dealt
    into max(workers, ⌈n / max_batch⌉) batches of balanced work (finished members are best dropped as the
    batch runs: ``run_members(compact=True)``). Batches come longest work first."""
    if strategy not in STRATEGIES:
        raise EnsembleError(f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise EnsembleError(f"max_batch must be a whole number ≥ 1; got {max_batch!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise EnsembleError(f"workers must be a whole number ≥ 1; got {workers!r}")
    groups: dict[Hashable, list[int]] = {}
    for i, c in enumerate(configs):
        key = (_batch_key(c), group(i) if group is not None else None)
        groups.setdefault(key, []).append(i)
    steps = [c.steps for c in configs]
    batches: list[list[int]] = []
    for members in groups.values():
        if strategy == "sequential":
            batches.extend([i] for i in members)
        elif strategy == "by_steps":
            by: dict[int, list[int]] = {}
            for i in members:
                by.setdefault(steps[i], []).append(i)
            for same in by.values():
                batches.extend(same[j : j + max_batch] for j in range(0, len(same), max_batch))
        else:  # packed
            n_batches = min(len(members), max(workers, math.ceil(len(members) / max_batch)))
            order = sorted(members, key=lambda i: -steps[i])
            dealt: list[list[int]] = [[] for _ in range(n_batches)]
            for pos, i in enumerate(order):  # snake order: 0 1 2 2 1 0 0 1 2 …
                lap, r = divmod(pos, n_batches)
                dealt[r if lap % 2 == 0 else n_batches - 1 - r].append(i)
            batches.extend(sorted(b) for b in dealt if b)
    order = sorted(range(len(batches)), key=lambda b: -sum(steps[i] for i in batches[b]))
    return [batches[b] for b in order]


# ---------------------------------------------------------------------------------- compaction
def select_members(flow: GPAFlow, keep: Sequence[int]) -> GPAFlow:
    """A flow with only the members ``keep`` of ``flow`` (``GPAFlow.select``), continuing exactly where
    they were. Its history starts empty."""
    keep = [int(k) for k in keep]
    if not keep or any(not 0 <= k < flow.K for k in keep):
        raise EnsembleError(f"keep must list member indices in [0, {flow.K}); got {keep}")
    return flow.select(keep)


# ------------------------------------------------------------------------------------- running
@dataclass
class MemberRun:
    """One member's finished run: its configuration, outcome summary, history (the rows where it was
    active, as 1-D arrays keyed like ``History.member``) and final particles (M, d)."""

    index: int
    config: FlowConfig
    summary: MemberSummary
    history: dict[str, np.ndarray]
    particles: np.ndarray
    wall: float  # seconds from the start of its batch until it was finished

    @property
    def steps_per_second(self) -> float:
        return self.summary.steps / self.wall if self.wall > 0 else math.nan

    @property
    def diverged_at(self) -> float | None:
        return self.summary.diverged_at


@dataclass
class EnsembleStats:
    """What a run_members call cost: member-steps that advanced a member (``useful``) and member-steps
    computed (``computed``: K × steps of every batched step, including finished members riding along)."""

    useful: int = 0
    computed: int = 0
    batches: int = 0
    compactions: int = 0
    elapsed: float = 0.0
    cancelled: bool = False

    @property
    def waste(self) -> float:
        return 1.0 - self.useful / self.computed if self.computed else 0.0


def _concat_history(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join history pieces of one member and keep the rows where it was active (finite time)."""
    keys = ["step", *History.FIELDS]
    out: dict[str, np.ndarray] = {}
    for key in keys:
        arrays = [p[key] for p in parts if key in p]
        out[key] = np.concatenate(arrays) if arrays else np.zeros(0)
    active = np.isfinite(out["time"]) if out["time"].size else np.zeros(0, dtype=bool)
    return {k: v[active] if v.shape[:1] == active.shape else v for k, v in out.items()}


def _last_finite(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)] if values.size else values
    return float(finite[-1]) if finite.size else math.nan


def _harvest(
    flow: GPAFlow,
    k: int,
    index: int,
    parts: list[dict[str, np.ndarray]],
    wall: float,
    summaries: list[MemberSummary],
) -> MemberRun:
    history = _concat_history([*parts, flow.history.member(k)])
    base = summaries[k]
    ke = history.get("kinetic_energy", np.zeros(0))
    status = base.status
    if status != "diverged":
        last = _last_finite(ke)
        status = "converged" if math.isfinite(last) and last < flow.configs[k].converge_tol else "running"
    summary = dataclasses.replace(
        base,
        index=index,
        status=status,
        kinetic_energy=_last_finite(ke),
        divergence=_last_finite(history.get("divergence", np.zeros(0))),
        max_speed=_last_finite(history.get("max_speed", np.zeros(0))),
    )
    particles = flow.particles()[k]
    return MemberRun(index, flow.configs[k], summary, history, particles, wall)


def _take(data: np.ndarray, members: list[int]) -> np.ndarray:
    return data if data.ndim == 2 else data[members]


class _Shared:
    """Progress shared by worker threads."""

    def __init__(self, total: int, on_progress: Callable[[int, int], None] | None) -> None:
        self.lock = threading.Lock()
        self.total = total
        self.done = 0
        self.on_progress = on_progress
        self.stats = EnsembleStats()

    def add(self, done: int, useful: int, computed: int) -> None:
        with self.lock:
            self.done += done
            self.stats.useful += useful
            self.stats.computed += computed
            done_now = self.done
        if self.on_progress is not None:
            self.on_progress(done_now, self.total)


def _cancelled(cancel: threading.Event | Callable[[], bool] | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _run_batch(
    members: list[int],
    configs: Sequence[FlowConfig],
    source: np.ndarray,
    target: np.ndarray,
    *,
    compact: bool,
    chunk: int,
    shared: _Shared,
    on_member: Callable[[MemberRun], None] | None,
    cancel: threading.Event | Callable[[], bool] | None,
    kernel_threads: int,
) -> list[MemberRun]:
    idx = list(members)
    flow = GPAFlow(_take(source, idx), _take(target, idx), [configs[i] for i in idx])
    flow.kernel_threads = kernel_threads
    parts: dict[int, list[dict[str, np.ndarray]]] = {i: [] for i in idx}
    credited = dict.fromkeys(idx, 0)  # member-steps already counted as progress
    finished: list[MemberRun] = []
    start = time.perf_counter()
    with shared.lock:
        shared.stats.batches += 1
    while idx:
        if _cancelled(cancel):
            return finished
        n = chunk
        if compact:  # stop exactly when the next member finishes, so that it can be dropped
            left = [c.steps - flow.n for k, c in enumerate(flow.configs) if not flow.finished(k)]
            n = max(1, min([chunk, *left]))
        before = [flow.finished(k) for k in range(flow.K)]
        n0 = flow.n
        taken = flow.step(n)
        useful = 0
        done_delta = 0
        done_flags = [flow.finished(k) for k in range(flow.K)]
        for k, i in enumerate(idx):
            c = flow.configs[k]
            if not before[k]:
                stop = int(flow.diverged_step[k]) if not bool(flow.alive[k]) else flow.n
                useful += max(0, min(stop, c.steps) - n0)
            credit = c.steps if done_flags[k] else min(flow.n, c.steps)
            done_delta += credit - credited[i]
            credited[i] = credit
        shared.add(done_delta, useful, taken * flow.K)
        if taken == 0 or all(done_flags):
            wall = time.perf_counter() - start
            summaries = flow.summary()
            for k, i in enumerate(idx):
                run = _harvest(flow, k, i, parts[i], wall, summaries)
                finished.append(run)
                if on_member is not None:
                    on_member(run)
            return finished
        if compact and any(done_flags):
            wall = time.perf_counter() - start
            keep = [k for k in range(flow.K) if not done_flags[k]]
            summaries = flow.summary()
            for k, i in enumerate(idx):
                if done_flags[k]:
                    run = _harvest(flow, k, i, parts[i], wall, summaries)
                    finished.append(run)
                    if on_member is not None:
                        on_member(run)
                else:
                    parts[i].append(flow.history.member(k))
            flow = select_members(flow, keep)
            idx = [idx[k] for k in keep]
            with shared.lock:
                shared.stats.compactions += 1
    return finished


def run_members(
    configs: Sequence[FlowConfig],
    source: np.ndarray,
    target: np.ndarray,
    *,
    strategy: Strategy = "packed",
    max_batch: int = 64,
    workers: int = 1,
    compact: bool = True,
    chunk: int = 25,
    group: Callable[[int], Hashable] | None = None,
    batches: list[list[int]] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_member: Callable[[MemberRun], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> tuple[list[MemberRun | None], EnsembleStats]:
    """Run every configuration to its ``steps`` as batched flows; returns (runs by member index, stats).

    ``source``/``target``: (M, d)/(N, d) shared by all members, or (n, M, d)/(n, N, d) one per member.
    ``batches`` (from :func:`plan_batches`, else planned here with ``strategy``/``max_batch``/``workers``/
    ``group``) run on ``workers`` threads, longest first. ``compact``: drop finished or diverged members
    from their batch at once (the rest continue bit-for-bit). ``on_progress(done, total)`` counts
    member-steps (a diverged member counts as done); ``on_member(run)`` is called as each member finishes;
    ``cancel`` (an Event or a callable) stops at the next chunk, leaving unfinished members None."""
    configs = list(configs)
    if not configs:
        raise EnsembleError("an ensemble needs at least one configuration")
    source, target = np.asarray(source), np.asarray(target)
    for name, data in (("source", source), ("target", target)):
        if data.ndim == 3 and data.shape[0] != len(configs):
            raise EnsembleError(
                f"{name} has {data.shape[0]} member samples for {len(configs)} configurations"
            )
        if data.ndim not in (2, 3):
            raise EnsembleError(f"{name} must be (n, d) or (members, n, d); got shape {data.shape}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise EnsembleError(f"chunk must be a whole number ≥ 1; got {chunk!r}")
    plan = batches or plan_batches(
        configs, strategy=strategy, max_batch=max_batch, workers=workers, group=group
    )
    shared = _Shared(sum(c.steps for c in configs), on_progress)
    runs: list[MemberRun | None] = [None] * len(configs)
    queue = list(plan)
    errors: list[BaseException] = []
    start = time.perf_counter()

    def worker() -> None:
        while True:
            with shared.lock:
                if not queue or errors:
                    return
                batch = queue.pop(0)
            try:
                for run in _run_batch(
                    batch, configs, source, target, compact=compact, chunk=chunk, shared=shared,
                    on_member=on_member, cancel=cancel, kernel_threads=kernel_threads,
                ):  # fmt: skip
                    runs[run.index] = run
            except BaseException as exc:
                with shared.lock:
                    errors.append(exc)
                return

    n_threads = max(1, min(workers, len(queue)))
    # the compiled path splits a batch's members over threads too: share the cores, never oversubscribe
    kernel_threads = max(1, cpu_threads() // n_threads)
    if n_threads == 1:
        worker()
    else:
        threads = [
            threading.Thread(target=worker, name=f"ensemble-worker-{w}", daemon=True)
            for w in range(n_threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    shared.stats.elapsed = time.perf_counter() - start
    shared.stats.cancelled = _cancelled(cancel) and any(r is None for r in runs)
    return runs, shared.stats


def classify_run(run: MemberRun, *, scale: float, criteria: ConvergenceCriteria | None = None) -> Outcome:
    """:func:`classify` applied to a finished member."""
    return classify(
        run.history.get("time", np.zeros(0)),
        run.history.get("kinetic_energy", np.zeros(0)),
        diverged_at=run.summary.diverged_at,
        horizon=run.config.horizon,
        scale=scale,
        criteria=criteria,
    )


# ======================================================================================= stability
@dataclass
class CellResult:
    """A finished cell: the run, its outcome and its distance(s) to the target."""

    cell: GridCell
    run: MemberRun
    outcome: Outcome
    metrics: dict[str, float]

    @property
    def diverged_at(self) -> float | None:
        return self.run.summary.diverged_at


@dataclass
class StabilityResult:
    """The stability map: one CellResult (or None if not finished) per grid cell."""

    grid: StabilityGrid
    cells: list[CellResult | None]
    stats: EnsembleStats
    scale: float

    @property
    def complete(self) -> bool:
        return all(c is not None for c in self.cells)

    def counts(self) -> dict[str, int]:
        out = {o.value: 0 for o in Outcome}
        for c in self.cells:
            if c is not None:
                out[c.outcome.value] += 1
        return out

    def matrix(self, what: str) -> np.ndarray:
        """(n_L, n_dt) array of a metric name, "diverged_at" or "outcome" (0 converged, 1 moving,
        2 diverged); NaN where a cell has not finished."""
        codes = {Outcome.CONVERGED: 0, Outcome.MOVING: 1, Outcome.DIVERGED: 2}
        out = np.full(self.grid.shape, np.nan)
        for c in self.cells:
            if c is None:
                continue
            if what == "outcome":
                value = codes[c.outcome]
            elif what == "diverged_at":
                value = c.diverged_at if c.diverged_at is not None else math.nan
            else:
                value = c.metrics.get(what, math.nan)
            out[c.cell.i_L, c.cell.i_dt] = value
        return out


def run_stability(
    grid: StabilityGrid,
    source: np.ndarray,
    target: np.ndarray,
    *,
    metrics: Sequence[str] = ("w2",),
    criteria: ConvergenceCriteria | None = None,
    strategy: Strategy = "packed",
    max_batch: int = 64,
    workers: int = 1,
    compact: bool = True,
    chunk: int = 25,
    on_progress: Callable[[int, int], None] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    result: StabilityResult | None = None,
) -> StabilityResult:
    """Run every cell of ``grid`` on the same ``source``/``target`` as batched ensembles; each finished
    cell is classified and scored (``metrics`` of :func:`quality`) as it ends, stored in ``result`` (a new
    StabilityResult if None, filled as cells finish: a page may read it meanwhile) and passed to
    ``on_cell``."""
    target = np.asarray(target, dtype=np.float64)
    scale = data_scale(target)
    if result is None:
        result = StabilityResult(grid, [None] * len(grid.cells), EnsembleStats(), scale)
    cells = result.cells

    def member_done(run: MemberRun) -> None:
        cell = grid.cells[run.index]
        result = CellResult(
            cell,
            run,
            classify_run(run, scale=scale, criteria=criteria),
            quality(run.particles, target, metrics),
        )
        cells[run.index] = result
        if on_cell is not None:
            on_cell(result)

    _, stats = run_members(
        grid.configs, source, target, strategy=strategy, max_batch=max_batch, workers=workers,
        compact=compact, chunk=chunk, on_progress=on_progress, on_member=member_done, cancel=cancel,
    )  # fmt: skip
    result.stats = stats
    result.scale = scale
    return result


# ===================================================================================== heavy tails
GAUSSIAN_SIDE = "gaussian:mean=10,std=0.5"
GAUSSIAN_LABEL = "N((10, 10), 0.5²I)"


@dataclass(frozen=True)
class HeavyTailCase:
    """A row of the paper's Table 1, with the outcome the paper reports (one run, L = 1)."""

    number: int
    heavy_spec: str
    heavy_label: str
    heavy_is_source: bool
    paper_kl: str
    paper_alpha2: str
    paper_kl_diverged_at: float | None = None

    @property
    def source_spec(self) -> str:
        return self.heavy_spec if self.heavy_is_source else GAUSSIAN_SIDE

    @property
    def target_spec(self) -> str:
        return GAUSSIAN_SIDE if self.heavy_is_source else self.heavy_spec

    @property
    def source_label(self) -> str:
        return self.heavy_label if self.heavy_is_source else GAUSSIAN_LABEL

    @property
    def target_label(self) -> str:
        return GAUSSIAN_LABEL if self.heavy_is_source else self.heavy_label

    @property
    def label(self) -> str:
        return f"{self.number}: {self.source_label} → {self.target_label}"


HEAVY_TAIL_CASES: tuple[HeavyTailCase, ...] = (
    HeavyTailCase(1, "ggm:beta=0.5", "GGM(0.5)", True, "O(10⁻⁶)", "O(10⁻⁶)"),
    HeavyTailCase(2, "student_t:nu=3", "Student-t(3)", True, "O(10⁻⁴)", "O(10⁻⁴)"),
    HeavyTailCase(3, "student_t:nu=1.5", "Student-t(1.5)", True, "diverged at t = 0", "O(10⁰)", 0.0),
    HeavyTailCase(4, "student_t:nu=0.5", "Student-t(0.5)", True, "diverged at t = 0", "O(10⁷)", 0.0),
    HeavyTailCase(5, "ggm:beta=0.5", "GGM(0.5)", False, "O(10⁻⁶)", "O(10⁻³)"),
    HeavyTailCase(6, "student_t:nu=3", "Student-t(3)", False, "O(10⁻⁶)", "O(10⁻⁴)"),
    HeavyTailCase(7, "student_t:nu=1.5", "Student-t(1.5)", False, "O(10⁻³)", "O(10⁻³)"),
    HeavyTailCase(8, "student_t:nu=0.5", "Student-t(0.5)", False, "diverged at t = 202", "O(10⁻¹)", 202.0),
)

NUMERICS: tuple[str, ...] = ("paper", "authors")


@dataclass(frozen=True)
class HeavyTailSettings:
    """The heavy-tail sweep: every chosen case × f (KL, α = 2, optional extra α) × numerics × seed.

    The paper published no configuration for Table 1; these defaults are ours: L = 1 (as in the paper),
    Δt = 0.5 and T = 250 (so that the paper's collapse at t = 202 is inside the window), 3 × 32 ReLU, 3
    inner Adam steps, lr 1e-3, M = N = 200. ``base`` carries every other field (its f, α, L, Δt, steps and
    seed are overridden). Seed s draws the source with data seed 2s, the target with 2s + 1, and seeds the
    network with s."""

    cases: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    seeds: int = 8
    extra_alpha: float | None = None
    numerics: tuple[str, ...] = ("paper", "authors")
    L: float = 1.0
    dt: float = 0.5
    T: float = 250.0
    M: int = 200
    N: int = 200
    base: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self) -> None:
        known = {c.number for c in HEAVY_TAIL_CASES}
        bad = [c for c in self.cases if c not in known]
        if not self.cases or bad:
            raise EnsembleError(f"cases must be chosen from 1–8; got {list(self.cases)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or not 1 <= self.seeds <= 64:
            raise EnsembleError(f"seeds must be a whole number from 1 to 64; got {self.seeds!r}")
        if not self.numerics or any(n not in NUMERICS for n in self.numerics):
            raise EnsembleError(
                f"numerics must be chosen from {', '.join(NUMERICS)}; got {list(self.numerics)}"
            )
        if self.extra_alpha is not None and not (1.0 < float(self.extra_alpha) <= 1e3):
            raise EnsembleError(f"the extra α must be in (1, 1000]; got {self.extra_alpha!r}")
        for name in ("M", "N"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100_000:
                raise EnsembleError(f"{name} must be a whole number from 2 to 100000; got {value!r}")
        steps_for(self.T, self.dt)

    @property
    def variants(self) -> tuple[tuple[str, str, float], ...]:
        """(label, f, α) of each divergence run per case."""
        out: list[tuple[str, str, float]] = [("KL", "kl", 2.0), ("α = 2", "alpha", 2.0)]
        if self.extra_alpha is not None and float(self.extra_alpha) != 2.0:
            a = float(self.extra_alpha)
            out.append((f"α = {a:g}", "alpha", a))
        return tuple(out)

    def config(self, f: str, alpha: float, numerics: str, seed: int) -> FlowConfig:
        cfg = self.base.replace(
            f=f, alpha=alpha, L=self.L, dt=self.dt, steps=steps_for(self.T, self.dt), seed=seed
        )
        return authors_numerics(cfg) if numerics == "authors" else cfg


@dataclass(frozen=True)
class HeavyTailMember:
    """One run of the sweep."""

    index: int
    case: HeavyTailCase
    variant: str
    numerics: str
    seed: int
    config: FlowConfig

    @property
    def data_seed(self) -> int:
        return 2 * self.seed


def heavy_tail_members(settings: HeavyTailSettings) -> list[HeavyTailMember]:
    """Every run of the sweep, case by case (then numerics, variant, seed)."""
    members: list[HeavyTailMember] = []
    for case in HEAVY_TAIL_CASES:
        if case.number not in settings.cases:
            continue
        for numerics in settings.numerics:
            for label, f, alpha in settings.variants:
                for seed in range(settings.seeds):
                    cfg = settings.config(f, alpha, numerics, seed)
                    members.append(HeavyTailMember(len(members), case, label, numerics, seed, cfg))
    return members


@dataclass(frozen=True)
class OverflowDiagnostics:
    """Why a run overflowed (or how close it came): the largest argument of f* over the target (for KL,
    of exp: φ(X) − ν, or φ(X) in the DV form) against the dtype's exp limit, and the farthest samples."""

    peak_exp_arg: float
    peak_time: float
    last_exp_arg: float
    limit: float
    farthest_source: tuple[float, ...]  # the 3 largest |y| of the source sample
    farthest_target: tuple[float, ...]  # the 3 largest |x| of the target sample

    @property
    def headroom(self) -> float:
        """limit − peak (negative: past the limit)."""
        return self.limit - self.peak_exp_arg


def overflow_diagnostics(run: MemberRun, source: np.ndarray, target: np.ndarray) -> OverflowDiagnostics:
    """Overflow gauge of a finished run from ``history['max_exp_arg']`` and its data."""
    h = run.history
    gauge = h.get("max_exp_arg", np.zeros(0))
    times = h.get("time", np.zeros(0))
    finite = np.isfinite(gauge)
    if finite.any():
        k = int(np.nanargmax(np.where(finite, gauge, -np.inf)))
        peak, peak_t = float(gauge[k]), float(times[k])
    else:
        peak, peak_t = (math.inf if gauge.size else math.nan), math.nan
    limit = FLOAT64_EXP_LIMIT if run.config.dtype == "float64" else FLOAT32_EXP_LIMIT

    def farthest(points: np.ndarray) -> tuple[float, ...]:
        norms = np.sort(np.linalg.norm(np.asarray(points, dtype=np.float64), axis=1))[::-1]
        return tuple(float(v) for v in norms[:3])

    return OverflowDiagnostics(peak, peak_t, _last_finite(gauge), limit, farthest(source), farthest(target))


@dataclass
class HeavyTailResult:
    """Results of the sweep: per member (None until finished), with its data and diagnostics."""

    settings: HeavyTailSettings
    members: list[HeavyTailMember]
    runs: list[MemberRun | None]
    diagnostics: list[OverflowDiagnostics | None]
    stats: EnsembleStats = field(default_factory=EnsembleStats)

    def rows(self) -> list[dict[str, Any]]:
        """One row per (case, variant, numerics): how many seeds diverged and when, the final divergence
        (median and range over the seeds that did not diverge), the largest overflow gauge, the paper's
        outcome."""
        groups: dict[tuple[int, str, str], list[int]] = {}
        for m in self.members:
            groups.setdefault((m.case.number, m.variant, m.numerics), []).append(m.index)
        out = []
        for (number, variant, numerics), idx in groups.items():
            case = self.members[idx[0]].case
            done = [i for i in idx if self.runs[i] is not None]
            runs = [self.runs[i] for i in done]
            times = sorted(r.diverged_at for r in runs if r is not None and r.diverged_at is not None)
            finals = [r.summary.divergence for r in runs if r is not None and r.diverged_at is None]
            finals = [v for v in finals if math.isfinite(v)]
            gauges = [d.peak_exp_arg for i in done if (d := self.diagnostics[i]) is not None]
            gauges = [g for g in gauges if not math.isnan(g)]
            out.append(
                {
                    "case": number,
                    "source": case.source_label,
                    "target": case.target_label,
                    "f": variant,
                    "numerics": numerics,
                    "done": len(done),
                    "seeds": len(idx),
                    "diverged": len(times),
                    "diverged_at": times,
                    "final_divergence_median": float(np.median(finals)) if finals else math.nan,
                    "final_divergence_min": float(np.min(finals)) if finals else math.nan,
                    "final_divergence_max": float(np.max(finals)) if finals else math.nan,
                    "peak_exp_arg": max(gauges) if gauges else math.nan,
                    "paper": case.paper_kl
                    if variant == "KL"
                    else (case.paper_alpha2 if variant == "α = 2" else "—"),
                    "members": idx,
                }
            )
        return out


def heavy_tail_data(members: Sequence[HeavyTailMember], M: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, M, 2) sources and (n, N, 2) targets of the members (the same draw for the same case and seed)."""
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    src, tgt = [], []
    for m in members:
        key = (m.case.number, m.seed)
        if key not in cache:
            cache[key] = sample_pair(
                m.case.source_spec, m.case.target_spec, M, N, data_seed=m.data_seed, dim=2
            )
        src.append(cache[key][0])
        tgt.append(cache[key][1])
    return np.stack(src), np.stack(tgt)


def run_heavy_tails(
    settings: HeavyTailSettings,
    *,
    max_batch: int = 64,
    workers: int = 1,
    chunk: int = 25,
    on_progress: Callable[[int, int], None] | None = None,
    on_member: Callable[[HeavyTailMember, MemberRun, OverflowDiagnostics], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    result: HeavyTailResult | None = None,
) -> HeavyTailResult:
    """Run the sweep as batched ensembles (one batch per case and numerics, diverged members dropped at
    once). Fills and returns ``result`` (a fresh one if None) as members finish."""
    members = heavy_tail_members(settings)
    if result is None:
        result = HeavyTailResult(settings, members, [None] * len(members), [None] * len(members))
    source, target = heavy_tail_data(members, settings.M, settings.N)

    def done(run: MemberRun) -> None:
        diag = overflow_diagnostics(run, source[run.index], target[run.index])
        result.runs[run.index] = run
        result.diagnostics[run.index] = diag
        if on_member is not None:
            on_member(members[run.index], run, diag)

    configs = [m.config for m in members]
    batches = plan_batches(
        configs, strategy="packed", max_batch=max_batch, workers=1, group=lambda i: (members[i].case.number,)
    )
    order = {m.case.number: pos for pos, m in reversed(list(enumerate(members)))}
    batches.sort(key=lambda b: order[members[b[0]].case.number])  # case by case, in table order
    _, stats = run_members(
        configs, source, target, batches=batches, workers=workers, compact=True, chunk=chunk,
        on_progress=on_progress, on_member=done, cancel=cancel,
    )  # fmt: skip
    result.stats = stats
    return result


# ========================================================================================= compare
@dataclass(frozen=True)
class CompareRun:
    """One run of a comparison: a label and its configuration."""

    label: str
    config: FlowConfig


@dataclass(frozen=True)
class CompareSpec:
    """Up to 8 runs on the same data (source/target specs, M, N, data seed) advanced as one batch."""

    source_spec: str
    target_spec: str
    M: int
    N: int
    runs: tuple[CompareRun, ...]
    data_seed: int = 0
    metric_every: int = 25  # particle steps between W₂ evaluations
    metrics: tuple[str, ...] = ("w2",)

    def __post_init__(self) -> None:
        if not 1 <= len(self.runs) <= MAX_COMPARE:
            raise EnsembleError(f"a comparison takes 1 to {MAX_COMPARE} runs; got {len(self.runs)}")
        for name in ("M", "N"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100_000:
                raise EnsembleError(f"{name} must be a whole number from 2 to 100000; got {value!r}")
        if (
            isinstance(self.metric_every, bool)
            or not isinstance(self.metric_every, int)
            or self.metric_every < 1
        ):
            raise EnsembleError(f"metric_every must be a whole number ≥ 1; got {self.metric_every!r}")
        try:
            from .config import check_batch

            check_batch([r.config for r in self.runs])
        except ConfigError as exc:
            raise EnsembleError(f"these runs cannot share one batch: {exc}") from exc

    @property
    def configs(self) -> list[FlowConfig]:
        return [r.config for r in self.runs]

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.runs]


@dataclass(frozen=True)
class ComparePreset:
    """A named comparison reproducing a figure of the paper."""

    key: str
    title: str
    description: str
    source_spec: str
    target_spec: str
    M: int
    N: int
    T: float
    runs: tuple[CompareRun, ...]
    data_seed: int = 0
    dim: int | None = None

    @property
    def base(self) -> FlowConfig:
        """The shared settings (the first run's configuration)."""
        return self.runs[0].config

    def spec(self, *, data_seed: int | None = None, metric_every: int = 25) -> CompareSpec:
        return CompareSpec(
            self.source_spec,
            self.target_spec,
            self.M,
            self.N,
            self.runs,
            data_seed=self.data_seed if data_seed is None else data_seed,
            metric_every=metric_every,
        )


def _fig23() -> ComparePreset:
    base = FlowConfig(f="kl", dt=0.5, steps=500, inner_steps=3, lr=1e-3, hidden=(32, 32, 32))
    runs = tuple(
        CompareRun(f"L = {'∞' if math.isinf(L) else f'{L:g}'}", base.replace(L=L))
        for L in (1.0, 10.0, 100.0, math.inf)
    )
    return ComparePreset(
        "fig2_3",
        "Fig. 2–3: L = 1, 10, 100, ∞ on the 4-well mixture",
        "KL, Δt = 0.5, 500 steps (T = 250), M = N = 200, 3×32 ReLU, 3 inner Adam steps (lr 1e-3); source "
        "N(0, 0.5²I), target four wells of std 0.5 at the corners of [0, 4]².",
        "gaussian:mean=0,std=0.5",
        "mixture:std=0.5,spacing=4",
        200,
        200,
        250.0,
        runs,
    )


def _fig4() -> ComparePreset:
    base = FlowConfig(L=1.0, dt=0.5, steps=500, inner_steps=3, lr=1e-3, hidden=(32, 32, 32))
    runs = (
        CompareRun("KL", base.replace(f="kl")),
        CompareRun("α = 2", base.replace(f="alpha", alpha=2.0)),
        CompareRun("α = 10", base.replace(f="alpha", alpha=10.0)),
    )
    return ComparePreset(
        "fig4",
        "Fig. 4: KL vs α = 2 vs α = 10, Gaussian → Student-t(0.5)",
        "L = 1, Δt = 0.5, 500 steps (T = 250; our choice — the paper gives no configuration), "
        "M = N = 200; source N((10, 10), 0.5²I), target coordinate-wise Student-t(0.5). The paper's KL "
        "run collapsed near t = 202.",
        GAUSSIAN_SIDE,
        "student_t:nu=0.5",
        200,
        200,
        250.0,
        runs,
    )


#: Built-in comparisons, used when the shared preset files (``assets/presets``) cannot be read.
COMPARE_PRESETS: dict[str, ComparePreset] = {p.key: p for p in (_fig23(), _fig4())}


def compare_presets() -> dict[str, ComparePreset]:
    """The comparisons offered on the compare page: every preset of :mod:`gpa_core.presets` with more than
    one member (``assets/presets/*.json``: the same runs as the playground's presets), by preset id; the
    built-in :data:`COMPARE_PRESETS` if those files cannot be read."""
    try:
        from .datasets import format_spec
        from .presets import list_presets

        out: dict[str, ComparePreset] = {}
        for p in list_presets():
            if len(p.members) < 2 or len(p.members) > MAX_COMPARE:
                continue
            out[p.id] = ComparePreset(
                key=p.id,
                title=f"{p.paper}: {p.title}",
                description=p.notes,
                source_spec=format_spec(p.source.name, p.source.params),
                target_spec=format_spec(p.target.name, p.target.params),
                M=p.M,
                N=p.N,
                T=max(c.horizon for c in p.configs),
                runs=tuple(CompareRun(label, cfg) for label, cfg in p.members),
                data_seed=p.data_seed,
                dim=p.dim,
            )
    except (ImportError, ValueError, OSError):  # PresetError and DatasetError are ValueErrors
        return dict(COMPARE_PRESETS)
    return out or dict(COMPARE_PRESETS)


class MetricTracker:
    """Distances to the target sampled along a live run, every ``every`` particle steps (not every step).

    Feed it the latest particles with :meth:`update`; it measures the members that advanced at least
    ``every`` steps since their last measurement (and each member once more when it finishes), so a
    page polling a runner computes W₂ a few times per run rather than per step."""

    def __init__(self, K: int, metrics: Sequence[str] = ("w2",), every: int = 25) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise EnsembleError(f"every must be a whole number of steps ≥ 1; got {every!r}")
        self.K, self.metrics, self.every = int(K), tuple(metrics), every
        self.series: list[dict[str, list[float]]] = [
            {"step": [], "time": [], **{m: [] for m in self.metrics}} for _ in range(self.K)
        ]
        self._last_step = [-(10**12)] * self.K
        self._closed = [False] * self.K

    def update(
        self,
        n: int,
        times: Sequence[float],
        particles: np.ndarray,
        target: np.ndarray,
        finished: Sequence[bool] | None = None,
    ) -> list[int]:
        """Measure the members that are due at step ``n``; returns their indices.

        ``particles`` (K, M, d), ``target`` (N, d) or (K, N, d), ``times`` (K,) physical times."""
        done = finished if finished is not None else [False] * self.K
        measured = []
        for k in range(self.K):
            if self._closed[k]:
                continue
            last_call = bool(done[k])
            if n - self._last_step[k] < self.every and not last_call:
                continue
            if n == self._last_step[k]:
                self._closed[k] = last_call
                continue
            tgt = target if np.ndim(target) == 2 else target[k]
            values = quality(particles[k], tgt, self.metrics)
            row = self.series[k]
            row["step"].append(int(n))
            row["time"].append(float(times[k]))
            for m in self.metrics:
                row[m].append(values[m])
            self._last_step[k] = int(n)
            self._closed[k] = last_call
            measured.append(k)
        return measured

    def latest(self, k: int, metric: str = "w2") -> float:
        values = self.series[k].get(metric, [])
        return float(values[-1]) if values else math.nan


# ========================================================================================= playground
def playground_params(
    config: FlowConfig,
    *,
    source: str,
    target: str,
    M: int,
    N: int,
    data_seed: int = 0,
    dim: int | None = None,
) -> dict[str, str]:
    """Query parameters that open a run in the playground (``pages/playground.py`` reads them, or the same
    dict in ``st.session_state["playground_request"]``): source/target dataset specs, M, N, the data seed
    (the source is drawn with it, the target with it + 1, as :func:`sample_pair` does), the dimension if
    given, and every FlowConfig field that differs from the defaults (L as "inf" when unregularized, hidden
    as "32,32,32")."""
    params: dict[str, str] = {"source": source, "target": target, "M": str(int(M)), "N": str(int(N))}
    params["data_seed"] = str(int(data_seed))
    if dim is not None:
        params["dim"] = str(int(dim))
    default = FlowConfig().to_dict()
    for key, value in config.to_dict().items():
        if key == "notes" or value == default.get(key):
            continue
        if key == "hidden":
            params[key] = ",".join(str(int(h)) for h in value)
        elif isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif value is None:
            params[key] = "none"
        elif isinstance(value, float):
            params[key] = repr(value)
        else:
            params[key] = str(value)
    return params


_INT_FIELDS = {"steps", "inner_steps", "power_iterations", "record_every", "seed"}
_BOOL_FIELDS = {"logsumexp"}


def parse_playground_params(params: Mapping[str, str]) -> tuple[dict[str, Any], FlowConfig]:
    """Inverse of :func:`playground_params`: ({source, target, M, N, data_seed[, dim]}, FlowConfig).
    Unknown keys are ignored; a bad value raises EnsembleError naming the parameter."""
    data: dict[str, Any] = {
        "source": params.get("source"),
        "target": params.get("target"),
        "M": None,
        "N": None,
        "data_seed": 0,
    }
    if "dim" in params:
        data["dim"] = None
    for key in ("M", "N", "data_seed", "dim"):
        if key in params:
            try:
                data[key] = int(params[key])
            except ValueError:
                raise EnsembleError(
                    f"query parameter {key} must be a whole number; got {params[key]!r}"
                ) from None
    known = {f.name for f in dataclasses.fields(FlowConfig)} - {"notes"}
    fields_: dict[str, Any] = {}
    for key in known & set(params):
        raw = str(params[key])
        try:
            if key == "hidden":
                fields_[key] = tuple(int(w) for w in raw.split(",") if w.strip())
            elif key in _INT_FIELDS:
                fields_[key] = int(raw)
            elif key in _BOOL_FIELDS:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                fields_[key] = raw.lower() in ("true", "1")
            elif key == "last_activation":
                fields_[key] = None if raw.lower() == "none" else raw
            elif key in ("alpha", "dt", "lr", "penalty_weight", "converge_tol"):
                fields_[key] = float(raw)
            else:
                fields_[key] = raw  # L is parsed by FlowConfig.from_dict ("inf" allowed)
        except ValueError:
            raise EnsembleError(f"query parameter {key} has a bad value {raw!r}") from None
    try:
        config = FlowConfig.from_dict(fields_)
    except (ConfigError, TypeError) as exc:
        raise EnsembleError(f"query parameters do not make a valid configuration: {exc}") from exc
    return data, config


def keep_widget_state(state: Any, defaults: Mapping[str, Any]) -> None:
    """For a Streamlit-like ``state`` mapping: set each key's default once, and re-assign every key that
    has a value (Streamlit forgets the values of widgets that a page did not draw, e.g. while another
    page was open; re-assigning them keeps them). A default of None means "keep only"."""
    for key, default in defaults.items():
        if key in state:
            state[key] = state[key]
        elif default is not None:
            state[key] = default


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
        with self._lock:
            self.done, self.total = float(done), float(total)
            if message is not None:
                self.message = message

    def publish(self, value: Any) -> None:
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
        return self._event.is_set()

    def check(self) -> None:
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
        if self._thread is not None:
            raise RuntimeError("this job was already started")
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._main, name=f"gpa-{self.name}", daemon=True)
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
        self.control.cancel_event.set()

    def join(self, timeout: float | None = None) -> bool:
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
