"""The one query codec (ui/query.py): the text form of every FlowConfig field, the links other pages
write (playground_params) and read back (parse_playground_params), and the playground's own URL
(ui/playground_state.py to_query/from_query), which uses the same codec."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpa_core import FlowConfig
from gpa_core.config import FIELDS, RUN_FIELDS, field_from_text, field_to_text
from gpa_core.studies.heavy_tails import HEAVY_TAIL_CASES, HeavyTailSettings
from ui import playground_state
from ui.query import QueryError, config_params, parse_playground_params, playground_params, read_param


def _other_value(name: str) -> Any:
    """A valid value of the field that is not its default (every field's kind is covered)."""
    info = FIELDS[name]
    if info.kind == "choice":
        return next(c for c in info.choices if c != info.default)
    if info.kind == "bool":
        return not info.default
    if info.kind == "int":
        return info.default + 1
    if info.kind == "float":
        return 2.0 * info.default if info.default else 0.5
    if info.kind == "lipschitz":
        return math.inf
    if info.kind == "widths":
        return (7, 5)
    if info.kind == "text":
        return "a note, with = & ? and spaces "
    raise AssertionError(f"no test value for the kind of {name}: {info.kind}")


#: A configuration in which every field differs from its default.
CHANGED = FlowConfig(**{name: _other_value(name) for name in FIELDS})


def test_the_test_configuration_changes_every_field() -> None:
    default = FlowConfig()
    assert all(getattr(CHANGED, n) != getattr(default, n) for n in FIELDS)


@pytest.mark.parametrize("name", list(FIELDS))
def test_every_field_round_trips_through_its_text(name: str) -> None:
    for value in (FIELDS[name].default, getattr(CHANGED, name)):
        text = field_to_text(name, value)
        assert isinstance(text, str)
        assert field_from_text(name, text) == value
        if name in RUN_FIELDS:  # what a link carries (not the free-text notes)
            assert read_param(name, text) == value


def test_text_forms() -> None:
    values = {"L": math.inf, "hidden": (32, 16), "logsumexp": False, "last_activation": None}
    assert config_params(values) == {
        "L": "inf",
        "hidden": "32,16",
        "logsumexp": "false",
        "last_activation": "none",
    }
    assert field_from_text("hidden", "32 32 32") == (32, 32, 32)  # what people type, as parse_hidden reads
    assert field_from_text("L", "∞") == math.inf and field_from_text("logsumexp", "0") is False
    assert field_to_text("steps", 500.0) == "500"  # a number widget's 500.0 stays a whole number


def test_a_link_carries_every_run_field() -> None:
    params = playground_params(CHANGED, source="gaussian", target="mixture", M=10, N=20, data_seed=3, dim=2)
    assert set(params) == {"source", "target", "M", "N", "data_seed", "dim", *RUN_FIELDS}
    data, back = parse_playground_params(params)
    assert back == CHANGED.replace(notes="")  # notes are free text, not part of a run
    assert data == {"source": "gaussian", "target": "mixture", "M": 10, "N": 20, "data_seed": 3, "dim": 2}
    assert set(playground_params(FlowConfig(), source="a", target="b", M=1, N=1)) == {
        "source", "target", "M", "N", "data_seed",
    }  # fmt: skip


def test_the_playground_url_uses_the_same_codec() -> None:
    """to_query writes the playground's fields as the codec does, and from_query reads them back."""
    state = {**playground_state.default_state(), **playground_state.config_state(CHANGED)}
    query = playground_state.to_query(state)
    keys = playground_state.CONFIG_KEYS
    assert {k: query[k] for k in keys} == config_params({k: getattr(CHANGED, k) for k in keys})
    back, warnings = playground_state.from_query(query, playground_state.default_state())
    assert warnings == []
    cfg = playground_state.config_from_state(back)
    assert all(getattr(cfg, k) == getattr(CHANGED, k) for k in keys)
    # the fields the playground has no widget for start from the defaults
    assert all(getattr(cfg, k) == FIELDS[k].default for k in FIELDS if k not in keys)


def test_the_playground_reads_links_of_other_pages() -> None:
    params = playground_params(CHANGED, source="gaussian:std=0.5", target="mixture", M=64, N=80, dim=2)
    state, warnings = playground_state.from_query(params, playground_state.default_state())
    assert warnings == []
    cfg = playground_state.config_from_state(state)
    assert all(getattr(cfg, k) == getattr(CHANGED, k) for k in playground_state.CONFIG_KEYS)
    assert (state["M"], state["N"], state["dim"]) == (64, 80, 2)


def test_bad_link_values_are_named() -> None:
    state, warnings = playground_state.from_query(
        {"steps": "bad", "L": "-1", "hidden": "32,x", "dt": "0.25"}, playground_state.default_state()
    )
    assert playground_state.config_from_state(state).dt == 0.25 and state["steps"] == 500
    assert [w.split(":")[0] for w in warnings] == [
        "Ignored the link's steps=bad",
        "Ignored the link's L=-1",
        "Ignored the link's hidden=32,x",
    ]
    assert "L must be a positive number" in warnings[1] and "whole numbers" in warnings[2]
    with pytest.raises(QueryError, match="is not a parameter"):
        read_param("notes", "x")


# ------------------------------------------------------------------ moved from tests/test_studies.py
@given(
    L=st.one_of(st.just(math.inf), st.floats(0.01, 1000.0)),
    dt=st.floats(1e-3, 5.0),
    f=st.sampled_from(["kl", "alpha", "js"]),
    alpha=st.floats(1.01, 50.0),
    solver=st.sampled_from(["euler", "heun"]),
    seed=st.integers(0, 1000),
    logsumexp=st.booleans(),
)
def test_playground_params_round_trip(
    L: float, dt: float, f: str, alpha: float, solver: str, seed: int, logsumexp: bool
) -> None:
    cfg = FlowConfig(
        L=L, dt=dt, f=f, alpha=alpha, solver=solver, seed=seed, logsumexp=logsumexp, hidden=(16, 8)
    )  # type: ignore[arg-type]
    params = playground_params(
        cfg, source="gaussian:mean=10", target="student_t:nu=0.5", M=50, N=60, data_seed=4
    )
    assert all(isinstance(v, str) for v in params.values())
    data, back = parse_playground_params(params)
    assert back == cfg
    assert data == {
        "source": "gaussian:mean=10",
        "target": "student_t:nu=0.5",
        "M": 50,
        "N": 60,
        "data_seed": 4,
    }


def test_parse_playground_params_errors() -> None:
    with pytest.raises(QueryError, match="M"):
        parse_playground_params({"M": "many"})
    with pytest.raises(QueryError, match="steps"):
        parse_playground_params({"steps": "1.5"})
    with pytest.raises(QueryError, match="valid configuration"):
        parse_playground_params({"dt": "-1"})


def test_playground_reads_our_links() -> None:
    """The playground's own link reader (ui/playground_state.py) turns our parameters into the same run."""
    settings = HeavyTailSettings()
    for cfg in (settings.config("kl", 2.0, "authors", 3), settings.config("alpha", 10.0, "paper", 1)):
        case = HEAVY_TAIL_CASES[3]
        params = playground_params(
            cfg, source=case.source_spec, target=case.target_spec, M=200, N=150, data_seed=6, dim=2
        )
        state, warnings = playground_state.from_query(params, playground_state.default_state())
        assert warnings == []
        assert playground_state.config_from_state(state) == cfg
        assert (state["src"], state["tgt"], state["M"], state["N"], state["data_seed"], state["dim"]) == (
            "student_t",
            "gaussian",
            200,
            150,
            6,
            2,
        )
