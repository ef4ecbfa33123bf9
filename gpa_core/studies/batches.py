"""Batched members: the data of a run, grouping members into batched flows and advancing them.

- :func:`plan_batches` groups members into batched :class:`~gpa_core.engine.flow.GPAFlow` runs
  (``sequential``, ``by_steps`` or ``packed``);
- :func:`run_members` advances them, optionally on several worker threads, dropping
  finished or diverged members from a batch (``compact``) so that no work is spent on them.

No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gpa_core.config import SHARED_FIELDS, FlowConfig
from gpa_core.devices import cpu_threads
from gpa_core.engine.flow import GPAFlow, History, MemberSummary, last_finite

Strategy = Literal["sequential", "by_steps", "packed"]
STRATEGIES: tuple[str, ...] = ("sequential", "by_steps", "packed")


class EnsembleError(ValueError):
    """Bad input to an ensemble (grid, schedule, heavy-tail settings); the message names the field."""


# ============================================================================================ data
def sample_pair(
    source_spec: str, target_spec: str, M: int, N: int, *, data_seed: int = 0, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The source (M, d) and target (N, d) samples of a run: the source drawn with ``data_seed``, the
    target with ``data_seed + 1`` (dataset specs as in :func:`gpa_core.data.datasets.parse_spec`)."""
    from gpa_core.data.datasets import sample_spec

    source = sample_spec(source_spec, int(M), seed=int(data_seed), dim=dim)
    target = sample_spec(target_spec, int(N), seed=int(data_seed) + 1, dim=dim)
    return np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)


def data_scale(points: np.ndarray) -> float:
    """The spread of a point cloud: sqrt(mean |x − x̄|²) (at least 1e-12)."""
    pts = np.asarray(points, dtype=np.float64)
    centred = pts - pts.mean(axis=0, keepdims=True)
    return max(float(np.sqrt((centred**2).sum(axis=1).mean())), 1e-12)


def steps_for(T: float, dt: float) -> int:
    """Particle steps to reach the horizon T with step Δt: round(T / Δt), at least 1."""
    if not (math.isfinite(T) and T > 0):
        raise EnsembleError(f"the horizon T must be a positive number; got {T!r}")
    if not (math.isfinite(dt) and dt > 0):
        raise EnsembleError(f"Δt must be a positive number; got {dt!r}")
    return max(1, round(T / dt))


def member_step_flops(config: FlowConfig, M: int, N: int, d: int) -> float:
    """Floating-point operations of one particle step of one member (matrix products only).

    Per inner step a forward and a backward pass (input and weight gradients) over the M + N points
    (≈ 3 forward passes), then one forward + input-gradient pass for ∇φ (≈ 2 forward passes); a forward
    pass costs 2 Σ_l w_l w_{l+1} per point. Heun doubles it."""
    widths = [d, *config.hidden, 1]
    forward = 2.0 * sum(a * b for a, b in itertools.pairwise(widths))
    per_stage = (3.0 * config.inner_steps + 2.0) * forward * (M + N)
    return per_stage * (2.0 if config.solver == "heun" else 1.0)


# ===================================================================================== scheduling
def _batch_key(config: FlowConfig) -> tuple[Any, ...]:
    """Fields that members of one batch must share (all but PER_MEMBER_FIELDS)."""
    return tuple((name, getattr(config, name)) for name in SHARED_FIELDS)


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
    if status not in ("diverged", "stopped"):  # over the whole history (the flow may be a compacted part)
        last = last_finite(ke)
        status = "converged" if math.isfinite(last) and last < flow.configs[k].converge_tol else "running"
    summary = dataclasses.replace(
        base,
        index=index,
        status=status,
        kinetic_energy=last_finite(ke),
        divergence=last_finite(history.get("divergence", np.zeros(0))),
        max_speed=last_finite(history.get("max_speed", np.zeros(0))),
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
                if bool(flow.alive[k]):
                    stop = flow.n
                else:  # ended in this chunk: stopped by the rule D ≤ ε, or diverged
                    ended = flow.stopped_step[k]
                    stop = ended if ended >= 0 else int(flow.diverged_step[k])
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
