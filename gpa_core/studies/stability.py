"""The stability map over (L, Δt) (§6): a log-spaced grid of runs to one horizon T, each classified."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gpa_core.config import ConfigError, FlowConfig
from gpa_core.studies.batches import (
    EnsembleError,
    EnsembleStats,
    MemberRun,
    Strategy,
    data_scale,
    run_members,
    steps_for,
)
from gpa_core.studies.outcome import ConvergenceCriteria, Outcome, classify_run, quality

MAX_AXIS = 8  # at most 8 values of L and of Δt in a stability map


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
        """The cell of the ``i_L``-th L and the ``i_dt``-th Δt (cells are stored L-major)."""
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
        """How many finished cells ended in each outcome (converged, still moving, diverged)."""
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
