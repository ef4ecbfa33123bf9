"""A run's configuration: one frozen, validated dataclass (validated once, at the edge).

Symbols follow the paper: f, α (``alpha``), L, Δt (``dt``), m_max (``inner_steps``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

FName = Literal["kl", "alpha", "reverse_kl", "js"]
KLForm = Literal["lt", "dv"]
Activation = Literal["relu", "leaky_relu", "softplus", "smooth_relu"]
LipschitzMode = Literal["spectral", "frobenius", "penalty", "none"]
Init = Literal["uniform", "he_normal"]
OptimizerState = Literal["carry", "reset"]
Solver = Literal["euler", "heun"]
Device = Literal["auto", "cpu", "cuda", "mps"]
DType = Literal["float32", "float64"]
Engine = Literal["auto", "eager", "compiled"]

#: Fields that may differ between the K members of one batched ensemble.
PER_MEMBER_FIELDS: frozenset[str] = frozenset(
    {
        "f",
        "alpha",
        "kl_form",
        "logsumexp",
        "L",
        "dt",
        "steps",
        "lr",
        "lipschitz",
        "penalty_weight",
        "solver",
        "seed",
    }
)


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and what is allowed."""


@dataclass(frozen=True)
class FlowConfig:
    """Configuration of one GPA run (Algorithm 3.1).

    ``L = math.inf`` means no Lipschitz regularization (the unregularized flow).
    ``engine`` picks how steps are computed: ``eager`` (Torch operations, any device), ``compiled``
    (one Numba-compiled call per chunk of steps; CPU, float32, no gradient penalty) or ``auto``
    (compiled when possible and already compiled, eager otherwise; the run says which it used).
    The defaults are the paper's choices (spectral normalization, KL in the Legendre-transform
    form with a trained ν, Adam state carried across particle steps); ``authors_numerics()`` gives
    the choices of the authors' public code instead.

    ``power_iterations``: warm-started power iterations per projection for ‖W‖₂. Power iteration
    approaches σ_max from below, so a lagging estimate lets ∏σ exceed L: in the Fig. 2–3 flow at
    lr = 1e-2 one iteration let it reach 1.056 L, three kept it at 1.001 L (at lr = 1e-3: 1.0005 and
    1.00002). Three is the default; the cost is small beside a training step.
    """

    f: FName = "kl"
    alpha: float = 2.0
    kl_form: KLForm = "lt"
    logsumexp: bool = True
    L: float = 1.0
    dt: float = 0.5
    steps: int = 500
    inner_steps: int = 3
    lr: float = 1e-3
    hidden: tuple[int, ...] = (32, 32, 32)
    activation: Activation = "relu"
    last_activation: Activation | None = None
    lipschitz: LipschitzMode = "spectral"
    penalty_weight: float = 10.0
    power_iterations: int = 3
    init: Init = "uniform"
    optimizer_state: OptimizerState = "carry"
    solver: Solver = "euler"
    record_every: int = 1
    converge_tol: float = 1e-6
    seed: int = 0
    device: Device = "auto"
    dtype: DType = "float32"
    engine: Engine = "auto"
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        for name in ("alpha", "L", "dt", "lr", "penalty_weight", "converge_tol"):
            object.__setattr__(self, name, float(getattr(self, name)))
        validate(self)

    # -- conveniences -------------------------------------------------------------------------
    @property
    def regularized(self) -> bool:
        return math.isfinite(self.L) and self.lipschitz != "none"

    @property
    def depth(self) -> int:
        """D, the number of weight matrices of φ."""
        return len(self.hidden) + 1

    @property
    def horizon(self) -> float:
        """T = steps · Δt, the physical time of the whole run."""
        return self.steps * self.dt

    def replace(self, **changes: Any) -> FlowConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["L"] = "inf" if math.isinf(self.L) else self.L
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown configuration field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        kwargs = dict(data)
        if "L" in kwargs:
            kwargs["L"] = parse_lipschitz(kwargs["L"])
        if "hidden" in kwargs:
            kwargs["hidden"] = tuple(kwargs["hidden"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> FlowConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"configuration is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("configuration JSON must be an object of field: value pairs")
        return cls.from_dict(data)


def authors_numerics(config: FlowConfig | None = None) -> FlowConfig:
    """The choices of the authors' public code (PAPER-SETTINGS.md): Frobenius normalization,
    He-normal initialization with zero biases, Adam state reset every particle step, KL in the
    Donsker–Varadhan form without log-sum-exp."""
    base = config or FlowConfig()
    changes: dict[str, Any] = {"lipschitz": "frobenius", "init": "he_normal", "optimizer_state": "reset"}
    if base.f == "kl":
        changes.update(kl_form="dv", logsumexp=False)
    if base.lipschitz == "none" or math.isinf(base.L):
        changes["lipschitz"] = "none"
    return base.replace(**changes)


def parse_hidden(text: str) -> tuple[int, ...]:
    """Hidden layer widths from what a person types: ``"32, 32, 32"``, ``"32 32 32"``, ``"32,32,32"``
    or ``"32-32-32"`` → (32, 32, 32). ConfigError when a part is not a whole number or none is given
    (the widths' range is checked with the rest of the configuration, by :func:`validate`)."""
    parts = [p for p in re.split(r"[\s,;\-]+", str(text)) if p]
    try:
        widths = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            "hidden widths must be whole numbers separated by commas or spaces, like 32, 32, 32; "
            f"got {text!r}"
        ) from None
    if not widths:
        raise ConfigError("hidden widths: give at least one layer width, like 32, 32, 32")
    return widths


def parse_lipschitz(value: Any) -> float:
    """Parse L: a positive number or ``inf``/``∞``/``none`` for no regularization."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"inf", "infinity", "∞", "none", "+inf"}:
            return math.inf
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"L must be a positive number or 'inf', got {value!r}") from None
    if value is None:
        return math.inf
    return float(value)


def _choices(name: str, value: Any, literal: Any) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _in_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    ok = (value > low if low_open else value >= low) and value <= high
    if not (isinstance(value, (int, float)) and not math.isnan(value) and ok):
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be in {bracket}{low:g}, {high:g}]; got {value!r}")


def validate(c: FlowConfig) -> None:
    """Check every field once, with a message naming the field and the allowed range."""
    _choices("f", c.f, FName)
    _choices("kl_form", c.kl_form, KLForm)
    _choices("activation", c.activation, Activation)
    if c.last_activation is not None:
        _choices("last_activation", c.last_activation, Activation)
    _choices("lipschitz", c.lipschitz, LipschitzMode)
    _choices("init", c.init, Init)
    _choices("optimizer_state", c.optimizer_state, OptimizerState)
    _choices("solver", c.solver, Solver)
    _choices("device", c.device, Device)
    _choices("dtype", c.dtype, DType)
    _choices("engine", c.engine, Engine)
    if c.f == "alpha":
        _in_range("alpha", c.alpha, 1.0, 1e3, low_open=True)
    if math.isnan(c.L) or c.L <= 0:
        raise ConfigError(f"L must be a positive number or inf (no regularization); got {c.L!r}")
    if math.isfinite(c.L) and c.L > 1e6:
        raise ConfigError(f"L must be at most 1e6 (or inf for no regularization); got {c.L:g}")
    _in_range("dt", c.dt, 0.0, 1e3, low_open=True)
    _int_in_range("steps", c.steps, 1, 10_000_000)
    _int_in_range("inner_steps", c.inner_steps, 1, 10_000)
    _in_range("lr", c.lr, 0.0, 1.0, low_open=True)
    if not 1 <= len(c.hidden) <= 8:
        raise ConfigError(f"hidden must list 1 to 8 layer widths; got {len(c.hidden)}")
    for width in c.hidden:
        if not 1 <= width <= 4096:
            raise ConfigError(f"hidden layer widths must be in [1, 4096]; got {width}")
    _in_range("penalty_weight", c.penalty_weight, 0.0, 1e6, low_open=True)
    _int_in_range("power_iterations", c.power_iterations, 1, 100)
    _int_in_range("record_every", c.record_every, 1, 1_000_000)
    _in_range("converge_tol", c.converge_tol, 0.0, 1e6)
    _int_in_range("seed", c.seed, 0, 2**31 - 1)


def _int_in_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be a whole number in [{low}, {high}]; got {value!r}")


def check_batch(configs: Sequence[FlowConfig]) -> tuple[FlowConfig, ...]:
    """Members of one ensemble may differ only in PER_MEMBER_FIELDS; say which field breaks that."""
    configs = tuple(configs)
    if not configs:
        raise ConfigError("an ensemble needs at least one configuration")
    first = configs[0]
    for i, other in enumerate(configs[1:], start=1):
        for f in fields(FlowConfig):
            if f.name in PER_MEMBER_FIELDS or not f.compare:
                continue
            if getattr(first, f.name) != getattr(other, f.name):
                raise ConfigError(
                    f"ensemble members must share {f.name}: member 0 has {getattr(first, f.name)!r}, "
                    f"member {i} has {getattr(other, f.name)!r} (members may differ only in "
                    f"{', '.join(sorted(PER_MEMBER_FIELDS))})"
                )
    return configs
