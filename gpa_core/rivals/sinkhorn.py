"""The Sinkhorn-divergence flow (Feydy, Séjourné, Vialard, Amari, Trouvé & Peyré, "Interpolating between
Optimal Transport and MMD using Sinkhorn Divergences", AISTATS 2019), for particles μ = (1/M) Σ δ_{x_i}
and a target sample ν = (1/N) Σ δ_{q_n}. GeomLoss's conventions, as :func:`gpa_core.ot.sinkhorn_divergence`:

    C(x, y) = ½|x − y|²,  ε = blur²,  OT_ε(α, β) = min_π ⟨π, C⟩ + ε KL(π ‖ α⊗β)
    S_ε(μ, ν) = OT_ε(μ, ν) − ½ OT_ε(μ, μ) − ½ OT_ε(ν, ν)                              (Feydy eq. 4)

With the dual potentials, OT_ε(μ, ν) = ⟨μ, f⟩ + ⟨ν, g⟩ and OT_ε(μ, μ) = 2⟨μ, p⟩, and the gradient in a
particle is a difference of barycentric projections of the two entropic plans:

    v(x_i) = −M ∂S_ε/∂x_i = T_ν(x_i) − T_μ(x_i),  T_ν(x_i) = Σ_n π(n | i) q_n, T_μ likewise with μ's own plan

(the ½|x − y|² cost makes ∇_x f(x_i) = x_i − T_ν(x_i)). Along the flow dS_ε/dt = −(1/M) Σ |v(x_i)|², the
kinetic energy. The potentials are found by log-domain Sinkhorn sweeps (symmetric, averaged sweeps for
the self-terms), ε-annealed on a cold start and warm-started from the previous evaluation afterwards:
between two particle steps the plans change little, so a few sweeps suffice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from gpa_core.ot import one_blas_thread, semidual_newton

TOL = 1e-6  # stop the sweeps once the plan's marginal error ‖a − π1‖₁ is at most this
NEWTON_STEPS = 50  # at most this many Newton steps after the sweeps
#: Newton factors a dense matrix of the smaller cloud's size per step (O(n³): about 0.25 s per flow step
#: at 500 + 500 points, 1.5 s at 1000 + 1000 on two cores); above this many points it is left out and
#: the plans stay at the sweeps' accuracy (the summary says so)
NEWTON_POINTS = 1000
STAGE_SWEEPS = 20  # sweeps per ε stage of a cold start (blur halves per stage)


def half_squared_distances(A: Tensor, B: Tensor) -> Tensor:
    """C_ij = ½|a_i − b_j|² (len(A), len(B)), from the differences (accurate for close pairs far from
    the origin, exactly 0 on coincident points)."""
    return 0.5 * torch.cdist(A, B, compute_mode="donot_use_mm_for_euclid_dist").square()


def softmin(C: Tensor, h: Tensor, log_w: Tensor, eps: float) -> Tensor:
    """−ε log Σ_j w_j exp((h_j − C_ij)/ε), the soft c-transform of the potential h (len(C),)."""
    return -eps * torch.logsumexp(log_w[None, :] + (h[None, :] - C) / eps, dim=1)


def _marginal_error(f_old: Tensor, f_new: Tensor, eps: float) -> float:
    """‖a − π1‖₁ of the plan with potentials (f_old, g) when f_new is the c-transform of g (uniform a);
    with the roles swapped, the other marginal's error."""
    return float((1.0 - torch.exp((f_old - f_new) / eps)).abs().mean())


def _schedule(C_max: float, eps: float) -> list[float]:
    """ε from the largest cost down to ``eps``, the blur halving per stage (GeomLoss's ε-scaling)."""
    out, e = [], max(C_max, eps)
    while e > eps:
        out.append(e)
        e *= 0.25
    return [*out, eps]


def _log_uniform(n: int, like: Tensor) -> Tensor:
    """log(1/n) n times: the log-weights of a uniform cloud, on ``like``'s dtype and device."""
    return torch.full((n,), -math.log(n), dtype=like.dtype, device=like.device)


def _warm_start(C: Tensor, eps: float, h: Tensor | None, n: int) -> tuple[list[float], Tensor]:
    """The ε stages and the starting potential: just ``eps`` from a warm ``h``; from zeros, annealed."""
    if h is not None:
        return [eps], h
    return _schedule(float(C.max()), eps), torch.zeros(n, dtype=C.dtype, device=C.device)


def cross_potentials(
    C: Tensor, eps: float, f: Tensor | None, g: Tensor | None, sweeps: int
) -> tuple[Tensor, Tensor, float]:
    """Dual potentials (f, g) of OT_ε(a, b) with cost C (M, N), uniform weights: alternating
    log-domain Sinkhorn sweeps until the marginal error is at most :data:`TOL` or ``sweeps`` are done
    (cold, ``g`` None: ε-annealed), then, if the error is still above :data:`TOL` and the smaller cloud
    has at most :data:`NEWTON_POINTS` points, damped Newton steps on the semi-dual over that cloud's
    potential (:func:`gpa_core.ot.semidual_newton`): Sinkhorn alone crawls once C/ε is in the hundreds,
    Newton converges in a few steps from a warm start (each O(n³)). Returns f, g and the final
    marginal error."""
    M, N = C.shape
    log_a, log_b = _log_uniform(M, C), _log_uniform(N, C)
    stages, g = _warm_start(C, eps, g, N)
    err = math.inf
    for stage, e in enumerate(stages):
        last = stage == len(stages) - 1
        f = softmin(C, g, log_b, e)
        for _ in range(sweeps if last else STAGE_SWEEPS):
            g = softmin(C.T, f, log_a, e)
            f_new = softmin(C, g, log_b, e)
            err = _marginal_error(f, f_new, e)
            f = f_new
            if err <= TOL:
                break
    assert f is not None
    if err > TOL and min(M, N) <= NEWTON_POINTS:
        if N <= M:  # Newton over the target's potential g; then f is its c-transform (rows exact)
            g = _newton(C, g, eps)
            f = softmin(C, g, log_b, eps)
            err = _marginal_error(g, softmin(C.T, f, log_a, eps), eps)
        else:  # over the particles' potential f
            f = _newton(C.T, f, eps)
            g = softmin(C.T, f, log_a, eps)
            err = _marginal_error(f, softmin(C, g, log_b, eps), eps)
    return f, g, err


def _newton(C: Tensor, h: Tensor, eps: float) -> Tensor:
    """The column potential h of cost C polished by :func:`gpa_core.ot.semidual_newton` (NumPy)."""
    with one_blas_thread():  # a small dense problem: many BLAS threads only contend (10–30× slower)
        _, out, _ = semidual_newton(
            C.detach().cpu().numpy(), eps, h.detach().cpu().numpy(), TOL, NEWTON_STEPS
        )
    return torch.as_tensor(out, dtype=C.dtype, device=C.device)


def self_potential(C: Tensor, eps: float, p: Tensor | None, sweeps: int) -> tuple[Tensor, float]:
    """The symmetric potential p = softmin(C, p) of OT_ε(a, a) (C square, uniform a): averaged sweeps
    p ← ½(p + softmin(C, p)), which converge fast on symmetric problems (Feydy et al. §3.1); cold
    (``p`` None): ε-annealed. Returns p and the final marginal error."""
    log_a = _log_uniform(C.shape[0], C)
    stages, p = _warm_start(C, eps, p, C.shape[0])
    err = math.inf
    for stage, e in enumerate(stages):
        last = stage == len(stages) - 1
        for _ in range(sweeps if last else STAGE_SWEEPS):
            t = softmin(C, p, log_a, e)
            err = _marginal_error(p, t, e)
            p = 0.5 * (p + t)
            if err <= TOL:
                break
    return p, err


def barycentric_map(C: Tensor, h: Tensor, Y: Tensor, eps: float) -> Tensor:
    """T(x_i) = Σ_j π(j | i) y_j for the plan whose column potential is h (uniform weights)."""
    return torch.softmax(_log_uniform(Y.shape[0], C)[None, :] + (h[None, :] - C) / eps, dim=1) @ Y


@dataclass
class SinkhornState:
    """Warm-start state of the flow's Sinkhorn problems: the potentials of the last evaluation and
    ⟨ν, q⟩ of the target's own (constant) problem."""

    blur: float
    f: Tensor | None = None
    g: Tensor | None = None
    p: Tensor | None = None
    target_term: float | None = None

    @property
    def eps(self) -> float:
        return self.blur * self.blur


def sinkhorn_velocity(X: Tensor, Q: Tensor, state: SinkhornState, sweeps: int) -> tuple[Tensor, float, float]:
    """The particles' velocity v(x_i) = T_ν(x_i) − T_μ(x_i), S_ε(μ, ν) and the largest marginal error
    of the plans; updates ``state`` (module docstring)."""
    eps = state.eps
    if state.target_term is None:
        q, _ = self_potential(half_squared_distances(Q, Q), eps, None, max(sweeps, 1000))
        state.target_term = float(q.mean())
    Cxq = half_squared_distances(X, Q)
    Cxx = half_squared_distances(X, X)
    state.f, state.g, err_xq = cross_potentials(Cxq, eps, state.f, state.g, sweeps)
    state.p, err_xx = self_potential(Cxx, eps, state.p, sweeps)
    # S_ε = ⟨μ, f⟩ + ⟨ν, g⟩ − ⟨μ, p⟩ − ⟨ν, q⟩ (OT_ε(μ, μ) = 2⟨μ, p⟩)
    value = float(state.f.mean() + state.g.mean() - state.p.mean()) - state.target_term
    v = barycentric_map(Cxq, state.g, Q, eps) - barycentric_map(Cxx, state.p, X, eps)
    return v, value, max(err_xq, err_xx)
