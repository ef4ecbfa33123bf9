"""FlowConfig: validated once, with messages naming the field and the allowed range."""

from __future__ import annotations

import math

import pytest

from gpa_core.config import (
    ConfigError,
    FlowConfig,
    authors_numerics,
    check_batch,
    parse_hidden,
    parse_lipschitz,
)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"f": "hellinger"}, "f must be one of"),
        ({"f": "alpha", "alpha": 1.0}, "alpha must be in"),
        ({"L": -1.0}, "L must be a positive number"),
        ({"L": 0.0}, "L must be a positive number"),
        ({"dt": 0.0}, "dt must be in"),
        ({"steps": 0}, "steps must be a whole number"),
        ({"inner_steps": 2.5}, "inner_steps must be a whole number"),
        ({"lr": 2.0}, "lr must be in"),
        ({"hidden": ()}, "hidden must list"),
        ({"hidden": (0, 4)}, "hidden layer widths"),
        ({"activation": "tanh"}, "activation must be one of"),
        ({"lipschitz": "weird"}, "lipschitz must be one of"),
        ({"solver": "rk4"}, "solver must be one of"),
        ({"device": "tpu"}, "device must be one of"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"record_every": 0}, "record_every must be"),
    ],
)
def test_invalid_values_are_refused_with_the_field_named(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FlowConfig(**changes)


def test_infinite_L_means_unregularized() -> None:
    c = FlowConfig(L=math.inf)
    assert not c.regularized
    assert parse_lipschitz("∞") == math.inf and parse_lipschitz("inf") == math.inf
    assert parse_lipschitz("2.5") == 2.5
    with pytest.raises(ConfigError):
        parse_lipschitz("abc")


def test_json_round_trip_including_infinity() -> None:
    c = FlowConfig(f="alpha", alpha=3.0, L=math.inf, hidden=(16, 8), solver="heun")
    assert FlowConfig.from_json(c.to_json()) == c
    with pytest.raises(ConfigError, match="unknown configuration field"):
        FlowConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        FlowConfig.from_json("{nope")


def test_authors_numerics_groups_their_choices() -> None:
    a = authors_numerics(FlowConfig())
    assert (a.lipschitz, a.init, a.optimizer_state, a.kl_form, a.logsumexp) == (
        "frobenius",
        "he_normal",
        "reset",
        "dv",
        False,
    )
    assert FlowConfig().lipschitz == "spectral"  # the paper stays the default


def test_ensemble_members_may_differ_only_in_per_member_fields() -> None:
    base = FlowConfig()
    check_batch([base, base.replace(L=10.0, dt=0.1, f="alpha", seed=3, solver="heun")])
    with pytest.raises(ConfigError, match="must share hidden"):
        check_batch([base, base.replace(hidden=(8, 8))])
    with pytest.raises(ConfigError, match="at least one"):
        check_batch([])


@pytest.mark.parametrize(
    "text", ["32,32,32", "32, 32, 32", "32 32 32", " 32  32\t32 ", "32-32-32", "32;32;32"]
)
def test_parse_hidden_takes_what_people_type(text: str) -> None:
    """One parser for every page (the compare, stability and heavy-tail pages used to strip the spaces
    of "32 32 32" and read 323232)."""
    assert parse_hidden(text) == (32, 32, 32)


def test_parse_hidden_refuses_with_the_reason() -> None:
    assert parse_hidden("8") == (8,)
    with pytest.raises(ConfigError, match="whole numbers"):
        parse_hidden("32,x")
    with pytest.raises(ConfigError, match="at least one"):
        parse_hidden(" , ")
