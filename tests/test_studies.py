"""Tests of gpa_core.studies: grid construction, outcome classification, batch planning, the batched
runner (compaction, worker threads, cancel), heavy-tail cases and jobs — and the engine property that
a batched ensemble equals its members run one at a time. (The playground links: tests/test_query.py.)"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerances import assert_close_by_rounding

from gpa_core import FlowConfig, GPAFlow, authors_numerics
from gpa_core.algorithm.divergences import FLOAT32_EXP_LIMIT
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.studies.batches import (
    STRATEGIES,
    EnsembleError,
    EnsembleStats,
    MemberRun,
    _concat_history,
    data_scale,
    member_step_flops,
    plan_batches,
    run_members,
    sample_pair,
    select_members,
    steps_for,
)
from gpa_core.studies.compare import (
    MAX_COMPARE,
    CompareRun,
    CompareSpec,
    MetricTracker,
    compare_presets,
)
from gpa_core.studies.heavy_tails import (
    GAUSSIAN_SIDE,
    HEAVY_TAIL_CASES,
    HeavyTailSettings,
    heavy_tail_members,
    overflow_diagnostics,
    run_heavy_tails,
)
from gpa_core.studies.outcome import ConvergenceCriteria, Outcome, classify, quality
from gpa_core.studies.stability import StabilityResult, log_spaced, run_stability, stability_grid
from ui.session import keep_widget_state

torch.set_num_threads(1)

TINY = FlowConfig(dtype="float64", hidden=(8, 8), inner_steps=2, device="cpu")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return sample_pair("gaussian:mean=0,std=0.5", "mixture", 24, 30, data_seed=0)


# ------------------------------------------------------------------------------------------- grid
def test_log_spaced_endpoints_and_ratios() -> None:
    values = log_spaced(0.01, 1.0, 8)
    assert len(values) == 8
    assert values[0] == pytest.approx(0.01) and values[-1] == pytest.approx(1.0)
    ratios = np.diff(np.log(values))
    assert np.allclose(ratios, ratios[0])
    assert log_spaced(3.0, 5.0, 1) == (3.0,)


@pytest.mark.parametrize(
    ("low", "high", "n", "match"),
    [
        (0.1, 1.0, 0, "from 1 to 8"),
        (0.1, 1.0, 9, "from 1 to 8"),
        (-1.0, 1.0, 3, "positive"),
        (1.0, 0.1, 3, "below the lower end"),
        (0.0, 1.0, 3, "positive"),
        ("a", 1.0, 3, "two positive numbers"),
    ],
)
def test_log_spaced_rejects_bad_input(low: object, high: object, n: int, match: str) -> None:
    with pytest.raises(EnsembleError, match=match):
        log_spaced(low, high, n, name="L")  # type: ignore[arg-type]


@given(
    low=st.floats(1e-4, 1e2),
    factor=st.floats(1.0, 1e4),
    n=st.integers(1, 8),
)
def test_log_spaced_property(low: float, factor: float, n: int) -> None:
    high = low * factor
    values = log_spaced(low, high, n)
    assert len(values) == n
    assert all(low * (1 - 1e-9) <= v <= high * (1 + 1e-9) for v in values)
    assert list(values) == sorted(values)


@given(T=st.floats(0.01, 1e4), dt=st.floats(1e-3, 10.0))
def test_steps_for_rounds_T_over_dt(T: float, dt: float) -> None:
    steps = steps_for(T, dt)
    assert steps >= 1
    assert steps == max(1, round(T / dt))
    assert abs(steps * dt - T) <= dt / 2 + 1e-9 or steps == 1


def test_stability_grid_cells_and_steps() -> None:
    grid = stability_grid(
        TINY.replace(seed=3), T=10.0, L_range=(0.1, 100.0), dt_range=(0.01, 1.0), n_L=4, n_dt=3
    )
    assert grid.shape == (4, 3)
    assert len(grid.cells) == 12
    for cell in grid.cells:
        assert cell is grid.cell(cell.i_L, cell.i_dt)
        assert cell.L == pytest.approx(grid.Ls[cell.i_L])
        assert cell.dt == pytest.approx(grid.dts[cell.i_dt])
        assert cell.steps == round(10.0 / cell.dt)
        assert cell.L_dt == pytest.approx(cell.L * cell.dt)
        # every other field comes from the base
        assert cell.config.replace(L=TINY.L, dt=TINY.dt, steps=TINY.steps) == TINY.replace(seed=3)
    assert grid.member_steps == sum(round(10.0 / dt) for dt in grid.dts) * 4


def test_stability_grid_benchmark_size() -> None:
    """The benchmark grid (8 × 8, Δt in [0.01, 1], T = 100) is about 165,000 member-steps."""
    grid = stability_grid(FlowConfig(), T=100.0)
    assert grid.shape == (8, 8)
    assert 160_000 < grid.member_steps < 170_000


def test_stability_grid_explicit_values_and_errors() -> None:
    grid = stability_grid(TINY, T=1.0, Ls=[1.0, math.inf], dts=[0.5])
    assert grid.shape == (2, 1)
    assert math.isinf(grid.cell(1, 0).L)
    with pytest.raises(EnsembleError, match="1 to 8"):
        stability_grid(TINY, Ls=[float(i + 1) for i in range(9)], dts=[0.1])
    with pytest.raises(EnsembleError, match="distinct"):
        stability_grid(TINY, Ls=[1.0, 1.0], dts=[0.1])
    with pytest.raises(EnsembleError, match="horizon"):
        stability_grid(TINY, T=0.0, n_L=2, n_dt=2)
    with pytest.raises(EnsembleError, match="L values"):
        stability_grid(TINY, Ls=[-1.0], dts=[0.1])


def test_member_step_flops_matches_issue_estimate() -> None:
    flops = member_step_flops(FlowConfig(), 200, 200, 2)
    assert 15e6 < flops < 20e6  # "~17 MFLOP" per member-step
    assert member_step_flops(FlowConfig(solver="heun"), 200, 200, 2) == pytest.approx(2 * flops)


# ------------------------------------------------------------------------------------- outcomes
def test_classify_diverged_wins() -> None:
    t = np.linspace(0, 10, 11)
    assert classify(t, np.zeros(11), diverged_at=3.0, horizon=10, scale=1.0) is Outcome.DIVERGED


def test_classify_converged_and_moving() -> None:
    t = np.linspace(0, 100, 201)
    decaying = np.exp(-t)  # speed e^{-t/2}: stopped long before the end
    assert classify(t, decaying, diverged_at=None, horizon=100, scale=1.0) is Outcome.CONVERGED
    steady = np.full_like(t, 0.01)  # speed 0.1 for the last 10 time units: moves 1 ≫ 0.05
    assert classify(t, steady, diverged_at=None, horizon=100, scale=1.0) is Outcome.MOVING
    # a slow crawl that never slowed down is still moving, even if it is short against a large target
    assert classify(t, steady, diverged_at=None, horizon=100, scale=100.0) is Outcome.MOVING
    loose = ConvergenceCriteria(slowdown=1.0)
    assert (
        classify(t, steady, diverged_at=None, horizon=100, scale=100.0, criteria=loose) is Outcome.CONVERGED
    )
    # slowed down a thousandfold but still moving 0.3 per 10 time units: moving for a unit-size target
    slowing = np.where(t < 50, 1.0, 1e-3)
    assert classify(t, slowing, diverged_at=None, horizon=100, scale=1.0) is Outcome.MOVING
    assert classify(t, slowing, diverged_at=None, horizon=100, scale=10.0) is Outcome.CONVERGED


def test_classify_uses_only_the_tail_window() -> None:
    t = np.linspace(0, 100, 101)
    ke = np.where(t < 85, 1.0, 1e-8)  # fast until t = 85, then stopped: the last 10 % is quiet
    assert classify(t, ke, diverged_at=None, horizon=100, scale=1.0) is Outcome.CONVERGED
    strict = ConvergenceCriteria(window=0.5, abs_tol=0.0)
    assert classify(t, ke, diverged_at=None, horizon=100, scale=1.0, criteria=strict) is Outcome.MOVING


def test_classify_no_data_and_abs_tol() -> None:
    nan = np.full(5, np.nan)
    assert classify(nan, nan, diverged_at=None, horizon=1, scale=1.0) is Outcome.MOVING
    t = np.arange(5.0)
    ke = np.array([1e3, 1e3, 1e3, 1e3, 1e-9])  # the engine's own test: last KE below abs_tol
    assert classify(t, ke, diverged_at=None, horizon=4, scale=1.0) is Outcome.CONVERGED


@given(
    speed=st.floats(1e-6, 10.0),
    scale=st.floats(0.1, 100.0),
    horizon=st.floats(1.0, 1000.0),
)
def test_classify_threshold_property(speed: float, scale: float, horizon: float) -> None:
    """Constant speed v over the window w·T converges exactly when v·w·T ≤ tol·scale."""
    t = np.linspace(0, horizon, 50)
    ke = np.full_like(t, speed**2)
    crit = ConvergenceCriteria(window=0.1, move_tol=0.05, slowdown=1.0, abs_tol=0.0)
    out = classify(t, ke, diverged_at=None, horizon=horizon, scale=scale, criteria=crit)
    moved = speed * 0.1 * horizon
    if moved < 0.05 * scale * (1 - 1e-9):
        assert out is Outcome.CONVERGED
    elif moved > 0.05 * scale * (1 + 1e-9):
        assert out is Outcome.MOVING


def test_criteria_validation() -> None:
    with pytest.raises(EnsembleError, match="window"):
        ConvergenceCriteria(window=0.0)
    with pytest.raises(EnsembleError, match="move_tol"):
        ConvergenceCriteria(move_tol=-1)
    with pytest.raises(EnsembleError, match="slowdown"):
        ConvergenceCriteria(slowdown=0.0)


# ------------------------------------------------------------------------------------ planning
def _configs(steps: list[int], **changes: object) -> list[FlowConfig]:
    return [TINY.replace(steps=s, **changes) for s in steps]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.integers(1, 50), min_size=1, max_size=40),
    strategy=st.sampled_from(STRATEGIES),
    max_batch=st.integers(1, 16),
    workers=st.integers(1, 3),
)
def test_plan_batches_partition(steps: list[int], strategy: str, max_batch: int, workers: int) -> None:
    configs = _configs(steps)
    batches = plan_batches(configs, strategy=strategy, max_batch=max_batch, workers=workers)  # type: ignore[arg-type]
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(steps)))  # every member exactly once
    assert all(1 <= len(b) <= max_batch for b in batches)
    work = [sum(steps[i] for i in b) for b in batches]
    assert work == sorted(work, reverse=True)  # longest first
    if strategy == "sequential":
        assert all(len(b) == 1 for b in batches)
    if strategy == "by_steps":
        assert all(len({steps[i] for i in b}) == 1 for b in batches)


def test_plan_packed_balances_work_between_workers() -> None:
    grid = stability_grid(FlowConfig(), T=100.0)
    batches = plan_batches(grid.configs, strategy="packed", max_batch=64, workers=2)
    assert len(batches) == 2
    work = [sum(grid.configs[i].steps for i in b) for b in batches]
    assert max(work) / min(work) < 1.1


def test_plan_separates_members_that_cannot_share_a_batch() -> None:
    configs = [TINY, TINY.replace(init="he_normal"), TINY.replace(L=3.0), TINY.replace(hidden=(4,))]
    batches = plan_batches(configs, strategy="packed")
    together = [sorted(b) for b in batches]
    assert [0, 2] in together and [1] in together and [3] in together
    grouped = plan_batches(configs[:1] * 4, strategy="packed", group=lambda i: i % 2)
    assert sorted(sorted(b) for b in grouped) == [[0, 2], [1, 3]]


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(EnsembleError, match="strategy"):
        plan_batches([TINY], strategy="fastest")  # type: ignore[arg-type]
    with pytest.raises(EnsembleError, match="max_batch"):
        plan_batches([TINY], max_batch=0)
    with pytest.raises(EnsembleError, match="workers"):
        plan_batches([TINY], workers=0)


# ----------------------------------------------------------------------- batched equals sequential
def _history_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for key in (
        "step",
        "time",
        "kinetic_energy",
        "divergence",
        "max_speed",
        "lipschitz_bound",
        "max_exp_arg",
    ):
        assert a[key].shape == b[key].shape, key
        out[key] = float(np.max(np.abs(a[key] - b[key]))) if a[key].size else 0.0
    return out


def _alone(
    source: np.ndarray, target: np.ndarray, config: FlowConfig
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    flow = GPAFlow(source, target, config)
    flow.run()
    return flow.particles()[0], flow.history.member(0)


def _batched(source: np.ndarray, target: np.ndarray, configs: list[FlowConfig]) -> GPAFlow:
    flow = GPAFlow(source, target, configs)
    flow.run()
    return flow


BATCH_CASES = {
    # members differing in L, Δt, f, α, seed (one solver): the ensemble must not couple them
    "L-dt-f-alpha-seed": [
        TINY.replace(L=1.0, dt=0.5, steps=10),
        TINY.replace(L=10.0, dt=0.1, f="alpha", alpha=3.0, steps=10, seed=4),
        TINY.replace(L=math.inf, dt=0.2, steps=10, seed=1),
        TINY.replace(L=2.0, dt=0.3, steps=6, seed=2, lipschitz="frobenius"),
    ],
    # Euler and Heun members in one batch
    "mixed-solvers": [
        TINY.replace(L=1.0, dt=0.5, steps=8),
        TINY.replace(L=2.0, dt=0.3, solver="heun", steps=8, seed=1),
    ],
}


@pytest.mark.parametrize("case", sorted(BATCH_CASES))
def test_batched_ensemble_equals_members_run_alone(data: tuple[np.ndarray, np.ndarray], case: str) -> None:
    """Each member of a batched ensemble follows the same trajectory (particles and every history
    field) as the same run made alone — float64, so only round-off may differ."""
    source, target = data
    configs = BATCH_CASES[case]
    batch = _batched(source, target, configs)
    failures = []
    for k, config in enumerate(configs):
        particles, history = _alone(source, target, config)
        hb = batch.history.member(k)
        active = np.isfinite(hb["time"])
        hb = {key: v[active] for key, v in hb.items()}
        diffs = _history_diff(hb, history)
        diffs["particles"] = float(np.max(np.abs(batch.particles()[k] - particles)))
        bad = {key: v for key, v in diffs.items() if not v <= 1e-10}
        if bad:
            failures.append(f"member {k} ({config.L=}, {config.lipschitz=}, {config.solver=}): {bad}")
    assert not failures, "batched ≠ sequential:\n" + "\n".join(failures)


def test_batched_members_with_own_data_equal_runs_alone() -> None:
    """Members with their own source/target samples (the heavy-tail sweep) equal their runs alone."""
    cfg = TINY.replace(L=math.inf, lipschitz="none", steps=6)  # no projection: isolates the data path
    pairs = [sample_pair("gaussian:mean=0", "mixture", 20, 25, data_seed=s) for s in range(3)]
    source = np.stack([p[0] for p in pairs])
    target = np.stack([p[1] for p in pairs])
    batch = _batched(source, target, [cfg.replace(seed=s) for s in range(3)])
    for k in range(3):
        particles, _ = _alone(source[k], target[k], cfg.replace(seed=k))
        assert np.max(np.abs(batch.particles()[k] - particles)) <= 1e-10


# ------------------------------------------------------------------------------- running members
SELECT_CASES = {
    "paper": TINY,
    "heun-alpha": TINY.replace(solver="heun", f="alpha", alpha=3.0),
    "authors": authors_numerics(TINY),
    "js-frobenius": TINY.replace(f="js", lipschitz="frobenius"),
}


# Eagerly, a member's numbers depend on its batch at rounding level: Torch computes element-wise
# functions in SIMD blocks with a scalar tail (which elements fall in the tail depends on K·n and the
# vector width) and MKL picks its batched-product kernel by shape. Bound: the longest sums have
# n = M + N = 54 terms; a step chains about 12 of them per inner step and layer pass (2 inner steps ×
# 3 layers × forward and backward, the objective, the particle step) and may amplify an earlier
# difference by at most 1 + LΔt (particles move at most LΔt per unit of field difference), so over
# s steps growth = 12·s·(1 + LΔt)^s; float64.
EAGER_BATCH_TERMS = 24 + 30


def _eager_growth(config: FlowConfig) -> float:
    return 12 * config.steps * (1 + config.L * config.dt) ** config.steps


def _same_member(a: np.ndarray, b: np.ndarray, engine: str, what: str, config: FlowConfig) -> None:
    """Bit for bit on the compiled path (each member is computed alone, in an order the code fixes),
    within the rounding bound above on the eager one."""
    if engine == "compiled":
        assert np.array_equal(a, b, equal_nan=True), what
    else:
        growth = _eager_growth(config)
        assert_close_by_rounding(a, b, n=EAGER_BATCH_TERMS, dtype=np.float64, growth=growth, what=what)


def _engine_config(base: FlowConfig, engine: str) -> FlowConfig:
    """The compiled kernel is float32 only; eager runs keep TINY's float64."""
    if engine == "compiled":
        return base.replace(engine="compiled", dtype="float32")
    return base.replace(engine="eager")


@pytest.mark.parametrize("engine", ["compiled", "eager"])
@pytest.mark.parametrize("case", sorted(SELECT_CASES))
def test_select_members_continues_exactly(
    data: tuple[np.ndarray, np.ndarray], case: str, engine: str
) -> None:
    """Dropping members from a batch (compaction) hands each remaining member on whole (particles,
    networks, ν, Adam state, power vectors, time): its run continues as in the full batch."""
    source, target = data
    base = _engine_config(SELECT_CASES[case], engine)
    configs = [base.replace(L=L, dt=0.2, steps=12, seed=s) for s, L in enumerate((1.0, 5.0, 0.5))]
    ref = _batched(source, target, configs)
    flow = GPAFlow(source, target, configs)
    assert flow.engine == engine
    flow.step(5)
    part = flow.history.member(2)
    sub = select_members(flow, [2, 0])
    assert sub.K == 2 and sub.n == 5 and sub.engine == engine
    sub.run()
    _same_member(sub.particles()[0], ref.particles()[2], engine, "particles of member 2", configs[2])
    _same_member(sub.particles()[1], ref.particles()[0], engine, "particles of member 0", configs[0])
    joined = _concat_history([part, sub.history.member(0)])
    for key in ("kinetic_energy", "divergence", "max_speed", "lipschitz_bound", "max_exp_arg", "time"):
        _same_member(joined[key], ref.history.member(2)[key], engine, key, configs[2])
    with pytest.raises(EnsembleError, match="member indices"):
        select_members(flow, [7])


@pytest.mark.parametrize("engine", ["compiled", "eager"])
def test_run_members_strategies_agree_and_account(data: tuple[np.ndarray, np.ndarray], engine: str) -> None:
    """Every plan (packed or by steps, compacted or not, one or two workers) gives each member the same
    run: bit for bit on the compiled path, within the eager rounding bound above."""
    source, target = data
    grid = stability_grid(_engine_config(TINY, engine), T=1.2, Ls=[0.5, 5.0], dts=[0.1, 0.3, 0.6])
    steps = [c.steps for c in grid.cells]
    results = {}
    for key in [("packed", False, 1), ("packed", True, 1), ("packed", True, 2), ("by_steps", True, 1)]:
        strategy, compact, workers = key
        progress: list[tuple[int, int]] = []
        finished: list[int] = []
        runs, stats = run_members(
            grid.configs,
            source,
            target,
            strategy=strategy,  # type: ignore[arg-type]
            compact=compact,
            workers=workers,
            chunk=4,
            on_progress=lambda d, t, p=progress: p.append((d, t)),
            on_member=lambda r, f=finished: f.append(r.index),
        )
        assert all(r is not None for r in runs)
        assert sorted(finished) == list(range(len(steps)))
        assert progress[-1] == (sum(steps), sum(steps))
        assert [d for d, _ in progress] == sorted(d for d, _ in progress) or workers > 1
        assert stats.useful == sum(steps)
        if compact:
            assert stats.computed == stats.useful and stats.waste == 0.0
        else:
            assert stats.computed > stats.useful
        for run in runs:
            assert run is not None
            assert run.summary.index == run.index
            assert len(run.history["time"]) == run.config.steps
            assert run.history["step"].tolist() == list(range(run.config.steps))
            assert run.summary.steps == run.config.steps
            assert run.particles.shape == (source.shape[0], 2)
        results[key] = runs
    ref = results[("packed", False, 1)]
    for key, runs in results.items():
        for a, b in zip(runs, ref, strict=True):
            assert a is not None and b is not None
            _same_member(a.particles, b.particles, engine, f"{key} particles", b.config)
            divergences = a.history["divergence"], b.history["divergence"]
            _same_member(*divergences, engine, f"{key} divergence", b.config)


def test_run_members_cancel(data: tuple[np.ndarray, np.ndarray]) -> None:
    source, target = data
    event = threading.Event()
    event.set()
    runs, stats = run_members([TINY.replace(steps=5)] * 2, source, target, cancel=event)
    assert runs == [None, None] and stats.cancelled


def test_run_members_rejects_mismatched_data(data: tuple[np.ndarray, np.ndarray]) -> None:
    source, target = data
    with pytest.raises(EnsembleError, match="member samples"):
        run_members([TINY] * 2, np.stack([source] * 3), target)
    with pytest.raises(EnsembleError, match="at least one"):
        run_members([], source, target)


def test_run_stability_tiny_grid(data: tuple[np.ndarray, np.ndarray]) -> None:
    source, target = data
    grid = stability_grid(TINY, T=1.0, Ls=[0.5, 5.0], dts=[0.25, 0.5])
    seen: list[int] = []
    result = run_stability(grid, source, target, on_cell=lambda c: seen.append(c.cell.index))
    assert result.complete and sorted(seen) == [0, 1, 2, 3]
    assert sum(result.counts().values()) == 4
    w2 = result.matrix("w2")
    assert w2.shape == (2, 2) and np.all(np.isfinite(w2)) and np.all(w2 > 0)
    outcome = result.matrix("outcome")
    assert set(np.unique(outcome)) <= {0.0, 1.0, 2.0}
    assert np.all(np.isnan(result.matrix("diverged_at")))  # nothing diverges here
    # scale of the target is the quantity classify() uses
    assert result.scale == pytest.approx(data_scale(target))


def test_overflowing_run_is_classified_diverged(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Unregularized KL in the authors' naive Donsker–Varadhan form on data 50× wider: e^φ overflows
    float32 at the first step (φ(X) ≈ 190 > 88.7)."""
    source, target = data
    cfg = TINY.replace(kl_form="dv", logsumexp=False, dtype="float32", lr=0.5)
    grid = stability_grid(cfg, T=200.0, Ls=[math.inf, 1.0], dts=[100.0])
    result = run_stability(grid, source * 50, target * 50)
    cell = result.cells[0]
    assert cell is not None and cell.run.summary.status == "diverged"
    assert cell.outcome is Outcome.DIVERGED and cell.diverged_at == 0.0
    assert result.matrix("diverged_at")[0, 0] == 0.0
    assert result.matrix("outcome")[0, 0] == 2.0
    assert "overflow" in cell.run.summary.reason
    diag = overflow_diagnostics(cell.run, source * 50, target * 50)
    assert diag.peak_exp_arg > diag.limit
    regularized = result.cells[1]
    assert regularized is not None and regularized.outcome is not Outcome.DIVERGED


# ----------------------------------------------------------------------------------- heavy tails
def test_heavy_tail_cases_match_table_1() -> None:
    cases = HEAVY_TAIL_CASES
    assert [c.number for c in cases] == list(range(1, 9))
    assert all(c.heavy_is_source for c in cases[:4]) and not any(c.heavy_is_source for c in cases[4:])
    assert {c.number for c in cases if c.paper_kl.startswith("diverged")} == {3, 4, 8}
    assert cases[7].paper_kl_diverged_at == 202.0 and cases[2].paper_kl_diverged_at == 0.0
    assert all(not c.paper_alpha2.startswith("diverged") for c in cases)
    assert cases[0].target_spec == cases[4].source_spec == GAUSSIAN_SIDE
    assert cases[3].source_spec == "student_t:nu=0.5"


def test_heavy_tail_members_enumerate_the_sweep() -> None:
    s = HeavyTailSettings(cases=(3, 8), seeds=3, extra_alpha=10.0, numerics=("paper", "authors"))
    members = heavy_tail_members(s)
    assert len(members) == 2 * 2 * 3 * 3
    assert [m.index for m in members] == list(range(len(members)))
    kl_authors = [m for m in members if m.variant == "KL" and m.numerics == "authors"]
    assert all(m.config.kl_form == "dv" and not m.config.logsumexp for m in kl_authors)
    assert all(m.config.lipschitz == "frobenius" and m.config.init == "he_normal" for m in kl_authors)
    paper = [m for m in members if m.numerics == "paper"]
    assert all(m.config.lipschitz == "spectral" and m.config.L == 1.0 for m in paper)
    assert {m.config.alpha for m in members if m.variant == "α = 10"} == {10.0}
    assert all(m.config.steps == 500 for m in members)
    assert {m.data_seed for m in members} == {0, 2, 4}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"cases": (9,)}, "cases"),
        ({"cases": ()}, "cases"),
        ({"seeds": 0}, "seeds"),
        ({"numerics": ("fast",)}, "numerics"),
        ({"extra_alpha": 1.0}, "α"),
        ({"M": 1}, "M"),
        ({"T": -1.0}, "horizon"),
    ],
)
def test_heavy_tail_settings_validation(changes: dict[str, object], match: str) -> None:
    with pytest.raises(EnsembleError, match=match):
        HeavyTailSettings(**changes)  # type: ignore[arg-type]


def test_run_heavy_tails_tiny() -> None:
    base = FlowConfig(hidden=(8,), inner_steps=1, device="cpu")
    s = HeavyTailSettings(
        cases=(4, 8), seeds=2, numerics=("paper", "authors"), T=2.0, dt=0.5, M=16, N=16, base=base
    )
    seen = []
    result = run_heavy_tails(s, on_member=lambda m, r, d: seen.append(m.index))
    assert sorted(seen) == list(range(len(result.members)))
    rows = result.rows()
    assert len(rows) == 2 * 2 * 2  # cases × variants × numerics
    for row in rows:
        assert row["done"] == row["seeds"] == 2
        assert 0 <= row["diverged"] <= 2 and len(row["diverged_at"]) == row["diverged"]
        case = next(c for c in HEAVY_TAIL_CASES if c.number == row["case"])
        assert row["paper"] == (case.paper_kl if row["f"] == "KL" else case.paper_alpha2)
    for m, diag in zip(result.members, result.diagnostics, strict=True):
        assert diag is not None
        assert diag.limit == pytest.approx(FLOAT32_EXP_LIMIT)
        assert len(diag.farthest_source) == 3 and diag.farthest_source[0] >= diag.farthest_source[1]
        if m.case.number == 4:  # the Student-t(0.5) source reaches far out
            assert diag.farthest_source[0] > 20


def test_overflow_diagnostics_reads_the_gauge() -> None:
    history = {
        "time": np.array([0.0, 0.5, 1.0]),
        "max_exp_arg": np.array([3.0, 95.0, np.nan]),
        "kinetic_energy": np.ones(3),
    }
    summary = GPAFlow(np.zeros((2, 2)), np.ones((2, 2)), TINY.replace(steps=1)).summary()[0]
    run = MemberRun(0, FlowConfig(), summary, history, np.zeros((2, 2)), 1.0)
    source = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 100.0]])
    diag = overflow_diagnostics(run, source, source[:2])
    assert diag.peak_exp_arg == 95.0 and diag.peak_time == 0.5 and diag.last_exp_arg == 95.0
    assert diag.headroom == pytest.approx(FLOAT32_EXP_LIMIT - 95.0) and diag.headroom < 0
    assert diag.farthest_source == (100.0, 5.0, 1.0)
    assert diag.farthest_target == (5.0, 0.0)


# ---------------------------------------------------------------------------- compare and metrics
def test_compare_presets_come_from_the_shared_preset_files() -> None:
    presets = compare_presets()
    assert "fig2-3-mixture" in presets and "fig4-heavy-tails" in presets
    fig23 = presets["fig2-3-mixture"]
    assert [r.label for r in fig23.runs] == ["L = 1", "L = 10", "L = 100", "L = ∞"]
    assert math.isinf(fig23.runs[3].config.L) and fig23.T == 250.0 and fig23.spec.M == fig23.spec.N == 200
    spec = fig23.spec
    source, target = sample_pair(spec.source_spec, spec.target_spec, 5, 5, data_seed=spec.data_seed)
    assert source.shape == target.shape == (5, 2)
    fig4 = presets["fig4-heavy-tails"]
    assert [(r.config.f, r.config.alpha) for r in fig4.runs] == [("kl", 2.0), ("alpha", 2.0), ("alpha", 10.0)]
    assert fig4.spec.target_spec.startswith("student_t:nu=0.5")
    for preset in presets.values():
        assert 2 <= len(preset.runs) <= MAX_COMPARE  # and CompareSpec checked that they share one batch


def test_compare_spec_validation() -> None:
    run = CompareRun("a", TINY)
    with pytest.raises(EnsembleError, match="1 to 8"):
        CompareSpec("gaussian", "mixture", 10, 10, tuple([run] * 9))
    with pytest.raises(EnsembleError, match="share one batch"):
        CompareSpec("gaussian", "mixture", 10, 10, (run, CompareRun("b", TINY.replace(hidden=(4,)))))


def test_metric_tracker_measures_every_few_steps(data: tuple[np.ndarray, np.ndarray]) -> None:
    source, target = data
    target = target[: source.shape[0]]
    tracker = MetricTracker(2, ("w2",), every=10)
    particles = np.stack([source, target])
    measured = [tracker.update(n, [0.1 * n, 0.1 * n], particles, target) for n in range(0, 35, 5)]
    assert [len(m) for m in measured] == [2, 0, 2, 0, 2, 0, 2]
    assert tracker.series[0]["step"] == [0, 10, 20, 30]
    assert tracker.latest(1) == pytest.approx(0.0, abs=1e-9)  # target to itself
    assert tracker.latest(0) > 0.5
    # a finished member is measured once more, then never again
    assert tracker.update(31, [3.1, 3.1], particles, target, finished=[True, False]) == [0]
    assert tracker.update(50, [5.0, 5.0], particles, target, finished=[True, False]) == [1]


def test_quality_never_raises_for_solver_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpa_core import ot as metrics

    def boom(*args: object, **kwargs: object) -> float:
        raise RuntimeError("solver failed")

    monkeypatch.setattr(metrics, "sinkhorn_divergence", boom)
    out = quality(np.zeros((3, 2)), np.ones((3, 2)), ("w2", "sinkhorn"))
    assert out["w2"] == pytest.approx(math.sqrt(2)) and math.isnan(out["sinkhorn"])
    with pytest.raises(EnsembleError, match="unknown metric"):
        quality(np.zeros((3, 2)), np.ones((3, 2)), ("w7",))


# ------------------------------------------------------------------------------------------- jobs
def test_ensemble_job_progress_partial_result() -> None:
    def work(ctl: JobControl) -> int:
        for i in range(5):
            ctl.report(i + 1, 5, f"step {i}")
            ctl.publish(i)
        return 42

    job = EnsembleJob(work, threads=None).start()
    assert job.join(10)
    assert job.result == 42 and job.partial == 4 and job.fraction == 1.0 and job.error is None
    assert job.control.message == "step 4"
    with pytest.raises(RuntimeError, match="already started"):
        job.start()


def test_ensemble_job_cancel_and_error() -> None:
    started = threading.Event()

    def slow(ctl: JobControl) -> None:
        started.set()
        while True:
            ctl.check()
            time.sleep(0.01)

    job = EnsembleJob(slow, threads=None).start()
    assert started.wait(5)
    job.cancel()
    assert job.join(5) and job.cancelled and job.error is None and job.result is None

    def broken(ctl: JobControl) -> None:
        raise ValueError("bad grid")

    failed = EnsembleJob(broken, threads=None).start()
    assert failed.join(5)
    assert isinstance(failed.error, ValueError) and "bad grid" in failed.error_text


# ---------------------------------------------------------------------------------------- figures
def test_stability_heatmap_cells_lines_and_labels() -> None:
    from gpa_core.plots import studies as plots

    Ls, dts = [0.1, 1.0, math.inf], [0.01, 0.1]
    quality = np.array([[1.0, 2.0], [0.5, np.nan], [3.0, 4.0]])
    outcome = np.array([[0, 1], [0, 2], [1, np.nan]])
    diverged = np.array([[np.nan, np.nan], [np.nan, 12.5], [np.nan, np.nan]])
    fig = plots.stability_heatmap(Ls, dts, quality, outcome, diverged, lines=(0.01, 0.1, 1.0), selected=3)
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (3, 2)
    text = np.asarray(heat.text)
    assert text[0, 0].startswith("✓") and text[0, 1].startswith("→")
    assert text[1, 1] == "✗ t=12.5" and text[2, 1] == "…"
    cells = next(t for t in fig.data if t.name == "cells")
    assert list(cells.customdata) == list(range(6))
    assert list(fig.layout.yaxis.ticktext) == ["0.1", "1", "∞"]
    lines = [t for t in fig.data if t.type == "scatter" and t.mode == "lines"]
    assert 1 <= len(lines) <= 3
    for line in lines:  # log L + log Δt is constant along a line of constant LΔt
        total = np.asarray(line.x) + np.asarray(line.y)
        assert np.allclose(total, total[0])


def test_stability_figure_from_partial_result(data: tuple[np.ndarray, np.ndarray]) -> None:
    from gpa_core.plots import studies as plots

    grid = stability_grid(TINY, T=0.5, Ls=[1.0, 2.0], dts=[0.25, 0.5])
    partial = StabilityResult(grid, [None] * 4, EnsembleStats(), 1.0)
    fig = plots.stability_figure(partial)
    assert (np.asarray(fig.data[0].text) == "…").all()
    table = plots.stability_table(partial)
    assert list(table["outcome"]) == ["…"] * 4 and list(table["steps"]) == [2, 1, 2, 1]


def test_particle_grid_and_curves() -> None:
    from gpa_core.plots import studies as plots

    rng = np.random.default_rng(0)
    particles = rng.normal(size=(3, 10, 2))
    target = rng.normal(size=(12, 2)) + 5
    fig = plots.particle_grid(particles, target, ["a", "b", "c"], cols=2)
    assert len(fig.data) == 6
    lo, hi = fig.layout.xaxis.range
    assert lo < min(particles[..., 0].min(), target[:, 0].min()) and hi > target[:, 0].max()
    assert fig.layout.xaxis2.range == fig.layout.xaxis.range  # shared axes
    histories = [
        {"time": np.arange(4.0), "kinetic_energy": np.array([1.0, -1.0, 0.5, 0.25])},
        {"time": np.arange(2.0), "kinetic_energy": np.array([2.0, 1.0])},
    ]
    fig = plots.curves_figure(histories, ["x", "y"], "kinetic_energy", diverged_at=[None, 1.0])
    assert np.isnan(fig.data[0].y[1])  # a negative value is left out on the log axis
    marker = fig.data[-1]
    assert marker.mode == "markers" and list(marker.x) == [1.0] and "diverged at t = 1" in marker.name
    assert fig.layout.yaxis.type == "log"


def test_number_formats() -> None:
    from gpa_core.plots import studies as plots

    assert plots.order_of_magnitude(3.2e-4) == "O(10⁻³)"
    assert plots.order_of_magnitude(7e6) == "O(10⁷)"
    assert plots.order_of_magnitude(1.0) == "O(10⁰)"
    assert plots.fmt(None) == "—" and plots.fmt(math.nan) == "—" and plots.fmt(math.inf) == "∞"
    assert plots.fmt(1.2e-7) == "1.20e-07" and plots.fmt(0.0123) == "0.0123"


def test_keep_widget_state() -> None:
    class Recorder(dict):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            self.writes: list[str] = []

        def __setitem__(self, key: str, value: object) -> None:
            self.writes.append(key)
            super().__setitem__(key, value)

    state = Recorder({"a": 5})
    keep_widget_state(state, {"a": 1, "b": 2, "c": None})
    assert dict(state) == {"a": 5, "b": 2}  # existing values kept, defaults filled, None: keep only
    assert state.writes == ["a", "b"]  # "a" re-assigned: Streamlit then keeps it across pages


def test_a_member_stopped_by_the_rule_ends_stopped_and_counts_its_steps(
    data: tuple[np.ndarray, np.ndarray],
) -> None:
    """A member stopped by D ≤ ε (the stop rule of §4) is harvested as "stopped" at its stopping step
    (it read "running" once), and the steps it took count as useful work (they counted as none)."""
    source, target = data
    base = TINY.replace(engine="eager", steps=300, lr=1e-2)
    configs = [base.replace(stop_divergence=0.5), base]
    for compact in (True, False):
        runs, stats = run_members(configs, source, target, chunk=25, compact=compact)
        stopped, full = runs
        assert stopped is not None and full is not None
        assert stopped.summary.status == "stopped" and "≤ ε = 0.5" in stopped.summary.reason
        assert 0 < stopped.summary.steps < 300 and full.summary.steps == 300
        assert stats.useful == stopped.summary.steps + 300
