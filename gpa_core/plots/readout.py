"""What a live run's numbers say, as text and levels (no figures): pure functions of runner snapshots.

* :func:`stability_readout` — the CFL story of §6 in numbers: the largest step a particle can take
  (LΔt) against the data's scale and the particles' nearest-neighbour spacing, and the realized
  max|∇φ| against L.
* :func:`banner` — a one-line verdict (diverged / converged / finished / failed) with advice.
* :func:`short` — a number as the figures and read-outs print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from gpa_core.engine.snapshot import Snapshot, nearest_neighbour_spacing

__all__ = ["StabilityReadout", "banner", "short", "stability_readout"]


def short(x: float) -> str:
    """3 significant digits; NaN/None → '—', ∞ → '∞'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if math.isinf(x):
        return "∞"
    return f"{x:.3g}"


# ---------------------------------------------------------------------------------------------------
# Stability read-out and banner
# ---------------------------------------------------------------------------------------------------


Level = Literal["ok", "warn", "bad"]


@dataclass(frozen=True)
class StabilityReadout:
    """The CFL numbers of §6 for one member: particles move at most Δx = LΔt per step, and the
    realized speed max|∇φ| should stay ≤ L (sup|∇φ|·Δt/Δx ≤ 1). Scales are robust (medians), so
    heavy-tailed data do not make them meaningless."""

    L: float
    dt: float
    max_step: float  # LΔt (∞ without regularization)
    data_scale: float  # median distance of a target point from the target's coordinate-wise median
    distance: float  # distance between the particles' median and the target's median
    nn_spacing: float  # median nearest-neighbour distance of the particles
    max_grad: float  # the latest finite max_i |∇φ(Y_i)|
    realized_step: float  # max|∇φ|·Δt: the largest step actually taken
    cfl: float  # max|∇φ| / L
    steps_to_cross: float  # distance / (LΔt)
    level: Level  # the worst of the notes' levels
    notes: tuple[tuple[Level, str], ...] = field(default_factory=tuple)

    def rows(self) -> list[tuple[str, str, str]]:
        """(quantity, value, what it means) rows for a table."""
        return [
            ("largest step LΔt", short(self.max_step), "how far one particle may move per step"),
            ("realized step max|∇φ|·Δt", short(self.realized_step), "how far the fastest particle moved"),
            (
                "data scale",
                short(self.data_scale),
                "typical distance of a target point from its centre",
            ),
            ("particle spacing", short(self.nn_spacing), "median nearest-neighbour distance"),
            ("max|∇φ| / L", short(self.cfl), "the CFL number of §6: ≤ 1 with the Lipschitz bound"),
            ("steps to cross", short(self.steps_to_cross), "distance to the target / LΔt"),
        ]


def _median_point(x: np.ndarray) -> np.ndarray:
    x = x[np.isfinite(x).all(axis=1)]
    return np.median(x, axis=0) if len(x) else np.full(x.shape[1], np.nan)


def stability_readout(snap: Snapshot, member: int = 0) -> StabilityReadout:
    """Numbers that teach the CFL story of §6 for one member of a snapshot."""
    cfg = snap.configs[member]
    L, dt = float(cfg.L), float(cfg.dt)
    max_step = L * dt if math.isfinite(L) else math.inf
    tgt = np.asarray(snap.target[member], dtype=np.float64)
    tgt = tgt[np.isfinite(tgt).all(axis=1)]
    centre = _median_point(tgt)
    data_scale = float(np.median(np.linalg.norm(tgt - centre, axis=1))) if len(tgt) else math.nan
    p = snap.particles[member]
    distance = float(np.linalg.norm(_median_point(p) - centre))
    spacing = snap.spacing[member] if math.isfinite(snap.spacing[member]) else nearest_neighbour_spacing(p)
    speeds = snap.history.max_speed[:, member] if len(snap.history) else np.zeros(0)
    speeds = speeds[np.isfinite(speeds)]
    max_grad = float(speeds[-1]) if speeds.size else math.nan
    realized = max_grad * dt
    cfl = max_grad / L if math.isfinite(L) and L > 0 else math.nan
    steps_to_cross = distance / max_step if math.isfinite(max_step) and max_step > 0 else math.nan
    notes: list[tuple[Level, str]] = []
    if not math.isfinite(L):
        notes.append(
            (
                "warn",
                "L = ∞: nothing bounds the particles' speed, so nothing bounds a step — the flow may "
                "overshoot or blow up (Fig. 2–3).",
            )
        )
    else:
        if data_scale == 0:  # every target point is the same (a point mass)
            notes.append(
                (
                    "warn",
                    "The target has no spread (all its points coincide; data scale 0): particles approach "
                    f"it in steps of up to LΔt = {max_step:.3g} and may hop back and forth around it (a "
                    "smaller Δt brings them closer).",
                )
            )
        elif max_step > data_scale:
            notes.append(
                (
                    "warn",
                    f"One step may move a particle LΔt = {max_step:.3g}, more than the data's scale "
                    f"{data_scale:.3g}: particles can jump over the target (try a smaller L or Δt).",
                )
            )
        if math.isfinite(spacing) and spacing > 0 and max_step > 10 * spacing:
            notes.append(
                (
                    "ok",
                    f"LΔt = {max_step:.3g} is {max_step / spacing:.0f}× the particle spacing {spacing:.3g}: "
                    "fine structure is resolved only once particles slow down.",
                )
            )
        if math.isfinite(steps_to_cross) and steps_to_cross > max(cfg.steps, 1):
            notes.append(
                (
                    "warn",
                    f"At most LΔt = {max_step:.3g} per step, reaching the target takes ≥ "
                    f"{steps_to_cross:.0f} steps, more than the {cfg.steps} allowed: raise L·Δt or the "
                    "number of steps.",
                )
            )
        if math.isfinite(cfl) and cfl > 1.05:
            notes.append(
                (
                    "bad",
                    f"max|∇φ| = {max_grad:.3g} exceeds L = {L:g}: the Lipschitz bound is not enforced "
                    "(penalty or no projection), so the CFL condition of §6 can fail.",
                )
            )
    if spacing == 0:  # more than half the particles sit exactly on another one
        notes.append(
            (
                "warn",
                "Particle spacing 0: at least half the particles sit exactly on another one (duplicated "
                "points). Particles at one place get one velocity, so they move as one and never separate.",
            )
        )
    if not notes:
        notes.append(
            (
                "ok",
                f"Steps of at most LΔt = {max_step:.3g} against a data scale of {data_scale:.3g}: within "
                "the CFL heuristics of §6.",
            )
        )
    order = {"ok": 0, "warn": 1, "bad": 2}
    level = max((lv for lv, _ in notes), key=order.__getitem__)
    if snap.status[member] == "diverged":
        level = "bad"
    return StabilityReadout(
        L=L,
        dt=dt,
        max_step=max_step,
        data_scale=data_scale,
        distance=distance,
        nn_spacing=spacing,
        max_grad=max_grad,
        realized_step=realized,
        cfl=cfl,
        steps_to_cross=steps_to_cross,
        level=level,
        notes=tuple(notes),
    )


BannerKind = Literal["error", "warning", "success", "info"]


def banner(snap: Snapshot, member: int = 0) -> tuple[BannerKind, str] | None:
    """A one-line verdict for a member, with advice when it diverged; ``None`` while running normally."""
    if snap.state == "error":
        return "error", f"The run failed: {snap.error}. Reset to start again (fewer particles may help)."
    status = snap.status[member]
    cfg = snap.configs[member]
    if status == "diverged":
        at = snap.diverged_at[member]
        reason = snap.reason[member] or "values became non-finite"
        short = reason.split(" (")[0]
        if cfg.f == "kl" and "overflow" in reason:
            advice = "try an α-divergence or a smaller L"
        elif not math.isfinite(cfg.L):
            advice = "try a finite L (e.g. L = 1) or a smaller Δt"
        else:
            advice = "try a smaller Δt or L"
        return "error", f"Diverged at t = {at:.4g}: {short} — {advice}."
    if status == "stopped":
        return "success", (
            f"Stopped at t = {float(snap.t[member]):.4g} by the rule D ≤ ε: {snap.reason[member]} "
            "(paper §4, (8.1): these particles are the augmented data)."
        )
    if status == "converged":
        return "success", (
            f"Converged at t = {float(snap.t[member]):.4g}: "
            f"the kinetic energy fell below {cfg.converge_tol:g}."
        )
    if snap.finished[member]:
        ke = snap.history.kinetic_energy[:, member] if len(snap.history) else np.zeros(0)
        ke = ke[np.isfinite(ke)]
        last = f"{ke[-1]:.3g}" if ke.size else "—"
        return "info", f"Finished at T = {float(snap.t[member]):.4g} ({snap.n} steps); kinetic energy {last}."
    return None
