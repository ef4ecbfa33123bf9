"""The batched L-Lipschitz discriminator: hand-written gradients, projection, activations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpa_core.algorithm.discriminator import BatchedAdam, BatchedMLP, activation, activation_prime
from gpa_core.config import FlowConfig

ACTIVATIONS = ["relu", "leaky_relu", "softplus", "smooth_relu"]


def make_net(K: int = 3, d: int = 2, act: str = "relu", dtype: torch.dtype = torch.float64) -> BatchedMLP:
    return BatchedMLP(K, d, (16, 16), [act, act], seeds=list(range(K)), dtype=dtype)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_slope_is_in_unit_interval_and_matches_derivative(act: str) -> None:
    z = torch.linspace(-3, 3, 601, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(activation(act, z).sum(), z)
    slope = activation_prime(act, z.detach())
    assert ((slope >= 0) & (slope <= 1)).all()
    keep = z.detach().abs() > 1e-9  # ReLU's kink
    assert torch.allclose(grad[keep], slope[keep], atol=1e-9)


def test_smooth_relu_is_c2() -> None:
    """σ'' continuous: the second difference quotient has no jumps at 0 and ε."""
    z = torch.linspace(-1, 1, 20001, dtype=torch.float64)
    s = activation_prime("smooth_relu", z)
    second = torch.diff(s) / torch.diff(z)
    assert torch.diff(second).abs().max() < 1e-2


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_manual_backward_matches_autograd(act: str) -> None:
    net = make_net(act=act)
    x = torch.randn(3, 50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(3, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cache = net.forward(x)
    grad_x = net.backward(cache, upstream, inputs=True)
    flat = net.flat.detach().clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    phi = net.functional_phi(flat, xr)
    assert torch.allclose(phi, cache.phi)
    g_flat, g_x = torch.autograd.grad((phi * upstream).sum(), (flat, xr))
    assert torch.allclose(net.grad[:, :-1], g_flat[:, :-1], atol=1e-10)
    assert torch.allclose(grad_x, g_x, atol=1e-10)


@pytest.mark.parametrize("L", [0.1, 1.0, 10.0])
def test_spectral_projection_sets_each_layer_to_l_to_the_one_over_d(L: float) -> None:
    net = make_net()
    D = net.depth
    scale = torch.full((3,), L ** (1 / D), dtype=torch.float64)
    yes, no = torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    for _ in range(5):  # warm the power iteration as training does
        net.project(scale, yes, no, power_iterations=3)
    exact = net.exact_spectral_norms()
    assert torch.allclose(exact, scale[:, None].expand_as(exact), rtol=1e-6)
    assert torch.allclose(
        net.exact_spectral_norms().prod(1), torch.full((3,), L, dtype=torch.float64), rtol=1e-5
    )


def test_frobenius_projection_leaves_a_smaller_spectral_bound() -> None:
    """The authors' normalization: ‖W‖_F = L^{1/D} makes ∏σ_max(W_l) well below L."""
    net = BatchedMLP(1, 2, (32, 32, 32), ["relu"] * 3, seeds=[0], dtype=torch.float64)
    scale = torch.ones(1, dtype=torch.float64)
    net.project(scale, torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool), 1)
    assert torch.allclose(net.frobenius_norms(), torch.ones(1, 4, dtype=torch.float64))
    assert float(net.exact_spectral_norms().prod()) < 0.5


@settings(max_examples=25, deadline=None)
@given(
    L=st.floats(0.05, 50.0),
    act=st.sampled_from(ACTIVATIONS),
    seed=st.integers(0, 10_000),
    radius=st.floats(0.1, 1e3),
)
def test_projected_network_gradient_never_exceeds_L(L: float, act: str, seed: int, radius: float) -> None:
    """|∇φ(x)| ≤ L at random points after Adam steps and spectral projections (Algorithm 3.1)."""
    net = BatchedMLP(2, 3, (32, 32), [act, act], seeds=[seed, seed + 1])
    scale = torch.full((2,), L ** (1 / net.depth))
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    opt = BatchedAdam(net.flat, torch.full((2,), 1e-2))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 64, 3, generator=gen) * radius
    for _ in range(10):
        cache = net.forward(x)
        net.backward(cache, -torch.sign(x[..., 0]))  # push φ up on one half-space
        opt.step(net.grad)
        net.project(scale, yes, no, FlowConfig().power_iterations)  # as a flow projects
    _, grad = net.gradient(torch.randn(2, 500, 3, generator=gen) * radius)
    assert float(grad.norm(dim=-1).max()) <= L * (1 + 1e-3)


def test_adam_matches_torch_adam() -> None:
    torch.manual_seed(0)
    p = torch.randn(1, 5, dtype=torch.float64)
    ref = p.clone().squeeze(0).requires_grad_(True)
    opt_ref = torch.optim.Adam([ref], lr=1e-2)
    mine = BatchedAdam(p, torch.full((1,), 1e-2, dtype=torch.float64))
    for i in range(20):
        g = torch.sin(torch.arange(5, dtype=torch.float64) + i)
        ref.grad = g.clone()
        opt_ref.step()
        mine.step(g.unsqueeze(0))
    assert torch.allclose(p.squeeze(0), ref.detach(), atol=1e-12)


def test_adam_mask_freezes_inactive_members() -> None:
    p = torch.zeros(2, 3, dtype=torch.float64)
    opt = BatchedAdam(p, torch.full((2,), 0.1, dtype=torch.float64))
    opt.step(torch.ones(2, 3, dtype=torch.float64), members=[0])
    assert (p[0] < 0).all() and (p[1] == 0).all() and float(opt.t[1]) == 0.0


def test_members_do_not_interact() -> None:
    a = BatchedMLP(2, 2, (8,), ["relu"], seeds=[5, 6])
    b = BatchedMLP(1, 2, (8,), ["relu"], seeds=[6])
    assert torch.equal(a.flat[1], b.flat[0])
    assert not math.isclose(float(a.flat[0].sum()), float(a.flat[1].sum()))
    np.testing.assert_allclose(
        a.forward(torch.ones(2, 4, 2)).phi[1].numpy(),
        b.forward(torch.ones(1, 4, 2)).phi[0].numpy(),
        rtol=1e-6,
    )
