"""Side-by-side comparisons: a few runs on one data set (GPA runs and rival flows: MMD, Sinkhorn),
presets of the paper's figures, the live job that advances them, and distances to the target tracked
along a live run."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gpa_core.config import ConfigError, FlowConfig, RivalConfig
from gpa_core.engine.runner import Runner
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.rivals.live import RivalRunner
from gpa_core.studies.batches import EnsembleError
from gpa_core.studies.outcome import quality

MAX_COMPARE = 8  # at most 8 runs on the compare page (GPA runs and rival flows together)
SAMPLER_INTERVAL = 0.05  # seconds between the compare job's looks at its runners (chunks last ~0.1 s)
SAMPLER_IDLE = 10.0  # the sampler rests once nobody has asked for a snapshot for this long


# ========================================================================================= compare
@dataclass(frozen=True)
class CompareRun:
    """One run of a comparison: a label and its configuration."""

    label: str
    config: FlowConfig


@dataclass(frozen=True)
class RivalRun:
    """One rival flow of a comparison (not GPA): a label and its configuration."""

    label: str
    config: RivalConfig


@dataclass(frozen=True)
class CompareSpec:
    """Up to 8 runs on the same data (source/target specs, M, N, data seed): GPA runs advanced as one
    batch, and rival flows (``rivals``) stepped beside them from the same particles."""

    source_spec: str
    target_spec: str
    M: int
    N: int
    runs: tuple[CompareRun, ...]
    data_seed: int = 0
    metric_every: int = 25  # particle steps between W₂ evaluations
    metrics: tuple[str, ...] = ("w2",)
    rivals: tuple[RivalRun, ...] = ()

    def __post_init__(self) -> None:
        total = len(self.runs) + len(self.rivals)
        if not 1 <= total <= MAX_COMPARE:
            raise EnsembleError(f"a comparison takes 1 to {MAX_COMPARE} runs; got {total}")
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
        if self.runs:
            try:
                from gpa_core.config import check_batch

                check_batch([r.config for r in self.runs])
            except ConfigError as exc:
                raise EnsembleError(f"these runs cannot share one batch: {exc}") from exc

    @property
    def configs(self) -> list[FlowConfig]:
        """The GPA runs' configurations."""
        return [r.config for r in self.runs]

    @property
    def labels(self) -> list[str]:
        """Every run's label: the GPA runs, then the rival flows (the order of a CompareSnapshot)."""
        return [r.label for r in self.runs] + [r.label for r in self.rivals]


@dataclass(frozen=True)
class ComparePreset:
    """A named comparison reproducing a figure of the paper: its runs and data (``spec``) and the
    horizon T shared by its runs."""

    key: str
    title: str
    description: str
    spec: CompareSpec
    T: float
    dim: int | None = None

    @property
    def runs(self) -> tuple[CompareRun, ...]:
        return self.spec.runs

    @property
    def rivals(self) -> tuple[RivalRun, ...]:
        return self.spec.rivals

    @property
    def base(self) -> FlowConfig:
        """The shared settings (the first run's configuration)."""
        return self.spec.runs[0].config


def compare_presets() -> dict[str, ComparePreset]:
    """The comparisons offered on the compare page: every preset of :mod:`gpa_core.data.presets`
    (``assets/presets/*.json``, the same runs as the playground's presets) with 2 to
    :data:`MAX_COMPARE` members, by preset id. A preset file that cannot be read raises its
    ``PresetError``, as on the playground."""
    from gpa_core.data.datasets import format_spec
    from gpa_core.data.presets import list_presets

    out: dict[str, ComparePreset] = {}
    for p in list_presets():
        if not 2 <= len(p.members) + len(p.rivals) <= MAX_COMPARE:
            continue
        spec = CompareSpec(
            format_spec(p.source.name, p.source.params),
            format_spec(p.target.name, p.target.params),
            p.M,
            p.N,
            tuple(CompareRun(label, cfg) for label, cfg in p.members),
            data_seed=p.data_seed,
            rivals=tuple(RivalRun(label, cfg) for label, cfg in p.rivals),
        )
        T = max([c.horizon for c in p.configs] + [c.horizon for _, c in p.rivals])
        out[p.id] = ComparePreset(p.id, f"{p.paper}: {p.title}", p.notes, spec, T, dim=p.dim)
    return out


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
        steps: int | Sequence[int],
        times: Sequence[float],
        particles: np.ndarray,
        target: np.ndarray,
        finished: Sequence[bool] | None = None,
    ) -> list[int]:
        """Measure the members that are due; returns their indices.

        ``steps`` the members' step counts (K,) or one count for all, ``particles`` (K, M, d),
        ``target`` (N, d) or (K, N, d), ``times`` (K,) physical times."""
        done = finished if finished is not None else [False] * self.K
        counts = [int(steps)] * self.K if np.ndim(steps) == 0 else [int(x) for x in steps]  # type: ignore[arg-type]
        measured = []
        for k in range(self.K):
            n = counts[k]
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
        """Member ``k``'s latest value of ``metric`` (NaN before the first measurement)."""
        values = self.series[k].get(metric, [])
        return float(values[-1]) if values else math.nan


# ====================================================================================== live job
@dataclass(frozen=True)
class MemberView:
    """One run of a live comparison, GPA or rival, in the same plain terms: ``flow`` ("GPA", "MMD" or
    "Sinkhorn"), a status text (running …, reached T, converged, stalled, stopped, diverged), time,
    steps, the latest kinetic energy and the flow's own objective (``objective_name``: GPA's estimate
    "D_f^Γ", "½MMD²" or "S_ε"), when it diverged and why, its steps per second, and its history
    (``time``, ``kinetic_energy``, ``objective`` as 1-D arrays)."""

    label: str
    flow: str
    status: str
    t: float
    steps: int
    finished: bool
    kinetic_energy: float
    objective: float
    objective_name: str
    diverged_at: float | None
    reason: str
    steps_per_second: float
    history: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class CompareSnapshot:
    """A live comparison, frozen: its runs (GPA first, then the rivals), their particles (K, M, d) over
    the one target (N, d), the job's state and, for the GPA batch, device and message."""

    state: str
    members: tuple[MemberView, ...]
    particles: np.ndarray
    target: np.ndarray
    device: str
    message: str
    error: str | None

    @property
    def K(self) -> int:
        return len(self.members)

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.members]

    @property
    def finished(self) -> list[bool]:
        return [m.finished for m in self.members]

    @property
    def t(self) -> list[float]:
        return [m.t for m in self.members]

    @property
    def steps(self) -> list[int]:
        return [m.steps for m in self.members]


def _status_text(status: str, finished: bool) -> str:
    if status in ("diverged", "converged", "stopped", "stalled"):
        return status
    return "reached T" if finished else "running …"


def _combined_state(states: Sequence[str]) -> str:
    for state in ("error", "playing", "paused", "ready", "stopped"):
        if state in states:
            return state
    return "finished"


class CompareJob:
    """The live job of a comparison: its GPA runs as one batched :class:`Runner` and its rival flows
    as a :class:`RivalRunner`, from the same source particles toward the same target, with one
    play / pause / stop and one :class:`CompareSnapshot`. Bad settings raise here, nothing runs.

    The distances to the target (the spec's ``metrics`` every ``metric_every`` steps, a
    :class:`MetricTracker`) are measured by a sampler of the job's own (an :class:`EnsembleJob`), which
    reads the
    runners' snapshots as they come (each chunk of steps): a page that polls twice a second would see
    a fast run only a few times. The sampler rests while nobody has asked for a snapshot for
    :data:`SAMPLER_IDLE` seconds, so the runners' own idle pause still works. :meth:`series` and
    :meth:`latest` read its measurements."""

    def __init__(self, spec: CompareSpec, source: np.ndarray, target: np.ndarray) -> None:
        self.spec = spec
        self._tracker = MetricTracker(len(spec.labels), spec.metrics, every=spec.metric_every)
        self._tracker_lock = threading.Lock()  # guards _published (the sampler alone updates _tracker)
        self._published: list[dict[str, list[float]]] = []
        self._watched = time.monotonic()
        self._sampler = EnsembleJob(self._sample, name="compare-metrics", threads=None)
        self.gpa = (
            Runner(source, target, spec.configs, grid=False, max_history=2000, idle_timeout=300.0)
            if spec.runs
            else None
        )
        self.rivals = (
            RivalRunner(source, target, [r.config for r in spec.rivals], [r.label for r in spec.rivals])
            if spec.rivals
            else None
        )
        start = self._combined()  # the starting clouds, measured before anything moves
        self._measure(start)

    def play(self) -> None:
        self._watched = time.monotonic()
        for job in (self.gpa, self.rivals):
            if job is not None:
                job.play()
        if self._sampler.started_at is None:
            self._sampler.start()

    start = play

    def _sample(self, control: JobControl) -> None:
        """The sampler: measure the members that are due, until every one has finished (or the job is
        stopped); a failure ends it and shows in :attr:`metric_error` (the runs go on)."""
        while not control.cancelled():
            if time.monotonic() - self._watched > SAMPLER_IDLE:
                control.cancel_event.wait(0.2)
                continue
            snap = self._combined()
            self._measure(snap)
            if all(snap.finished) or snap.state in ("error", "stopped"):
                return
            control.cancel_event.wait(SAMPLER_INTERVAL)

    @property
    def metric_error(self) -> str | None:
        """Why measuring the distances failed, if it did."""
        error = self._sampler.error
        return None if error is None else f"{type(error).__name__}: {error}"

    def _measure(self, snap: CompareSnapshot) -> None:
        """Measure the members that are due (outside the lock: a Sinkhorn evaluation can take seconds,
        and a page reading :meth:`series` must not wait for it), then publish a copy."""
        if self._tracker.update(snap.steps, snap.t, snap.particles, snap.target, snap.finished):
            copy = [{name: list(values) for name, values in row.items()} for row in self._tracker.series]
            with self._tracker_lock:
                self._published = copy

    def series(self) -> list[dict[str, list[float]]]:
        """Each member's measurements so far: ``step``, ``time`` and one list per metric (a published
        copy, shared by readers: do not modify)."""
        with self._tracker_lock:
            return self._published

    def latest(self, k: int, metric: str = "w2") -> float:
        """Member ``k``'s latest value of ``metric`` (NaN before the first measurement)."""
        values = self.series()[k].get(metric, []) if self._published else []
        return float(values[-1]) if values else math.nan

    def pause(self) -> None:
        for job in (self.gpa, self.rivals):
            if job is not None:
                job.pause()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the runners and the sampler (each waited for up to ``timeout`` s)."""
        self._sampler.cancel()
        for job in (self.gpa, self.rivals):
            if job is not None:
                job.stop(timeout=timeout)
        self._sampler.join(timeout)

    cancel = stop

    @property
    def done(self) -> bool:
        gpa_done = self.gpa is None or self.gpa.snapshot().state in ("finished", "error", "stopped")
        return gpa_done and (self.rivals is None or self.rivals.done)

    def snapshot(self) -> CompareSnapshot:
        """The comparison as it stands (this counts as somebody watching)."""
        self._watched = time.monotonic()
        return self._combined()

    def _combined(self) -> CompareSnapshot:
        members: list[MemberView] = []
        clouds: list[np.ndarray] = []
        states: list[str] = []
        target: np.ndarray | None = None
        device, message, errors = "", "", []
        if self.gpa is not None:
            snap = self.gpa.snapshot()
            states.append(snap.state)
            device, message = snap.device, snap.message
            if snap.error:
                errors.append(snap.error)
            target = snap.target[0]
            clouds.append(snap.particles)
            for k, s in enumerate(snap.summary):
                h = snap.history.member(k)
                members.append(
                    MemberView(
                        label=self.spec.runs[k].label, flow="GPA",
                        status=_status_text(s.status, bool(snap.finished[k])), t=float(snap.t[k]),
                        steps=s.steps, finished=bool(snap.finished[k]), kinetic_energy=s.kinetic_energy,
                        objective=s.divergence, objective_name="D_f^Γ", diverged_at=s.diverged_at,
                        reason=s.reason, steps_per_second=snap.steps_per_second,
                        history={"time": h["time"], "kinetic_energy": h["kinetic_energy"],
                                 "objective": h["divergence"]},
                    )
                )  # fmt: skip
        if self.rivals is not None:
            rs = self.rivals.snapshot()
            states.append(rs.state)
            if rs.error:
                errors.append(rs.error)
            target = rs.target if target is None else target
            clouds.append(rs.particles)
            for j, s in enumerate(rs.summaries):
                h = rs.histories[j]
                members.append(
                    MemberView(
                        label=rs.labels[j], flow="Sinkhorn" if rs.configs[j].flow == "sinkhorn" else "MMD",
                        status=_status_text(s.status, rs.finished[j]), t=s.t, steps=s.steps,
                        finished=rs.finished[j], kinetic_energy=s.kinetic_energy, objective=s.objective,
                        objective_name=s.objective_name, diverged_at=s.diverged_at, reason=s.reason,
                        steps_per_second=rs.steps_per_second[j],
                        history={"time": h["time"], "kinetic_energy": h["kinetic_energy"],
                                 "objective": h["objective"]},
                    )
                )  # fmt: skip
        assert target is not None
        particles = np.concatenate([np.asarray(c, dtype=np.float64) for c in clouds])
        particles.setflags(write=False)
        return CompareSnapshot(
            state=_combined_state(states),
            members=tuple(members),
            particles=particles,
            target=target,
            device=device,
            message=message,
            error="; ".join(errors) or None,
        )
