"""The heavy-tail study (§7, Table 1): the paper's cases with their reported outcomes, a seed sweep and
overflow diagnostics."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpa_core.algorithm.divergences import FLOAT32_EXP_LIMIT, FLOAT64_EXP_LIMIT
from gpa_core.config import FlowConfig, authors_numerics
from gpa_core.engine.flow import last_finite
from gpa_core.studies.batches import (
    EnsembleError,
    EnsembleStats,
    MemberRun,
    plan_batches,
    run_members,
    sample_pair,
    steps_for,
)

# ===================================================================================== heavy tails
GAUSSIAN_SIDE = "gaussian:mean=10,std=0.5"
GAUSSIAN_LABEL = "N((10, 10), 0.5²I)"


def _side(heavy: str, gaussian: str, *, source: bool) -> property:
    """A read-only attribute of a :class:`HeavyTailCase` for its source (``source=True``) or its target:
    the case's attribute ``heavy`` on the heavy-tailed side, ``gaussian`` on the other."""

    def get(case: HeavyTailCase) -> str:
        return getattr(case, heavy) if case.heavy_is_source == source else gaussian

    side = "source" if source else "target"
    return property(
        get, doc=f"The {side}'s {heavy.removeprefix('heavy_')}: the heavy-tailed side or the Gaussian."
    )


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

    source_spec = _side("heavy_spec", GAUSSIAN_SIDE, source=True)
    target_spec = _side("heavy_spec", GAUSSIAN_SIDE, source=False)
    source_label = _side("heavy_label", GAUSSIAN_LABEL, source=True)
    target_label = _side("heavy_label", GAUSSIAN_LABEL, source=False)

    @property
    def label(self) -> str:
        """``"3: Student-t(1.5) → N((10, 10), 0.5²I)"``: the case's number, source and target."""
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
        """The configuration of one run: ``base`` with this sweep's f, α, L, Δt, steps and seed, in the
        paper's numerics or the authors' (``numerics="authors"``)."""
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
        """The seed the source is drawn with (the target's is one more)."""
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
    """Overflow gauge of a finished run from ``history['max_exp_arg']`` and its data: ``source`` (M, d)
    and ``target`` (N, d), the points the run started from and flowed to."""
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

    return OverflowDiagnostics(peak, peak_t, last_finite(gauge), limit, farthest(source), farthest(target))


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
