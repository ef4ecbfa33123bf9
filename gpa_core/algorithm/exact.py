"""The exact D_f^{Γ_L}(P‖Q) between two samples: the supremum of eq. (1.4) over *all* L-Lipschitz φ.

For empirical measures P = (1/M) Σᵢ δ_{yᵢ} and Q = (1/N) Σⱼ δ_{xⱼ} the objective of (1.4) reads φ only
at the M + N sample points, and any values there that are L-Lipschitz extend to an L-Lipschitz φ on
ℝ^d (McShane–Whitney). So the supremum is a finite convex program in u = (φ(y₁), …, φ(y_M),
φ(x₁), …, φ(x_N)) and ν, maximising the same functional the app's network maximises
(:mod:`gpa_core.algorithm.divergences`, eqs. (1.4) and (3.2)):

  KL, α        J(u, ν) = (1/M) Σᵢ uᵢ − ν − (1/N) Σⱼ f*(u_{M+j} − ν)        ν trained, as in eq. (3.2)
  reverse KL   J(u)    = (1/M) Σᵢ uᵢ − (1/N) Σⱼ f*(u_{M+j}),  u ≤ Y_MAX     ν absorbed; φ < Y_MAX
  JS           the same, Y_MAX = ½ log 2                                  everywhere (output_activation)

with f*(y) = e^{y−1} (KL), ((α−1)y₊)^{α/(α−1)}/α + 1/(α(α−1)) (α > 1), −1 − log(−y) (reverse KL),
−½ log(2 − e^{2y}) (JS): a concave objective (−f* is concave, written for CVXPY with exp, an exact
power cone of a positive part, and log; :func:`_program` writes it about f'(1) so that no O(1)
constants cancel at small L). For KL and α, J(u + c, ν + c) = J(u, ν): the program fixes
Σⱼ u_{M+j} = 0. The app's network reaches at most this value: its φ is one L-Lipschitz function.

**Which Lipschitz constraints.** The program only needs the M·N constraints
u_i − u_{M+j} ≤ L |yᵢ − xⱼ| between a point of P and a point of Q, not all (M+N)² pairs. Proof: J
increases in the P-values and does not increase in the Q-values (f* is non-decreasing), at fixed ν.
Given u satisfying the M·N constraints, let w(z) = maxᵢ (uᵢ − L|yᵢ − z|) on ℝ^d. It is L-Lipschitz
(a maximum of L-Lipschitz functions), w(yᵢ) ≥ uᵢ (take the i-th term), w(xⱼ) ≤ u_{M+j} (every term
is, by the constraints), and w ≤ max uᵢ ≤ Y_MAX where there is a bound; so w is feasible for the
all-pairs program with J(w) ≥ J(u). Both programs therefore have the same supremum, and ``w`` is how
a solution is made exactly L-Lipschitz on all M + N points before it is returned
(:func:`lipschitz_repair`). Of the M·N constraints few are active at the optimum: they are generated
(start with each point's nearest neighbours on the other side, solve, add the most violated, repeat
until none is), which is exact once no constraint is violated. In one dimension the constraints
between consecutive points of the sorted union imply all others (|a − c| = |a − b| + |b − c| on a
line), M + N − 1 of them: that program is solved directly.

**A certificate.** The Lagrange dual of the program is the infimal convolution of eq. (1.1):

  D_f^{Γ_L}(P‖Q) = min { (1/N) Σⱼ f(N wⱼ) + Y_MAX Σᵢ σᵢ + L·W₁(P, η) :  η = Σⱼ wⱼ δ_{xⱼ} + Σᵢ σᵢ δ_{yᵢ},
                          w ≥ 0, σ ≥ 0, Σ w + Σ σ = 1 }

(mass on Q's points costs the f-divergence, mass left on P's points costs f'(∞) = Y_MAX per unit —
+∞ for KL and α, so σ = 0 there — and moving mass costs L·W₁, W₁ ≤ Σᵢⱼ πᵢⱼ|yᵢ − xⱼ| for any plan π
from P to η). Every such η bounds the supremum from above (weak duality: Fenchel–Young and the
Lipschitz bound). The solver's multipliers give one: the plan π of the M·N constraints (d ≥ 2), or
the weights their stationarity implies with W₁ on the line (d = 1); failing that, the weights of the
optimality conditions, wⱼ = (f*)'(φ(xⱼ) − ν)/N, with W₁ by a transport linear program
(:func:`_stationary_bound`). J at the repaired φ is a lower bound. :class:`ExactDivergence` carries
both, and :func:`exact_divergence` accepts a solution only when they agree within ``rtol``.

Reach: 150 + 150 points in 0.05–0.5 s, 500 + 500 in 0.2–3 s (one core, Clarabel; small L is the slow
end: more constraints are active). α up to about 50 is solved reliably; nearer α = 100 the power cone
of exponent α/(α−1) → 1 is ill-conditioned and :class:`ExactSolveError` may be raised.

Arrays: P (M, d), Q (N, d), the same d, float64 inside. Pure NumPy/Torch/CVXPY; no Streamlit.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gpa_core.algorithm.divergences import F_NAMES, Y_MAX, f_prime_at_one, f_star, f_star_prime, optimal_nu
from gpa_core.config import ConfigError

#: The largest M·N (pairs of a point of P and one of Q) solved without being asked.
MAX_PAIRS: int = 250_000
LIMIT_NOTE = "about 500 + 500 points, a few seconds"
#: Each point's nearest neighbours on the other side whose constraints start constraint generation.
NEIGHBOURS: int = 8
#: Rounds of constraint generation before an attempt gives up.
MAX_ROUNDS: int = 60
#: The attempts of ``solver="auto"``, in order, until one certifies its value: (CVXPY solver name,
#: objective scaled by 1/(L·mean|yᵢ − xⱼ|) or not, solver settings). At small L the program is close to
#: the (degenerate) W₁ linear program and an interior-point method may stall; a shorter step or the
#: other scaling gets past it, each attempt a fraction of a second at 150 + 150 points. SCS
#: (first-order, slower to high accuracy) is the last resort.
ATTEMPTS: tuple[tuple[str, bool, dict[str, Any]], ...] = (
    ("CLARABEL", True, {}),
    ("CLARABEL", True, {"max_step_fraction": 0.9}),
    ("CLARABEL", False, {"max_step_fraction": 0.9}),
    ("CLARABEL", True, {"max_step_fraction": 0.8}),
    ("CLARABEL", False, {}),
    ("SCS", True, {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 100_000, "time_limit_secs": 30.0}),
)
SOLVERS: tuple[str, ...] = ("auto", "clarabel", "scs")


class ExactTooLarge(ConfigError):
    """P and Q together need more Lipschitz constraints than ``max_pairs``: subsample them."""


class ExactSolveError(RuntimeError):
    """No solver reached a certified value (lower and upper bound within ``rtol``)."""


@dataclass(frozen=True)
class ExactDivergence:
    """The result of :func:`exact_divergence`. ``value`` is J of eq. (1.4) at an L-Lipschitz φ whose
    values on the samples are ``phi_p`` (M,) and ``phi_q`` (N,) with shift ``nu`` (0 where ν is not
    trained): a lower bound of the supremum; ``upper`` is the dual (1.1) at the solver's
    multipliers, an upper bound. ``float(result)`` is ``value``."""

    value: float
    upper: float
    phi_p: np.ndarray = field(repr=False)
    phi_q: np.ndarray = field(repr=False)
    nu: float
    f: str
    L: float
    alpha: float | None
    M: int
    N: int
    constraints: int
    rounds: int
    solver: str
    status: str
    seconds: float

    @property
    def gap(self) -> float:
        """(upper − value) / max(|value|, |upper|, 1e-12): the relative certified gap (≥ 0)."""
        return (self.upper - self.value) / max(abs(self.value), abs(self.upper), 1e-12)

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        """The scalars, for JSON (``L`` = ∞ never occurs: the exact program needs a finite L)."""
        return {
            "divergence": self.value,
            "upper_bound": self.upper,
            "gap": self.gap,
            "f": self.f,
            "alpha": self.alpha,
            "L": self.L,
            "M": self.M,
            "N": self.N,
            "constraints": self.constraints,
            "rounds": self.rounds,
            "solver": self.solver,
            "status": self.status,
            "seconds": self.seconds,
        }


# ============================================================================================ inputs
def _as_sample(name: str, X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ConfigError(f"{name} must be a non-empty (n, d) array; got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return X


def _distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """|aᵢ − bⱼ| (len(A), len(B)), float64, from differences (exact zeros for equal points)."""
    out = np.empty((len(A), len(B)))
    for start in range(0, len(A), 256):
        diff = A[start : start + 256, None, :] - B[None, :, :]
        out[start : start + 256] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def subsample(X: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most ``n`` rows of X (n_rows, d), drawn without replacement with ``seed`` (X itself if it
    has no more): how to bring a large sample within :data:`MAX_PAIRS`."""
    X = np.asarray(X)
    if len(X) <= n:
        return X
    idx = np.sort(np.random.default_rng(seed).choice(len(X), size=n, replace=False))
    return X[idx]


def points_within(max_pairs: int, M: int, N: int) -> tuple[int, int]:
    """Sample sizes (m, n) ≤ (M, N) with m·n ≤ max_pairs: the smaller sample kept whole if it fits
    beside at least as many points of the larger, otherwise both ⌊√max_pairs⌋."""
    side = math.isqrt(max_pairs)
    if M * N <= max_pairs:
        return M, N
    if min(M, N) <= side:
        return (M, max_pairs // M) if M <= N else (max_pairs // N, N)
    return side, side


# ======================================================================================== functional
def objective_value(f: str, phi_p: np.ndarray, phi_q: np.ndarray, alpha: float) -> tuple[float, float]:
    """(J, ν*) of eq. (1.4) at the sample values φ(yᵢ) (M,), φ(xⱼ) (N,), in float64 with the app's own
    f* and ν* (:func:`~gpa_core.algorithm.divergences.optimal_nu`); ν* = 0 for reverse KL and JS,
    whose φ must stay below Y_MAX (J = −∞ where it does not)."""
    p = torch.as_tensor(phi_p, dtype=torch.float64)
    q = torch.as_tensor(phi_q, dtype=torch.float64)
    a = torch.tensor(alpha, dtype=torch.float64)
    if f in ("kl", "alpha"):
        # KL: the closed form; α: bisection, run until the bracket is two adjacent floats
        nu = optimal_nu(f, q.unsqueeze(0), a.unsqueeze(0), iterations=200)[0]
        return float(p.mean() - nu - f_star(f, q - nu, a).mean()), float(nu)
    if float(p.max()) > Y_MAX[f]:
        return -math.inf, 0.0
    return float(p.mean() - f_star(f, q, a).mean()), 0.0


def f_generator(f: str, x: np.ndarray, alpha: float) -> np.ndarray:
    """f(x) for x ≥ 0 (NumPy, float64; f(0) = +∞ for reverse KL), the dual's integrand."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):  # a huge α-power is +∞: the bound is then useless, not wrong
        return _f_generator(f, x, alpha)


def _f_generator(f: str, x: np.ndarray, alpha: float) -> np.ndarray:
    positive = np.where(x > 0, x, 1.0)
    xlogx = np.where(x > 0, x * np.log(positive), 0.0)
    if f == "kl":
        return xlogx
    if f == "alpha":
        return (x**alpha - 1.0) / (alpha * (alpha - 1.0))
    if f == "reverse_kl":
        return np.where(x > 0, -np.log(positive), math.inf)
    if f == "js":
        return 0.5 * (xlogx - (1.0 + x) * np.log((1.0 + x) / 2.0))
    raise ConfigError(f"unknown f {f!r}; known: {', '.join(F_NAMES)}")


def dual_value(f: str, w: np.ndarray, sigma: np.ndarray, transport: float, L: float, alpha: float) -> float:
    """The dual objective of eq. (1.1) for η = Σⱼ wⱼ δ_{xⱼ} + Σᵢ σᵢ δ_{yᵢ} (w (N,), σ (M,), non-negative,
    total mass 1) and a transport cost ``transport`` ≥ W₁(P, η): an upper bound of D_f^{Γ_L}(P‖Q)."""
    N = len(w)
    value = float(f_generator(f, N * w, alpha).mean()) + L * transport
    if f in ("reverse_kl", "js"):
        return value + Y_MAX[f] * float(sigma.sum())
    return value if float(sigma.sum()) == 0.0 else math.inf


def _plan_bound(f: str, multipliers: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(w, σ, Σ πᵢⱼ|yᵢ − xⱼ|) from the multipliers of the M·N constraints (M, N), made an exact plan:
    π ≥ 0 with row sums 1/M (KL, α), or at most 1/M with the rest left in σ (reverse KL, JS)."""
    M, N = multipliers.shape
    pi = np.maximum(multipliers, 0.0)
    rows = pi.sum(axis=1)
    if f in ("kl", "alpha"):
        pi[rows <= 0] = 1.0 / N  # a row the solver left empty: spread it (this only loosens the bound)
        pi /= M * pi.sum(axis=1, keepdims=True)
        sigma = np.zeros(M)
    else:
        over = rows > 1.0 / M
        pi[over] /= (M * rows[over])[:, None]
        sigma = np.maximum(1.0 / M - pi.sum(axis=1), 0.0)
    return pi.sum(axis=0), sigma, float((pi * D).sum())


def _line_bound(
    f: str, y: np.ndarray, x: np.ndarray, w: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(w, σ, W₁(P, η)) on the line (d = 1): the weights w (N,) and σ (M,) the multipliers imply, made
    non-negative with total mass 1 (σ = 0 for KL and α), and W₁ exactly, as ∫|F_P − F_η|."""
    M = len(y)
    w = np.maximum(w, 0.0)
    sigma = np.maximum(sigma, 0.0) if f in ("reverse_kl", "js") else np.zeros(M)
    total = w.sum() + sigma.sum()
    w, sigma = w / total, sigma / total
    z = np.r_[y, x]
    order = np.argsort(z, kind="stable")
    cumulative = np.cumsum(np.r_[1.0 / M - sigma, -w][order])[:-1]
    return w, sigma, float(np.sum(np.abs(cumulative) * np.diff(z[order])))


def lipschitz_repair(
    phi_p: np.ndarray, phi_q: np.ndarray, D_pq: np.ndarray, D_pp: np.ndarray, L: float, cap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Values that are exactly L-Lipschitz on all M + N points and no worse for J (module docstring):
    first φ(yᵢ) ← min(cap, minⱼ φ(xⱼ) + L|yᵢ − xⱼ|) (the McShane extension from Q), then
    w(z) = maxᵢ (φ(yᵢ) − L|yᵢ − z|) at every point z. D_pq (M, N), D_pp (M, M): the distances."""
    p = np.minimum(cap, (phi_q[None, :] + L * D_pq).min(axis=1))
    return (p[:, None] - L * D_pp).max(axis=0), (p[:, None] - L * D_pq).max(axis=0)


# ========================================================================================== program
def _program(
    f: str, A: Any, b: np.ndarray, M: int, N: int, alpha: float, scale: float
) -> tuple[Any, Any, Any, Any, Any]:
    """The CVXPY problem of the module docstring with the Lipschitz constraints A u ≤ b (A sparse,
    (k, M + N)), its objective multiplied by ``scale``; returns (problem, u, μ, the Lipschitz constraint,
    the bound on P's values or None), where φ = u + :func:`offset` and μ (ν = μ − y₀) is None for
    reverse KL and JS.

    Written about y₀ = f'(1), where (f*)'(y₀) = 1: f*(y₀ + s) = y₀ + s + r(s) with r ≥ 0 convex,
    r(0) = r'(0) = 0, so that J = (1/M) Σᵢ uᵢ − (1/N) Σⱼ u_{M+j} − (1/N) Σⱼ r(u_{M+j} − μ) with
    ν = μ − y₀ (KL, α) or μ = 0 and u = φ − y₀ (reverse KL, JS). The same functional as eq. (1.4),
    without its O(1) constants that cancel: at small L every term is O(L), and the solver's accuracy
    is relative to the value itself. r ≤ t is a cone constraint per point of Q:
      KL          e^s ≤ 1 + s + t
      α           ((1 + (α−1)s)₊)^{α/(α−1)} ≤ 1 + α(s + t)    (an exact power cone)
      reverse KL  log(1 − s) ≥ −(s + t)
      JS          log(2 − e^{2s}) ≥ −2(s + t)"""
    import cvxpy as cp

    u = cp.Variable(M + N)
    t = cp.Variable(N)
    lipschitz = A @ u <= b
    constraints = [lipschitz]
    mu = bound = None
    if f in ("kl", "alpha"):
        mu = cp.Variable()  # ν trained as in eq. (3.2); J(φ + c, ν + c) = J(φ, ν): the gauge Σ φ(xⱼ) = 0
        constraints.append(cp.sum(u[M:]) == 0)
        s = u[M:] - mu
    else:  # ν absorbed, φ ≤ Y_MAX at P's points too (output_activation)
        s = u[M:]
        bound = u[:M] <= Y_MAX[f] - float(f_prime_at_one(f))
        constraints.append(bound)
    if f == "kl":
        constraints.append(cp.exp(s) <= 1.0 + s + t)
    elif f == "alpha":
        power = cp.power(cp.pos(1.0 + (alpha - 1.0) * s), alpha / (alpha - 1.0), approx=False)
        constraints.append(power <= 1.0 + alpha * (s + t))
    elif f == "reverse_kl":
        constraints.append(cp.log(1.0 - s) >= -(s + t))
    else:
        constraints.append(cp.log(2.0 - cp.exp(2.0 * s)) >= -2.0 * (s + t))
    objective = cp.sum(u[:M]) / M - cp.sum(u[M:]) / N - cp.sum(t) / N
    problem = cp.Problem(cp.Maximize(scale * objective), constraints)
    return problem, u, mu, lipschitz, bound


def offset(f: str, alpha: float) -> float:
    """φ − u in :func:`_program`: y₀ = f'(1) for reverse KL and JS (whose u is centred), 0 for KL and α."""
    return 0.0 if f in ("kl", "alpha") else float(f_prime_at_one(f, alpha))


def _rows(i: np.ndarray, j: np.ndarray, n: int) -> Any:
    """The sparse (k, n) matrix of the differences u_i − u_j."""
    import scipy.sparse as sp

    k = len(i)
    r = np.arange(k)
    return sp.csr_matrix((np.r_[np.ones(k), -np.ones(k)], (np.r_[r, r], np.r_[i, j])), shape=(k, n))


def _initial_pairs(D: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """The starting constraint set (M, N) bool: each yᵢ with its k nearest xⱼ and each xⱼ with its k
    nearest yᵢ, so that every point is bounded by some constraint."""
    M, N = D.shape
    active = np.zeros((M, N), dtype=bool)
    kq, kp = min(k, N), min(k, M)
    np.put_along_axis(active, np.argpartition(D, kq - 1, axis=1)[:, :kq], True, axis=1)
    np.put_along_axis(active, np.argpartition(D, kp - 1, axis=0)[:kp, :], True, axis=0)
    return active


def _solve(problem: Any, name: str, settings: dict[str, Any]) -> str | None:
    """Run one solver; None on success, else why not (the caller tries the next attempt)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "solution may be inaccurate": the certificate judges
            problem.solve(solver=name, **settings)
    except Exception as exc:  # a solver that stops without a solution
        return type(exc).__name__
    return None if problem.variables()[0].value is not None else str(problem.status)


def exact_divergence(
    P: Any,
    Q: Any,
    *,
    f: str = "kl",
    L: float = 1.0,
    alpha: float = 2.0,
    solver: str = "auto",
    max_pairs: int = MAX_PAIRS,
    rtol: float = 1e-5,
    time_limit: float = 120.0,
) -> ExactDivergence:
    """D_f^{Γ_L}(P‖Q) of eq. (1.4) over all L-Lipschitz φ, for samples P (M, d) and Q (N, d).

    Solves the convex program of the module docstring (by constraint generation for d ≥ 2, on the
    sorted union for d = 1). ``solver``: ``auto`` runs :data:`ATTEMPTS` in turn, ``clarabel`` or
    ``scs`` only that solver's, until one attempt's value is certified: the dual bound of eq. (1.1)
    is within ``rtol`` (relative, with an absolute floor of 1e-9) of J at the repaired, exactly
    L-Lipschitz φ; no new solve starts after ``time_limit`` seconds. Raises :class:`ExactTooLarge`
    (a ``ConfigError``) when M·N > ``max_pairs``, with how to subsample; :class:`ExactSolveError`
    when no attempt certifies its value."""
    P = _as_sample("P", P)
    Q = _as_sample("Q", Q)
    if P.shape[1] != Q.shape[1]:
        raise ConfigError(f"P and Q must have the same dimension: {P.shape[1]} vs {Q.shape[1]}")
    if f not in F_NAMES:
        raise ConfigError(f"unknown f {f!r}; known: {', '.join(F_NAMES)}")
    if solver not in SOLVERS:
        raise ConfigError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    L = float(L)
    if not (L > 0 and math.isfinite(L)):
        raise ConfigError(
            f"the exact divergence needs a finite L > 0, got {L}: without a Lipschitz bound the supremum "
            "between two samples is infinite unless P's points all lie among Q's"
        )
    alpha = float(alpha)
    if f == "alpha" and not alpha > 1.0:
        raise ConfigError(f"alpha must be > 1 for the α-divergence, got {alpha}")
    M, N = len(P), len(Q)
    if M * N > max_pairs:
        m, n = points_within(max_pairs, M, N)
        note = f" ({LIMIT_NOTE})" if max_pairs == MAX_PAIRS else ""
        raise ExactTooLarge(
            f"the exact divergence of {M} + {N} points needs M·N = {M * N:,} Lipschitz constraints, over "
            f"the limit of {max_pairs:,}{note}: subsample to {m} + {n} points "
            f"(gpa_core.algorithm.exact.subsample(P, {m}, seed), or --exact-points {max(m, n)} on the "
            "command line), or raise max_pairs"
        )
    start = time.perf_counter()
    D = _distances(P, Q)
    D_pp = _distances(P, P)
    cap = Y_MAX[f]
    alpha_used = alpha if f == "alpha" else 2.0
    shift = offset(f, alpha_used)
    mean_distance = float(D.mean())
    scaled = 1.0 / (L * mean_distance) if mean_distance > 0 else 1.0
    violation_tol = 1e-7 * L * max(mean_distance, 1e-12)
    line = P.shape[1] == 1
    if line:  # consecutive points of the sorted union, both directions
        z = np.r_[P[:, 0], Q[:, 0]]
        order = np.argsort(z, kind="stable")
        gaps = L * np.diff(z[order])
        A_line = _rows(np.r_[order[1:], order[:-1]], np.r_[order[:-1], order[1:]], M + N)
        b_line = np.r_[gaps, gaps]
    active = _initial_pairs(D)
    tried: list[str] = []
    rounds = 0
    programs: dict[bool, tuple[Any, ...]] = {}
    for name, use_scale, settings in (a for a in ATTEMPTS if solver == "auto" or a[0] == solver.upper()):
        scale = scaled if use_scale else 1.0
        label = name.lower() + "".join(f", {k}={v}" for k, v in settings.items() if k != "time_limit_secs")
        failure = None
        for _ in range(MAX_ROUNDS):
            if time.perf_counter() - start > time_limit:
                failure = f"stopped at the time limit of {time_limit:g} s"
                break
            if line:
                if use_scale not in programs:
                    programs[use_scale] = _program(f, A_line, b_line, M, N, alpha_used, scale)
                problem, u, _, lipschitz, bound = programs[use_scale]
            else:
                pairs = np.nonzero(active)
                A = _rows(pairs[0], M + pairs[1], M + N)
                problem, u, _, lipschitz, bound = _program(f, A, L * D[pairs], M, N, alpha_used, scale)
            failure = _solve(problem, name, settings)
            rounds += 1
            if failure is not None or line:
                break
            violation = u.value[:M, None] - u.value[None, M:] - L * D
            violation[active] = -np.inf
            if violation.max() <= violation_tol:
                break
            # add each row's and each column's most violated constraint
            worst_j = violation.argmax(axis=1)
            rows = np.nonzero(violation[np.arange(M), worst_j] > violation_tol)[0]
            active[rows, worst_j[rows]] = True
            worst_i = violation.argmax(axis=0)
            cols = np.nonzero(violation[worst_i, np.arange(N)] > violation_tol)[0]
            active[worst_i[cols], cols] = True
        else:
            failure = f"constraints still violated after {MAX_ROUNDS} rounds"
        if failure is not None:
            tried.append(f"{label}: {failure}")
            continue
        values = np.asarray(u.value, dtype=np.float64) + shift
        u_p, u_q = lipschitz_repair(values[:M], values[M:], D, D_pp, L, cap)
        value, nu = objective_value(f, u_p, u_q, alpha_used)
        sigma = np.zeros(M) if bound is None else np.asarray(bound.dual_value, dtype=np.float64) / scale
        multipliers = np.asarray(lipschitz.dual_value, dtype=np.float64) / scale
        if line:  # stationarity: Aᵀλ = ∇J, whose Q-part is −w (and P-part 1/M − σ)
            w, sigma_w, transport = _line_bound(f, P[:, 0], Q[:, 0], -(A_line.T @ multipliers)[M:], sigma)
        else:
            plan = np.zeros((M, N))
            plan[pairs] = multipliers
            w, sigma_w, transport = _plan_bound(f, plan, D)
        upper = dual_value(f, w, sigma_w, transport, L, alpha_used)
        if not _certified(value, upper, rtol):  # the weights of the optimality conditions instead
            upper = min(upper, _stationary_bound(f, P, Q, u_q, nu, sigma, D, active, L, alpha_used))
        if _certified(value, upper, rtol):
            return ExactDivergence(
                value=value,
                upper=max(upper, value),
                phi_p=u_p,
                phi_q=u_q,
                nu=nu,
                f=f,
                L=L,
                alpha=alpha if f == "alpha" else None,
                M=M,
                N=N,
                constraints=len(b_line) if line else int(active.sum()),
                rounds=rounds,
                solver=label,
                status=str(problem.status),
                seconds=time.perf_counter() - start,
            )
        tried.append(f"{label}: {problem.status}, J = {value:.9g} but dual bound {upper:.9g}")
    raise ExactSolveError(
        f"no solver certified the exact divergence within rtol = {rtol:g} (" + "; ".join(tried) + ")"
    )


def _certified(value: float, upper: float, rtol: float) -> bool:
    """Both bounds finite and within ``rtol`` (relative, with an absolute floor of 1e-9)."""
    finite = math.isfinite(value) and math.isfinite(upper)
    return finite and upper - value <= rtol * max(abs(value), abs(upper)) + 1e-9


def _stationary_bound(
    f: str,
    P: np.ndarray,
    Q: np.ndarray,
    phi_q: np.ndarray,
    nu: float,
    sigma: np.ndarray,
    D: np.ndarray,
    active: np.ndarray,
    L: float,
    alpha: float,
) -> float:
    """The dual bound (1.1) at η with wⱼ = (f*)'(φ(xⱼ) − ν)/N, the dual optimum's weights at an optimal
    φ (σ from the bound's multipliers), with W₁(P, η) exactly: on the line by ∫|F_P − F_η|, otherwise
    a transport linear program on the generated pairs (where the optimal plan lives), or on all pairs if
    that one is infeasible. Less sensitive than the plan's bound where f grows fast (large α)."""
    y = torch.as_tensor(phi_q - nu, dtype=torch.float64)
    ratio = f_star_prime(f, y, torch.tensor(alpha, dtype=torch.float64)).numpy()
    M, N = D.shape
    w = np.where(np.isfinite(ratio), ratio, 0.0) / N
    if P.shape[1] == 1:
        w, sigma, transport = _line_bound(f, P[:, 0], Q[:, 0], w, sigma)
        return dual_value(f, w, sigma, transport, L, alpha)
    sigma = np.maximum(sigma, 0.0) if f in ("reverse_kl", "js") else np.zeros(M)
    total = w.sum() + sigma.sum()
    w, sigma = w / total, sigma / total
    for support in (active, np.ones_like(active)):
        transport = _transport(D, 1.0 / M - sigma, w, support)
        if math.isfinite(transport):
            return dual_value(f, w, sigma, transport, L, alpha)
    return math.inf


def _transport(D: np.ndarray, a: np.ndarray, b: np.ndarray, support: np.ndarray) -> float:
    """min Σ πᵢⱼ Dᵢⱼ over plans π ≥ 0 on ``support`` with row sums a (M,) and column sums b (N,)
    (equal totals), by a linear program; +∞ if none exists on that support."""
    import cvxpy as cp

    i, j = np.nonzero(support)
    M, N = D.shape
    pi = cp.Variable(len(i), nonneg=True)
    rows, cols = _incidence(i, M), _incidence(j, N)
    problem = cp.Problem(cp.Minimize(D[i, j] @ pi), [rows @ pi == a, cols @ pi == b])
    if _solve(problem, "CLARABEL", {}) is not None or problem.status != "optimal":
        return math.inf
    return float(D[i, j] @ np.maximum(pi.value, 0.0))


def _incidence(index: np.ndarray, n: int) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(n, len(index)))
