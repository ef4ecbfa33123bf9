"""Links: the one codec between a run and query parameters (strings), used by the pages that open a run in
the playground (:func:`playground_params`) and by the playground's own URL (``ui/playground_state.py``).

A link holds the data — ``source`` and ``target`` dataset specs, ``M``, ``N``, ``data_seed`` (the source
is drawn with it, the target with it + 1, as :func:`sample_pair` does) and ``dim`` if given — and
FlowConfig fields by their own names, each in the text form of :func:`gpa_core.config.field_to_text`
(L as ``inf`` when unregularized, hidden as ``32,32,32``, ``true``/``false``, ``none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpa_core.config import RUN_FIELDS, ConfigError, FlowConfig, field_from_text, field_to_text


class QueryError(ValueError):
    """A query parameter that cannot be read; the message names it."""


#: Whole-number data parameters of a link (the dataset specs ``source``/``target`` are text).
DATA_INT_KEYS: tuple[str, ...] = ("M", "N", "data_seed", "dim")
#: The FlowConfig fields a link may carry: all that define a run (not the free-text notes).
CONFIG_PARAMS: tuple[str, ...] = RUN_FIELDS


def config_params(values: Mapping[str, Any]) -> dict[str, str]:
    """FlowConfig field values (by field name) → query parameters."""
    return {name: field_to_text(name, value) for name, value in values.items()}


def read_param(key: str, text: str) -> Any:
    """One query parameter → its value: a FlowConfig field in its text form, or a whole-number data
    parameter. QueryError naming the parameter when the text cannot be read (the ranges are checked by
    whoever uses the value: FlowConfig for its fields)."""
    if key in DATA_INT_KEYS:
        try:
            return int(str(text))
        except ValueError:
            raise QueryError(f"{key} must be a whole number; got {text!r}") from None
    if key not in CONFIG_PARAMS:
        raise QueryError(f"{key} is not a parameter of a run")
    try:
        return field_from_text(key, text)
    except ConfigError as exc:
        raise QueryError(str(exc)) from None


def playground_params(
    config: FlowConfig,
    *,
    source: str,
    target: str,
    M: int,
    N: int,
    data_seed: int = 0,
    dim: int | None = None,
) -> dict[str, str]:
    """Query parameters that open a run in the playground (``pages/playground.py`` reads them, or the same
    dict in ``st.session_state["playground_request"]``): the data and every FlowConfig field that differs
    from the defaults."""
    params: dict[str, str] = {"source": source, "target": target, "M": str(int(M)), "N": str(int(N))}
    params["data_seed"] = str(int(data_seed))
    if dim is not None:
        params["dim"] = str(int(dim))
    default = FlowConfig()
    changed = {n: getattr(config, n) for n in CONFIG_PARAMS if getattr(config, n) != getattr(default, n)}
    return {**params, **config_params(changed)}


def parse_playground_params(params: Mapping[str, str]) -> tuple[dict[str, Any], FlowConfig]:
    """Inverse of :func:`playground_params`: ({source, target, M, N, data_seed[, dim]}, FlowConfig).
    Unknown keys are ignored; a bad value raises QueryError naming the parameter."""
    data: dict[str, Any] = {
        "source": params.get("source"),
        "target": params.get("target"),
        "M": None,
        "N": None,
        "data_seed": 0,
    }
    values: dict[str, Any] = {}
    for key, text in params.items():
        if key not in DATA_INT_KEYS and key not in CONFIG_PARAMS:
            continue
        try:
            (data if key in DATA_INT_KEYS else values)[key] = read_param(key, text)
        except QueryError as exc:
            raise QueryError(f"query parameter {exc}") from None
    try:
        config = FlowConfig(**values)
    except (ConfigError, TypeError, ValueError) as exc:
        raise QueryError(f"query parameters do not make a valid configuration: {exc}") from exc
    return data, config
