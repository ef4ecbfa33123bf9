"""A rival particle flow (MMD or Sinkhorn divergence, :class:`~gpa_core.config.RivalConfig`) stepped like
GPA's particles (eq. 1.10 with the rival's velocity): Y_{n+1} = Y_n + Δt v(Y_n) (Euler) or Heun's
average of v(Y_n) and v(Y_n + Δt v(Y_n)), from the same source particles toward the same target.

It records, per step n and like GPA's history, the physical time, the kinetic energy mean_i |v(Y_n^i)|²
(the flow's dissipation rate: its objective F decreases at exactly this rate in continuous time), the
flow's own objective F (½MMD² or S_ε) at Y_n, the largest speed and, for Sinkhorn, the plans' marginal
error. A flow whose particles turn non-finite or run away is marked ``diverged``, as GPA's members are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gpa_core.config import RivalConfig
from gpa_core.devices import resolve_device
from gpa_core.engine.flow import RUNAWAY_FACTOR, last_finite
from gpa_core.ot import median_pairwise_distance
from gpa_core.rivals.mmd import mmd_squared, mmd_velocity
from gpa_core.rivals.sinkhorn import SinkhornState, sinkhorn_velocity

STILL_KINETIC_ENERGY = 1e-10  # below this (relative to the target's size²) the particles have stopped
STALLED_FRACTION = 0.5  # stopped with its objective above this share of the start: stalled, not converged
#: at the horizon, a flow whose objective is above STALLED_FRACTION of its start and would take more than
#: this many horizons to dissipate at its current rate (F / kinetic energy, as dF/dt = −kinetic energy)
#: has stalled; one that is merely slow has "reached T"
STALLED_HORIZONS = 10.0
WIDTH_POINTS = 1000  # the median heuristic looks at most at this many points of the pooled clouds
LOOSE_PLAN = 1e-3  # a Sinkhorn marginal error above this is said in the summary


def auto_width(config: RivalConfig, source: np.ndarray, target: np.ndarray) -> float | None:
    """The width a configuration without one takes from the data: the median heuristic for a Gaussian
    kernel (σ = the median distance between points of the pooled clouds, Gretton et al. 2012) and a
    tenth of the pooled clouds' RMS radius √(mean |z − z̄|²) as the Sinkhorn blur; None for the energy
    kernel, which has no width."""
    if config.width is not None:
        return config.width
    if config.flow == "mmd" and config.kernel == "energy":
        return None
    pooled = np.concatenate([np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)])
    if config.flow == "sinkhorn":
        radius = float(np.sqrt(((pooled - pooled.mean(0)) ** 2).sum(1).mean()))
        return max(0.1 * radius, 1e-6)
    return max(median_pairwise_distance(pooled, max_points=WIDTH_POINTS), 1e-6)


@dataclass(frozen=True)
class RivalSummary:
    """A rival flow's outcome in plain values: status ("running" | "converged" | "stalled" |
    "diverged"), steps done, time, the latest kinetic energy, objective (``objective_name``: "½MMD²" or
    "S_ε"), largest speed and Sinkhorn marginal error, when it diverged and why it ended as it did."""

    status: str
    steps: int
    t: float
    kinetic_energy: float
    objective: float
    objective_name: str
    max_speed: float
    marginal_error: float
    diverged_at: float | None
    reason: str


class RivalFlow:
    """One rival flow of the particles ``source`` (M, d) toward ``target`` (N, d); float64."""

    FIELDS = ("time", "kinetic_energy", "objective", "max_speed", "marginal_error")

    def __init__(self, source: np.ndarray, target: np.ndarray, config: RivalConfig) -> None:
        if not isinstance(config, RivalConfig):
            raise TypeError(f"config must be a RivalConfig, got {type(config).__name__}")
        source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
        if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
            raise ValueError(
                "source and target must be (M, d) and (N, d) with one d; "
                f"got {source.shape} and {target.shape}"
            )
        device = resolve_device(config.device)
        self.device = torch.device("cpu") if device.type == "mps" else device  # MPS has no float64
        self.config = config
        self.width = auto_width(config, source, target)
        self.Y = torch.tensor(source, dtype=torch.float64, device=self.device)
        self.Q = torch.tensor(target, dtype=torch.float64, device=self.device)
        self.n, self.t = 0, 0.0
        self.history: dict[str, list[float]] = {"step": [], **{name: [] for name in self.FIELDS}}
        self.diverged_at: float | None = None
        self.reason = ""
        extent = max(float(np.abs(source).max()), float(np.abs(target).max()), 1.0)
        self.runaway_radius = RUNAWAY_FACTOR * extent
        scale = float(((target - target.mean(0)) ** 2).sum(1).mean())
        self.still = STILL_KINETIC_ENERGY * max(scale, 1e-12)
        self._sinkhorn = SinkhornState(float(self.width)) if config.flow == "sinkhorn" else None

    @property
    def objective_name(self) -> str:
        """F, the objective the flow descends: "½MMD²" (Arbel et al.'s F) or "S_ε"."""
        return "S_ε" if self.config.flow == "sinkhorn" else "½MMD²"

    @property
    def M(self) -> int:
        return int(self.Y.shape[0])

    def velocity(self, Y: Tensor) -> tuple[Tensor, float, float]:
        """v(Y), the objective F at Y and (Sinkhorn) the marginal error of its plans (NaN for MMD)."""
        c = self.config
        if self._sinkhorn is not None:
            return sinkhorn_velocity(Y, self.Q, self._sinkhorn, c.sinkhorn_iters)
        width = 1.0 if self.width is None else self.width
        v = mmd_velocity(Y, self.Q, c.kernel, width)
        return v, 0.5 * float(mmd_squared(Y, self.Q, c.kernel, width)), math.nan

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def finished(self) -> bool:
        return self.diverged or self.n >= self.config.steps

    def step(self, n: int = 1) -> int:
        """Advance up to ``n`` particle steps (fewer at the horizon or on divergence); returns how many."""
        done = 0
        c = self.config
        with torch.no_grad():
            while done < n and not self.finished():
                v, objective, error = self.velocity(self.Y)
                speed2 = (v * v).sum(1)
                self._record(float(speed2.mean()), objective, float(speed2.max().sqrt()), error)
                if self.diverged:
                    break
                if c.solver == "heun":
                    v2, _, _ = self.velocity(self.Y + c.dt * v)
                    Y = self.Y + 0.5 * c.dt * (v + v2)
                else:
                    Y = self.Y + c.dt * v
                self.n += 1
                self.t += c.dt
                done += 1
                if not bool(torch.isfinite(Y).all()):
                    self._diverge("values became non-finite (NaN or ∞)")
                elif float(Y.abs().max()) > self.runaway_radius:
                    self._diverge(f"particles ran away beyond |x| = {self.runaway_radius:.3g}")
                else:
                    self.Y = Y
        return done

    def _record(self, kinetic_energy: float, objective: float, max_speed: float, error: float) -> None:
        h = self.history
        h["step"].append(float(self.n))
        for name, value in zip(
            self.FIELDS, (self.t, kinetic_energy, objective, max_speed, error), strict=True
        ):
            h[name].append(value)
        if not math.isfinite(kinetic_energy) or not math.isfinite(objective):
            self._diverge("values became non-finite (NaN or ∞)")

    def _diverge(self, reason: str) -> None:
        if self.diverged_at is None:
            self.diverged_at, self.reason = self.t, reason

    def particles(self) -> np.ndarray:
        """The particles (M, d), a float64 NumPy copy (the last finite state after a divergence)."""
        return self.Y.detach().cpu().numpy().copy()

    def history_arrays(self) -> dict[str, np.ndarray]:
        """Each recorded quantity as a 1-D array (and ``step``)."""
        return {name: np.asarray(values, dtype=np.float64) for name, values in self.history.items()}

    def status(self) -> str:
        """diverged; converged (the particles stopped with the objective down to half its start or
        less); stalled (stopped with the objective above that, or at the horizon with the objective
        above that and, at its current rate, more than STALLED_HORIZONS horizons from dissipating it:
        for a narrow kernel and a far target the MMD flow barely moves); otherwise running."""
        if self.diverged:
            return "diverged"
        ke, objective = self.history["kinetic_energy"], self.history["objective"]
        if not ke:
            return "running"
        high = objective[-1] > STALLED_FRACTION * objective[0]
        if ke[-1] < self.still:
            return "stalled" if high else "converged"
        at_horizon = self.n >= self.config.steps
        slow = objective[-1] > STALLED_HORIZONS * self.config.horizon * ke[-1]
        return "stalled" if high and at_horizon and slow else "running"

    def summary(self) -> RivalSummary:
        h = self.history_arrays()
        status = self.status()
        reason = self.reason
        if status == "stalled":
            share = h["objective"][-1] / h["objective"][0]
            ke = h["kinetic_energy"][-1]
            reason = (
                f"kinetic energy {ke:.2g} with {self.objective_name} still {share:.0%} of its start "
                + (
                    f"(at this rate it would take {h['objective'][-1] / ke / self.config.horizon:.0f}× "
                    "the horizon to go)"
                    if ke > 0
                    else ""
                )
                + (
                    ": the kernel's pull does not reach the target"
                    if self.config.flow == "mmd"
                    else ": the flow has stopped short of the target"
                )
            )
        error = last_finite(h["marginal_error"])
        if not reason and error > LOOSE_PLAN:
            reason = (
                f"the Sinkhorn plans were solved only to marginal error {error:.1g} (above "
                f"{LOOSE_PLAN:g}): the velocity is approximate; raise sinkhorn_iters or the blur"
            )
        return RivalSummary(
            status=status,
            steps=self.n,
            t=self.t,
            kinetic_energy=last_finite(h["kinetic_energy"]),
            objective=last_finite(h["objective"]),
            objective_name=self.objective_name,
            max_speed=last_finite(h["max_speed"]),
            marginal_error=error,
            diverged_at=self.diverged_at,
            reason=reason,
        )
