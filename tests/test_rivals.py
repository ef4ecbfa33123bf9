"""Tests of gpa_core.rivals (the MMD and Sinkhorn-divergence particle flows run beside GPA), their
configuration (RivalConfig), their background runner, the presets' ``rivals`` and the compare job.

Everything here is float64. Tolerances:

- MMD: the module forms distances from coordinate differences (``torch.cdist`` without its
  matrix-product shortcut), each to a few u (u = 2⁻⁵³) relative. The bounds used here are those of the
  expansion |a|² − 2a·b + |b|² it used at first (absolute error about 4u·R², R the largest |x|, so a
  kernel weight is off by ≲ 4u·R²/D_min² relative): looser than needed now, still ~1e-11, and two
  tests (far from the origin; a nearly coincident pair) fail for that expansion. The velocity is
  compared with autograd at ``growth · (γ_{M+N} + 4u·R²/D_min²)`` of its size (3e-12 here).
- Sinkhorn: the flow solves its plans to marginal error TOL = 1e-6, the reference
  :func:`gpa_core.ot.sinkhorn_divergence` to 1e-7. The dual value is stationary in the potentials, so
  the values agree far better than that (measured: 1e-12 relative; held to 1e-8); velocities (the
  barycentric maps, first order in the plan's error) are held to a few TOL times the clouds' size.
- Flows: "non-increasing" allows a round-off step of 1e-12 of the start value (1e-9 for S_ε, whose
  value carries the solver's error).
"""

from __future__ import annotations

import copy
import json
import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from tolerances import UNIT_ROUNDOFF, gamma

from gpa_core.config import ConfigError, FlowConfig, RivalConfig
from gpa_core.data.datasets import sample_spec
from gpa_core.data.presets import PRESET_DIR, PresetError, load_preset, parse_preset
from gpa_core.ot import energy_distance, sinkhorn_divergence, wasserstein2
from gpa_core.rivals.flow import RivalFlow, RivalSummary, auto_width
from gpa_core.rivals.live import RivalRunner
from gpa_core.rivals.mmd import mmd_squared, mmd_velocity
from gpa_core.rivals.sinkhorn import TOL, SinkhornState, sinkhorn_velocity
from gpa_core.studies.batches import EnsembleError, sample_pair
from gpa_core.studies.compare import (
    CompareJob,
    CompareRun,
    CompareSpec,
    MetricTracker,
    RivalRun,
    compare_presets,
)

torch.set_num_threads(1)

U = UNIT_ROUNDOFF[np.dtype(np.float64)]
KERNELS = ("gaussian", "energy")
FAR_PRESET = PRESET_DIR / "70-rivals-far-target.json"
WAIT = 60.0  # seconds a background thread may take for what needs well under one


def cloud(n: int, d: int = 2, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def cfg(**changes: object) -> RivalConfig:
    return RivalConfig(device="cpu", **changes)  # type: ignore[arg-type]


def wait_until(condition, timeout: float = WAIT) -> bool:
    """Poll ``condition`` every 20 ms for at most ``timeout`` s; whether it came true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


@pytest.fixture(scope="module")
def near() -> tuple[np.ndarray, np.ndarray]:
    """30 particles from N(0, 0.5²I) to 30 samples of N((1.5, 1.5), 0.7²I): a target every flow reaches."""
    return sample_pair("gaussian:mean=0,std=0.5", "gaussian:mean=1.5,std=0.7", 30, 30, data_seed=0)


@pytest.fixture(scope="module")
def far() -> tuple[np.ndarray, np.ndarray]:
    """40 particles from N(0, 0.5²I) toward N((6, 6), 0.5²I), about 8.5 away (Arbel et al.'s failure)."""
    return (
        sample_spec("gaussian:mean=0,std=0.5", 40, seed=0),
        sample_spec("gaussian:mean=6,std=0.5", 40, seed=1),
    )


# ============================================================================================ MMD maths
def explicit_half_mmd2(X: torch.Tensor, Q: torch.Tensor, kernel: str, width: float) -> torch.Tensor:
    """½MMD² from explicit pairwise differences (not the module's expansion), for autograd; the energy
    kernel as −√(D² + tiny), whose gradient is 0 on the diagonal, as the V-statistic's subgradient."""

    def k(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        diff = A[:, None, :] - B[None, :, :]
        D2 = (diff * diff).sum(-1)
        if kernel == "gaussian":
            return torch.exp(-D2 / (2.0 * width * width))
        return -torch.sqrt(D2 + 1e-30)

    return 0.5 * (k(X, X).mean() - 2.0 * k(X, Q).mean() + k(Q, Q).mean())


def expansion_error(*clouds: np.ndarray) -> float:
    """4u·R²/D_min²: the relative error of a distance formed as |a|² − 2a·b + |b|², a bound on the
    coordinate differences' error too (module docstring)."""
    pooled = np.concatenate(clouds)
    R = float(np.abs(pooled).max()) * math.sqrt(pooled.shape[1])
    return 4.0 * U * R * R / float(pdist(pooled).min()) ** 2


@pytest.mark.parametrize(("kernel", "width"), [("gaussian", 0.7), ("gaussian", 2.5), ("energy", 1.0)])
def test_mmd_velocity_is_minus_M_times_the_gradient_of_half_mmd_squared(kernel: str, width: float) -> None:
    """v(x_i) = −M ∂(½MMD²)/∂x_i (Arbel eq. 8), against autograd of an independent ½MMD² built from
    explicit differences: checks the weights, the signs, the factor M and the energy kernel's diagonal.
    Tolerance: growth 10 × (γ_{M+N} + the expansion's 4u·R²/D_min²) of the largest speed."""
    X, Q = cloud(20, 3, seed=1), cloud(25, 3, seed=2, scale=0.8, shift=0.6)
    Xt = t64(X).requires_grad_(True)
    (grad,) = torch.autograd.grad(explicit_half_mmd2(Xt, t64(Q), kernel, width), Xt)
    expected = (-X.shape[0] * grad).numpy()
    got = mmd_velocity(t64(X), t64(Q), kernel, width).numpy()
    rel = 10.0 * (gamma(45, np.float64) + expansion_error(X, Q))
    assert rel < 1e-11  # the clouds are well separated: the check is sharp (3e-12)
    scale = float(np.abs(expected).max())
    assert scale > 0.05  # the particles do move: not a comparison of zeros
    np.testing.assert_allclose(got, expected, rtol=0.0, atol=rel * scale)


def test_energy_mmd_squared_is_the_energy_distance() -> None:
    """MMD² with k = −|x − y| is the energy distance 2E|X−Q| − E|X−X′| − E|Q−Q′| (V-statistics both),
    against :func:`gpa_core.ot.energy_distance` (coordinate differences, scipy's cdist). Tolerance: the
    expansion bound: |x_i − x_i| up to about √(16u)·R instead of 0 on the diagonals (M + N entries of
    weight 1/M² and 1/N²), so 8√u·R·(1/M + 1/N), plus the off-diagonal 4u·R²/D_min² relative; that
    is ~1e-7 of the value here (measured: 1e-9), and a wrong factor or sign would be off by O(1)."""
    X, Q = cloud(30, 2, seed=3), cloud(35, 2, seed=4, scale=0.7, shift=0.3)
    R = float(np.linalg.norm(np.concatenate([X, Q]), axis=1).max())
    expected = energy_distance(X, Q)
    tol = 8.0 * math.sqrt(U) * R * (1 / 30 + 1 / 35) + expansion_error(X, Q) * 10.0 * expected
    assert float(mmd_squared(t64(X), t64(Q), "energy", 1.0)) == pytest.approx(expected, rel=0.0, abs=tol)
    assert tol < 1e-6 * expected


def test_energy_mmd_squared_matches_energy_distance_far_from_the_origin() -> None:
    """Both sides are translation invariant: at 1e4 from the origin the coordinate differences (cdist)
    lose 1e4·u relative, ~1e-11 on the value after the 2E|X−Q| − … cancellation; held to 1e-9. The
    expansion |a|² − 2a·b + |b|² would lose u·|x|² = 4e-8 on each squared distance (5.6e-6 measured)."""
    X, Q = cloud(30, 2, seed=3) + 1e4, cloud(35, 2, seed=4, scale=0.7, shift=0.3) + 1e4
    expected = energy_distance(X, Q)
    assert float(mmd_squared(t64(X), t64(Q), "energy", 1.0)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd_squared_of_identical_clouds_is_zero(kernel: str) -> None:
    """The V-statistic of a cloud against itself is exactly 0 (the same three kernel means), and against
    a permuted copy (the same measure) 0 to round-off: for the energy kernel the coincident pairs' junk
    distances (≲ √(16u)·R, see above) then sit in different places of the three means."""
    X = cloud(25, 2, seed=5)
    assert float(mmd_squared(t64(X), t64(X), kernel, 0.8)) == 0.0
    R = float(np.linalg.norm(X, axis=1).max())
    tol = 12.0 * math.sqrt(U) * R / 25 if kernel == "energy" else 10.0 * gamma(25 * 25, np.float64)
    assert abs(float(mmd_squared(t64(X), t64(X[::-1].copy()), kernel, 0.8))) <= tol


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    M=st.integers(1, 12),
    N=st.integers(1, 12),
    d=st.integers(1, 3),
    spread=st.sampled_from([0.05, 0.3, 1.0, 4.0]),
    width=st.floats(0.05, 10.0),
    jitter=st.sampled_from([None, 1e-1, 1e-3]),
)
def test_mmd_squared_is_non_negative(
    seed: int, M: int, N: int, d: int, spread: float, width: float, jitter: float | None
) -> None:
    """MMD² ≥ 0 for both kernels (Gaussian: positive definite; energy: conditionally negative definite),
    on random clouds and on a target that is a jittered copy of the particles (MMD² near 0, where a sign
    error in a term would show). Slack: the energy diagonals' junk (≲ √(16u)·R per entry, above) and
    100·γ of the Gaussian means."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(M, d)) * spread
    Q = rng.normal(size=(N, d)) * spread + 0.5 if jitter is None else X + jitter * rng.normal(size=X.shape)
    R = float(np.abs(np.concatenate([X, Q])).max()) * math.sqrt(d)
    slack = {
        "gaussian": 100.0 * gamma(144, np.float64),
        "energy": 8.0 * math.sqrt(U) * R * (1 / M + 1 / len(Q)),
    }
    for kernel in KERNELS:
        assert float(mmd_squared(t64(X), t64(Q), kernel, width)) >= -slack[kernel]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    M=st.integers(1, 12),
    N=st.integers(1, 12),
    d=st.integers(1, 3),
    spread=st.sampled_from([0.05, 0.5, 2.0, 8.0]),
    width=st.floats(0.05, 10.0),
)
def test_mmd_speed_never_exceeds_the_kernels_bound(
    seed: int, M: int, N: int, d: int, spread: float, width: float
) -> None:
    """Each mean-gradient term of v is an average of ∇k: |∇k| = (r/σ²)e^{−r²/2σ²} ≤ 1/(σ√e) for the
    Gaussian kernel and 1 for the energy kernel, and the particle's own term has weight 0, so
    |v| ≤ (2 − 1/M)/(σ√e) (Gaussian) and ≤ 2 − 1/M (energy). A wrong scale (σ vs σ², a missing 1/M)
    breaks it. Slack 1e-9 relative: random clouds are well separated (see the coincident-points test)."""
    rng = np.random.default_rng(seed)
    X, Q = t64(rng.normal(size=(M, d)) * spread), t64(rng.normal(size=(N, d)) * spread + spread)
    bound = 2.0 - 1.0 / M
    gauss = mmd_velocity(X, Q, "gaussian", width).norm(dim=1).max().item()
    energy = mmd_velocity(X, Q, "energy", 1.0).norm(dim=1).max().item()
    assert gauss <= bound / (width * math.sqrt(math.e)) * (1 + 1e-9)
    assert energy <= bound * (1 + 1e-9)


@pytest.mark.parametrize("width", [0.3, 1.0, 4.0])
def test_mmd_speed_bound_is_attained_toward_the_target(width: float) -> None:
    """One particle, every target point at distance σ along e: v = e/(σ√e) exactly (the bound of the
    previous test, attained), pointing toward the target; the energy kernel pulls at unit speed from
    any distance. Round-off only (rel 1e-12)."""
    x = np.array([[0.3, -1.2]])
    e = np.array([0.6, 0.8])
    Q = np.repeat(x + width * e, 5, axis=0)
    v = mmd_velocity(t64(x), t64(Q), "gaussian", width).numpy()[0]
    np.testing.assert_allclose(v, e / (width * math.sqrt(math.e)), rtol=1e-12)
    v = mmd_velocity(t64(x), t64(x + 7.0 * width * e), "energy", 1.0).numpy()[0]
    np.testing.assert_allclose(v, e, rtol=1e-12)


def test_energy_pull_toward_a_nearly_coincident_target_point_is_a_unit_vector() -> None:
    """One particle and one target point δ = 3e-8…3e-7 away (|x| ≈ 3): v is the unit vector toward it,
    whatever δ (−∇ of −|x − q|). Coordinate differences give it to round-off; held to 1e-6."""
    rng = np.random.default_rng(7)
    speeds = []
    for _ in range(50):
        x = rng.normal(size=(1, 2)) * 3.0
        e = rng.normal(size=2)
        e /= np.linalg.norm(e)
        q = x + 10.0 ** rng.uniform(-7.5, -6.5) * e
        speeds.append(float(mmd_velocity(t64(x), t64(q), "energy", 1.0).norm()))
    np.testing.assert_allclose(speeds, 1.0, atol=1e-6)


# ============================================================================================= Sinkhorn
@pytest.fixture(scope="module")
def sk_clouds() -> tuple[np.ndarray, np.ndarray]:
    return cloud(20, 2, seed=11), cloud(25, 2, seed=12, scale=0.7, shift=0.8)


@pytest.mark.parametrize("blur", [1.0, 0.3, 0.1])
def test_sinkhorn_value_matches_the_independent_divergence(
    sk_clouds: tuple[np.ndarray, np.ndarray], blur: float
) -> None:
    """S_ε from the flow's warm-startable log-domain solver equals :func:`gpa_core.ot.sinkhorn_divergence`
    (POT sweeps, ε-scaling and Newton; all points kept): the same GeomLoss conventions (C = ½|x − y|²,
    ε = blur²) by an independent code. The dual value is stationary, so both solvers' marginal errors
    (1e-6, 1e-7) enter squared: rel 1e-8. Also: the plans reached TOL."""
    X, Q = sk_clouds
    _, value, err = sinkhorn_velocity(t64(X), t64(Q), SinkhornState(blur), 20)
    assert err <= TOL
    assert value == pytest.approx(sinkhorn_divergence(X, Q, blur=blur, max_points=None), rel=1e-8)


@pytest.mark.parametrize(("M", "N"), [(25, 40), (40, 25)])
def test_sinkhorn_newton_polishes_over_the_smaller_cloud(M: int, N: int) -> None:
    """The Newton polish of the cross plan works on the smaller cloud's potential (the particles' when
    M < N, the target's otherwise): both ways the plan reaches TOL at a small blur from 3 sweeps, which
    alone leave it far off, and S_ε matches the independent solver (rel 1e-8, as above)."""
    import gpa_core.rivals.sinkhorn as sinkhorn

    X, Q = cloud(M, 2, seed=5), cloud(N, 2, seed=6, scale=0.8, shift=1.0)
    C = sinkhorn.half_squared_distances(t64(X), t64(Q))
    *_, err = sinkhorn.cross_potentials(C, 0.01, None, None, 3)
    assert err <= TOL
    _, value, err = sinkhorn_velocity(t64(X), t64(Q), SinkhornState(0.1), 20)
    assert err <= TOL
    assert value == pytest.approx(sinkhorn_divergence(X, Q, blur=0.1, max_points=None), rel=1e-8)


def test_sinkhorn_without_newton_says_its_plans_are_loose(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above NEWTON_POINTS the plans stay at the sweeps' accuracy: the flow still runs, records the
    marginal error, and its summary says the velocity is approximate (the compare page's why column)."""
    import gpa_core.rivals.sinkhorn as sinkhorn

    monkeypatch.setattr(sinkhorn, "NEWTON_POINTS", 10)
    X, Q = cloud(30, 2, seed=5), cloud(30, 2, seed=6, scale=0.5, shift=3.0)
    flow = RivalFlow(X, Q, RivalConfig(flow="sinkhorn", width=0.05, dt=0.5, steps=3, sinkhorn_iters=2))
    flow.step(3)
    s = flow.summary()
    assert s.marginal_error > 1e-3 and "solved only to marginal error" in s.reason
    monkeypatch.setattr(sinkhorn, "NEWTON_POINTS", 1000)
    exact = RivalFlow(X, Q, RivalConfig(flow="sinkhorn", width=0.05, dt=0.5, steps=3, sinkhorn_iters=20))
    exact.step(3)
    assert exact.summary().marginal_error <= TOL and exact.summary().reason == ""


@pytest.mark.parametrize("blur", [1.0, 0.3])
def test_sinkhorn_velocity_is_minus_M_times_the_gradient(
    sk_clouds: tuple[np.ndarray, np.ndarray], blur: float
) -> None:
    """v(x_i) = T_ν(x_i) − T_μ(x_i) = −M ∂S_ε/∂x_i, against central finite differences of S_ε (a fresh
    state per evaluation, so no warm start links them) on 8 coordinates. Tolerance 1e-5 absolute:
    the FD step h = 1e-4 costs M·h²·|S‴| ~ 1e-7, the value's solver error M·1e-12/h ~ 1e-7, and the
    barycentric maps are first order in the plans' marginal error TOL = 1e-6 times the clouds' size
    (~3): 3e-6. Measured: 3e-7. The speeds are O(1), so a sign or a factor is far outside."""
    X, Q = sk_clouds
    M, h = X.shape[0], 1e-4

    def S(Y: np.ndarray) -> float:
        return sinkhorn_velocity(t64(Y), t64(Q), SinkhornState(blur), 20)[1]

    v = sinkhorn_velocity(t64(X), t64(Q), SinkhornState(blur), 20)[0].numpy()
    assert float(np.abs(v).max()) > 0.3
    rng = np.random.default_rng(13)
    for i, k in zip(rng.choice(M, 8, replace=False), rng.integers(0, 2, 8), strict=True):
        Xp, Xm = X.copy(), X.copy()
        Xp[i, k] += h
        Xm[i, k] -= h
        fd = (S(Xp) - S(Xm)) / (2.0 * h)
        assert v[i, k] == pytest.approx(-M * fd, abs=1e-5), (i, k)


@pytest.mark.parametrize(("blur", "shift"), [(1.0, (0.5, -0.3)), (0.1, (0.5, -0.3)), (0.3, (-2.0, 1.5))])
def test_sinkhorn_divergence_of_a_translate_is_half_its_squared_length(
    blur: float, shift: tuple[float, float]
) -> None:
    """S_ε(μ, μ + v) = ½|v|² at every blur (the closed form of ot.py's docstring: the two cross terms
    differ from the self term by exactly ½|v|² with the same plans); rel 1e-8 (dual stationarity).
    The velocity is then v itself for every particle (T_ν = T_μ + v), to a few TOL."""
    X = cloud(20, 2, seed=14)
    s = np.array(shift)
    vel, value, _ = sinkhorn_velocity(t64(X), t64(X + s), SinkhornState(blur), 20)
    assert value == pytest.approx(0.5 * float(s @ s), rel=1e-8)
    np.testing.assert_allclose(vel.numpy(), np.broadcast_to(s, X.shape), atol=1e-5)


def test_warm_start_gives_the_fresh_value(sk_clouds: tuple[np.ndarray, np.ndarray]) -> None:
    """A second evaluation on slightly moved particles from the previous potentials (a few warm sweeps,
    Newton if needed) gives the fresh cold-start value (rel 1e-8, both converged) and velocity (a few
    TOL); the state holds the new potentials and the target's constant term is computed once."""
    X, Q = sk_clouds
    state = SinkhornState(0.3)
    sinkhorn_velocity(t64(X), t64(Q), state, 20)
    target_term, f_before = state.target_term, state.f.clone()
    Y = X + 0.02 * np.random.default_rng(15).normal(size=X.shape)
    v_warm, warm, err = sinkhorn_velocity(t64(Y), t64(Q), state, 20)
    v_cold, cold, _ = sinkhorn_velocity(t64(Y), t64(Q), SinkhornState(0.3), 20)
    assert err <= TOL
    assert warm == pytest.approx(cold, rel=1e-8)
    np.testing.assert_allclose(v_warm.numpy(), v_cold.numpy(), atol=1e-5)
    assert state.target_term == target_term and not torch.equal(state.f, f_before)


# ================================================================================================ flows
FLOWS = {
    "mmd-gaussian": {"flow": "mmd", "kernel": "gaussian"},  # σ from the median heuristic
    "mmd-energy": {"flow": "mmd", "kernel": "energy"},
    "sinkhorn": {"flow": "sinkhorn"},  # blur from the data
}


@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("name", list(FLOWS))
def test_each_flow_decreases_its_own_objective(
    near: tuple[np.ndarray, np.ndarray], name: str, solver: str
) -> None:
    """A gradient flow of F with a small step decreases F at every step: the recorded objective (MMD²
    or S_ε at Y_n) is non-increasing over 60 steps of Δt = 0.1, and falls to well below its start
    (the flow does go somewhere). Round-off allowance: 1e-12 of F₀ (1e-9 for S_ε, solved to TOL)."""
    c = cfg(**FLOWS[name], dt=0.1, steps=60, solver=solver)
    flow = RivalFlow(*near, c)
    assert flow.step(1000) == 60 and flow.n == 60 and flow.t == pytest.approx(6.0)
    F = flow.history_arrays()["objective"]
    assert len(F) == 60 and np.isfinite(F).all()
    slack = (1e-9 if name == "sinkhorn" else 1e-12) * F[0]
    assert np.diff(F).max() <= slack
    assert F[-1] < 0.2 * F[0]
    assert flow.summary().status == "running"  # reached its horizon still moving: not stalled


@pytest.mark.parametrize("name", list(FLOWS))
def test_kinetic_energy_is_the_dissipation_rate(near: tuple[np.ndarray, np.ndarray], name: str) -> None:
    """dF/dt = −(1/M)Σ|v|² along the flow, so one Euler step gives (F₀ − F₁)/Δt = KE₀ + O(Δt): the
    relative gap shrinks like Δt (ratio ≈ 2 per halving, 1.6–2.5 allowed) and is below 5 % at Δt = 0.1.
    The solver's and the diagonal's round-off (≤ 1e-9 of F) over Δt ≥ 0.025 stays far below the gaps."""
    gaps = []
    for dt in (0.1, 0.05, 0.025):
        flow = RivalFlow(*near, cfg(**FLOWS[name], dt=dt, steps=2))
        flow.step(2)
        h = flow.history_arrays()
        rate = (h["objective"][0] - h["objective"][1]) / dt
        gaps.append(abs(rate - h["kinetic_energy"][0]) / h["kinetic_energy"][0])
    assert gaps[0] < 0.05
    assert 1.6 < gaps[0] / gaps[1] < 2.5 and 1.6 < gaps[1] / gaps[2] < 2.5, gaps


@pytest.mark.parametrize("name", list(FLOWS))
def test_heun_is_second_order_and_euler_first(near: tuple[np.ndarray, np.ndarray], name: str) -> None:
    """Against a fine reference (Heun, Δt = T/64) at T = 0.4, Euler's error halves when Δt halves (first
    order, ratio 1.6–2.6) and Heun's falls by ≳ 3 (second order: 4, less where the Sinkhorn solver's
    first-order TOL noise enters) and is the smaller. Heun's predictor reuses the warm state too."""
    T = 0.4
    ref = RivalFlow(*near, cfg(**FLOWS[name], dt=T / 64, steps=64, solver="heun"))
    ref.step(64)
    errors: dict[str, list[float]] = {}
    for solver in ("euler", "heun"):
        for dt in (0.2, 0.1):
            flow = RivalFlow(*near, cfg(**FLOWS[name], dt=dt, steps=round(T / dt), solver=solver))
            flow.step(100)
            errors.setdefault(solver, []).append(float(np.abs(flow.particles() - ref.particles()).max()))
    euler, heun = errors["euler"], errors["heun"]
    assert 1.6 < euler[0] / euler[1] < 2.6, errors
    assert heun[0] / heun[1] > 3.0, errors
    assert heun[1] < 0.5 * euler[1], errors


def run_far(far: tuple[np.ndarray, np.ndarray], steps: int, **changes: object) -> tuple[RivalFlow, float]:
    """A flow on the far-target data (Δt = 0.5) and its W₂ to the target over W₂ at the start."""
    source, target = far
    flow = RivalFlow(source, target, cfg(dt=0.5, steps=steps, **changes))
    flow.step(steps)
    return flow, wasserstein2(flow.particles(), target) / wasserstein2(source, target)


def test_narrow_gaussian_mmd_stalls_on_a_far_target(far: tuple[np.ndarray, np.ndarray]) -> None:
    """The MMD flow's known failure (Arbel et al. 2019, §3): with σ = 0.5 and the target 8.5 away, the
    pull toward it is ~exp(−144), the particles only repel one another; after 200 steps of Δt = 0.5
    the flow is "stalled" (its MMD² still above half its start), W₂ to the target ≥ 90 % of its start.
    The energy kernel (unit pull from any distance) and the Sinkhorn flow get W₂ below 25 %."""
    narrow, ratio = run_far(far, 200, flow="mmd", kernel="gaussian", width=0.5)
    s = narrow.summary()
    assert isinstance(s, RivalSummary) and s.status == "stalled" and s.steps == 200
    assert s.objective_name == "½MMD²" and "does not reach the target" in s.reason
    assert s.objective > 0.5 * narrow.history["objective"][0]
    assert ratio >= 0.9
    energy, ratio = run_far(far, 200, flow="mmd", kernel="energy")
    assert energy.summary().status != "stalled" and ratio < 0.25
    sink, ratio = run_far(far, 100, flow="sinkhorn")
    assert sink.summary().status != "stalled" and sink.summary().objective_name == "S_ε" and ratio < 0.25


def test_the_far_target_preset_shows_the_failure() -> None:
    """assets/presets/70-rivals-far-target.json: its rivals take the shared Δt = 0.5, steps and Euler,
    its data are the far-target case, and on its own 200 + 200 points the narrow-kernel MMD flow stalls
    over the preset's horizon while the energy-kernel and Sinkhorn flows arrive (W₂ < 25 % of start, the
    latter two over a shorter horizon to keep the test fast). The compare page offers it."""
    p = load_preset(FAR_PRESET)
    assert p.rivals and all((c.dt, c.steps, c.solver) == (0.5, p.config.steps, "euler") for _, c in p.rivals)
    source, target = p.sample_source(), p.sample_target()
    assert np.linalg.norm(target.mean(0) - source.mean(0)) > 7.0
    by_kind = {(c.flow, c.kernel if c.flow == "mmd" else None, c.width): c for _, c in p.rivals}
    narrow = by_kind[("mmd", "gaussian", 0.5)]
    w0 = wasserstein2(source, target)
    flow = RivalFlow(source, target, narrow.replace(device="cpu"))
    flow.step(narrow.steps)
    assert flow.summary().status == "stalled" and wasserstein2(flow.particles(), target) >= 0.9 * w0
    for key in [("mmd", "energy", None), ("sinkhorn", None, None)]:
        flow = RivalFlow(source, target, by_kind[key].replace(device="cpu", steps=60))
        flow.step(60)
        assert wasserstein2(flow.particles(), target) < 0.25 * w0, key
    spec = compare_presets()[p.id].spec
    assert spec.labels == [*p.labels, *(label for label, _ in p.rivals)]


@pytest.mark.parametrize(("dt", "diverges"), [(2.5, True), (1.0, False)])
def test_sinkhorn_euler_diverges_beyond_dt_two(
    near: tuple[np.ndarray, np.ndarray], dt: float, diverges: bool
) -> None:
    """Near its target the Sinkhorn velocity T_ν − T_μ relaxes each particle toward its transport
    target at rate 1, so Euler multiplies the error by (1 − Δt) per step: |1 − 2.5| > 1 runs away
    ("diverged", stepping stops, the last finite particles kept), Δt = 1 does not (100 steps)."""
    source, target = near[0][:20], near[1][:20]
    flow = RivalFlow(source, target, cfg(flow="sinkhorn", dt=dt, steps=100))
    flow.step(100)
    s = flow.summary()
    if diverges:
        assert s.status == "diverged" and flow.diverged and flow.finished() and s.steps < 100
        assert "ran away" in s.reason or "non-finite" in s.reason
        assert s.diverged_at == pytest.approx(s.t) and np.isfinite(flow.particles()).all()
        assert flow.step(5) == 0  # a diverged flow does not step on
    else:
        assert s.status != "diverged" and s.steps == 100 and s.diverged_at is None
        assert wasserstein2(flow.particles(), target) < 0.1 * wasserstein2(source, target)


# =========================================================================================== auto width
def test_auto_width_median_heuristic_and_sinkhorn_blur() -> None:
    """Gaussian σ = the median distance between points of the pooled clouds (scipy's pdist here), the
    Sinkhorn blur = 0.1 × the pooled RMS radius √(mean|z − z̄|²), None for the energy kernel, a given
    width as is; the flow uses the same. Rel 1e-12 (both take pdist's distances; only the median's order of
    operations could differ)."""
    source, target = cloud(30, 2, seed=20), cloud(25, 2, seed=21, scale=2.0, shift=3.0)
    pooled = np.concatenate([source, target])
    median = float(np.median(pdist(pooled)))
    radius = math.sqrt(float(((pooled - pooled.mean(0)) ** 2).sum(1).mean()))
    assert auto_width(cfg(), source, target) == pytest.approx(median, rel=1e-12)
    assert auto_width(cfg(flow="sinkhorn"), source, target) == pytest.approx(0.1 * radius, rel=1e-12)
    assert auto_width(cfg(kernel="energy"), source, target) is None
    assert auto_width(cfg(width=0.37), source, target) == 0.37
    assert auto_width(cfg(flow="sinkhorn", width=0.2), source, target) == 0.2
    assert RivalFlow(source, target, cfg()).width == pytest.approx(median, rel=1e-12)
    assert RivalFlow(source, target, cfg(kernel="energy")).width is None


def test_auto_width_subsamples_large_clouds() -> None:
    """Beyond 1000 pooled points the median is taken over 1000 of them (seeded): deterministic, and
    within 3 % of the full median for 1400 points from one smooth distribution."""
    source, target = cloud(700, 2, seed=22), cloud(700, 2, seed=23)
    full = float(np.median(pdist(np.concatenate([source, target]))))
    first, second = auto_width(cfg(), source, target), auto_width(cfg(), source, target)
    assert first == second and first == pytest.approx(full, rel=0.03)


# ========================================================================================== RivalConfig
@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"flow": "gpa"}, "flow"),
        ({"kernel": "cosine"}, "kernel"),
        ({"width": 0.0}, "width"),
        ({"width": -1.0}, "width"),
        ({"width": math.nan}, "width"),
        ({"width": math.inf}, "width"),
        ({"width": "wide"}, "width"),
        ({"width": True}, "width"),
        ({"dt": 0}, "dt"),
        ({"dt": -0.5}, "dt"),
        ({"dt": math.nan}, "dt"),
        ({"dt": "0.5"}, "dt"),
        ({"dt": 2000.0}, "dt"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"steps": "10"}, "steps"),
        ({"solver": "rk4"}, "solver"),
        ({"flow": "sinkhorn", "sinkhorn_iters": 0}, "sinkhorn_iters"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_rival_config_refuses_bad_values_naming_the_field(changes: dict, name: str) -> None:
    """Each bad value raises ConfigError whose message starts with the field's name (what the page and
    the preset loader show); through replace too, which validates like a new configuration."""
    with pytest.raises(ConfigError, match=rf"^{name}\b"):
        RivalConfig(**changes)
    with pytest.raises(ConfigError, match=rf"^{name}\b"):
        RivalConfig().replace(**changes)


def test_rival_config_reads_fields_only_where_they_apply() -> None:
    """The kernel is read only by MMD and sinkhorn_iters only by Sinkhorn (``only_if``), so they are not
    checked elsewhere; whole numbers for dt and width become floats (the JSON 1 is 1.0)."""
    assert RivalConfig(flow="sinkhorn", kernel="cosine").flow == "sinkhorn"  # type: ignore[arg-type]
    assert RivalConfig(sinkhorn_iters=0).sinkhorn_iters == 0
    c = RivalConfig(dt=1, width=2)
    assert type(c.dt) is float and type(c.width) is float and c.horizon == 500.0


@pytest.mark.parametrize(
    "config",
    [
        RivalConfig(),
        RivalConfig(kernel="energy", dt=0.25, steps=7, solver="heun", device="cpu"),
        RivalConfig(flow="sinkhorn", width=0.3, sinkhorn_iters=5),
    ],
)
def test_rival_config_round_trips_through_json(config: RivalConfig) -> None:
    """from_dict(to_dict()) gives the same configuration, also through JSON text (width None included);
    missing fields take their defaults."""
    assert RivalConfig.from_dict(config.to_dict()) == config
    assert RivalConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert RivalConfig.from_dict({}) == RivalConfig()


def test_rival_config_refuses_unknown_fields() -> None:
    """An unknown field (a misspelt key in a preset) raises ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"unknown rival-flow field.*sigma"):
        RivalConfig.from_dict({"flow": "mmd", "sigma": 0.5})


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (RivalConfig(width=0.5), "MMD (Gaussian σ = 0.5)"),
        (RivalConfig(), "MMD (Gaussian σ = auto)"),
        (RivalConfig(width=0.123456), "MMD (Gaussian σ = 0.123)"),
        (RivalConfig(kernel="energy"), "MMD (energy)"),
        (RivalConfig(kernel="energy", width=3.0), "MMD (energy)"),
        (RivalConfig(flow="sinkhorn", width=0.3), "Sinkhorn (blur 0.3)"),
        (RivalConfig(flow="sinkhorn"), "Sinkhorn (blur auto)"),
    ],
)
def test_rival_config_names(config: RivalConfig, name: str) -> None:
    """How legends and default labels name a rival flow."""
    assert config.name == name


# ============================================================================================ RivalFlow
def test_rival_flow_refuses_bad_input() -> None:
    """Clouds of different dimensions, or not (n, d), raise ValueError naming the shapes; a FlowConfig
    in place of a RivalConfig raises TypeError. Nothing is computed."""
    with pytest.raises(ValueError, match=r"\(10, 2\) and \(12, 3\)"):
        RivalFlow(np.zeros((10, 2)), np.ones((12, 3)), cfg())
    with pytest.raises(ValueError, match="one d"):
        RivalFlow(np.zeros(10), np.ones((12, 1)), cfg())
    with pytest.raises(TypeError, match="RivalConfig"):
        RivalFlow(np.zeros((10, 2)), np.ones((12, 2)), FlowConfig())  # type: ignore[arg-type]


def test_rival_flow_steps_to_its_horizon_and_records_history(near: tuple[np.ndarray, np.ndarray]) -> None:
    """step(n) does at most n steps and none past ``steps``; the history has one row per step (time
    n·Δt, the objective, the largest speed ≥ √KE), the particles are a copy."""
    flow = RivalFlow(*near, cfg(kernel="energy", dt=0.2, steps=5))
    assert flow.step(3) == 3 and flow.step(10) == 2 and flow.step(1) == 0 and flow.finished()
    h = flow.history_arrays()
    np.testing.assert_allclose(h["time"], 0.2 * np.arange(5), rtol=1e-12)
    assert list(h["step"]) == [0, 1, 2, 3, 4] and np.isnan(h["marginal_error"]).all()
    assert (h["max_speed"] ** 2 >= h["kinetic_energy"] * (1 - 1e-12)).all()
    p = flow.particles()
    p[:] = 0.0
    assert np.abs(flow.particles()).max() > 0


# ========================================================================================== RivalRunner
def test_runner_plays_to_the_end(near: tuple[np.ndarray, np.ndarray]) -> None:
    """play runs every flow to its own steps in the background: state "finished", each flow at its
    steps, labels defaulting to the configurations' names, histories thinned to max_history rows
    keeping the first and last."""
    configs = [cfg(width=0.8, dt=0.1, steps=30), cfg(flow="sinkhorn", dt=0.2, steps=12)]
    r = RivalRunner(*near, configs, max_history=10)
    try:
        assert r.snapshot().state == "ready" and r.snapshot().n == 0
        r.play()
        assert r.join(WAIT)
        snap = r.snapshot()
        assert snap.state == "finished" and snap.error is None and r.done
        assert [s.steps for s in snap.summaries] == [30, 12] and snap.finished == (True, True)
        assert snap.labels == ("MMD (Gaussian σ = 0.8)", "Sinkhorn (blur auto)")
        assert snap.particles.shape == (2, 30, 2)
        np.testing.assert_allclose(snap.t, [3.0, 2.4], rtol=1e-12)
        assert snap.widths[0] == 0.8 and snap.widths[1] == pytest.approx(auto_width(configs[1], *near))
        h = snap.histories[0]
        assert len(h["step"]) <= 10 and h["step"][0] == 0 and h["step"][-1] == 29
        assert len(snap.histories[1]["step"]) == 10
    finally:
        r.stop()


def test_runner_pause_holds_play_resumes_and_stop_ends(near: tuple[np.ndarray, np.ndarray]) -> None:
    """After pause (and the chunk in progress) the step count stays put across snapshots 0.3 s apart,
    state "paused"; play resumes it; stop ends the thread with state "stopped", the particles kept.
    (Behaviour, not timing: each wait is polled with a generous limit.)"""
    r = RivalRunner(*near, [cfg(width=0.8, dt=1e-3, steps=10_000_000)], labels=["slow"])
    try:
        r.play()
        assert wait_until(lambda: r.snapshot().n > 0)
        r.pause()

        def held() -> bool:
            before = r.snapshot().n
            time.sleep(0.3)
            return r.snapshot().n == before

        assert wait_until(held)
        paused = r.snapshot()
        time.sleep(0.3)
        assert r.snapshot().n == paused.n and paused.state == "paused" and not r.done
        r.play()
        assert wait_until(lambda: r.snapshot().n > paused.n)
        assert r.snapshot().state == "playing"
        r.stop(timeout=WAIT)
        assert r.done
        snap = r.snapshot()
        assert snap.state == "stopped" and snap.labels == ("slow",) and snap.n > paused.n
        assert np.isfinite(snap.particles).all()
    finally:
        r.stop()


def test_runner_reports_an_exception_as_error(
    near: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception inside a flow's step ends the thread and shows as state "error" with its type and
    message, never raised in the caller."""
    r = RivalRunner(*near, [cfg(steps=50), cfg(kernel="energy", steps=50)])

    def boom(n: int = 1) -> int:
        raise RuntimeError("flow exploded")

    monkeypatch.setattr(r.flows[1], "step", boom)
    try:
        r.play()
        assert r.join(WAIT)
        snap = r.snapshot()
        assert snap.state == "error" and snap.error == "RuntimeError: flow exploded"
    finally:
        r.stop()


def test_runner_refuses_bad_input(near: tuple[np.ndarray, np.ndarray]) -> None:
    """No configurations, labels that do not match them, or unusable clouds raise at construction."""
    with pytest.raises(ValueError, match="at least one"):
        RivalRunner(*near, [])
    with pytest.raises(ValueError, match="2 configurations but 1 labels"):
        RivalRunner(*near, [cfg(), cfg()], labels=["a"])
    with pytest.raises(ValueError, match="one d"):
        RivalRunner(near[0], near[1][:, :1], [cfg()])


def test_runner_stopped_before_play_says_stopped(near: tuple[np.ndarray, np.ndarray]) -> None:
    """stop() before play() ends the runner like GPA's Runner does: done, state "stopped"."""
    r = RivalRunner(*near, [cfg(steps=5)])
    r.stop(timeout=WAIT)
    assert r.done and r.snapshot().state == "stopped"


# ============================================================================================== presets
PRESET = {
    "id": "tiny-rivals",
    "title": "Tiny",
    "source": {"name": "gaussian", "params": {"std": 0.5}},
    "target": {"name": "mixture"},
    "M": 20,
    "N": 10,
    "config": {"dt": 0.25, "steps": 40, "solver": "heun"},
    "rivals": [
        {"label": "narrow", "flow": "mmd", "width": 0.5},
        {"flow": "sinkhorn", "dt": 0.1},
        {"kernel": "energy", "steps": 7, "solver": "euler"},
    ],
}


def test_preset_rivals_take_the_shared_dt_steps_and_solver() -> None:
    """A preset's rivals are RivalConfigs whose Δt, steps and solver are the shared config's unless
    given; a rival without a label is labelled by its configuration's name; none gives ()."""
    p = parse_preset(copy.deepcopy(PRESET))
    (l0, c0), (l1, c1), (l2, c2) = p.rivals
    assert (l0, c0) == ("narrow", RivalConfig(width=0.5, dt=0.25, steps=40, solver="heun"))
    assert (l1, c1) == ("Sinkhorn (blur auto)", RivalConfig(flow="sinkhorn", dt=0.1, steps=40, solver="heun"))
    assert (l2, (c2.kernel, c2.dt, c2.steps, c2.solver)) == ("MMD (energy)", ("energy", 0.25, 7, "euler"))
    assert parse_preset({k: v for k, v in PRESET.items() if k != "rivals"}).rivals == ()


@pytest.mark.parametrize(
    ("rivals", "message"),
    [
        ([{"flow": "mmd"}, {"flow": "nope"}], r"rivals\[1\]: flow must be one of"),
        ([{"sigma": 0.5}], r"rivals\[0\]: unknown rival-flow field.*sigma"),
        ([{"flow": "mmd"}, {"flow": "mmd", "width": -1}], r"rivals\[1\]: width"),
        ([{"label": 3}], r"rivals\[0\]\.label must be text"),
        ({"flow": "mmd"}, "'rivals' must be a list of objects"),
        (["mmd"], "'rivals' must be a list of objects"),
    ],
)
def test_bad_preset_rivals_are_named(rivals: object, message: str) -> None:
    """A bad rival raises PresetError naming the file and ``rivals[i]`` (and the field)."""
    data = copy.deepcopy(PRESET)
    data["rivals"] = rivals
    with pytest.raises(PresetError, match=message) as info:
        parse_preset(data, where="mine.json")
    assert str(info.value).startswith("mine.json: ")


# ============================================================================================== compare
def tiny_spec(runs: int = 1, **changes: object) -> CompareSpec:
    gpa = tuple(
        CompareRun(f"GPA {k}", FlowConfig(steps=20, hidden=(8,), inner_steps=2, device="cpu", seed=k))
        for k in range(runs)
    )
    rivals = (
        RivalRun("MMD energy", cfg(kernel="energy", steps=20)),
        RivalRun("Sinkhorn", cfg(flow="sinkhorn", steps=15)),
    )
    args: dict = {"runs": gpa, "rivals": rivals, **changes}
    return CompareSpec("gaussian:mean=0,std=0.5", "gaussian:mean=2,std=0.5", 12, 14, **args)


def test_compare_job_runs_gpa_then_rivals() -> None:
    """One GPA run and two rivals from the same particles: the snapshot lists GPA first, then the
    rivals (labels = spec.labels, flows GPA/MMD/Sinkhorn), particles (3, M, d) over the one target;
    after play every member reaches its own steps and the job is finished."""
    spec = tiny_spec()
    source, target = sample_pair(spec.source_spec, spec.target_spec, spec.M, spec.N, data_seed=spec.data_seed)
    job = CompareJob(spec, source, target)
    try:
        snap = job.snapshot()
        assert snap.labels == spec.labels == ["GPA 0", "MMD energy", "Sinkhorn"]
        assert [m.flow for m in snap.members] == ["GPA", "MMD", "Sinkhorn"]
        assert snap.particles.shape == (3, 12, 2) and snap.target.shape == (14, 2)
        # all start from the same points (GPA's in float32: rounding 2⁻²⁴ relative)
        for k in range(3):
            np.testing.assert_allclose(snap.particles[k], source, rtol=0.0, atol=1e-6 * np.abs(source).max())
        job.play()
        assert wait_until(lambda: job.done)
        snap = job.snapshot()
        assert snap.state == "finished" and snap.error is None
        assert snap.finished == [True, True, True] and snap.steps == [20, 20, 15]
        assert [m.objective_name for m in snap.members] == ["D_f^Γ", "½MMD²", "S_ε"]
        assert all(m.status == "reached T" for m in snap.members)
    finally:
        job.stop()


def test_compare_job_measures_w2_without_being_polled() -> None:
    """The job's own sampler measures W₂ as the runners publish, not when a page happens to poll: with
    one snapshot at the start and none after, every member's series runs from step 0 to its last step,
    in order, and its W₂ comes down (the target is 2√2 away and every flow gets closer)."""
    spec = tiny_spec(metric_every=10)
    job = CompareJob(spec, *sample_pair(spec.source_spec, spec.target_spec, spec.M, spec.N))
    try:
        job.snapshot()
        job.play()
        assert wait_until(lambda: job.done)
        assert wait_until(
            lambda: all(
                s["step"] and s["step"][-1] == n for s, n in zip(job.series(), [20, 20, 15], strict=True)
            )
        )
        for row in job.series():
            assert row["step"][0] == 0 and row["step"] == sorted(set(row["step"]))
            assert len(row["w2"]) == len(row["time"]) == len(row["step"]) >= 2
            assert row["w2"][-1] < row["w2"][0]
        assert job.metric_error is None
        assert job.latest(0) == job.series()[0]["w2"][-1]
    finally:
        job.stop()


def test_rivals_only_compare_job() -> None:
    """A comparison of rival flows alone (no GPA run) has no GPA runner and runs to the end."""
    spec = tiny_spec(runs=0)
    assert spec.configs == [] and spec.labels == ["MMD energy", "Sinkhorn"]
    job = CompareJob(spec, *sample_pair(spec.source_spec, spec.target_spec, spec.M, spec.N))
    try:
        assert job.gpa is None and job.snapshot().particles.shape == (2, 12, 2)
        job.play()
        assert wait_until(lambda: job.done)
        snap = job.snapshot()
        assert snap.state == "finished" and snap.steps == [20, 15] and snap.device == ""
    finally:
        job.stop()


def test_compare_spec_counts_rivals_among_its_runs() -> None:
    """A comparison takes 1 to 8 runs, GPA runs and rivals together."""
    with pytest.raises(EnsembleError, match="1 to 8 runs; got 0"):
        tiny_spec(runs=0, rivals=())
    with pytest.raises(EnsembleError, match="1 to 8 runs; got 9"):
        tiny_spec(runs=7)
    assert len(tiny_spec(runs=6).labels) == 8
    assert tiny_spec(runs=0, rivals=(RivalRun("one", cfg()),)).labels == ["one"]


def test_metric_tracker_measures_each_member_at_its_own_steps() -> None:
    """With per-member step counts a member is measured when its own count has advanced ``every``
    steps since its last measurement, and once more when it finishes (then never again); each series
    holds its own steps, times and distances."""
    source, target = cloud(8, 2, seed=30), cloud(8, 2, seed=31, shift=2.0)
    particles = np.stack([target, source, source])
    tracker = MetricTracker(3, ("w2",), every=10)
    assert tracker.update([0, 0, 0], [0.0, 0.0, 0.0], particles, target) == [0, 1, 2]
    assert tracker.update([10, 5, 20], [1.0, 0.5, 2.0], particles, target) == [0, 2]
    assert tracker.update([15, 10, 25], [1.5, 1.0, 2.5], particles, target) == [1]
    assert tracker.update(
        [17, 12, 26], [1.7, 1.2, 2.6], particles, target, finished=[True, False, False]
    ) == [0]
    assert tracker.update([17, 22, 40], [1.7, 2.2, 4.0], particles, target, finished=[True, False, True]) == [
        1,
        2,
    ]
    assert tracker.update([17, 40, 40], [1.7, 4.0, 4.0], particles, target, finished=[True, True, True]) == [
        1
    ]
    assert [s["step"] for s in tracker.series] == [[0, 10, 17], [0, 10, 22, 40], [0, 20, 40]]
    assert tracker.series[2]["time"] == [0.0, 2.0, 4.0]
    assert tracker.latest(0) == pytest.approx(0.0, abs=1e-9)
    assert tracker.latest(1) == pytest.approx(wasserstein2(source, target), rel=1e-12)
