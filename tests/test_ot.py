"""Tests of gpa_core.ot: exact W₁/W₂ (POT), the debiased Sinkhorn divergence, the energy distance.

Tolerances: the exact solvers (``ot.emd2``) are held to round-off (rel 1e-9) against closed forms; the
Sinkhorn divergence is solved to marginal error 1e-7, and is held to rel 1e-6 against its closed forms
(translates, symmetry, independence of the ε-schedule) and to the stated slack where it is compared
with ½W₂² (a different quantity at blur > 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import energy_distance as scipy_energy_distance

from gpa_core.ot import (
    MAX_SINKHORN_POINTS,
    MetricInputError,
    OTConvergenceError,
    energy_distance,
    sinkhorn_divergence,
    squared_distances,
    wasserstein1,
    wasserstein2,
    wasserstein2_squared,
)

ALL_METRICS = [wasserstein1, wasserstein2, wasserstein2_squared, sinkhorn_divergence, energy_distance]


def cloud(n: int, d: int = 2, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


# ------------------------------------------------------------------------------------- basic facts
@pytest.mark.parametrize("metric", ALL_METRICS)
def test_identical_clouds_are_at_distance_zero(metric) -> None:
    X = cloud(40, 3, seed=1)
    assert metric(X, X) == pytest.approx(0.0, abs=1e-9)
    # a permuted copy is the same empirical measure
    assert metric(X, X[::-1].copy()) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("a", [(3.0, -4.0), (0.001, 0.0), (1e3, 1e3)])
def test_translation_gives_its_length_for_w1_and_w2(a: tuple[float, float]) -> None:
    X = cloud(30, 2, seed=2)
    shift = np.array(a)
    length = float(np.linalg.norm(shift))
    assert wasserstein1(X, X + shift) == pytest.approx(length, rel=1e-9)
    assert wasserstein2(X, X + shift) == pytest.approx(length, rel=1e-9)
    assert wasserstein2_squared(X, X + shift) == pytest.approx(length**2, rel=1e-9)


@pytest.mark.parametrize("c", [0.0, 0.5, 3.0])
def test_w2_of_a_dilation_is_known(c: float) -> None:
    # x ↦ c·x (c ≥ 0) is the gradient of the convex ½c|x|², hence the optimal map (Brenier):
    # W₂²(X, cX) = (1 − c)² E|x|² (X need not be centred)
    X = cloud(35, 3, seed=22, shift=0.7)
    expected = (1.0 - c) ** 2 * float(np.mean(np.sum(X**2, axis=1)))
    assert wasserstein2_squared(X, c * X) == pytest.approx(expected, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**16))
def test_one_dimensional_wasserstein_is_the_sorted_matching(n: int, seed: int) -> None:
    # in 1-D the monotone matching of equal-size samples is optimal for every convex cost
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=n), rng.normal(size=n) * 2 + 1
    gaps = np.sort(x) - np.sort(y)
    assert wasserstein1(x[:, None], y[:, None]) == pytest.approx(float(np.mean(np.abs(gaps))), rel=1e-9)
    assert wasserstein2_squared(x[:, None], y[:, None]) == pytest.approx(float(np.mean(gaps**2)), rel=1e-9)


def test_wasserstein2_is_the_root_of_wasserstein2_squared() -> None:
    X, Y = cloud(50, 2, seed=23), cloud(60, 2, seed=24, shift=1.0)
    assert wasserstein2(X, Y) == math.sqrt(wasserstein2_squared(X, Y))


def test_known_values_on_tiny_clouds() -> None:
    X = np.array([[0.0], [1.0]])
    Y = np.array([[0.0], [3.0]])
    # the optimal plan keeps 0 → 0 and moves 1 → 3: W₁ = ½·2, W₂² = ½·4
    assert wasserstein1(X, Y) == pytest.approx(1.0)
    assert wasserstein2(X, Y) == pytest.approx(math.sqrt(2.0))
    # different sizes: one point against two
    assert wasserstein1(np.array([[0.0, 0.0]]), np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_metrics_are_symmetric(metric) -> None:
    X, Y = cloud(25, 2, seed=3), cloud(35, 2, seed=4, shift=1.0)
    # exact solvers agree to round-off; Sinkhorn to its marginal error 1e-7
    rel = 1e-6 if metric is sinkhorn_divergence else 1e-9
    assert metric(X, Y) == pytest.approx(metric(Y, X), rel=rel, abs=1e-12)


def test_float32_input_is_accepted_and_matches_float64() -> None:
    X, Y = cloud(20, 2, seed=5), cloud(20, 2, seed=6, shift=0.5)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    assert wasserstein2(X32, Y32) == pytest.approx(
        wasserstein2(X32.astype(np.float64), Y32.astype(np.float64)), rel=1e-12
    )
    assert isinstance(energy_distance(X32, Y32), float)


def test_energy_distance_matches_scipy_in_one_dimension() -> None:
    # scipy.stats.energy_distance is the square root of 2E|X−Y| − E|X−X'| − E|Y−Y'| (1-D samples)
    x, y = cloud(50, 1, seed=7)[:, 0], cloud(70, 1, seed=8, scale=2.0, shift=0.3)[:, 0]
    expected = scipy_energy_distance(x, y) ** 2
    assert energy_distance(x[:, None], y[:, None]) == pytest.approx(expected, rel=1e-10)


def test_energy_distance_chunking_does_not_change_the_value() -> None:
    X, Y = cloud(33, 3, seed=9), cloud(41, 3, seed=10, shift=0.2)
    assert energy_distance(X, Y, chunk_elems=7) == pytest.approx(energy_distance(X, Y), rel=1e-12)


def test_energy_distance_of_two_points() -> None:
    assert energy_distance(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------- Sinkhorn
def test_sinkhorn_tends_to_half_w2_squared_for_small_blur() -> None:
    X, Y = cloud(30, 2, seed=11), cloud(30, 2, seed=12, shift=1.0)
    half_w2_sq = 0.5 * wasserstein2(X, Y) ** 2
    values = [sinkhorn_divergence(X, Y, blur=b) for b in (0.5, 0.1, 0.02)]
    # entropic blurring makes S smaller than ½W₂²; the gap shrinks with the blur
    gaps = [half_w2_sq - v for v in values]
    assert gaps[0] > gaps[1] > abs(gaps[2])
    assert values[-1] == pytest.approx(half_w2_sq, rel=1e-6)


def test_sinkhorn_is_finite_and_right_for_far_apart_clouds() -> None:
    # costs ~1e6 against ε = 0.05² = 2.5e-3: plain Sinkhorn underflows (exp(−C/ε) = 0) here
    X = cloud(40, 2, seed=13, scale=0.5)
    Y = cloud(50, 2, seed=14, scale=0.5, shift=1e3)
    value = sinkhorn_divergence(X, Y, blur=0.05)
    assert math.isfinite(value)
    assert value == pytest.approx(0.5 * wasserstein2(X, Y) ** 2, rel=1e-5)


def test_sinkhorn_of_a_translate_is_half_the_squared_shift() -> None:
    X = cloud(30, 2, seed=15)
    shift = np.array([2.0, -1.0])
    # S_ε(X, X + a) = ½|a|² exactly for the debiased divergence (Feydy et al. 2019, translation)
    assert sinkhorn_divergence(X, X + shift, blur=0.1) == pytest.approx(0.5 * 5.0, rel=1e-6)
    # and in 5-D, on a 3× wider cloud at the default blur 0.05
    X5 = np.random.default_rng(4).normal(size=(40, 5)) * 3
    v = np.array([3.0, -2.0, 0.0, 1.0, 0.5])
    assert sinkhorn_divergence(X5, X5 + v) == pytest.approx(0.5 * float(v @ v), rel=1e-6)


def test_sinkhorn_does_not_depend_on_the_epsilon_schedule() -> None:
    # scaling and stage_iters only set the annealing path; the answer is held to its tolerance
    X, Y = cloud(40, 3, seed=25), cloud(30, 3, seed=26, scale=2.0, shift=0.5)
    ref = sinkhorn_divergence(X, Y)
    assert sinkhorn_divergence(X, Y, scaling=0.8, stage_iters=3) == pytest.approx(ref, rel=1e-6)
    assert sinkhorn_divergence(X, Y, tol=1e-10) == pytest.approx(ref, rel=1e-6)


def test_sinkhorn_converges_on_paper_scales() -> None:
    """Costs ~10³ against ε = 0.0025 (C/ε ~ 10⁶), unequal sizes, as for the ER+/ER− latent clouds."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 20)) * 5
    Y = rng.normal(size=(25, 20)) * 5 + 3
    s = sinkhorn_divergence(X, Y, blur=0.05)
    w = wasserstein2_squared(X, Y)
    assert 0.5 * w * 0.99 < s <= 0.5 * w * 1.001


def test_sinkhorn_raises_a_clear_error_when_it_cannot_converge() -> None:
    X, Y = cloud(40, 2, seed=16), cloud(30, 2, seed=17, shift=0.5)
    # one Newton step per stage leaves a marginal error of about 1e-3 at the final ε
    with pytest.raises(OTConvergenceError, match=r"did not converge: marginal error .* max_iter"):
        sinkhorn_divergence(X, Y, blur=0.05, max_iter=1, tol=1e-12)


def test_sinkhorn_subsampling_is_deterministic() -> None:
    X, Y = cloud(300, 2, seed=18), cloud(300, 2, seed=19, shift=1.0)
    first = sinkhorn_divergence(X, Y, blur=0.2, max_points=50)
    assert sinkhorn_divergence(X, Y, blur=0.2, max_points=50) == first
    assert sinkhorn_divergence(X, Y, blur=0.2, max_points=50, seed=1) != first


# ------------------------------------------------------------------------------------- subsampling
def test_wasserstein2_subsamples_deterministically_above_max_points() -> None:
    X, Y = cloud(120, 2, seed=20), cloud(150, 2, seed=21, shift=1.0)
    exact = wasserstein2(X, Y, max_points=None)
    assert wasserstein2(X, Y, max_points=1000) == exact  # below the limit: exact
    sub = wasserstein2(X, Y, max_points=40)
    assert wasserstein2(X, Y, max_points=40) == sub
    assert sub != exact
    assert sub == pytest.approx(exact, rel=0.5)


def test_exact_ot_and_sinkhorn_refuse_huge_problems() -> None:
    X = np.zeros((6000, 1))
    with pytest.raises(MetricInputError, match="max_points"):
        wasserstein1(X, X)
    with pytest.raises(MetricInputError, match="max_points"):
        wasserstein2_squared(X, X, max_points=None)
    big = np.zeros((MAX_SINKHORN_POINTS + 1, 1))
    with pytest.raises(MetricInputError, match="max_points"):
        sinkhorn_divergence(big, np.ones((3, 1)), max_points=None)


# ---------------------------------------------------------------------------- high-dimensional path
def test_gram_path_matches_cdist_path() -> None:
    """d > n + m: distances from the Gram matrix of the centred points (gene space), not cdist."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(15, 4))
    Y = rng.normal(size=(12, 4)) + 1
    pad = np.zeros((1, 200))
    Xh, Yh = np.hstack([X, pad.repeat(15, 0)]) + 7.0, np.hstack([Y, pad.repeat(12, 0)]) + 7.0
    for a, b in zip(
        squared_distances(X, Y), squared_distances(Xh.astype(np.float32), Yh.astype(np.float32)), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-4)  # float32 inputs: 7.0 + x rounded to ~1e-6
    assert wasserstein2_squared(Xh, Yh) == pytest.approx(wasserstein2_squared(X, Y), rel=1e-9)
    assert wasserstein1(Xh, Yh) == pytest.approx(wasserstein1(X, Y), rel=1e-9)
    assert sinkhorn_divergence(Xh, Yh) == pytest.approx(sinkhorn_divergence(X, Y), rel=1e-6)


# -------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize(
    ("X", "Y", "message"),
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), "same number of columns"),
        (np.zeros(3), np.zeros((3, 1)), "X must be a 2-D array"),
        (np.zeros((3, 2)), np.zeros((0, 2)), "Y must contain at least 1 point"),
        (np.zeros((3, 0)), np.zeros((3, 0)), "at least 1 coordinate"),
        (np.array([[0.0, np.nan]]), np.zeros((3, 2)), "X contains non-finite values .* row 0"),
        (np.zeros((3, 2)), np.array([[0.0, 0.0], [np.inf, 1.0]]), "Y contains non-finite values .* row 1"),
        (np.array([["a", "b"]]), np.zeros((3, 2)), "X must hold real numbers"),
    ],
)
def test_bad_clouds_raise_value_errors_naming_the_problem(metric, X, Y, message: str) -> None:
    with pytest.raises(MetricInputError, match=message) as info:
        metric(X, Y)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blur": 0.0}, "blur must be a positive"),
        ({"blur": float("nan")}, "blur must be a positive"),
        ({"scaling": 1.0}, "scaling must be"),
        ({"max_iter": 0}, "max_iter and stage_iters must be"),
        ({"stage_iters": 1.5}, "max_iter and stage_iters must be"),
        ({"tol": -1.0}, "tol must be"),
        ({"max_points": 0}, "max_points must be"),
    ],
)
def test_bad_sinkhorn_parameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(MetricInputError, match=message):
        sinkhorn_divergence(np.zeros((2, 1)), np.ones((2, 1)), **kwargs)


# ---------------------------------------------------------------------------------------- properties
@st.composite
def clouds_in_common_dimension(draw: st.DrawFn, count: int) -> list[np.ndarray]:
    d = draw(st.integers(1, 3))
    elements = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
    return [draw(arrays(np.float64, (draw(st.integers(1, 6)), d), elements=elements)) for _ in range(count)]


@settings(max_examples=60)
@given(clouds_in_common_dimension(3))
def test_w1_satisfies_the_triangle_inequality(clouds: list[np.ndarray]) -> None:
    X, Y, Z = clouds
    assert wasserstein1(X, Z) <= wasserstein1(X, Y) + wasserstein1(Y, Z) + 1e-9


@settings(max_examples=60)
@given(clouds_in_common_dimension(2))
def test_w1_is_at_most_w2_and_both_are_symmetric(clouds: list[np.ndarray]) -> None:
    X, Y = clouds
    w1, w2 = wasserstein1(X, Y), wasserstein2(X, Y)
    assert 0.0 <= w1 <= w2 + 1e-9
    assert wasserstein1(Y, X) == pytest.approx(w1, rel=1e-9, abs=1e-12)
    assert wasserstein2(Y, X) == pytest.approx(w2, rel=1e-9, abs=1e-12)


@settings(max_examples=60)
@given(clouds_in_common_dimension(2))
def test_energy_distance_is_nonnegative_and_bounded_by_twice_w1(clouds: list[np.ndarray]) -> None:
    X, Y = clouds
    # 2E|X−Y| − E|X−X'| − E|Y−Y'| ≤ 2 W₁ (couple X and Y optimally and use the triangle inequality)
    e = energy_distance(X, Y)
    assert 0.0 <= e <= 2.0 * wasserstein1(X, Y) + 1e-9


@settings(max_examples=40, deadline=None)
@given(clouds_in_common_dimension(2))
def test_sinkhorn_is_nonnegative_and_symmetric(clouds: list[np.ndarray]) -> None:
    X, Y = clouds
    s = sinkhorn_divergence(X, Y, blur=0.05)
    assert s >= 0.0
    assert sinkhorn_divergence(Y, X, blur=0.05) == pytest.approx(s, rel=1e-6, abs=1e-9)
