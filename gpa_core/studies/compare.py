"""Side-by-side comparisons: a few runs on one data set, presets of the paper's figures, and distances
to the target tracked along a live run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpa_core.config import ConfigError, FlowConfig
from gpa_core.studies.batches import EnsembleError
from gpa_core.studies.outcome import quality

MAX_COMPARE = 8  # at most 8 runs on the compare page


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
            from gpa_core.config import check_batch

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
        if not 2 <= len(p.members) <= MAX_COMPARE:
            continue
        spec = CompareSpec(
            format_spec(p.source.name, p.source.params),
            format_spec(p.target.name, p.target.params),
            p.M,
            p.N,
            tuple(CompareRun(label, cfg) for label, cfg in p.members),
            data_seed=p.data_seed,
        )
        T = max(c.horizon for c in p.configs)
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
        """Member ``k``'s latest value of ``metric`` (NaN before the first measurement)."""
        values = self.series[k].get(metric, [])
        return float(values[-1]) if values else math.nan
