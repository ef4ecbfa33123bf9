"""The compiled path (gpa_core/engine/kernel/) against the eager one, stage by stage and whole steps.

Whole runs cannot agree bit for bit: Adam divides each gradient by its own running size, so a
parameter whose gradient is rounding noise moves by ±lr either way. Pieces are compared on the
same inputs (through ``kernel.stages``, the kernel's test-facing surface); whole steps with a
learning rate small enough that this noise stays below tolerance.

The two paths sum in different orders (vector width, FMA, BLAS kernel: all depend on the CPU), so
they are compared within bounds derived from float32 rounding (``tests/tolerances.py``): γ_n for the
longest sum n, times a growth factor stated where it is used. Within the compiled path, where the code
fixes the order, results are compared bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tolerances import assert_close_by_rounding, gamma

from gpa_core import FlowConfig, GPAFlow
from gpa_core.algorithm.discriminator import BatchedAdam, BatchedMLP
from gpa_core.algorithm.divergences import ObjectiveKind, objective, output_activation
from gpa_core.config import ConfigError
from gpa_core.data.datasets import sample
from gpa_core.engine import kernel
from gpa_core.engine.kernel import codes, stages

pytestmark = pytest.mark.skipif(not kernel.ready(), reason=f"kernel not compiled: {kernel.compile_error()}")

KINDS = list(codes.OBJECTIVE_CODES)  # every objective a FlowConfig can ask for, whether or not compiled


def _net(activation: str, seed: int = 0, d: int = 3, hidden: tuple[int, int] = (7, 5)) -> BatchedMLP:
    return BatchedMLP(1, d, hidden, [activation, activation], [seed])


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "softplus", "smooth_relu"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.label)
@pytest.mark.parametrize("shape", [(3, (7, 5)), (2, (32, 64))], ids=["blas-widths", "register-widths"])
def test_forward_objective_and_gradients_match_the_eager_path(
    activation: str, kind: ObjectiveKind, shape: tuple[int, tuple[int, int]]
) -> None:
    assert kind in codes.HANDLED_OBJECTIVES, f"the compiled kernel has no objective {kind} yet"
    d, hidden = shape
    net = _net(activation, d=d, hidden=hidden)
    M, N = 9, 11
    gen = torch.Generator().manual_seed(1)
    Z = torch.randn(1, M + N, d, generator=gen)
    alpha = torch.tensor([3.0])
    with torch.no_grad():
        net.nu.fill_(0.2)
        cache = net.forward(Z)
        ev = objective(kind, cache.phi[:, :M], cache.phi[:, M:], net.nu, alpha)
        net.backward(cache, torch.cat([-ev.d_v_p, -ev.d_v_q], dim=1))
        eager_grad = net.grad[0, :-1].numpy().copy()
        phi, grad_x = net.gradient(Z)
        _, slope = output_activation(kind.f, phi)
        if slope is not None:
            grad_x = grad_x * slope.unsqueeze(-1)
    layout = stages.network(net)
    theta = net.flat[0].numpy().copy()
    z = Z[0].numpy().copy()
    # the longest sum is a layer's fan-in (+ bias) or, for weight gradients and means, the M + N rows;
    # two computations, each chaining D layer products and the objective's exp/log and mean
    close = {"n": max(max(net.widths) + 1, M + N), "dtype": np.float32, "growth": 2 * (net.depth + 2)}
    fwd = stages.forward(theta, layout, z)
    assert_close_by_rounding(fwd.V, cache.phi[0].numpy(), **close, what="φ")
    value, d_nu, gauge, dV = stages.objective(kind, 3.0, np.float32(0.2), fwd.V, M)
    assert_close_by_rounding(value, float(ev.value[0]), **close, what="J")
    assert_close_by_rounding(d_nu, float(ev.d_nu[0]), **close, what="∂J/∂ν")
    assert_close_by_rounding(gauge, float(ev.max_exp_arg[0]), **close, what="max argument of f*")
    grad = stages.backward(theta, layout, fwd, dV)
    assert_close_by_rounding(grad[:-1], eager_grad, **close, what="∂J/∂θ")
    field = stages.field(kind, theta, layout, fwd)
    assert_close_by_rounding(field, grad_x[0].numpy(), **close, what="∇φ")


MATMUL_SHAPES = [(0, 32, 32), (1, 32, 32), (3, 2, 32), (33, 32, 64), (400, 32, 32), (7, 32, 2), (5, 48, 40)]


def _assert_product_close(C: np.ndarray, A: np.ndarray, B: np.ndarray, what: str) -> None:
    """|C − A·B| ≤ 2γ_k (|A|·|B|) entrywise (k the inner dimension): each of the two products — this
    one and NumPy's float64 reference rounded to float32 — is within γ_k |A||B| of the exact one
    (Higham, §3.5) in any order of summation, with or without FMA."""
    k = A.shape[1]
    exact = A.astype(np.float64) @ B.astype(np.float64)
    bound = 2 * gamma(max(k, 1), np.float32) * (np.abs(A).astype(np.float64) @ np.abs(B).astype(np.float64))
    bound += np.abs(exact) * 2.0**-24  # the float32 result's own rounding
    assert np.all(np.abs(C - exact) <= bound), what


@pytest.mark.parametrize("n,k,m", MATMUL_SHAPES)
def test_register_matrix_products_match_numpy(n: int, k: int, m: int) -> None:
    """The 8-wide kernels for 32k result columns, and the BLAS fallback for other widths."""
    rng = np.random.default_rng(n + k + m)
    A = rng.standard_normal((n, k)).astype(np.float32)
    B = rng.standard_normal((k, m)).astype(np.float32)
    Z = rng.standard_normal((n + 2, m)).astype(np.float32)  # pre-activations may have more rows
    C = np.full((n, m), np.nan, dtype=np.float32)
    stages.matmul(A, B, C)
    _assert_product_close(C, A, B, "A·B")
    stages.matmul_relu(A, B, C, Z)
    mask = Z[:n] > 0  # ReLU's derivative: the product where z > 0, exactly 0 elsewhere
    assert np.all(C[~mask] == 0)
    _assert_product_close(np.where(mask, C, A.astype(np.float64) @ B), A, B, "A·B where z > 0")
    bias = rng.standard_normal(m).astype(np.float32)
    post = np.full((n, m), np.nan, dtype=np.float32)
    if stages.matmul_bias_relu(A, B, C, bias, post):
        # the bias as one more term of the sum: [A 1]·[B; bias]
        _assert_product_close(C, np.hstack([A, np.ones((n, 1), np.float32)]), np.vstack([B, bias]), "A·B + b")
        assert np.array_equal(post, np.maximum(C, 0.0))
    else:
        assert m % 32 != 0  # only widths the register kernels do not fit are refused
    G = rng.standard_normal((n, k)).astype(np.float32)
    H = rng.standard_normal((n, m)).astype(np.float32)
    W = np.full((k, m), np.nan, dtype=np.float32)
    stages.matmul_tn(G, H, W)
    _assert_product_close(W, G.T, H, "Gᵀ·H")
    sums = np.full(m, np.nan, dtype=np.float32)
    stages.column_sums(H, sums)
    _assert_product_close(sums[None, :], np.ones((1, n), np.float32), H, "column sums")


@pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning")
def test_register_products_take_strided_views_through_the_fallback() -> None:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((32, 40)).astype(np.float32).T  # 40 × 32, columns not contiguous
    B = rng.standard_normal((32, 32)).astype(np.float32)
    C = np.empty((40, 32), dtype=np.float32)
    stages.matmul(A, B, C)
    _assert_product_close(C, A, B, "A·B")
    W = np.empty((32, 32), dtype=np.float32)
    stages.matmul_tn(A, A[:, ::-1], W)
    _assert_product_close(W, A.T, A[:, ::-1], "Aᵀ·A")


def test_relu_derivative_zeroes_non_finite_products_as_torch_does() -> None:
    """ReLU's derivative is 0 where z ≤ 0 whatever the incoming gradient (∞ · 0 is not NaN here)."""
    A = np.full((4, 1), np.inf, dtype=np.float32)
    B = np.ones((1, 32), dtype=np.float32)
    Z = np.where(np.arange(4 * 32).reshape(4, 32) % 2 == 0, 1.0, -1.0).astype(np.float32)
    C = np.empty((4, 32), dtype=np.float32)
    stages.matmul_relu(A, B, C, Z)
    assert np.array_equal(C, np.where(Z > 0, np.inf, 0.0).astype(np.float32))
    g = np.empty((4, 32), dtype=np.float32)
    stages.relu_outer(g, np.full(4, np.inf, dtype=np.float32), np.ones(32, dtype=np.float32), Z)
    assert np.array_equal(g, C)


def test_adam_matches_torchs_fused_adam() -> None:
    rng = np.random.default_rng(0)
    theta = torch.tensor(rng.standard_normal((1, 40)), dtype=torch.float32)
    ref = theta.clone()
    opt = BatchedAdam(ref, torch.tensor([3e-3]))
    mine, m, v, t = (
        theta[0].numpy().copy(),
        np.zeros((1, 40), np.float32),
        np.zeros((1, 40), np.float32),
        np.zeros(1, np.float32),
    )
    for _ in range(25):
        g = torch.tensor(rng.standard_normal((1, 40)), dtype=torch.float32)
        opt.step(g)
        stages.adam(mine, g[0].numpy(), m, v, 0, t, 3e-3, 0.9, 0.999, 1e-8)
    # no sums: per step the update has about 10 roundings (moments, bias corrections, √, division),
    # each of relative size u on a step of size ≤ lr, plus the rounding of θ + step (u|θ|); both paths
    # do it, so over 25 steps |Δθ| ≤ 2·25·u·(|θ| + 10·lr)
    u = 2.0**-24
    bound = 2 * 25 * u * (np.abs(ref[0].numpy()) + 10 * 3e-3)
    assert np.all(np.abs(mine - ref[0].numpy()) <= bound)
    assert t[0] == 25


@pytest.mark.parametrize("mode", ["spectral", "frobenius"])
@pytest.mark.parametrize("iterations", [1, 3])
def test_projection_matches_the_eager_path(mode: str, iterations: int) -> None:
    net = _net("relu", seed=4)
    theta = net.flat[0].numpy().copy()
    pvec = net.power_flat[0].numpy().copy()
    L = 2.5
    scale = np.float32(L ** (1 / net.depth))
    stages.project(theta, stages.network(net), pvec, mode, scale, iterations)
    net.project(
        torch.tensor([scale]),
        torch.tensor([mode == "spectral"]),
        torch.tensor([mode == "frobenius"]),
        iterations,
    )
    # each norm is a sum over a layer's o·i entries (Frobenius) or, per power iteration, two products
    # of fan-in sums (spectral); the weights are then scaled once: relative error per weight
    # ≤ 2·(1 + 2·iterations)·γ_n with n the largest layer's o·i, for both paths
    n = max(o * i for o, i in zip(net.widths[1:], net.widths[:-1], strict=True))
    close = {"n": n, "dtype": np.float32, "growth": 2 * (1 + 2 * iterations)}
    assert_close_by_rounding(theta, net.flat[0].numpy(), **close, what="projected weights")
    assert_close_by_rounding(pvec, net.power_flat[0].numpy(), **close, what="power-iteration vectors")


CASES = {
    "kl-euler": {},
    "kl-heun-generated": {"solver": "heun"},
    "alpha-softplus": {"f": "alpha", "alpha": 3.0, "activation": "softplus"},
    "reverse_kl-leaky": {"f": "reverse_kl", "activation": "leaky_relu"},
    "js-smooth": {"f": "js", "activation": "smooth_relu"},
    "dv-naive-frobenius-reset": {
        "kl_form": "dv",
        "logsumexp": False,
        "lipschitz": "frobenius",
        "optimizer_state": "reset",
        "init": "he_normal",
    },
    "unregularized": {"L": math.inf},
    "power-3-record-2": {"power_iterations": 3, "record_every": 2, "hidden": (16, 8)},
}


@pytest.mark.parametrize("case", list(CASES))
def test_whole_steps_match_the_eager_path(case: str) -> None:
    """A batch of three members with their own L, Δt and seeds, four steps, both paths."""
    src = sample("gaussian", 40, seed=0, std=0.5)
    tgt = sample("mixture", 50, seed=1, std=0.5)
    gen = sample("gaussian", 7, seed=5) if "generated" in case else None
    out = {}
    for engine in ("eager", "compiled"):
        base = FlowConfig(steps=4, lr=1e-6, engine=engine, **CASES[case])
        L = base.L
        cfgs = [base.replace(seed=s, L=L * f if math.isfinite(L) else L, dt=dt)
                for s, f, dt in ((0, 1.0, 0.5), (1, 3.0, 0.2), (2, 0.5, 1.0))]  # fmt: skip
        flow = GPAFlow(src, tgt, cfgs, generated=gen)
        assert flow.engine == engine
        flow.run()
        out[engine] = flow
    eager, comp = out["eager"], out["compiled"]
    # longest sums: the M + N = 90 rows (gradients, means); per step and path about D + 2 chained
    # sums for each of m_max = 3 inner steps and the particle step; 4 steps, two paths; lr = 1e-6 keeps
    # Adam's ±lr moves on rounding-noise gradients below that
    steps, depth = 4, len(base.hidden) + 1
    close = {"n": 40 + 50, "dtype": np.float32, "growth": 2 * steps * (base.inner_steps + 1) * (depth + 2)}
    assert_close_by_rounding(comp.particles(), eager.particles(), **close, what="particles")
    if gen is not None:
        assert_close_by_rounding(comp.generated(), eager.generated(), **close, what="generated")
    assert np.array_equal(comp.history.step, eager.history.step)
    for name in comp.history.FIELDS:
        pair = getattr(comp.history, name), getattr(eager.history, name)
        assert_close_by_rounding(*pair, **close, what=name)
    np.testing.assert_allclose(comp.t.numpy(), eager.t.numpy())


def test_a_batch_member_runs_exactly_as_it_does_alone() -> None:
    src = sample("gaussian", 30, seed=0, std=0.5)
    tgt = sample("mixture", 30, seed=1, std=0.5)
    cfgs = [
        FlowConfig(steps=12, L=L, dt=dt, f=f, seed=s, solver=solver, engine="compiled")
        for s, (L, dt, f, solver) in enumerate(
            [
                (1.0, 0.5, "kl", "euler"),
                (10.0, 0.1, "alpha", "heun"),
                (0.3, 1.0, "js", "euler"),
                (2.0, 0.2, "kl", "heun"),
            ]
        )
    ]
    batch = GPAFlow(src, tgt, cfgs)
    batch.run()
    for k, cfg in enumerate(cfgs):
        alone = GPAFlow(src, tgt, cfg)
        alone.run()
        assert np.array_equal(alone.particles()[0], batch.particles()[k])
        assert np.array_equal(alone.history.kinetic_energy[:, 0], batch.history.kinetic_energy[:, k])


LANE_CASES = {
    "kl-euler": ({}, 31, 29, 0),
    "dv-heun-generated": ({"kl_form": "dv", "solver": "heun"}, 31, 29, 5),
    "dv-naive-reset": ({"kl_form": "dv", "logsumexp": False, "optimizer_state": "reset"}, 20, 21, 0),
    "alpha-one-particle": ({"f": "alpha", "alpha": 2.0}, 1, 9, 1),
}


@pytest.mark.parametrize("case", list(LANE_CASES))
def test_a_run_is_bit_for_bit_the_same_on_any_number_of_threads(case: str) -> None:
    """A member's rows are split into fixed lanes; one thread runs both lanes or two threads run
    one each (with barriers), and every number comes out the same — including a lane with no
    particles (M = 1) and the Donsker–Varadhan forms, whose normaliser spans both lanes."""
    extra, M, N, G = LANE_CASES[case]
    src = sample("gaussian", M, seed=0, std=0.5)
    tgt = sample("mixture", N, seed=1, std=0.5)
    gen = sample("gaussian", G, seed=5) if G else None
    runs = []
    for threads in (1, 2, 3):
        flow = GPAFlow(src, tgt, FlowConfig(steps=15, seed=3, engine="compiled", **extra), generated=gen)
        flow.kernel_threads = threads
        flow.threads_per_member = threads
        flow.step(7)
        flow.step(8)  # two calls: the second starts from the first one's state on every thread
        runs.append(flow)
    first = runs[0]
    for other in runs[1:]:
        assert np.array_equal(other.particles(), first.particles())
        if gen is not None:
            assert np.array_equal(other.generated(), first.generated())
        assert np.array_equal(other.net.flat.numpy(), first.net.flat.numpy())
        assert np.array_equal(other.optimizer.v.numpy(), first.optimizer.v.numpy())
        for name in first.history.FIELDS:
            assert np.array_equal(getattr(other.history, name), getattr(first.history, name), equal_nan=True)
    assert first.summary()[0].steps == 15


def test_select_continues_on_the_compiled_path_exactly() -> None:
    src = sample("gaussian", 30, seed=0, std=0.5)
    tgt = sample("mixture", 30, seed=1, std=0.5)
    cfgs = [FlowConfig(steps=20, L=L, seed=s, engine="compiled") for s, L in enumerate((1.0, 2.0, 5.0))]
    full = GPAFlow(src, tgt, cfgs)
    full.step(8)
    part = full.select([0, 2])
    assert part.engine == "compiled"
    full.step(8)
    part.step(8)
    assert np.array_equal(part.particles(), full.particles()[[0, 2]])


def test_engine_choice_is_explained() -> None:
    src, tgt = sample("gaussian", 10, seed=0), sample("gaussian", 10, seed=1)
    assert GPAFlow(src, tgt, FlowConfig(engine="eager")).engine == "eager"
    assert GPAFlow(src, tgt, FlowConfig(engine="auto")).engine == "compiled"
    f64 = GPAFlow(src, tgt, FlowConfig(dtype="float64"))
    assert f64.engine == "eager" and "float64" in f64.engine_reason
    penalty = GPAFlow(src, tgt, FlowConfig(lipschitz="penalty"))
    assert penalty.engine == "eager" and "penalty" in penalty.engine_reason
    with pytest.raises(ConfigError, match="float64"):
        GPAFlow(src, tgt, FlowConfig(dtype="float64", engine="compiled"))
    with pytest.raises(ConfigError, match="engine"):
        FlowConfig(engine="fast")


def test_auto_goes_eagerly_while_the_kernel_is_still_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "wait_briefly", lambda seconds: False)
    flow = GPAFlow(sample("gaussian", 10, seed=0), sample("gaussian", 10, seed=1), FlowConfig(steps=3))
    assert flow.engine == "eager" and "still compiling" in flow.engine_reason
    flow.run()
    assert flow.summary()[0].steps == 3
