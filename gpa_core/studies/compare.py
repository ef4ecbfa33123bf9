"""Side-by-side comparisons: a few runs on one data set, presets of the paper's figures, and distances
to the target tracked along a live run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpa_core.config import ConfigError, FlowConfig
from gpa_core.studies.batches import EnsembleError
from gpa_core.studies.heavy_tails import GAUSSIAN_SIDE
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
    """The comparisons offered on the compare page: every preset of :mod:`gpa_core.data.presets` with
    more than one member (``assets/presets/*.json``: the same runs as the playground's presets), by
    preset id; the built-in :data:`COMPARE_PRESETS` if those files cannot be read."""
    try:
        from gpa_core.data.datasets import format_spec
        from gpa_core.data.presets import list_presets

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
