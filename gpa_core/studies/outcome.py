"""How a run ended and how close it came: :func:`classify` (*diverged*, *converged*, *still moving*)
and :func:`quality` (distances to the target)."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpa_core.studies.batches import EnsembleError, MemberRun


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
    """Distances from particles to target by ``gpa_core.ot``: "w2" (exact W₂) and/or "sinkhorn"
    (debiased Sinkhorn divergence, blur ``blur``). A metric that fails (OT solver not converged,
    non-finite input) gives NaN rather than an exception."""
    from gpa_core import ot as mt

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
