"""Closed forms for f, f*, (f*)', the optimal ν and the objective's gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpa_core.algorithm.divergences import (
    F_NAMES,
    Y_MAX,
    ObjectiveKind,
    f,
    f_star,
    f_star_prime,
    objective,
    optimal_nu,
    output_activation,
)

X_GRID = torch.linspace(0.0, 100.0, 1_000_001, dtype=torch.float64)


@pytest.mark.parametrize("name", F_NAMES)
def test_f_vanishes_at_one(name: str) -> None:
    assert float(f(name, torch.tensor(1.0, dtype=torch.float64), 3.0)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", F_NAMES)
@pytest.mark.parametrize("y", [-3.0, -0.7, -0.05, 0.2, 0.33])
def test_f_star_is_the_legendre_transform(name: str, y: float) -> None:
    """f*(y) = sup_x {xy - f(x)}, checked against a brute-force supremum on a fine grid."""
    alpha = 2.5
    exact = float(f_star(name, torch.tensor(y, dtype=torch.float64), alpha))
    if y >= Y_MAX[name]:
        assert exact == math.inf
        return
    brute = float((X_GRID * y - f(name, X_GRID, alpha)).max())
    assert exact == pytest.approx(brute, rel=1e-6, abs=1e-6)


def test_alpha_legendre_transform_closed_form() -> None:
    """f_α*(y) = ((α-1)y₊)^{α/(α-1)}/α + 1/(α(α-1)): for α = 2 that is y₊²/2 + 1/2."""
    y = torch.tensor([-1.0, 0.0, 0.5, 3.0], dtype=torch.float64)
    expected = torch.clamp(y, min=0) ** 2 / 2 + 0.5
    assert torch.allclose(f_star("alpha", y, 2.0), expected)


@pytest.mark.parametrize("name", F_NAMES)
def test_f_star_prime_is_the_derivative(name: str) -> None:
    y = torch.linspace(-2.0, min(Y_MAX[name], 2.0) - 0.05, 50, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(f_star(name, y, 3.0).sum(), y)
    assert torch.allclose(grad, f_star_prime(name, y.detach(), 3.0), rtol=1e-8, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    shift=st.floats(-50, 50),
    spread=st.floats(0.01, 5.0),
    alpha=st.floats(1.1, 12.0),
    name=st.sampled_from(["kl", "alpha"]),
)
def test_optimal_nu_is_stationary(shift: float, spread: float, alpha: float, name: str) -> None:
    """At ν*, E_Q[(f*)'(φ - ν*)] = 1 (first-order condition of inf_ν {ν + E_Q f*(φ - ν)})."""
    gen = torch.Generator().manual_seed(0)
    phi = torch.randn(2, 64, generator=gen, dtype=torch.float64) * spread + shift
    a = torch.full((2,), alpha, dtype=torch.float64)
    nu = optimal_nu(name, phi, a)

    def ratio(v: torch.Tensor) -> torch.Tensor:
        return f_star_prime(name, phi - v[:, None], a[:, None]).mean(-1)

    # the root is bracketed to within float64 resolution of ν ((f*)' can be arbitrarily steep at 0)
    delta = 1e-12 * (1.0 + nu.abs())
    assert (ratio(nu - delta) >= 1.0).all() and (ratio(nu + delta) <= 1.0).all()


def test_kl_lt_at_optimal_nu_equals_donsker_varadhan() -> None:
    gen = torch.Generator().manual_seed(1)
    p, q = (
        torch.randn(3, 40, generator=gen, dtype=torch.float64),
        torch.randn(3, 50, generator=gen, dtype=torch.float64),
    )
    a = torch.full((3,), 2.0, dtype=torch.float64)
    lt = objective(ObjectiveKind("kl", "lt"), p, q, optimal_nu("kl", q), a).value
    dv = objective(ObjectiveKind("kl", "dv"), p, q, torch.zeros(3, dtype=torch.float64), a).value
    naive = objective(
        ObjectiveKind("kl", "dv", logsumexp=False), p, q, torch.zeros(3, dtype=torch.float64), a
    ).value
    assert torch.allclose(lt, dv) and torch.allclose(dv, naive)


@pytest.mark.parametrize(
    "kind",
    [
        ObjectiveKind("kl", "lt"),
        ObjectiveKind("kl", "dv"),
        ObjectiveKind("alpha"),
        ObjectiveKind("reverse_kl"),
        ObjectiveKind("js"),
    ],
)
def test_objective_gradients_match_autograd(kind: ObjectiveKind) -> None:
    gen = torch.Generator().manual_seed(2)
    vp = torch.randn(2, 30, generator=gen, dtype=torch.float64, requires_grad=True)
    vq = torch.randn(2, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    nu = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([2.0, 5.0], dtype=torch.float64)
    ev = objective(kind, vp, vq, nu, a)
    gp, gq, gnu = torch.autograd.grad(ev.value.sum(), (vp, vq, nu), allow_unused=True)
    assert torch.allclose(ev.d_v_p, gp)
    assert torch.allclose(ev.d_v_q, gq)
    if kind.trained_nu:
        assert torch.allclose(ev.d_nu, gnu)


def test_naive_dv_overflows_in_float32_where_logsumexp_does_not() -> None:
    """The authors' DV form computes log(mean(exp φ)); past φ ≈ 88.7 float32 overflows."""
    p = torch.zeros(1, 5)
    q = torch.full((1, 5), 100.0)
    a = torch.full((1,), 2.0)
    naive = objective(ObjectiveKind("kl", "dv", logsumexp=False), p, q, torch.zeros(1), a)
    safe = objective(ObjectiveKind("kl", "dv"), p, q, torch.zeros(1), a)
    assert not torch.isfinite(naive.value).all()
    assert torch.allclose(safe.value, torch.tensor([-100.0]))


@pytest.mark.parametrize("name", ["reverse_kl", "js"])
def test_output_activation_stays_in_the_domain_of_f_star(name: str) -> None:
    v = torch.linspace(-30, 30, 101, dtype=torch.float64)
    phi, slope = output_activation(name, v)
    assert (phi < Y_MAX[name]).all()
    assert slope is not None and ((slope > 0) & (slope <= 1)).all()
