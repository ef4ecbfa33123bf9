"""The playground's URL: the query parameters that open a run there, and their inverse."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gpa_core.config import ConfigError, FlowConfig


class QueryError(ValueError):
    """A query parameter that cannot be read; the message names it."""


# ========================================================================================= playground
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
    dict in ``st.session_state["playground_request"]``): source/target dataset specs, M, N, the data seed
    (the source is drawn with it, the target with it + 1, as :func:`sample_pair` does), the dimension if
    given, and every FlowConfig field that differs from the defaults (L as "inf" when unregularized, hidden
    as "32,32,32")."""
    params: dict[str, str] = {"source": source, "target": target, "M": str(int(M)), "N": str(int(N))}
    params["data_seed"] = str(int(data_seed))
    if dim is not None:
        params["dim"] = str(int(dim))
    default = FlowConfig().to_dict()
    for key, value in config.to_dict().items():
        if key == "notes" or value == default.get(key):
            continue
        if key == "hidden":
            params[key] = ",".join(str(int(h)) for h in value)
        elif isinstance(value, bool):
            params[key] = "true" if value else "false"
        elif value is None:
            params[key] = "none"
        elif isinstance(value, float):
            params[key] = repr(value)
        else:
            params[key] = str(value)
    return params


_INT_FIELDS = {"steps", "inner_steps", "power_iterations", "record_every", "seed"}
_BOOL_FIELDS = {"logsumexp"}


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
    if "dim" in params:
        data["dim"] = None
    for key in ("M", "N", "data_seed", "dim"):
        if key in params:
            try:
                data[key] = int(params[key])
            except ValueError:
                raise QueryError(
                    f"query parameter {key} must be a whole number; got {params[key]!r}"
                ) from None
    known = {f.name for f in dataclasses.fields(FlowConfig)} - {"notes"}
    fields_: dict[str, Any] = {}
    for key in known & set(params):
        raw = str(params[key])
        try:
            if key == "hidden":
                fields_[key] = tuple(int(w) for w in raw.split(",") if w.strip())
            elif key in _INT_FIELDS:
                fields_[key] = int(raw)
            elif key in _BOOL_FIELDS:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(raw)
                fields_[key] = raw.lower() in ("true", "1")
            elif key == "last_activation":
                fields_[key] = None if raw.lower() == "none" else raw
            elif key in ("alpha", "dt", "lr", "penalty_weight", "converge_tol"):
                fields_[key] = float(raw)
            else:
                fields_[key] = raw  # L is parsed by FlowConfig.from_dict ("inf" allowed)
        except ValueError:
            raise QueryError(f"query parameter {key} has a bad value {raw!r}") from None
    try:
        config = FlowConfig.from_dict(fields_)
    except (ConfigError, TypeError) as exc:
        raise QueryError(f"query parameters do not make a valid configuration: {exc}") from exc
    return data, config
