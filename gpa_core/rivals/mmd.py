"""The MMD gradient flow (Arbel, Korba, Salim & Gretton, "Maximum Mean Discrepancy Gradient Flow",
NeurIPS 2019), for particles μ = (1/M) Σ δ_{x_i} and a target sample ν = (1/N) Σ δ_{q_n}.

    F(μ) = ½ MMD²(μ, ν),  MMD²(μ, ν) = E k(X, X') − 2 E k(X, Q) + E k(Q, Q')           (Arbel eq. 2)
    witness  f(z) = (1/M) Σ_j k(z, x_j) − (1/N) Σ_n k(z, q_n)
    velocity v(z) = −∇f(z)                                                              (Arbel eq. 8)

so dx_i/dt = −M ∂F/∂x_i, and along the flow dF/dt = −(1/M) Σ |v(x_i)|², the kinetic energy (the
analogue of GPA's (3.3)). Kernels: ``gaussian`` k = exp(−|x − y|²/(2σ²)) and ``energy`` k = −|x − y|
(MMD² is then the energy distance). A Gaussian kernel's pull fades like exp(−r²/2σ²) with the distance
r to the target: for a narrow kernel and a far target the particles do not move (Arbel et al. §3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gpa_core.config import Kernel


def _distances(A: Tensor, B: Tensor) -> Tensor:
    """|a_i − b_j| (len(A), len(B)) from the differences themselves (not |a|² − 2a·b + |b|², which loses
    all accuracy for close pairs far from the origin), so exactly 0 on coincident points."""
    return torch.cdist(A, B, compute_mode="donot_use_mm_for_euclid_dist")


def kernel_matrix(A: Tensor, B: Tensor, kernel: Kernel, width: float) -> Tensor:
    """k(a_i, b_j): Gaussian exp(−|a − b|²/(2σ²)) with σ = ``width``, or energy −|a − b|."""
    D = _distances(A, B)
    if kernel == "gaussian":
        return (-(D * D) / (2.0 * width * width)).exp()
    return -D


def mmd_squared(X: Tensor, Q: Tensor, kernel: Kernel, width: float) -> Tensor:
    """MMD²(μ_X, ν_Q), the biased (V-statistic) estimate: every pair, the diagonal included, so it is
    ≥ 0 and 0 for identical clouds (Arbel eq. 2)."""
    kxx = kernel_matrix(X, X, kernel, width).mean()
    kxq = kernel_matrix(X, Q, kernel, width).mean()
    kqq = kernel_matrix(Q, Q, kernel, width).mean()
    return kxx - 2.0 * kxq + kqq


def _mean_kernel_gradient(Z: Tensor, S: Tensor, kernel: Kernel, width: float) -> Tensor:
    """(1/|S|) Σ_s ∇_z k(z_i, s) for each z_i (len(Z), d).

    Both kernels have ∇_z k(z, s) = −w(|z − s|) (z − s), with w = k/σ² (Gaussian) or 1/|z − s|
    (energy, 0 where z = s: the subgradient the V-statistic's constant diagonal gives), so the sum is
    −(z_i Σ_s w_is − Σ_s w_is s) / |S|, two matrix products and no (|Z|, |S|, d) tensor."""
    D = _distances(Z, S)
    if kernel == "gaussian":
        W = (-(D * D) / (2.0 * width * width)).exp() / (width * width)
    else:
        W = (1.0 / D).masked_fill(D == 0, 0.0)
    return -(Z * W.sum(1, keepdim=True) - W @ S) / S.shape[0]


def witness_gradient(Z: Tensor, X: Tensor, Q: Tensor, kernel: Kernel, width: float) -> Tensor:
    """∇f(z) at each z of Z, for the witness f of μ_X against ν_Q (module docstring)."""
    return _mean_kernel_gradient(Z, X, kernel, width) - _mean_kernel_gradient(Z, Q, kernel, width)


def mmd_velocity(X: Tensor, Q: Tensor, kernel: Kernel, width: float) -> Tensor:
    """v(x_i) = −∇f(x_i): the particles' velocity, −M ∂(½MMD²)/∂x_i (Arbel eq. 8)."""
    return -witness_gradient(X, X, Q, kernel, width)
