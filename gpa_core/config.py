"""A run's configuration: one frozen, validated dataclass (validated once, at the edge).

Symbols follow the paper: f, α (``alpha``), L, Δt (``dt``), m_max (``inner_steps``).

Everything the rest of the code knows about a field — its label, whether ensemble members may differ in
it, whether a run takes a new value live, its range, which command-line commands and which playground
widgets offer it — is written once, on the field itself (``FieldInfo`` in the field's metadata), and
read through :data:`FIELDS`. The lists (:data:`PER_MEMBER_FIELDS`, :data:`LIVE_FIELDS`, ...), the
validation, the one text codec (:func:`field_to_text` / :func:`field_from_text`, used by the links and
the command line) and the CLI flags are derived from it: a new field is one edit, here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

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

#: How a field's value is read and written: a Literal's values (``choice``), a whole number, a number,
#: ``true``/``false``, L (a positive number or ``inf``), hidden widths (``32,32,32``) or free text.
FieldKind = Literal["choice", "int", "float", "bool", "lipschitz", "widths", "text"]
META = "gpa"  # the key of FieldInfo in a dataclass field's metadata


@dataclass(frozen=True)
class FieldInfo:
    """What the code needs to know about one FlowConfig field, written on the field
    (``field(default=..., metadata=about(...))``) and read through :data:`FIELDS`.

    label: how messages and legends name the field ("Δt", "m_max"); the field's name when not given.
    help: one line for a person (the command line's ``--help``).
    per_member: the K members of one batched ensemble may differ in it (:data:`PER_MEMBER_FIELDS`).
    live: a run takes a new value without resetting its particles or networks (:data:`LIVE_FIELDS`).
    playground: the playground has a widget for it; its settings and links carry it.
    cli: the ``python -m gpa_core`` commands that take it as a flag (``--inner-steps`` for inner_steps).
    low, high, low_open: the allowed range of a number (of each width, for hidden), checked by
        :func:`validate`; ``low_open`` excludes ``low``.
    length: for hidden, how many widths (from, to).
    only_if: ``(field, value)``: the field is read only then (α only when f = "alpha"), so its range is
        checked only then.
    kind: how it is read and written; from the annotation when not given (a Literal is a choice, bool,
        int, float, str is text, a tuple is widths).

    Filled in from the dataclass (not written on the field): ``name``, ``kind``, ``choices`` (a
    Literal's values), ``optional`` (None allowed) and ``default``."""

    label: str = ""
    help: str = ""
    per_member: bool = False
    live: bool = False
    playground: bool = True
    cli: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    length: tuple[int, int] | None = None
    only_if: tuple[str, Any] | None = None
    kind: FieldKind | None = None
    name: str = ""
    choices: tuple[Any, ...] = ()
    optional: bool = False
    default: Any = None


def about(help: str, **info: Any) -> dict[str, FieldInfo]:
    """A field's metadata: ``field(default=..., metadata=about("time step Δt", label="Δt", live=True))``."""
    return {META: FieldInfo(help=help, **info)}


_RUN = ("run",)  # FieldInfo.cli: the commands that take a field as a flag
_BOTH = ("run", "divergence")


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

    # One field per entry: its default, then what it is (FieldInfo). Kind and choices come from the type.
    f: FName = field(default="kl", metadata=about("the f-divergence", per_member=True, live=True, cli=_BOTH))
    alpha: float = field(default=2.0, metadata=about(
        "α of the α-divergence (--f alpha), α > 1", label="α", only_if=("f", "alpha"),
        per_member=True, live=True, cli=_BOTH, low=1.0, high=1e3, low_open=True,
    ))  # fmt: skip
    kl_form: KLForm = field(default="lt", metadata=about(
        "KL as Legendre transform (lt) or Donsker–Varadhan (dv)", per_member=True, live=True
    ))  # fmt: skip
    logsumexp: bool = field(default=True, metadata=about(
        "log-sum-exp in the Donsker–Varadhan form", per_member=True, live=True
    ))  # fmt: skip
    L: float = field(default=1.0, metadata=about(
        "Lipschitz bound, a number or inf", kind="lipschitz",
        per_member=True, live=True, cli=_BOTH, low=0.0, high=1e6, low_open=True,
    ))  # fmt: skip
    dt: float = field(default=0.5, metadata=about(
        "time step Δt", label="Δt", per_member=True, live=True, cli=_RUN, low=0.0, high=1e3, low_open=True
    ))  # fmt: skip
    steps: int = field(default=500, metadata=about(
        "particle steps", per_member=True, live=True, cli=_RUN, low=1, high=10_000_000
    ))  # fmt: skip
    inner_steps: int = field(default=3, metadata=about(
        "discriminator steps m_max", label="m_max", live=True, cli=_RUN, low=1, high=10_000
    ))  # fmt: skip
    lr: float = field(default=1e-3, metadata=about(
        "discriminator learning rate", label="learning rate",
        per_member=True, live=True, cli=_RUN, low=0.0, high=1.0, low_open=True,
    ))  # fmt: skip
    hidden: tuple[int, ...] = field(default=(32, 32, 32), metadata=about(
        "layer widths of φ", low=1, high=4096, length=(1, 8)
    ))  # fmt: skip
    activation: Activation = field(default="relu", metadata=about("activation of φ's hidden layers"))
    last_activation: Activation | None = field(default=None, metadata=about("last hidden layer's activation"))
    lipschitz: LipschitzMode = field(default="spectral", metadata=about(
        "how φ is kept L-Lipschitz", per_member=True, live=True, cli=_RUN
    ))  # fmt: skip
    penalty_weight: float = field(default=10.0, metadata=about(
        "gradient-penalty weight", per_member=True, live=True, low=0.0, high=1e6, low_open=True
    ))  # fmt: skip
    power_iterations: int = field(default=3, metadata=about(
        "power iterations per projection", live=True, playground=False, low=1, high=100
    ))  # fmt: skip
    init: Init = field(default="uniform", metadata=about("initialization of φ"))
    optimizer_state: OptimizerState = field(default="carry", metadata=about("Adam state across steps"))
    solver: Solver = field(default="euler", metadata=about(
        "Euler or Heun particle update", per_member=True, live=True, cli=_RUN
    ))  # fmt: skip
    record_every: int = field(default=1, metadata=about(
        "record every n-th step", live=True, playground=False, cli=_RUN, low=1, high=1_000_000
    ))  # fmt: skip
    converge_tol: float = field(default=1e-6, metadata=about(
        "a run has converged once its kinetic energy is below this",
        live=True, playground=False, low=0.0, high=1e6,
    ))  # fmt: skip
    stop_divergence: float = field(default=0.0, metadata=about(
        "stop a member once its divergence estimate D is at most this ε (the augmentation rule of "
        "§4 and (8.1)); 0: never", label="ε (stop at D ≤ ε)", per_member=True, live=True, cli=_RUN,
        low=0.0, high=1e6,
    ))  # fmt: skip
    seed: int = field(default=0, metadata=about(
        "seed of φ; run draws the data with it too", per_member=True, cli=_BOTH, low=0, high=2**31 - 1
    ))  # fmt: skip
    device: Device = field(default="auto", metadata=about("where to compute", cli=_RUN))
    dtype: DType = field(default="float32", metadata=about("floating-point precision"))
    engine: Engine = field(default="auto", metadata=about(
        "compiled: Numba kernel (CPU, float32); eager: Torch operations; auto: compiled where possible",
        playground=False, cli=_RUN,
    ))  # fmt: skip
    notes: str = field(default="", compare=False, metadata=about("free text", live=True, playground=False))

    def __post_init__(self) -> None:
        for name, info in FIELDS.items():
            if info.kind == "widths":
                object.__setattr__(self, name, tuple(int(h) for h in getattr(self, name)))
            elif info.kind in ("float", "lipschitz"):
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
        """A copy with ``changes`` applied, validated like any new configuration."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (hidden as a list, L = ∞ as "inf"); :meth:`from_dict` reads them."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["L"] = "inf" if math.isinf(self.L) else self.L
        return d

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowConfig:
        """A configuration from :meth:`to_dict`'s output (missing fields take their defaults); an unknown
        field or a bad value raises ConfigError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown configuration field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        kwargs = dict(data)
        for name, value in data.items():
            kind = FIELDS[name].kind
            if kind == "lipschitz":
                kwargs[name] = parse_lipschitz(value)  # "inf" in JSON
            elif kind == "widths":
                kwargs[name] = tuple(value)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> FlowConfig:
        """A configuration from :meth:`to_json`'s output; bad JSON raises ConfigError."""
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


# ---------------------------------------------------------------------------------------------------
# The fields' metadata, and what is derived from it
# ---------------------------------------------------------------------------------------------------


def field_infos(cls: type) -> dict[str, FieldInfo]:
    """Each field's FieldInfo, completed from the dataclass (name, kind, choices, optional, default), in
    field order. A field without one is refused, naming it: every field says what it is."""
    hints = get_type_hints(cls)
    out: dict[str, FieldInfo] = {}
    for f in fields(cls):
        info = f.metadata.get(META)
        if not isinstance(info, FieldInfo):
            raise TypeError(
                f"{cls.__name__}.{f.name} has no FieldInfo: give it field(default=..., metadata=about(...))"
            )
        hint, optional = hints[f.name], False
        if get_origin(hint) in (Union, types.UnionType):
            args = tuple(a for a in get_args(hint) if a is not type(None))
            optional = len(args) < len(get_args(hint))
            hint = args[0] if len(args) == 1 else hint
        choices = get_args(hint) if get_origin(hint) is Literal else ()
        kind = info.kind or _kind_of(cls, f.name, hint)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        label = info.label or f.name
        out[f.name] = dataclasses.replace(
            info, name=f.name, label=label, kind=kind, choices=choices, optional=optional, default=default
        )
    return out


def _kind_of(cls: type, name: str, hint: Any) -> FieldKind:
    if get_origin(hint) is Literal:
        return "choice"
    if get_origin(hint) is tuple:
        return "widths"
    kinds: dict[Any, FieldKind] = {bool: "bool", int: "int", float: "float", str: "text"}
    if hint in kinds:
        return kinds[hint]
    raise TypeError(f"{cls.__name__}.{name}: no kind for {hint!r}; give about(kind=...)")


#: Every field's FieldInfo, in field order: the one source of what each field is.
FIELDS: Mapping[str, FieldInfo] = types.MappingProxyType(field_infos(FlowConfig))
#: Fields that may differ between the K members of one batched ensemble.
PER_MEMBER_FIELDS: frozenset[str] = frozenset(name for name, info in FIELDS.items() if info.per_member)
#: Fields that can change during a run without resetting particles or networks.
LIVE_FIELDS: frozenset[str] = frozenset(name for name, info in FIELDS.items() if info.live)
#: Fields that define a run (all but the free-text notes): what links carry and runs compare.
RUN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FlowConfig) if f.compare)
#: Fields the members of one ensemble (one batch) must share: all run fields but PER_MEMBER_FIELDS.
SHARED_FIELDS: tuple[str, ...] = tuple(name for name in RUN_FIELDS if name not in PER_MEMBER_FIELDS)


def field_label(name: str) -> str:
    """How messages and legends name a field ("Δt" for dt, "m_max" for inner_steps)."""
    info = FIELDS.get(name)
    return info.label if info is not None else name


def cli_fields(command: str) -> tuple[str, ...]:
    """The fields that ``python -m gpa_core COMMAND`` takes as flags, in field order."""
    return tuple(name for name, info in FIELDS.items() if command in info.cli)


# ---------------------------------------------------------------------------------------------------
# One text form per field (links and the command line)
# ---------------------------------------------------------------------------------------------------


def field_to_text(name: str, value: Any) -> str:
    """A field's value as text that :func:`field_from_text` reads back: ``true``/``false``, ``none``,
    ``inf`` for L = ∞, hidden as ``32,32,32``, numbers as Python writes them (``0.001``, ``2.0``)."""
    kind = FIELDS[name].kind
    if value is None:
        return "none"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "widths":
        return ",".join(str(int(w)) for w in value)
    if kind in ("float", "lipschitz"):
        return repr(float(value))  # repr(inf) is "inf"
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def field_from_text(name: str, text: str) -> Any:
    """Inverse of :func:`field_to_text` (also reads what people type: ``1``/``0``, ``32 32 32``, ``∞``).
    ConfigError, naming the field, when the text is not of the field's kind; the range is checked with
    the rest of the configuration, by :func:`validate`."""
    info = FIELDS[name]
    raw = str(text)
    text = raw if info.kind == "text" else raw.strip()
    if info.optional and text.lower() in ("none", ""):
        return None
    if info.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None
    if info.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number; got {raw!r}") from None
    if info.kind == "bool":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ConfigError(f"{name} must be true or false; got {raw!r}")
        return text.lower() in ("true", "1")
    if info.kind == "lipschitz":
        return parse_lipschitz(text)
    if info.kind == "widths":
        return parse_hidden(text)
    return text


# ---------------------------------------------------------------------------------------------------
# Validation (ranges and choices from the fields' metadata)
# ---------------------------------------------------------------------------------------------------


def validate(c: FlowConfig) -> None:
    """Check every field once, with a message naming the field and the allowed range."""
    for name, info in FIELDS.items():
        if info.only_if is not None and getattr(c, info.only_if[0]) != info.only_if[1]:
            continue  # not read in this configuration (α when f is not "alpha")
        _check(info, getattr(c, name))


def _check(info: FieldInfo, value: Any) -> None:
    name, low, high = info.name, info.low, info.high
    if info.kind == "choice":
        if not (value is None and info.optional):
            _choices(name, value, info.choices)
    elif info.kind == "lipschitz":
        if math.isnan(value) or value <= (low or 0.0):
            raise ConfigError(f"{name} must be a positive number or inf (no regularization); got {value!r}")
        if high is not None and math.isfinite(value) and value > high:
            raise ConfigError(
                f"{name} must be at most {high:g} (or inf for no regularization); got {value:g}"
            )
    elif info.kind == "widths":
        shortest, longest = info.length or (1, math.inf)
        if not shortest <= len(value) <= longest:
            raise ConfigError(f"{name} must list {shortest} to {longest} layer widths; got {len(value)}")
        for width in value:
            if low is not None and high is not None and not low <= width <= high:
                raise ConfigError(f"{name} layer widths must be in [{low:g}, {high:g}]; got {width}")
    elif low is None or high is None:
        return
    elif info.kind == "int":
        _int_in_range(name, value, int(low), int(high))
    elif info.kind == "float":
        _in_range(name, value, low, high, low_open=info.low_open)


def _choices(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _in_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    ok = (value > low if low_open else value >= low) and value <= high
    if not (isinstance(value, (int, float)) and not math.isnan(value) and ok):
        bracket = "(" if low_open else "["
        raise ConfigError(f"{name} must be in {bracket}{low:g}, {high:g}]; got {value!r}")


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
        for name in SHARED_FIELDS:
            if getattr(first, name) != getattr(other, name):
                raise ConfigError(
                    f"ensemble members must share {name}: member 0 has {getattr(first, name)!r}, "
                    f"member {i} has {getattr(other, name)!r} (members may differ only in "
                    f"{', '.join(sorted(PER_MEMBER_FIELDS))})"
                )
    return configs


# ---------------------------------------------------------------------------------------------------
# The rival flows' configuration (gpa_core.rivals): not GPA, for comparison on the same particles
# ---------------------------------------------------------------------------------------------------

RivalName = Literal["mmd", "sinkhorn"]
Kernel = Literal["gaussian", "energy"]


@dataclass(frozen=True)
class RivalConfig:
    """Configuration of one rival particle flow, stepped like GPA (Δt, Euler or Heun) from the same
    particles: the MMD gradient flow (Arbel et al. 2019) with a Gaussian or energy kernel, or the
    Sinkhorn-divergence flow (Feydy et al. 2019). ``width`` is the Gaussian kernel's σ (MMD) or the
    blur (Sinkhorn, ε = blur²); None takes it from the data (:func:`gpa_core.rivals.flow.auto_width`).
    The energy kernel has no width. Computed in float64 (the clouds are small)."""

    flow: RivalName = field(default="mmd", metadata=about("the rival flow: mmd or sinkhorn"))
    kernel: Kernel = field(default="gaussian", metadata=about(
        "MMD's kernel: gaussian exp(−|x−y|²/2σ²) or energy −|x−y|", only_if=("flow", "mmd")
    ))  # fmt: skip
    width: float | None = field(default=None, metadata=about(
        "Gaussian σ (MMD) or blur (Sinkhorn, ε = blur²); empty: from the data",
        low=0.0, high=1e6, low_open=True,
    ))  # fmt: skip
    dt: float = field(default=0.5, metadata=about(
        "time step Δt", label="Δt", low=0.0, high=1e3, low_open=True
    ))  # fmt: skip
    steps: int = field(default=500, metadata=about("particle steps", low=1, high=10_000_000))
    solver: Solver = field(default="euler", metadata=about("Euler or Heun particle update"))
    sinkhorn_iters: int = field(default=20, metadata=about(
        "Sinkhorn sweeps per velocity (warm-started from the last step's potentials) before Newton "
        "polishes the plan",
        low=1, high=100_000, only_if=("flow", "sinkhorn"),
    ))  # fmt: skip
    device: Device = field(default="auto", metadata=about("where to compute"))

    def __post_init__(self) -> None:
        for name in ("dt", "width"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        for name, info in RIVAL_FIELDS.items():
            if info.only_if is not None and getattr(self, info.only_if[0]) != info.only_if[1]:
                continue
            value = getattr(self, name)
            if value is None and info.optional:
                continue
            if info.kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ConfigError(f"{name} must be a number; got {value!r}")
            _check(info, value)

    @property
    def horizon(self) -> float:
        """T = steps · Δt."""
        return self.steps * self.dt

    def replace(self, **changes: Any) -> RivalConfig:
        """A copy with ``changes`` applied, validated like any new configuration."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; :meth:`from_dict` reads them."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RivalConfig:
        """A configuration from :meth:`to_dict`'s output (missing fields take their defaults); an unknown
        field raises ConfigError naming it."""
        unknown = sorted(set(data) - set(RIVAL_FIELDS))
        if unknown:
            raise ConfigError(
                f"unknown rival-flow field(s): {', '.join(unknown)}; known: {', '.join(RIVAL_FIELDS)}"
            )
        return cls(**dict(data))

    @property
    def name(self) -> str:
        """How legends name the flow: "MMD (Gaussian σ = 0.5)", "MMD (energy)", "Sinkhorn (blur 0.3)"."""
        width = "" if self.width is None else f"{self.width:.3g}"
        if self.flow == "sinkhorn":
            return f"Sinkhorn (blur {width or 'auto'})"
        if self.kernel == "energy":
            return "MMD (energy)"
        return f"MMD (Gaussian σ = {width or 'auto'})"


RIVAL_FIELDS: Mapping[str, FieldInfo] = types.MappingProxyType(field_infos(RivalConfig))
"""The FieldInfo of each RivalConfig field, as :data:`FIELDS` for FlowConfig."""
