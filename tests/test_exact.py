"""The exact D_f^{Γ_L}(P‖Q) over all L-Lipschitz φ (gpa_core.algorithm.exact): closed forms, the limits
in L, agreement with two independent convex programs on held-out samples, its certificate, and the
network's estimate never above it."""

from __future__ import annotations

import itertools
import math

import cvxpy as cp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from gpa_core.algorithm.divergences import F_NAMES, Y_MAX
from gpa_core.algorithm.exact import (
    ExactTooLarge,
    exact_divergence,
    objective_value,
    points_within,
    subsample,
)
from gpa_core.config import ConfigError
from gpa_core.ot import wasserstein1

LOG2 = math.log(2.0)


def gaussians(seed: int, m: int = 60, n: int = 60, d: int = 2, shift: float = 1.0) -> tuple[np.ndarray, ...]:
    """P ~ N(0, I), Q ~ N(shift·1, I): the issue's reference case with seed 0, m = n = 60, d = 2."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)), rng.standard_normal((n, d)) + shift


# ------------------------------------------------------------------------------ independent programs
def infimal_convolution(P: np.ndarray, Q: np.ndarray, f: str, L: float, alpha: float, solver: str) -> float:
    """Eq. (1.1) on samples, written here from scratch: min over plans π (M, N) ≥ 0 and left-behind mass
    σ (M,) ≥ 0 (reverse KL, JS; cost f'(∞) = Y_MAX) with Σⱼ πᵢⱼ + σᵢ = 1/M of
    (1/N) Σⱼ f(N Σᵢ πᵢⱼ) + L Σ πᵢⱼ |yᵢ − xⱼ| + Y_MAX Σ σᵢ."""
    M, N = len(P), len(Q)
    D = cdist(P, Q)
    pi = cp.Variable((M, N), nonneg=True)
    x = N * cp.sum(pi, axis=0)  # N wⱼ, the density of η's part on Q's points
    if f == "kl":
        div = -cp.sum(cp.entr(x)) / N
    elif f == "alpha":
        div = cp.sum(cp.power(x, alpha, approx=False) - 1.0) / (N * alpha * (alpha - 1.0))
    elif f == "reverse_kl":
        div = -cp.sum(cp.log(x)) / N
    else:  # ½[x log x − (1+x) log((1+x)/2)] = ½[x log(x/(1+x)) − log(1+x) + (1+x) log 2]
        div = 0.5 * cp.sum(cp.rel_entr(x, 1.0 + x) - cp.log(1.0 + x) + (1.0 + x) * LOG2) / N
    objective = div + L * cp.sum(cp.multiply(pi, D))
    if f in ("reverse_kl", "js"):
        sigma = cp.Variable(M, nonneg=True)
        objective = objective + Y_MAX[f] * cp.sum(sigma)
        constraints = [cp.sum(pi, axis=1) + sigma == 1.0 / M]
    else:
        constraints = [cp.sum(pi, axis=1) == 1.0 / M]
    problem = cp.Problem(cp.Minimize(objective), constraints)
    problem.solve(
        solver=solver,
        **({"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 200_000} if solver == "SCS" else {}),
    )
    return float(problem.value)


def all_pairs_primal(P: np.ndarray, Q: np.ndarray, f: str, L: float, alpha: float, solver: str) -> float:
    """Eq. (1.4) on samples with |φ_a − φ_b| ≤ L|z_a − z_b| for *all* pairs of the M + N points (no
    reduction), ν free with φ(z₀) = 0 for KL and α, φ ≤ Y_MAX everywhere for reverse KL and JS."""
    M, N = len(P), len(Q)
    Z = np.vstack([P, Q])
    a, b = np.triu_indices(M + N, 1)
    dist = np.linalg.norm(Z[a] - Z[b], axis=1)
    phi = cp.Variable(M + N)
    diff = phi[a] - phi[b]
    constraints = [diff <= L * dist, -diff <= L * dist]
    mean_p = cp.sum(phi[:M]) / M
    if f in ("kl", "alpha"):
        nu = cp.Variable()
        y = phi[M:] - nu
        if f == "kl":
            conj = cp.exp(y - 1.0)
        else:
            conj = cp.power(cp.pos((alpha - 1.0) * y), alpha / (alpha - 1.0), approx=False) / alpha
            conj = conj + 1.0 / (alpha * (alpha - 1.0))
        objective = mean_p - nu - cp.sum(conj) / N
        constraints.append(phi[0] == 0)
    elif f == "reverse_kl":
        objective = mean_p + 1.0 + cp.sum(cp.log(-phi[M:])) / N
        constraints.append(phi <= 0.0)
    else:
        objective = mean_p + 0.5 * cp.sum(cp.log(2.0 - cp.exp(2.0 * phi[M:]))) / N
        constraints.append(phi <= 0.5 * LOG2)
    problem = cp.Problem(cp.Maximize(objective), constraints)
    problem.solve(solver=solver)
    return float(problem.value)


# ---------------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("f", F_NAMES)
@pytest.mark.parametrize("d", [1, 2])
def test_identical_samples_give_zero(f: str, d: int) -> None:
    P, _ = gaussians(3, 40, 40, d)
    for L in (0.1, 1.0, 10.0):
        assert abs(exact_divergence(P, P.copy(), f=f, L=L).value) < 1e-7


def _two_points(f: str, s: float) -> float:
    """D_f^{Γ_L}(δ_y‖δ_x) with s = L|y − x|, by hand: s for KL and α; reverse KL: s up to 1, then
    1 + log s; JS: s up to ½ log 2, then log 2 + ½ log(1 − e^{−2s})."""
    if f in ("kl", "alpha"):
        return s
    if f == "reverse_kl":
        return s if s <= 1.0 else 1.0 + math.log(s)
    return s if s <= 0.5 * LOG2 else LOG2 + 0.5 * math.log(1.0 - math.exp(-2.0 * s))


@pytest.mark.parametrize("f", F_NAMES)
def test_two_point_masses_have_closed_forms(f: str) -> None:
    for d, x in ((1, [2.0]), (2, [1.2, -1.6])):  # |y − x| = 2 in both
        P, Q = np.zeros((1, d)), np.array([x])
        for L in (0.05, 0.3, 1.0, 4.0):
            expected = _two_points(f, 2.0 * L)
            assert exact_divergence(P, Q, f=f, L=L, alpha=3.0).value == pytest.approx(expected, rel=1e-6)


def test_issue_reference_values() -> None:
    """The issue's reference: N(0, I) vs N((1, 1), I), 60 points each, KL (seed 0 of gaussians)."""
    P, Q = gaussians(0)
    values = [exact_divergence(P, Q, f="kl", L=L).value for L in (0.1, 1.0, 10.0)]
    assert values == pytest.approx([0.110837, 0.743033, 3.940109], abs=2e-6)


# -------------------------------------------------------------------------------------- limits in L
@pytest.mark.parametrize("f", F_NAMES)
def test_small_L_is_L_times_W1(f: str) -> None:
    """As L → 0, D_f^{Γ_L} = L·W₁(P, Q) − O(L²) (the Lipschitz-1 IPM, eq. 1.3): linear in L."""
    P, Q = gaussians(5, 45, 35, 2)
    w1 = wasserstein1(P, Q)
    small = [exact_divergence(P, Q, f=f, L=L, alpha=2.5).value for L in (1e-3, 2e-3)]
    assert small[0] <= 1e-3 * w1 * (1 + 1e-6)
    assert small[0] / 1e-3 == pytest.approx(w1, rel=5e-3)
    assert small[1] / small[0] == pytest.approx(2.0, rel=5e-3)


@pytest.mark.parametrize("f", F_NAMES)
def test_non_decreasing_in_L_and_below_L_W1(f: str) -> None:
    P, Q = gaussians(6, 50, 40, 3, shift=0.7)
    w1 = wasserstein1(P, Q)
    Ls = [0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0]
    values = [exact_divergence(P, Q, f=f, L=L, alpha=1.5).value for L in Ls]
    assert all(b >= a * (1 - 1e-6) - 1e-9 for a, b in itertools.pairwise(values)), values
    assert all(v <= L * w1 * (1 + 1e-6) for v, L in zip(values, Ls, strict=True))
    if f == "js":
        assert values[-1] <= LOG2


# ------------------------------------------------------------------------------ independent agreement
HELD_OUT = [  # (seed, M, N, d, f, L, α): samples and settings not used while writing the solver
    (101, 30, 24, 2, "kl", 0.3, 2.0),
    (102, 22, 31, 3, "kl", 5.0, 2.0),
    (103, 28, 28, 1, "kl", 2.0, 2.0),
    (104, 25, 20, 2, "alpha", 1.0, 1.7),
    (105, 20, 26, 1, "alpha", 8.0, 4.0),
    (106, 27, 23, 2, "reverse_kl", 0.7, 2.0),
    (107, 21, 25, 1, "reverse_kl", 6.0, 2.0),
    (108, 24, 24, 2, "js", 3.0, 2.0),
    (109, 26, 19, 4, "js", 0.2, 2.0),
]


@pytest.mark.parametrize(("seed", "M", "N", "d", "f", "L", "alpha"), HELD_OUT)
def test_agrees_with_independent_programs(
    seed: int, M: int, N: int, d: int, f: str, L: float, alpha: float
) -> None:
    """Within 1e-3 relative of (a) the dual, eq. (1.1), solved with SCS and (b) the primal on all pairs
    (no constraint reduction, a different gauge), solved with Clarabel."""
    rng = np.random.default_rng(seed)
    P = rng.standard_normal((M, d)) * rng.uniform(0.5, 1.5)
    Q = rng.standard_normal((N, d)) * rng.uniform(0.5, 1.5) + rng.uniform(0.3, 2.0)
    exact = exact_divergence(P, Q, f=f, L=L, alpha=alpha)
    dual = infimal_convolution(P, Q, f, L, alpha, "SCS")
    primal = all_pairs_primal(P, Q, f, L, alpha, "CLARABEL")
    assert exact.value == pytest.approx(dual, rel=1e-3)
    assert exact.value == pytest.approx(primal, rel=1e-3)
    assert exact.value == pytest.approx(primal, rel=1e-5)  # the same program: tighter still


def test_line_program_matches_the_plane() -> None:
    """d = 1 takes the sorted-union program; the same points embedded in the plane take constraint
    generation: the same value."""
    rng = np.random.default_rng(11)
    P, Q = rng.standard_normal((40, 1)), rng.standard_normal((33, 1)) * 0.5 + 1.0
    embed = np.zeros((1, 1))
    for f in F_NAMES:
        line = exact_divergence(P, Q, f=f, L=2.0)
        plane = exact_divergence(
            np.hstack([P, embed.repeat(40, 0)]), np.hstack([Q, embed.repeat(33, 0)]), f=f, L=2.0
        )
        assert line.value == pytest.approx(plane.value, rel=1e-5)
        assert line.constraints == 2 * (40 + 33 - 1)


# ------------------------------------------------------------------------------------- the certificate
@pytest.mark.parametrize("f", F_NAMES)
def test_result_is_certified_and_lipschitz(f: str) -> None:
    P, Q = gaussians(7, 50, 45, 2)
    L = 1.5
    r = exact_divergence(P, Q, f=f, L=L, alpha=3.0)
    assert r.value <= r.upper and r.gap <= 1e-5
    Z = np.vstack([P, Q])
    phi = np.r_[r.phi_p, r.phi_q]
    slack = np.abs(phi[:, None] - phi[None, :]) - L * cdist(Z, Z)
    assert slack.max() <= 1e-9  # L-Lipschitz on all M + N points, not only the generated pairs
    assert objective_value(f, r.phi_p, r.phi_q, 3.0)[0] == pytest.approx(r.value, rel=1e-12)
    if f in ("reverse_kl", "js"):
        assert phi.max() <= Y_MAX[f] and r.nu == 0.0
    d = r.to_dict()
    assert (
        d["divergence"] == float(r)
        and d["M"] == 50
        and d["N"] == 45
        and d["solver"].startswith(("clarabel", "scs"))
    )


# --------------------------------------------------------------------------------- the network's value
@pytest.mark.parametrize("f", ["kl", "js"])
def test_network_estimate_never_exceeds_it(f: str) -> None:
    """A spectrally normalized net is one L-Lipschitz φ: its J (float32, power-iteration norms) stays
    below the supremum up to rounding."""
    from gpa_core.estimate import divergence

    P, Q = gaussians(0, 40, 40)
    exact = exact_divergence(P, Q, f=f, L=1.0).value
    net = divergence(P, Q, f=f, L=1.0, hidden=(16, 16), max_iterations=1500, seed=0)
    assert 0.3 * exact < net <= exact * (1 + 1e-3) + 1e-5


# -------------------------------------------------------------------------------------------- errors
def test_too_large_says_how_to_subsample() -> None:
    P, Q = gaussians(0, 40, 30)
    with pytest.raises(ExactTooLarge, match=r"subsample to 33 \+ 30 points") as info:
        exact_divergence(P, Q, max_pairs=1000)
    assert "--exact-points" in str(info.value) and isinstance(info.value, ConfigError)
    assert points_within(22_500, 400, 100) == (225, 100) and points_within(22_500, 400, 300) == (150, 150)
    small = subsample(P, 10, seed=1)
    assert small.shape == (10, 2) and all(any((row == P).all(1)) for row in small)
    assert subsample(P, 100) is P


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"L": math.inf}, "finite L"),
        ({"L": 0.0}, "finite L"),
        ({"f": "hellinger"}, "unknown f"),
        ({"f": "alpha", "alpha": 1.0}, "alpha must be > 1"),
        ({"solver": "mosek"}, "unknown solver"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    P, Q = gaussians(0, 5, 5)
    with pytest.raises(ConfigError, match=message):
        exact_divergence(P, Q, **kwargs)


def test_bad_samples() -> None:
    with pytest.raises(ConfigError, match="same dimension"):
        exact_divergence(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="NaN"):
        exact_divergence(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="non-empty"):
        exact_divergence(np.zeros((0, 2)), np.zeros((3, 2)))
