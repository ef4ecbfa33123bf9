"""GPAFlow: the generative particle algorithm (Algorithm 3.1) for a batch of K independent runs.

Per particle step n, for every member k:
  1. m_max Adam steps on (W, ν) maximising J(φ, ν) of eq. (3.2), each followed by the Lipschitz
     projection (lines 6–10);
  2. the particle update Y_{n+1} = Y_n - Δt ∇φ_n(Y_n) (line 11; Heun per Remark 3.2);
  3. the kinetic energy I = mean_i |∇φ_n(Y_n^i)|² (eq. 3.3) and the divergence estimate
     J(φ_n, ν_n) (after the inner loop) are recorded every ``record_every`` steps.

A member whose values become non-finite, or whose particles run away, is marked ``diverged``: its
physical time is recorded and its last finite particles are kept. Members never interact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from gpa_core.algorithm import solvers
from gpa_core.algorithm.discriminator import BatchedAdam, BatchedMLP
from gpa_core.algorithm.divergences import (
    ObjectiveEval,
    ObjectiveKind,
    objective,
    optimal_nu,
    output_activation,
)
from gpa_core.config import LIVE_FIELDS, ConfigError, FlowConfig, check_batch
from gpa_core.devices import cpu_threads, resolve_device

RUNAWAY_FACTOR = 1e4  # particles beyond this many times the data's extent count as a runaway
#: How long an "auto" flow waits for the compiled kernels to load from a warm disk cache (about a
#: second); with a cold cache it does not wait, and runs started before the compile ends go eagerly.
AUTO_COMPILE_WAIT_S = 2.5


#: The stop rule D ≤ ε applies once a member's estimate has fallen to STOP_ARMING × its highest value
#: so far (see GPAFlow.step): the estimate first climbs while φ trains, then falls as the particles come.
STOP_ARMING = 0.5


@dataclass
class History:
    """Recorded steps, as NumPy arrays; (R,) for ``step`` and (R, K) for everything else.

    Entry r describes particle step n = step[r]: time t = Σ Δt up to n, the kinetic energy (3.3)
    of φ_n at Y_n, the divergence estimate J(φ_n, ν_n), the largest particle speed max_i |∇φ_n|,
    the realized Lipschitz bound ∏σ_max(W_l), and the largest argument of f* over the target (the
    overflow gauge: float32's e^x overflows past x ≈ 88.7). Inactive members hold NaN."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    time: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    kinetic_energy: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    divergence: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    max_speed: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lipschitz_bound: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    max_exp_arg: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    FIELDS = ("time", "kinetic_energy", "divergence", "max_speed", "lipschitz_bound", "max_exp_arg")

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def extend(self, steps: np.ndarray, values: dict[str, np.ndarray]) -> None:
        self.step = np.concatenate([self.step, steps])
        for name in self.FIELDS:
            old = getattr(self, name)
            new = values[name]
            setattr(self, name, new if old.size == 0 else np.concatenate([old, new]))

    def member(self, k: int) -> dict[str, np.ndarray]:
        out = {"step": self.step.copy()}
        out.update(
            {name: getattr(self, name)[:, k].copy() for name in self.FIELDS if getattr(self, name).size}
        )
        return out


@dataclass(frozen=True)
class MemberSummary:
    """A member's outcome in plain Python values."""

    index: int
    status: str  # "running" | "converged" | "stopped" (D ≤ ε, FlowConfig.stop_divergence) | "diverged"
    steps: int
    t: float
    kinetic_energy: float
    divergence: float
    max_speed: float
    diverged_at: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def projection_mode(config: FlowConfig) -> str:
    """How a member's weights are projected: its ``lipschitz`` mode, or "none" where L = ∞."""
    return config.lipschitz if math.isfinite(config.L) else "none"


def objective_kind(config: FlowConfig) -> ObjectiveKind:
    """The objective a member maximises: its f, and for KL the form and its numerics."""
    return ObjectiveKind(config.f, config.kl_form if config.f == "kl" else "lt", config.logsumexp)


class Engine(Protocol):
    """How a GPAFlow computes Algorithm 3.1's particle steps: ``EagerEngine`` (Torch operations, any
    device and dtype, below) or ``kernel.CompiledEngine`` (the Numba kernel: CPU, float32, no gradient
    penalty; gpa_core/engine/kernel/). An engine is made once the flow has its network and optimizer
    and starts the members (lines 3–4); it changes the flow's state in place — particles, networks
    and ν, Adam's state, power-iteration vectors, time, status — and extends its history."""

    def advance(self, flow: GPAFlow, n: int) -> int:
        """Advance every active member of ``flow`` by up to ``n`` particle steps; the steps taken."""
        ...

    def reconfigure(self, flow: GPAFlow) -> None:
        """Take up the flow's new configurations (a live change) and project W under them (line 9)."""
        ...


class GPAFlow:
    """Lipschitz-regularized generative particle flow for K ≥ 1 members sharing data shapes.

    ``source`` is (M, d) (shared) or (K, M, d); ``target`` is (N, d) or (K, N, d); ``generated`` are
    optional extra particles (G, d) or (K, G, d) moved by the same fields without being trained on
    (paper §4, strategy 1)."""

    def __init__(
        self,
        source: np.ndarray | Tensor,
        target: np.ndarray | Tensor,
        configs: FlowConfig | Sequence[FlowConfig],
        *,
        generated: np.ndarray | Tensor | None = None,
        engine: str | None = None,
    ) -> None:
        configs = check_batch([configs] if isinstance(configs, FlowConfig) else configs)
        c0 = configs[0]
        self.K = len(configs)
        self.device = resolve_device(c0.device)
        self.dtype = torch.float64 if c0.dtype == "float64" else torch.float32
        self.Y = self._as_members(source, "source").clone()
        self.X = self._as_members(target, "target")
        self.G = None if generated is None else self._as_members(generated, "generated").clone()
        if self.Y.shape[-1] != self.X.shape[-1]:
            raise ConfigError(
                f"source and target must have the same dimension: {self.Y.shape[-1]} vs {self.X.shape[-1]}"
            )
        if self.G is not None and self.G.shape[-1] != self.Y.shape[-1]:
            raise ConfigError("generated particles must have the dimension of the source")
        self.M, self.d = self.Y.shape[1], self.Y.shape[2]
        self.N = self.X.shape[1]
        if engine is None:
            self.engine, self.engine_reason = self._choose_engine(configs)
        else:  # select(): the same path as the flow it came from (and the kernel's warm-up run)
            self.engine, self.engine_reason = engine, "continues its parent run"
        acts = [c0.activation] * len(c0.hidden)
        if c0.last_activation is not None:
            acts[-1] = c0.last_activation
        self.net = BatchedMLP(
            self.K,
            self.d,
            c0.hidden,
            acts,
            [c.seed for c in configs],
            init=c0.init,
            device=self.device,
            dtype=self.dtype,
            warm_up=self.engine == "eager",
        )
        self._Z = torch.empty(self.K, self.M + self.N, self.d, device=self.device, dtype=self.dtype)
        self._Z[:, self.M :] = self.X
        self.n = 0
        self.t = torch.zeros(self.K, device=self.device, dtype=torch.float64)
        self.alive = torch.ones(self.K, dtype=torch.bool, device=self.device)
        self.diverged_step = torch.full((self.K,), -1, dtype=torch.long, device=self.device)
        self.diverged_time = torch.full((self.K,), math.nan, dtype=torch.float64, device=self.device)
        self.reasons = [""] * self.K
        #: per member: the step whose divergence estimate met the stop rule D ≤ ε (-1: not stopped)
        self.stopped_step = [-1] * self.K
        #: per member: the highest divergence estimate so far, and whether the estimate has since fallen
        #: to STOP_ARMING of it. The rule waits for that: the first estimates, from a barely trained φ,
        #: are small whatever the distance (a lower bound still climbing) and wobble on their way up
        self.stop_peak = [-math.inf] * self.K  # (early DV estimates can be negative)
        self.stop_armed = [False] * self.K
        # per member: one member's extreme sample must not loosen another member's runaway test
        extent = torch.maximum(self.Y.abs().flatten(1).amax(1), self.X.abs().flatten(1).amax(1)).clamp_min(
            1.0
        )
        self.runaway_radius = RUNAWAY_FACTOR * extent
        self.history = History()
        #: threads for the compiled path's member groups (a caller running several flows at once,
        #: such as an ensemble's workers, lowers it so that threads never outnumber cores)
        self.kernel_threads = cpu_threads()
        #: threads that may share one member's rows (its two lanes) when members are fewer than
        #: threads. 1 by default: a lone run then leaves the other core to the app's UI, other
        #: sessions and batches (where it gains nothing: the playground ran ~770 steps/s either
        #: way); 2 makes a single large run about 1.7× faster. Results are the same bit for bit.
        self.threads_per_member = 1
        self._set_configs(configs)
        self.optimizer = BatchedAdam(self.net.flat, self._lr)
        #: how the steps are computed (the engine starts the members: Algorithm 3.1, lines 3–4)
        self._engine: Engine = self._make_engine()

    def _choose_engine(self, configs: tuple[FlowConfig, ...]) -> tuple[str, str]:
        """("compiled" | "eager", why): the compiled kernel serves CPU float32 runs without a
        gradient penalty; ``auto`` uses it when it is compiled (or compiles within a moment)."""
        wanted = configs[0].engine
        if wanted == "eager":
            return "eager", "asked for"
        blockers = []
        if self.device.type != "cpu":
            blockers.append(f"the device is {self.device.type} (the compiled kernel is for the CPU)")
        if self.dtype != torch.float32:
            blockers.append("the dtype is float64 (the compiled kernel is float32)")
        if any(c.lipschitz == "penalty" and math.isfinite(c.L) for c in configs):
            blockers.append("a member uses the gradient penalty (autograd)")
        blockers += sorted({reason for c in configs if (reason := kernel.unsupported(c))})
        if not kernel.available():
            blockers.append("Numba is not installed")
        if blockers:
            if wanted == "compiled":
                raise ConfigError("engine 'compiled' is not possible: " + "; ".join(blockers))
            return "eager", "; ".join(blockers)
        if wanted == "compiled":
            if not kernel.ensure_compiled(block=True):
                raise ConfigError(f"engine 'compiled' failed to compile: {kernel.compile_error()}")
            return "compiled", "asked for"
        if kernel.wait_briefly(AUTO_COMPILE_WAIT_S):
            return "compiled", "auto: compiled kernel ready"
        if kernel.compile_error() is not None:
            return "eager", f"auto: the kernel failed to compile ({kernel.compile_error()})"
        return "eager", "auto: the kernel is still compiling (later runs will use it)"

    def _make_engine(self) -> Engine:
        if self.engine == "compiled":
            return kernel.CompiledEngine(self)
        return EagerEngine(self)

    def _init_nu(self) -> None:
        """Start ν at its exact minimiser for φ_0 (Algorithm 3.1 line 3 starts at ν = 0, which for
        f*(y) = e^{y-1} is about 1 away from the optimum and costs hundreds of Adam steps)."""
        with torch.no_grad():
            phi_q = self.net.forward(self.X).phi
            for kind, idx in self._groups:
                if kind.trained_nu:
                    self.net.nu[idx] = optimal_nu(kind.f, phi_q[idx], self._alpha[idx])

    # -- set-up helpers ------------------------------------------------------------------------
    def _as_members(self, data: np.ndarray | Tensor, name: str) -> Tensor:
        t = torch.as_tensor(np.asarray(data) if not isinstance(data, Tensor) else data)
        t = t.to(device=self.device, dtype=self.dtype)
        if t.dim() == 2:
            t = t.unsqueeze(0).expand(self.K, -1, -1)
        if t.dim() != 3 or t.shape[0] != self.K:
            raise ConfigError(
                f"{name} must be (n, d) or (K, n, d) with K = {self.K}; got shape {tuple(t.shape)}"
            )
        if t.shape[1] < 1:
            raise ConfigError(f"{name} has no points")
        if not bool(torch.isfinite(t).all()):
            raise ConfigError(f"{name} contains NaN or infinite values")
        return t

    def _set_configs(self, configs: tuple[FlowConfig, ...]) -> None:
        self.configs = configs
        dev, dt = self.device, self.dtype
        self._L = torch.tensor([c.L for c in configs], device=dev, dtype=torch.float64)
        finite_L = torch.where(torch.isfinite(self._L), self._L, torch.ones_like(self._L))
        self._layer_scale = (finite_L ** (1.0 / self.net.depth)).to(dt)
        modes = [projection_mode(c) for c in configs]
        self._use_spectral = torch.tensor([m == "spectral" for m in modes], device=dev)
        self._all_spectral = all(m == "spectral" for m in modes)
        self._use_frobenius = torch.tensor([m == "frobenius" for m in modes], device=dev)
        self._penalty = torch.tensor(
            [c.penalty_weight if m == "penalty" else 0.0 for c, m in zip(configs, modes, strict=True)],
            device=dev,
            dtype=dt,
        )
        self._any_penalty = bool((self._penalty > 0).any())
        self._dt = torch.tensor([c.dt for c in configs], device=dev, dtype=dt).reshape(-1, 1, 1)
        self._lr = torch.tensor([c.lr for c in configs], device=dev, dtype=dt)
        self._alpha = torch.tensor([c.alpha for c in configs], device=dev, dtype=dt)
        self._steps = torch.tensor([c.steps for c in configs], device=dev)
        self._heun = torch.tensor([c.solver == "heun" for c in configs], device=dev)
        self._heun_members = [k for k, c in enumerate(configs) if c.solver == "heun"]
        if hasattr(self, "optimizer"):
            self.optimizer.set_lr(self._lr)
        groups: dict[ObjectiveKind, list[int]] = {}
        for k, c in enumerate(configs):
            groups.setdefault(objective_kind(c), []).append(k)
        self._groups = [(kind, torch.tensor(idx, device=dev)) for kind, idx in groups.items()]

    def reconfigure(self, configs: FlowConfig | Sequence[FlowConfig]) -> None:
        """Apply live changes (Δt, L, lr, m_max, f, α, …) at the next step, keeping particles and φ."""
        new = check_batch([configs] if isinstance(configs, FlowConfig) else configs)
        if len(new) != self.K:
            raise ConfigError(f"reconfigure needs {self.K} member configurations, got {len(new)}")
        for old_c, new_c in zip(self.configs, new, strict=True):
            for name, value in new_c.__dict__.items():
                if name not in LIVE_FIELDS and getattr(old_c, name) != value:
                    raise ConfigError(f"{name} cannot change during a run (reset to change it)")
        for k, (old_c, new_c) in enumerate(zip(self.configs, new, strict=True)):
            if self.stopped_step[k] >= 0 and new_c.stop_divergence != old_c.stop_divergence:
                self.alive[k] = True  # a new ε: the stopped member goes on (and is tested again)
                self.stopped_step[k] = -1
                self.reasons[k] = ""
        self._set_configs(new)
        self._engine.reconfigure(self)

    # -- the algorithm ---------------------------------------------------------------------------
    def _project(self, members: Tensor | None = None) -> None:
        self.net.project(
            self._layer_scale,
            self._use_spectral,
            self._use_frobenius,
            self.configs[0].power_iterations,
            all_spectral=self._all_spectral,
            members=members,
        )

    def _evaluate(self, phi_p: Tensor, phi_q: Tensor) -> ObjectiveEval:
        """J and its gradients per member, each member with its own f (grouped)."""
        nu, alpha = self.net.nu, self._alpha
        if len(self._groups) == 1:
            return objective(self._groups[0][0], phi_p, phi_q, nu, alpha)
        value = torch.empty(self.K, device=self.device, dtype=self.dtype)
        d_p, d_q = torch.empty_like(phi_p), torch.empty_like(phi_q)
        d_nu, gauge = torch.empty_like(value), torch.empty_like(value)
        for kind, idx in self._groups:
            ev = objective(kind, phi_p[idx], phi_q[idx], nu[idx], alpha[idx])
            value[idx], d_p[idx], d_q[idx], d_nu[idx], gauge[idx] = (
                ev.value,
                ev.d_v_p,
                ev.d_v_q,
                ev.d_nu,
                ev.max_exp_arg,
            )
        return ObjectiveEval(value, d_p, d_q, d_nu, gauge)

    def _field(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """(φ, ∇φ) at points (K, n, d): the network output through each member's output map."""
        v, grad = self.net.gradient(points)
        for kind, idx in self._groups:
            phi, slope = output_activation(kind.f, v[idx])
            if slope is not None:
                v[idx] = phi
                grad[idx] = grad[idx] * slope.unsqueeze(-1)
        return v, grad

    def _train(self, particles: Tensor, members: list[int] | None) -> None:
        """m_max optimizer steps on (W, ν) at the current particles (Algorithm 3.1, lines 6–10)."""
        M = self.M
        self._Z[:, :M] = particles
        for _ in range(self.configs[0].inner_steps):
            if self._any_penalty:
                self._autograd_gradient(self._Z)
            else:
                cache = self.net.forward(self._Z)
                ev = self._evaluate(cache.phi[:, :M], cache.phi[:, M:])
                d_phi = torch.cat([-ev.d_v_p, -ev.d_v_q], dim=1)
                self.net.backward(cache, d_phi)
                self.net.nu_grad.copy_(-ev.d_nu)
            self.optimizer.step(self.net.grad, members)
            self._project(None if members is None else self._heun)

    def _autograd_gradient(self, Z: Tensor) -> None:
        """Loss gradient by torch.autograd, with the one-sided gradient penalty
        λ E[(|∇φ| - L)₊²] over particles and target (for ``lipschitz = "penalty"`` members)."""
        with torch.enable_grad():
            flat = self.net.flat.detach().clone().requires_grad_(True)
            z = Z.detach().clone().requires_grad_(True)
            phi = self.net.functional_phi(flat, z)
            M = self.M
            loss = torch.zeros((), device=self.device, dtype=self.dtype)
            for kind, idx in self._groups:
                ev = objective(kind, phi[idx, :M], phi[idx, M:], flat[idx, -1], self._alpha[idx])
                loss = loss - ev.value.sum()
            if self._any_penalty:
                grad_x = torch.autograd.grad(phi.sum(), z, create_graph=True)[0]
                L = torch.where(torch.isfinite(self._L), self._L, torch.zeros_like(self._L)).to(self.dtype)
                excess = torch.relu(grad_x.norm(dim=-1) - L[:, None])
                loss = loss + (self._penalty * (excess**2).mean(-1)).sum()
            (g,) = torch.autograd.grad(loss, flat)
        self.net.grad.copy_(g)

    def _velocity(self, positions: Tensor, stage: int) -> Tensor:
        """v = -∇φ at ``positions`` after training φ on the first M of them."""
        if self.configs[0].optimizer_state == "reset" and stage == 0:
            self.optimizer.reset()  # the authors' code: fresh Adam state every particle step
        M = self.M
        self._train(positions[:, :M], None if stage == 0 else self._heun_members)
        if stage == 0:
            # one pass on (particles, target), the rows training just used (self._Z): φ for the
            # estimate, ∇φ for the velocity
            v, grad = self.net.gradient(self._Z)
            ev = self._evaluate(v[:, :M], v[:, M:])
            for kind, idx in self._groups:
                _, slope = output_activation(kind.f, v[idx])
                if slope is not None:
                    grad[idx] = grad[idx] * slope.unsqueeze(-1)
            self._stage0 = (ev, grad[:, :M])
            velocity = -grad[:, :M]
        else:
            velocity = -self._field(positions[:, :M])[1]
        if positions.shape[1] == M:
            return velocity
        # generated points in a pass of their own: the trained particles' numbers never depend on
        # whether (or how many) generated points ride along, as on the compiled path
        return torch.cat([velocity, -self._field(positions[:, M:])[1]], dim=1)

    def step(self, n: int = 1) -> int:
        """Advance every active member by up to ``n`` particle steps; returns the steps taken.

        With the stop rule on (``stop_divergence`` ε > 0 in a member's config: the augmentation rule of
        §4, D(P_T‖Q) ≤ ε as in (8.1)), steps go one at a time and a member whose recorded divergence
        estimate is at most its ε, once it has fallen to :data:`STOP_ARMING` of its highest value so
        far, stops there (the first estimates come from a barely trained φ and are small whatever
        the distance): its
        particles (and generated points) and time are put back to the positions that estimate was
        computed at, and it takes no further steps."""
        if not any(c.stop_divergence > 0 for c in self.configs):
            return self._engine.advance(self, n)
        taken = 0
        while taken < n and bool(self.alive.any()):
            before = (self.Y.clone(), None if self.G is None else self.G.clone(), self.t.clone())
            rows = len(self.history)
            got = self._engine.advance(self, 1)
            if not got:
                break
            taken += got
            self._apply_stop_rule(rows, before)
        return taken

    def _apply_stop_rule(self, rows: int, before: tuple[Tensor, Tensor | None, Tensor]) -> None:
        """Stop the members whose newest history row (after ``rows``) has D ≤ ε; in place, so the
        compiled path's views of the particles stay valid."""
        h = self.history
        if len(h) <= rows:
            return  # no row recorded this step (record_every > 1): checked at the next recorded one
        step, values = int(h.step[-1]), h.divergence[-1]
        for k, c in enumerate(self.configs):
            value = float(values[k])
            if c.stop_divergence <= 0 or not bool(self.alive[k]):
                continue
            if math.isfinite(value):
                self.stop_peak[k] = max(self.stop_peak[k], value)
                if self.stop_peak[k] > 0 and value <= STOP_ARMING * self.stop_peak[k]:
                    self.stop_armed[k] = True
            if not (self.stop_armed[k] and value <= c.stop_divergence):
                continue
            with torch.no_grad():
                self.Y[k].copy_(before[0][k])
                if self.G is not None and before[1] is not None:
                    self.G[k].copy_(before[1][k])
                self.t[k] = before[2][k]
                self.alive[k] = False
            self.stopped_step[k] = step
            eps = c.stop_divergence
            self.reasons[k] = f"divergence estimate D = {value:.4g} ≤ ε = {eps:g} at step {step}"

    def _divergence_reason(self, k: int, finite: bool, gauge: float) -> str:
        if not finite:
            if self.configs[k].f in ("kl",) and (not math.isfinite(gauge) or gauge > 80.0):
                return (
                    f"the objective overflowed (largest argument of exp was {gauge:.4g}; "
                    f"float32's limit is 88.7)"
                )
            return "values became non-finite (NaN or ∞)"
        return f"particles ran away beyond |x| = {float(self.runaway_radius[k]):.3g}"

    def run(self, progress: Callable[[int, int], None] | None = None, chunk: int = 50) -> History:
        """Run every member to its ``steps``; ``progress(done, total)`` after each chunk."""
        total = max(c.steps for c in self.configs)
        while self.n < total and self.step(min(chunk, total - self.n)):
            if progress is not None:
                progress(self.n, total)
        return self.history

    def select(self, keep: Sequence[int]) -> GPAFlow:
        """A flow with only the members ``keep``, continuing exactly where they were (particles,
        networks, ν, Adam state, power-iteration vectors, step count, time); its history starts
        empty. Dropping finished members keeps a batch from computing for them."""
        keep = [int(k) for k in keep]
        if not keep or any(not 0 <= k < self.K for k in keep):
            raise ConfigError(f"keep must list member indices in [0, {self.K}); got {keep}")
        idx = torch.tensor(keep, device=self.device)
        new = GPAFlow(
            self.Y[idx],
            self.X[idx],
            [self.configs[k] for k in keep],
            generated=None if self.G is None else self.G[idx],
            engine=self.engine,
        )
        with torch.no_grad():
            new.net.flat.copy_(self.net.flat[idx])
            new.net.power_flat.copy_(self.net.power_flat[idx])
            new.net.diagnostic_flat.copy_(self.net.diagnostic_flat[idx])
            new.optimizer.m.copy_(self.optimizer.m[idx])
            new.optimizer.v.copy_(self.optimizer.v[idx])
            new.optimizer.t.copy_(self.optimizer.t[idx])
        new.n = self.n
        new.t = self.t[idx].clone()
        new.alive = self.alive[idx].clone()
        new.diverged_step = self.diverged_step[idx].clone()
        new.diverged_time = self.diverged_time[idx].clone()
        new.reasons = [self.reasons[k] for k in keep]
        new.stopped_step = [self.stopped_step[k] for k in keep]
        new.stop_armed = [self.stop_armed[k] for k in keep]
        new.stop_peak = [self.stop_peak[k] for k in keep]
        new.runaway_radius = self.runaway_radius[idx].clone()
        new.kernel_threads = self.kernel_threads
        new.threads_per_member = self.threads_per_member
        return new

    def fit_discriminator(self, iterations: int) -> np.ndarray:
        """Train φ (and ν) at the current particles for ``iterations`` inner loops of m_max optimizer
        steps each, without moving particles; returns the objective J per member afterwards."""
        with torch.no_grad():
            for _ in range(iterations):
                self._train(self.Y, None)
            return self.objective_value()

    def objective_value(self) -> np.ndarray:
        """J(φ, ν) of eq. (3.2) at the current particles, per member (K,): the divergence estimate."""
        with torch.no_grad():
            self._Z[:, : self.M] = self.Y
            phi = self.net.forward(self._Z).phi
            ev = self._evaluate(phi[:, : self.M], phi[:, self.M :])
        return ev.value.to("cpu", torch.float64).numpy()

    # -- read-outs -------------------------------------------------------------------------------
    def particles(self) -> np.ndarray:
        """Current particles, (K, M, d) NumPy copy (the last finite state for diverged members)."""
        return self.Y.detach().to("cpu", torch.float64).numpy().copy()

    def generated(self) -> np.ndarray | None:
        return None if self.G is None else self.G.detach().to("cpu", torch.float64).numpy().copy()

    def target(self) -> np.ndarray:
        return self.X.detach().to("cpu", torch.float64).numpy().copy()

    def potential(self, points: np.ndarray, member: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(φ, ∇φ) of one member's current discriminator at ``points`` (P, d)."""
        x = torch.as_tensor(np.asarray(points), device=self.device, dtype=self.dtype)
        x = x.unsqueeze(0).expand(self.K, -1, -1)
        with torch.no_grad():
            phi, grad = self._field(x)
        return phi[member].cpu().double().numpy(), grad[member].cpu().double().numpy()

    def status(self, k: int = 0) -> str:
        if self.stopped_step[k] >= 0:
            return "stopped"
        if not bool(self.alive[k]):
            return "diverged"
        ke = self.history.kinetic_energy
        if len(self.history) and ke.shape[1] > k:
            col = ke[:, k]
            finite = col[np.isfinite(col)]
            if finite.size and finite[-1] < self.configs[k].converge_tol:
                return "converged"
        return "running"

    def finished(self, k: int = 0) -> bool:
        return (not bool(self.alive[k])) or self.n >= self.configs[k].steps

    def summary(self) -> list[MemberSummary]:
        out = []
        for k in range(self.K):
            h = self.history.member(k)
            last = {name: last_finite(h.get(name)) for name in ("kinetic_energy", "divergence", "max_speed")}
            stopped = self.stopped_step[k] >= 0
            dead = not bool(self.alive[k]) and not stopped
            if stopped:
                steps = self.stopped_step[k]
            else:
                steps = int(self.diverged_step[k]) if dead else min(self.n, self.configs[k].steps)
            out.append(
                MemberSummary(
                    index=k,
                    status=self.status(k),
                    steps=steps,
                    t=float(self.t[k]),
                    kinetic_energy=last["kinetic_energy"],
                    divergence=last["divergence"],
                    max_speed=last["max_speed"],
                    diverged_at=float(self.diverged_time[k]) if dead else None,
                    reason=self.reasons[k],
                )
            )
        return out


class EagerEngine:
    """GPAFlow's steps as Torch operations on the whole batch at once: any device and dtype, the
    gradient penalty by autograd. Each stage of the compiled kernel restates one of its pieces
    (gpa_core/engine/kernel/step.py names them)."""

    def __init__(self, flow: GPAFlow) -> None:
        flow._project()  # Algorithm 3.1, line 4
        flow._init_nu()

    def reconfigure(self, flow: GPAFlow) -> None:
        flow._project()

    def advance(self, flow: GPAFlow, n: int) -> int:
        """Up to ``n`` steps: train and move (``GPAFlow._velocity``, ``solvers.advance``), test for
        non-finite values and runaways, record every ``record_every`` steps (NaN where inactive)."""
        taken = 0
        record_every = flow.configs[0].record_every
        pending: list[tuple[int, dict[str, Tensor]]] = []
        with torch.no_grad():
            for _ in range(n):
                active = flow.alive & (flow.n < flow._steps)
                if not bool(active.any()):
                    break
                positions = flow.Y if flow.G is None else torch.cat([flow.Y, flow.G], dim=1)
                new_positions, _ = solvers.advance(positions, flow._velocity, flow._dt, flow._heun)
                ev, grad_y = flow._stage0
                speed = grad_y.norm(dim=-1)
                kinetic = (speed**2).mean(-1)
                finite = (
                    torch.isfinite(new_positions).flatten(1).all(1)
                    & torch.isfinite(ev.value)
                    & torch.isfinite(kinetic)
                )
                runaway = new_positions.abs().flatten(1).amax(1) > flow.runaway_radius
                healthy = finite & ~runaway
                newly_dead = active & ~healthy
                if bool(newly_dead.any()):
                    self._mark_diverged(flow, newly_dead, finite, ev)
                moving = active & healthy
                mask = moving.reshape(-1, 1, 1)
                new_y = new_positions[:, : flow.M]
                flow.Y = torch.where(mask, new_y, flow.Y)
                if flow.G is not None:
                    flow.G = torch.where(mask, new_positions[:, flow.M :], flow.G)
                if flow.n % record_every == 0:
                    nan = torch.full_like(kinetic, math.nan)
                    pending.append(
                        (
                            flow.n,
                            {
                                "time": torch.where(active, flow.t, math.nan),
                                "kinetic_energy": torch.where(active, kinetic, nan),
                                "divergence": torch.where(active, ev.value, nan),
                                "max_speed": torch.where(active, speed.amax(-1), nan),
                                "lipschitz_bound": torch.where(active, flow.net.lipschitz_bound(), nan),
                                "max_exp_arg": torch.where(active, ev.max_exp_arg, nan),
                            },
                        )
                    )
                flow.t = flow.t + torch.where(moving, flow._dt.reshape(-1).to(torch.float64), 0.0)
                flow.n += 1
                taken += 1
        if pending:
            flow.history.extend(
                np.array([s for s, _ in pending], dtype=np.int64),
                {
                    name: torch.stack([rec[name] for _, rec in pending]).to("cpu", torch.float64).numpy()
                    for name in History.FIELDS
                },
            )
        return taken

    @staticmethod
    def _mark_diverged(flow: GPAFlow, newly_dead: Tensor, finite: Tensor, ev: ObjectiveEval) -> None:
        flow.alive &= ~newly_dead
        flow.diverged_step = torch.where(
            newly_dead, torch.full_like(flow.diverged_step, flow.n), flow.diverged_step
        )
        flow.diverged_time = torch.where(newly_dead, flow.t, flow.diverged_time)
        for k in torch.nonzero(newly_dead).flatten().tolist():
            flow.reasons[k] = flow._divergence_reason(k, bool(finite[k]), float(ev.max_exp_arg[k]))


def last_finite(values: np.ndarray | None) -> float:
    """The last finite entry of a history series (NaN when there is none)."""
    if values is None:
        return math.nan
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else math.nan


# last, not first: the kernel imports this module (its codes number History's fields)
from gpa_core.engine import kernel  # noqa: E402
