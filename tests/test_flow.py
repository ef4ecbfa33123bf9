"""GPAFlow: closed forms, the bound (1.3), the speed limit, solver orders, convergence, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gpa_core import FlowConfig, GPAFlow, authors_numerics, divergence
from gpa_core.algorithm.solvers import advance, euler_step, heun_step
from gpa_core.config import ConfigError
from gpa_core.data.datasets import sample
from gpa_core.ot import wasserstein1

torch.set_num_threads(1)

#: Both paths of GPAFlow (gpa_core/engine/kernel/ for "compiled"); conftest compiles the kernel up front.
ENGINES = ("eager", "compiled")


@pytest.mark.parametrize("f", ["kl", "alpha"])
@pytest.mark.parametrize("L", [0.5, 2.0])
def test_point_masses_give_L_times_distance(f: str, L: float) -> None:
    """P = δ_0, Q = δ_a: D_f^{Γ_L}(P‖Q) = L|a| for KL and α (paper §1, via (1.1))."""
    a = np.array([3.0, 4.0])
    est = divergence(np.zeros((8, 2)), np.tile(a, (8, 1)), f=f, L=L, lr=1e-2, max_iterations=1500, tol=1e-5)
    assert est == pytest.approx(L * 5.0, rel=0.03)
    assert est <= L * 5.0 * (1 + 1e-3)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), shift=st.floats(0.0, 4.0), L=st.sampled_from([0.3, 1.0, 3.0]))
def test_estimate_lies_between_zero_and_L_times_w1(seed: int, shift: float, L: float) -> None:
    """Inequality (1.3): 0 ≤ D_f^{Γ_L}(P‖Q) ≤ L·W₁(P, Q), W₁ exact from POT."""
    rng = np.random.default_rng(seed)
    P = rng.normal(0, 1, (60, 2))
    Q = rng.normal(shift, 0.7, (50, 2))
    est = divergence(P, Q, f="kl", L=L, lr=5e-3, max_iterations=600)
    w1 = wasserstein1(P, Q)
    assert -1e-3 <= est <= L * w1 * (1 + 1e-3) + 1e-6


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=8, deadline=None)
@given(L=st.floats(0.05, 20.0), dt=st.floats(0.01, 2.0), seed=st.integers(0, 100))
def test_no_particle_moves_more_than_L_dt_per_euler_step(L: float, dt: float, seed: int, engine: str) -> None:
    src = sample("gaussian", 64, seed=seed, std=0.5)
    tgt = sample("mixture", 64, seed=seed + 1)
    flow = GPAFlow(src, tgt, FlowConfig(L=L, dt=dt, steps=6, lr=1e-2, seed=seed, engine=engine))
    for _ in range(6):
        before = flow.particles()
        flow.step(1)
        moved = np.linalg.norm(flow.particles() - before, axis=-1)
        assert moved.max() <= L * dt * (1 + 1e-3)
    assert np.nanmax(flow.history.max_speed) <= L * (1 + 1e-3)


def test_solver_orders_on_a_fixed_smooth_field() -> None:
    """dy/dt = -y + sin(t-free) field: Euler error ∝ Δt, Heun error ∝ Δt² (Remark 3.2)."""

    def velocity(y: torch.Tensor, stage: int) -> torch.Tensor:
        return -y + 0.5 * torch.sin(y[..., [1, 0]])

    y0 = torch.tensor([[[1.0, -0.5]]], dtype=torch.float64)

    def solve(stepper, dt: float, T: float = 1.0) -> torch.Tensor:
        y = y0.clone()
        for _ in range(round(T / dt)):
            y = stepper(y, velocity, dt)
        return y

    ref = solve(heun_step, 1e-4)
    errs = {
        name: [float((solve(s, dt) - ref).norm()) for dt in (0.1, 0.05, 0.025)]
        for name, s in (("euler", euler_step), ("heun", heun_step))
    }
    euler_order = [math.log2(a / b) for a, b in zip(errs["euler"], errs["euler"][1:], strict=False)]
    heun_order = [math.log2(a / b) for a, b in zip(errs["heun"], errs["heun"][1:], strict=False)]
    assert all(0.85 < o < 1.15 for o in euler_order), euler_order
    assert all(1.85 < o < 2.15 for o in heun_order), heun_order
    # advance() with a per-member mask reproduces both
    dt = torch.full((2, 1, 1), 0.1, dtype=torch.float64)
    y = y0.expand(2, 1, 2).clone()
    out, _ = advance(y, velocity, dt, torch.tensor([False, True]))
    assert torch.allclose(out[0], euler_step(y0, velocity, 0.1)[0])
    assert torch.allclose(out[1], heun_step(y0, velocity, 0.1)[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_seeded_run_repeats_exactly(engine: str) -> None:
    src, tgt = sample("gaussian", 50, seed=0, std=0.5), sample("mixture", 50, seed=1)
    runs = []
    for _ in range(2):
        flow = GPAFlow(src, tgt, FlowConfig(steps=15, solver="heun", seed=3, engine=engine))
        flow.run()
        runs.append((flow.particles(), flow.history.kinetic_energy.copy()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    other = GPAFlow(src, tgt, FlowConfig(steps=15, solver="heun", seed=4, engine=engine))
    other.run()
    assert not np.array_equal(other.particles(), runs[0][0])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_four_well_mixture_converges_with_L_1(engine: str) -> None:
    """Paper Fig. 2–3: from N(0, 0.5²I) to the 4-well mixture with L = 1 the kinetic energy falls by
    orders of magnitude from its early peak, every well receives particles, particles end near wells."""
    src = sample("gaussian", 200, seed=0, std=0.5)
    tgt = sample("mixture", 200, seed=1, std=0.5)
    flow = GPAFlow(src, tgt, FlowConfig(L=1.0, dt=0.5, steps=1500, lr=1e-3, seed=0, engine=engine))
    flow.run()
    ke = flow.history.kinetic_energy[:, 0]
    assert flow.status(0) != "diverged"
    peak = ke[:300].max()
    late = np.median(ke[-100:])
    assert late < peak / 100, (peak, late)
    centres = np.array([[0, 0], [4, 0], [0, 4], [4, 4]])
    dist = np.linalg.norm(flow.particles()[0][:, None] - centres[None], axis=-1)
    counts = np.bincount(dist.argmin(1), minlength=4)
    assert (counts >= 25).all(), counts
    assert dist.min(1).mean() < 0.8


def _overflowing_setup(engine: str) -> tuple[np.ndarray, np.ndarray, FlowConfig]:
    """KL in the authors' naive Donsker–Varadhan form, target 200 away: training pushes |φ(X)|
    past float32's exp range (≈ 88.7) within a few steps, deterministically."""
    src = sample("gaussian", 40, seed=0, std=0.5)
    tgt = sample("gaussian", 40, seed=1, std=0.5, mean=200.0)
    cfg = authors_numerics(FlowConfig(L=1.0, dt=0.5, steps=400, lr=5e-2, seed=0, engine=engine))
    return src, tgt, cfg


@pytest.mark.parametrize("engine", ENGINES)
def test_overflow_is_reported_as_diverged_with_time_and_last_finite_particles(engine: str) -> None:
    src, tgt, cfg = _overflowing_setup(engine)
    flow = GPAFlow(src, tgt, cfg)
    flow.run()
    s = flow.summary()[0]
    assert s.status == "diverged"
    assert s.diverged_at is not None and s.diverged_at == pytest.approx(s.steps * cfg.dt)
    assert "overflow" in s.reason
    kept = flow.particles()[0]
    assert np.isfinite(kept).all()
    # the kept particles are exactly the state before the failing step
    replay = GPAFlow(src, tgt, cfg.replace(steps=s.steps))
    replay.run()
    assert np.array_equal(replay.particles()[0], kept)
    assert replay.summary()[0].status != "diverged"


@pytest.mark.parametrize("engine", ENGINES)
def test_log_sum_exp_keeps_the_same_case_finite_for_longer(engine: str) -> None:
    src, tgt, cfg = _overflowing_setup(engine)
    naive = GPAFlow(src, tgt, cfg)
    naive.run()
    safe = GPAFlow(src, tgt, cfg.replace(logsumexp=True, steps=naive.summary()[0].steps + 5))
    safe.run()
    assert safe.summary()[0].status != "diverged"


@pytest.mark.parametrize("engine", ENGINES)
def test_live_reconfigure_keeps_particles_and_changes_the_step(engine: str) -> None:
    src, tgt = sample("gaussian", 30, seed=0), sample("mixture", 30, seed=1)
    flow = GPAFlow(src, tgt, FlowConfig(steps=100, dt=0.1, engine=engine))
    flow.step(3)
    before = flow.particles()
    flow.reconfigure(flow.configs[0].replace(dt=0.2, L=2.0, lr=5e-3, f="alpha", alpha=3.0, inner_steps=2))
    assert np.array_equal(flow.particles(), before)
    t_before = float(flow.t[0])
    flow.step(1)
    assert float(flow.t[0]) == pytest.approx(t_before + 0.2)
    with pytest.raises(ConfigError, match="hidden"):
        flow.reconfigure(flow.configs[0].replace(hidden=(8,)))


@pytest.mark.parametrize("f", ["reverse_kl", "js"])
@pytest.mark.parametrize("engine", ENGINES)
def test_bounded_domain_divergences_run_and_transport(f: str, engine: str) -> None:
    src = sample("gaussian", 60, seed=0, std=0.5)
    tgt = sample("gaussian", 60, seed=1, std=0.5, mean=3.0)
    flow = GPAFlow(src, tgt, FlowConfig(f=f, steps=60, lr=5e-3, engine=engine))
    flow.run()
    assert flow.summary()[0].status != "diverged"
    assert flow.particles()[0].mean(0).mean() > 0.3  # moved toward the target


def test_gradient_penalty_mode_trains_and_moves() -> None:
    src, tgt = sample("gaussian", 40, seed=0), sample("gaussian", 40, seed=1, mean=2.0)
    flow = GPAFlow(src, tgt, FlowConfig(lipschitz="penalty", steps=20, lr=5e-3))
    flow.run()
    assert flow.summary()[0].status != "diverged"
    assert np.nanmax(flow.history.max_speed) < 3.0


@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("engine", ENGINES)
def test_generated_particles_follow_the_field_without_training(engine: str, solver: str) -> None:
    src, tgt = sample("gaussian", 40, seed=0), sample("gaussian", 40, seed=1, mean=3.0)
    gen = sample("gaussian", 25, seed=9)
    cfg = FlowConfig(steps=20, engine=engine, solver=solver)
    with_gen = GPAFlow(src, tgt, cfg, generated=gen)
    without = GPAFlow(src, tgt, cfg)
    with_gen.run()
    without.run()
    # training unaffected, bit for bit: on both paths the particles' rows are computed in passes of
    # the same shapes with or without generated points (the generated points get a pass of their own)
    assert np.array_equal(with_gen.particles(), without.particles())
    for name in with_gen.history.FIELDS:
        assert np.array_equal(getattr(with_gen.history, name), getattr(without.history, name)), name
    moved = with_gen.generated()[0] - gen
    assert (moved.mean(0) > 0.2).all()


def test_unregularized_flow_is_allowed() -> None:
    flow = GPAFlow(
        sample("gaussian", 30, seed=0), sample("mixture", 30, seed=1), FlowConfig(L=math.inf, steps=5)
    )
    flow.run()
    assert flow.n == 5


def test_bad_data_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match="same dimension"):
        GPAFlow(np.zeros((5, 2)), np.zeros((5, 3)), FlowConfig())
    bad = np.zeros((5, 2))
    bad[0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        GPAFlow(bad, np.zeros((5, 2)), FlowConfig())
