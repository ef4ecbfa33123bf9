"""f-divergences, their Legendre transforms f*, and the variational objective of eq. (1.4)/(3.2).

Conventions (paper §1):
  KL          f(x) = x log x,                      f*(y) = e^{y-1}
  α (α > 1)   f(x) = (x^α - 1) / (α(α-1)),         f*(y) = ((α-1) y₊)^{α/(α-1)} / α + 1/(α(α-1))
  reverse KL  f(x) = -log x,                       f*(y) = -1 - log(-y)              (y < 0)
  JS          f(x) = ½[x log x - (1+x) log((1+x)/2)], f*(y) = -½ log(2 - e^{2y})    (y < ½ log 2)
(JS is normalised so that D_JS ≤ log 2.)

The objective of (1.4) for a discriminator φ and a scalar ν is
  J(φ, ν) = E_P[φ] - ν - E_Q[f*(φ - ν)],
maximised over φ ∈ Γ_L and ν ∈ ℝ. (Algorithm 3.1, line 7 prints "+ν"; with f* increasing that
objective is unbounded in ν, so we follow (1.4).) For KL the infimum over ν is explicit and gives
the Donsker–Varadhan form J_DV(φ) = E_P[φ] - log E_Q[e^φ].

All functions work on batches: ``phi_p`` is (K, M), ``phi_q`` is (K, N), ``nu`` is (K,), one row per
ensemble member; ``alpha`` is a (K,) tensor (ignored where f ≠ α). Everything is evaluated in the
dtype it is given (float32 by default): an overflow on heavy-tailed data is a real outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

F_NAMES: tuple[str, ...] = ("kl", "alpha", "reverse_kl", "js")

#: The largest argument where f* is finite (its effective domain is y < Y_MAX).
Y_MAX: dict[str, float] = {"kl": math.inf, "alpha": math.inf, "reverse_kl": 0.0, "js": 0.5 * math.log(2.0)}

#: float32's largest x with finite e^x — the KL objective overflows beyond it.
FLOAT32_EXP_LIMIT: float = math.log(torch.finfo(torch.float32).max)
FLOAT64_EXP_LIMIT: float = math.log(torch.finfo(torch.float64).max)  # ≈ 709.78


def f(name: str, x: Tensor, alpha: Tensor | float = 2.0) -> Tensor:
    """The convex generator f with f(1) = 0 (for tests and teaching)."""
    if name == "kl":
        return torch.special.xlogy(x, x)
    if name == "alpha":
        return (x**alpha - 1.0) / (alpha * (alpha - 1.0))
    if name == "reverse_kl":
        return -torch.log(x)
    if name == "js":
        return 0.5 * (torch.special.xlogy(x, x) - (1.0 + x) * torch.log((1.0 + x) / 2.0))
    raise ValueError(f"unknown f {name!r}; known: {', '.join(F_NAMES)}")


def f_star(name: str, y: Tensor, alpha: Tensor | float = 2.0) -> Tensor:
    """The Legendre transform f*(y) = sup_x {xy - f(x)} (+∞ outside its domain)."""
    if name == "kl":
        return torch.exp(y - 1.0)
    if name == "alpha":
        a = alpha
        return ((a - 1.0) * torch.relu(y)) ** (a / (a - 1.0)) / a + 1.0 / (a * (a - 1.0))
    if name == "reverse_kl":
        return torch.where(y < 0, -1.0 - torch.log(-y.clamp(max=0.0)), torch.full_like(y, math.inf))
    if name == "js":
        inside = 2.0 - torch.exp(2.0 * y)
        return torch.where(inside > 0, -0.5 * torch.log(inside.clamp(min=0.0)), torch.full_like(y, math.inf))
    raise ValueError(f"unknown f {name!r}; known: {', '.join(F_NAMES)}")


def f_star_prime(name: str, y: Tensor, alpha: Tensor | float = 2.0) -> Tensor:
    """(f*)'(y), the density ratio dP/dQ at the optimum (+∞ at the edge of the domain)."""
    if name == "kl":
        return torch.exp(y - 1.0)
    if name == "alpha":
        return ((alpha - 1.0) * torch.relu(y)) ** (1.0 / (alpha - 1.0))
    if name == "reverse_kl":
        return torch.where(y < 0, -1.0 / y.clamp(max=0.0), torch.full_like(y, math.inf))
    if name == "js":
        e = torch.exp(2.0 * y)
        inside = 2.0 - e
        return torch.where(inside > 0, e / inside.clamp(min=0.0), torch.full_like(y, math.inf))
    raise ValueError(f"unknown f {name!r}; known: {', '.join(F_NAMES)}")


def f_prime_at_one(name: str, alpha: Tensor | float = 2.0) -> Tensor | float:
    """f'(1): the point where (f*)' = 1, used to bracket the optimal ν."""
    if name == "alpha":
        return 1.0 / (alpha - 1.0)
    return {"kl": 1.0, "reverse_kl": -1.0, "js": 0.0}[name]


def optimal_nu(name: str, phi_q: Tensor, alpha: Tensor | float = 2.0, iterations: int = 60) -> Tensor:
    """ν* = argmin_ν {ν + E_Q[f*(φ - ν)]}, i.e. E_Q[(f*)'(φ - ν*)] = 1, per member (K,), for KL and α.

    KL has the closed form ν* = log E_Q[e^φ] - 1; α is solved by bisection on the monotone map
    ν ↦ E_Q[(f*)'(φ - ν)], bracketed by [min φ - f'(1), max φ - f'(1)]."""
    if name == "kl":
        return torch.logsumexp(phi_q, dim=-1) - math.log(phi_q.shape[-1]) - 1.0
    if name != "alpha":
        raise ValueError(f"optimal_nu is for the trained-ν divergences (kl, alpha), not {name!r}")
    a = alpha.unsqueeze(-1) if isinstance(alpha, Tensor) and alpha.dim() > 0 else alpha
    c = f_prime_at_one(name, alpha)
    lo = phi_q.amin(-1) - c
    hi = phi_q.amax(-1) - c
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        too_low = f_star_prime(name, phi_q - mid.unsqueeze(-1), a).mean(-1) > 1.0
        lo = torch.where(too_low, mid, lo)
        hi = torch.where(too_low, hi, mid)
    return 0.5 * (lo + hi)


def output_activation(name: str, v: Tensor) -> tuple[Tensor, Tensor | None]:
    """φ = g(V) and g'(V) for a network output V.

    For reverse KL and JS, f* is finite only below Y_MAX, and the variational formula needs
    φ < Y_MAX everywhere (not only on Q's samples, or the supremum is unbounded); as in f-GAN we
    map V through g(v) = Y_MAX - softplus(-v), increasing with slope in (0, 1), so φ stays
    L-Lipschitz. ν is then not needed (it is absorbed into the biases). KL and α use g = id."""
    if name in ("reverse_kl", "js"):
        return Y_MAX[name] - torch.nn.functional.softplus(-v), torch.sigmoid(-v)
    return v, None


@dataclass(frozen=True)
class ObjectiveKind:
    """How one member's objective is evaluated: f, and for KL the form and its numerics."""

    f: str
    kl_form: str = "lt"  # "lt": trained ν (eq. 3.2); "dv": Donsker–Varadhan, ν eliminated
    logsumexp: bool = True  # DV only: log E[e^φ] via log-sum-exp (False: the authors' naive exp)

    @property
    def trained_nu(self) -> bool:
        """ν is a trained parameter (Algorithm 3.1) for KL/LT and α; DV eliminates it, and reverse KL
        and JS absorb it (see ``output_activation``)."""
        return (self.f == "kl" and self.kl_form == "lt") or self.f == "alpha"

    @property
    def label(self) -> str:
        if self.f == "kl":
            if self.kl_form == "dv":
                return "KL (Donsker–Varadhan" + ("" if self.logsumexp else ", naive exp") + ")"
            return "KL (Legendre transform, trained ν)"
        return {"alpha": "α-divergence", "reverse_kl": "reverse KL", "js": "Jensen–Shannon"}[self.f]


@dataclass
class ObjectiveEval:
    """J per member and its derivatives w.r.t. the network outputs V(Y_i) (K, M), V(X_j) (K, N) and ν (K,)."""

    value: Tensor
    d_v_p: Tensor
    d_v_q: Tensor
    d_nu: Tensor
    max_exp_arg: Tensor  # max_j of the argument of f* (φ(X_j) - ν, or φ(X_j) for DV): the overflow gauge


def objective(kind: ObjectiveKind, v_p: Tensor, v_q: Tensor, nu: Tensor, alpha: Tensor) -> ObjectiveEval:
    """J(φ, ν) of eq. (1.4) on samples, from network outputs V at the particles (K, M) and the target
    (K, N), with its gradient w.r.t. those outputs and ν."""
    m, n = v_p.shape[-1], v_q.shape[-1]
    uniform_p = torch.full_like(v_p, 1.0 / m)
    if kind.f == "kl" and kind.kl_form == "dv":
        if kind.logsumexp:
            log_mean = torch.logsumexp(v_q, -1) - math.log(n)
            weights = torch.softmax(v_q, -1)
        else:  # the authors' numerics: log(mean(exp(φ))) overflows in float32 beyond φ ≈ 88.7
            e = torch.exp(v_q)
            total = e.sum(-1, keepdim=True)
            log_mean = torch.log(total.squeeze(-1) / n)
            weights = e / total
        return ObjectiveEval(
            v_p.mean(-1) - log_mean, uniform_p, -weights, torch.zeros_like(log_mean), v_q.amax(-1)
        )
    a = alpha.unsqueeze(-1)
    if kind.trained_nu:
        arg = v_q - nu.unsqueeze(-1)
        value = v_p.mean(-1) - nu - f_star(kind.f, arg, a).mean(-1)
        ratio = f_star_prime(kind.f, arg, a)
        return ObjectiveEval(value, uniform_p, -ratio / n, ratio.mean(-1) - 1.0, arg.amax(-1))
    phi_p, slope_p = output_activation(kind.f, v_p)
    phi_q, slope_q = output_activation(kind.f, v_q)
    assert slope_p is not None and slope_q is not None
    value = phi_p.mean(-1) - f_star(kind.f, phi_q, a).mean(-1)
    d_v_q = -f_star_prime(kind.f, phi_q, a) * slope_q / n
    return ObjectiveEval(value, slope_p / m, d_v_q, torch.zeros_like(value), phi_q.amax(-1))
