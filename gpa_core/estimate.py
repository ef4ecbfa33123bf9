"""Estimating D_f^{Γ_L}(P‖Q) between two samples: train a fresh discriminator to convergence (eq. 1.4)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gpa_core.config import ConfigError, FlowConfig, parse_lipschitz
from gpa_core.engine.flow import GPAFlow


def divergence(
    P: np.ndarray,
    Q: np.ndarray,
    *,
    f: str = "kl",
    L: float | str = 1.0,
    alpha: float = 2.0,
    max_iterations: int = 4000,
    tol: float = 1e-4,
    window: int = 200,
    **config: Any,
) -> float:
    """D_f^{Γ_L}(P‖Q) from samples P (M, d) and Q (N, d).

    A fresh L-Lipschitz discriminator (and ν) is trained on the fixed samples with Adam until the
    objective J of eq. (1.4) stops improving: the mean over the last ``window`` iterations gains less
    than ``tol`` (relative, with an absolute floor of ``tol``) on the window before, or
    ``max_iterations`` is reached. The value is a lower estimate of the supremum (a trained network
    is one admissible φ)."""
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    for name, arr in (("P", P), ("Q", Q)):
        if arr.ndim != 2 or arr.shape[0] < 1:
            raise ConfigError(f"{name} must be a non-empty (n, d) array; got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ConfigError(f"{name} contains NaN or infinite values")
    if P.shape[1] != Q.shape[1]:
        raise ConfigError(f"P and Q must have the same dimension: {P.shape[1]} vs {Q.shape[1]}")
    config.setdefault("inner_steps", 1)
    config.setdefault("lr", 1e-3)
    cfg = FlowConfig(f=f, L=parse_lipschitz(L), alpha=alpha, steps=1, **config)  # type: ignore[arg-type]
    flow = GPAFlow(P, Q, cfg)
    values: list[float] = []
    chunk = 50
    while len(values) < max_iterations:
        for _ in range(chunk):
            values.append(float(flow.fit_discriminator(1)[0]))
        if not np.isfinite(values[-1]):
            return float("nan")
        if len(values) >= 2 * window:
            recent = float(np.mean(values[-window:]))
            before = float(np.mean(values[-2 * window : -window]))
            if recent - before <= tol * max(abs(recent), 1.0):
                break
    return float(np.mean(values[-min(len(values), 50) :]))
