"""Time integrators for the particle ODE dY/dt = v(Y) = -∇φ(Y) of eq. (1.10).

``velocity(y, stage)`` returns v at positions y; for GPA it first retrains φ on y (Algorithm 3.1
for stage 0; Remark 3.2's corrector for stage 1). Arrays are (K, n, d) with a per-member step
``dt`` broadcastable to them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Velocity = Callable[[Tensor, int], Tensor]

SOLVERS: tuple[str, ...] = ("euler", "heun")


def euler_step(y: Tensor, velocity: Velocity, dt: Tensor | float) -> Tensor:
    """Forward Euler, eq. (3.2): Y_{n+1} = Y_n + Δt v(Y_n)."""
    return y + dt * velocity(y, 0)


def heun_step(y: Tensor, velocity: Velocity, dt: Tensor | float) -> Tensor:
    """Heun's predictor–corrector (Remark 3.2): Ỹ = Y + Δt v(Y), Y_{n+1} = Y + Δt/2 (v(Y) + ṽ(Ỹ))."""
    v1 = velocity(y, 0)
    v2 = velocity(y + dt * v1, 1)
    return y + 0.5 * dt * (v1 + v2)


def advance(y: Tensor, velocity: Velocity, dt: Tensor, use_heun: Tensor) -> tuple[Tensor, Tensor]:
    """One step for a batch whose members may use different solvers.

    ``use_heun`` is a (K,) mask. Returns (Y_{n+1}, v(Y_n)); the velocity at Y_n is what the
    kinetic energy (3.3) is measured from."""
    v1 = velocity(y, 0)
    y_euler = y + dt * v1
    if not bool(use_heun.any()):
        return y_euler, v1
    v2 = velocity(y_euler, 1)
    y_heun = y + 0.5 * dt * (v1 + v2)
    return torch.where(use_heun.reshape(-1, 1, 1), y_heun, y_euler), v1
