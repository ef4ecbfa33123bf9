"""The playground's settings as one plain dict, and its round trips: preset → settings,
settings → FlowConfig, settings ⇄ URL query parameters. Pure Python (no Streamlit), so it is tested
directly; the page keeps these values in ``st.session_state`` under the same keys.

Keys: ``src``/``tgt`` (dataset names, or ``"upload"``), ``src.<dataset>.<param>`` and
``tgt.<dataset>.<param>`` (dataset parameters), ``M``, ``N``, ``dim``, ``data_seed``, and the
FlowConfig fields listed in ``CONFIG_KEYS`` (``hidden`` as text such as ``"32, 32, 32"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gpa_core.config import FIELDS, ConfigError, FlowConfig, parse_hidden, parse_lipschitz
from gpa_core.data.datasets import DatasetError, format_spec, get_dataset, list_datasets, parse_spec
from gpa_core.data.presets import Preset
from ui import query as query_codec

UPLOAD = "upload"
#: Datasets offered in the UI (``file`` reads server paths and is replaced by an upload).
UI_DATASETS: tuple[str, ...] = tuple(d.name for d in list_datasets() if d.name != "file")
MAX_POINTS = 20_000
MAX_UI_DIM = 4096

#: Log-scale choices for L (∞: no Lipschitz bound) and the learning rate; a value from a preset or a
#: link that is not among them is added by :func:`choices_with`.
L_CHOICES: tuple[float, ...] = (
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, math.inf,
)  # fmt: skip
LR_CHOICES: tuple[float, ...] = (
    1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1,
)  # fmt: skip

#: The FlowConfig fields the playground has widgets for (its settings and its links carry them).
CONFIG_KEYS: tuple[str, ...] = tuple(name for name, info in FIELDS.items() if info.playground)
#: The widget's value of an optional choice left unset (last_activation: the same as the others).
SAME = "same"

#: Query-parameter names besides the dataset specs: the data keys, then the FlowConfig fields by their
#: own names (the format of ``ui.query``, which other pages use to open a run here).
QUERY_KEYS: tuple[str, ...] = (*query_codec.DATA_INT_KEYS, *CONFIG_KEYS)
SIDE_QUERY = {"src": "source", "tgt": "target"}


def choices_with(choices: tuple[float, ...], value: float) -> tuple[float, ...]:
    """``choices`` with ``value`` added in order (so a slider can show any valid value exactly)."""
    if value in choices:
        return choices
    return tuple(sorted({*choices, float(value)}))


def nearest(value: float, choices: tuple[float, ...]) -> float:
    """The choice closest to ``value`` on a log scale (∞ only for ∞)."""
    if math.isinf(value):
        return math.inf if math.inf in choices else max(choices)
    finite = [c for c in choices if math.isfinite(c)]
    if value <= 0:
        return finite[0]
    return min(finite, key=lambda c: abs(math.log(c) - math.log(value)))


def hidden_text(hidden: tuple[int, ...]) -> str:
    return ", ".join(str(h) for h in hidden)


def dataset_state(side: str, name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Settings entries for one side's dataset: every parameter filled (defaults where missing)."""
    ds = get_dataset(name)
    values = ds.validate_params(dict(params))
    return {side: name, **{f"{side}.{name}.{k}": v for k, v in values.items()}}


def dataset_params(state: Mapping[str, Any], side: str) -> dict[str, Any]:
    """The chosen dataset's parameters for ``side`` ("src" or "tgt") from the settings."""
    name = state[side]
    ds = get_dataset(name)
    return {p.name: state.get(f"{side}.{name}.{p.name}", p.default) for p in ds.params}


def config_state(cfg: FlowConfig) -> dict[str, Any]:
    return {k: _widget_value(k, getattr(cfg, k)) for k in CONFIG_KEYS}


def _widget_value(key: str, value: Any) -> Any:
    """A field's value as its widget holds it: hidden as text ("32, 32, 32"), an unset optional choice
    as ``SAME``."""
    info = FIELDS[key]
    if info.kind == "widths":
        return hidden_text(value)
    if info.optional and value is None:
        return SAME
    return value


def _field_value(key: str, value: Any) -> Any:
    """Inverse of :func:`_widget_value`: the FlowConfig value of a widget's value (ConfigError for
    hidden widths that cannot be read)."""
    info = FIELDS[key]
    if info.kind == "widths":
        return parse_hidden(value) if isinstance(value, str) else tuple(value)
    if info.optional and value in (None, SAME, ""):
        return None
    if info.kind == "lipschitz":
        return parse_lipschitz(value)
    if info.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)  # a number widget may hand back 500.0
    return value


def default_state() -> dict[str, Any]:
    """Gaussian → the four wells with L = 1 (Fig. 2–3), the playground's opening run."""
    from gpa_core.data.presets import get_preset

    try:
        return state_from_preset(get_preset("fig2-3-mixture"), 0)
    except Exception:  # pragma: no cover - presets missing: still open on something interesting
        cfg = FlowConfig(kl_form="dv", dt=0.5, steps=500)
        return {
            **dataset_state("src", "gaussian", {"std": 0.5}),
            **dataset_state("tgt", "mixture", {}),
            "M": 200,
            "N": 200,
            "dim": 2,
            "data_seed": 0,
            **config_state(cfg),
        }


def state_from_preset(preset: Preset, member: int | None = None) -> dict[str, Any]:
    cfg = preset.member_config(member)
    return {
        **dataset_state("src", preset.source.name, preset.source.params),
        **dataset_state("tgt", preset.target.name, preset.target.params),
        "M": preset.M,
        "N": preset.N,
        "dim": preset.dim,
        "data_seed": preset.data_seed,
        **config_state(cfg),
    }


def config_from_state(state: Mapping[str, Any]) -> FlowConfig:
    """The FlowConfig the widgets describe (raises ConfigError naming the field)."""
    values = {k: _field_value(k, state[k]) for k in CONFIG_KEYS if k in state}
    try:
        return FlowConfig(**values)
    except TypeError as exc:  # pragma: no cover - a wrong key is a programming error
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------
# URL query parameters
# ---------------------------------------------------------------------------------------------------


def to_query(state: Mapping[str, Any]) -> dict[str, str]:
    """Settings → query parameters (strings). An uploaded side is written as ``upload`` (the file
    itself cannot travel in a link)."""
    out: dict[str, str] = {}
    for side, qname in SIDE_QUERY.items():
        name = state[side]
        if name == UPLOAD:
            out[qname] = UPLOAD
            continue
        ds = get_dataset(name)
        params = {k: v for k, v in dataset_params(state, side).items() if ds.param(k).kind != "str"}
        out[qname] = format_spec(name, params)
    out.update({key: str(state[key]) for key in query_codec.DATA_INT_KEYS if key in state})
    out.update(query_codec.config_params({k: _field_value(k, state[k]) for k in CONFIG_KEYS if k in state}))
    return out


def from_query(query: Mapping[str, str], base: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Query parameters → settings on top of ``base``; every invalid parameter is skipped with a
    warning saying which and why (the rest still apply). A link lists only the FlowConfig fields that
    differ from the defaults, so when it names any data or configuration, the configuration starts
    from ``FlowConfig()``. A link without ``dim`` keeps ``base``'s dimension when both datasets allow
    it, else takes the datasets' own."""
    state = dict(base)
    warnings: list[str] = []
    relevant = set(SIDE_QUERY.values()) | set(QUERY_KEYS)
    if not relevant & set(query):
        return state, warnings
    state.update(config_state(FlowConfig()))
    for side, qname in SIDE_QUERY.items():
        if qname not in query:
            continue
        label = "source" if side == "src" else "target"
        text = str(query[qname])
        if text == UPLOAD:
            warnings.append(
                f"The link's {label} was an uploaded file, which a link cannot carry; using the default."
            )
            continue
        try:
            name, params = parse_spec(text)
            if name not in UI_DATASETS:
                raise DatasetError(f"dataset '{name}' cannot be used in a link")
            state.update(dataset_state(side, name, params))
        except DatasetError as exc:
            warnings.append(f"Ignored the link's {label} '{text[:60]}': {exc}")
    if "dim" not in query:
        state["dim"] = _common_dim(state["src"], state["tgt"], int(state.get("dim", 2)))
    for key, raw in query.items():
        if key not in QUERY_KEYS:
            continue
        text = str(raw)
        before = state.get(key)
        try:
            value = query_codec.read_param(key, text)
            state[key] = _widget_value(key, value) if key in CONFIG_KEYS else value
            if key in CONFIG_KEYS:
                config_from_state(state)  # validate this one change now
            elif key in ("M", "N") and not 1 <= state[key] <= MAX_POINTS:
                raise ValueError(f"must be from 1 to {MAX_POINTS:,}")
            elif key == "dim" and not 1 <= state[key] <= MAX_UI_DIM:
                raise ValueError(f"must be from 1 to {MAX_UI_DIM}")
            elif key == "data_seed" and state[key] < 0:
                raise ValueError("must be ≥ 0")
        except (ValueError, ConfigError) as exc:
            state[key] = before
            warnings.append(f"Ignored the link's {key}={text[:40]}: {exc}")
    return state, warnings


def _common_dim(src: str, tgt: str, preferred: int) -> int:
    """A dimension both datasets allow: ``preferred`` if possible, else the first shared one."""
    allowed = [get_dataset(n).dims for n in (src, tgt) if n != UPLOAD]
    if all(a is None or preferred in a for a in allowed):
        return preferred
    fixed = [a for a in allowed if a is not None]
    shared = set(fixed[0]).intersection(*fixed[1:]) if fixed else set()
    return min(shared) if shared else get_dataset(src if src != UPLOAD else tgt).default_dim
