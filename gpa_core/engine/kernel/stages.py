"""The kernel's stages one at a time, in the eager side's terms: its test-facing surface.

Each function runs one compiled stage of :mod:`~gpa_core.engine.kernel.step` (or a product of
:mod:`~gpa_core.engine.kernel.simd`) for one member, on NumPy arrays, allocating the buffers the
kernel keeps in its workspaces and taking the eager side's names (an ``ObjectiveKind``, a
projection mode) instead of codes — so that ``tests/test_kernel.py`` can hold each stage against
its eager twin on the same inputs. Nothing on the running path calls these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpa_core.algorithm.divergences import ObjectiveKind
from gpa_core.engine.kernel import step
from gpa_core.engine.kernel.args import Net, network
from gpa_core.engine.kernel.codes import KL_DV, KL_DV_NAIVE, LIPSCHITZ_CODES, objective_code
from gpa_core.engine.kernel.jit import jit
from gpa_core.engine.kernel.lanes import LANES, NSTAT
from gpa_core.engine.kernel.simd import (
    column_sums,
    matmul,
    matmul_bias_relu,
    matmul_relu,
    matmul_tn,
    relu_outer,
)
from gpa_core.engine.kernel.step import adam

__all__ = [
    "Pass",
    "adam",
    "backward",
    "column_sums",
    "field",
    "forward",
    "matmul",
    "matmul_bias_relu",
    "matmul_relu",
    "matmul_tn",
    "network",
    "objective",
    "project",
    "relu_outer",
]


class Pass(NamedTuple):
    """A forward pass: network outputs V (n,), pre-activations, layer inputs, and its workspace."""

    V: np.ndarray
    pres: object
    posts: object
    ws: tuple


def forward(theta: np.ndarray, net: Net, Z: np.ndarray) -> Pass:
    """``step.forward`` at the rows Z (n, d) of one member's parameters θ (P,)."""
    ws = step.workspace(net.widths, Z.shape[0])
    V, pres, posts = step.forward(theta, net, Z, ws)
    return Pass(V, pres, posts, ws)


@jit
def _objective(code, alpha, nu, V, m, nq, dV):
    parts = np.empty((LANES, NSTAT))
    for lane in range(LANES):
        step.empty_stats(parts[lane])
    step.objective_part(code, alpha, nu, V, 0, m, m, nq, m, nq, dV, parts[0])
    value, d_nu, gauge, vmax, s = step.combined(code, nu, parts, m, nq)
    if code == KL_DV or code == KL_DV_NAIVE:
        step.dv_global(code, V, m, nq, vmax, s, dV)
    return value, d_nu, gauge


def objective(
    kind: ObjectiveKind, alpha: float, nu: np.float32, V: np.ndarray, M: int
) -> tuple[float, float, float, np.ndarray]:
    """J(φ, ν), ∂J/∂ν, the overflow gauge and dV = ∂(-J)/∂V from outputs V at M particles, then
    the target, all in one lane (``objective_part``, ``combined``, ``dv_global``)."""
    dV = np.empty(V.shape[0], dtype=np.float32)
    value, d_nu, gauge = _objective(objective_code(kind), alpha, nu, V, M, V.shape[0] - M, dV)
    return value, d_nu, gauge, dV


def backward(theta: np.ndarray, net: Net, fwd: Pass, dV: np.ndarray) -> np.ndarray:
    """∂loss/∂θ for dV = ∂loss/∂V at the rows of a forward pass (``step.backward``); ν's entry 0."""
    grad = np.zeros_like(theta)
    step.backward(theta, grad, net, fwd.pres, fwd.posts, dV, fwd.V.shape[0], True, False, fwd.ws)
    return grad


def field(kind: ObjectiveKind, theta: np.ndarray, net: Net, fwd: Pass) -> np.ndarray:
    """∇φ (n, d) at the rows of a forward pass, through the objective's output map (``step.field``)."""
    n = fwd.V.shape[0]
    grad, dV = np.zeros_like(theta), np.empty(n, dtype=np.float32)
    return step.field(objective_code(kind), theta, grad, net, fwd.V, fwd.pres, fwd.posts, n, dV, fwd.ws)


def project(
    theta: np.ndarray, net: Net, pvec: np.ndarray, mode: str, scale: np.float32, iterations: int
) -> None:
    """W_l ← scale · W_l / ‖W_l‖ in place, ‖·‖ by ``mode`` (a ``config.LipschitzMode``), with the
    power-iteration vectors ``pvec`` refreshed (``step.project``)."""
    step.project(theta, net, pvec, LIPSCHITZ_CODES[mode], scale, iterations)
