"""FlowConfig: validated once, with messages naming the field and the allowed range."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import pytest

from gpa_core import cli
from gpa_core import config as config_mod
from gpa_core.config import (
    FIELDS,
    LIVE_FIELDS,
    PER_MEMBER_FIELDS,
    RUN_FIELDS,
    SHARED_FIELDS,
    ConfigError,
    FieldInfo,
    FlowConfig,
    about,
    authors_numerics,
    check_batch,
    field_from_text,
    field_infos,
    field_label,
    field_to_text,
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


# ------------------------------------------------------------------------- one source for each fact
def test_every_field_says_what_it_is() -> None:
    """Every FlowConfig field carries a FieldInfo; kind, choices and default come from the dataclass."""
    assert list(FIELDS) == [f.name for f in dataclasses.fields(FlowConfig)]
    for f in dataclasses.fields(FlowConfig):
        info = FIELDS[f.name]
        assert isinstance(f.metadata[config_mod.META], FieldInfo)
        assert info.name == f.name and info.label and info.help
        assert info.default == getattr(FlowConfig(), f.name)
        assert bool(info.choices) == (info.kind == "choice")
        assert set(info.cli) <= {"run", "divergence"}
        if info.kind in ("int", "float"):
            assert info.low is not None and info.high is not None, f.name


def test_the_lists_are_derived_from_the_metadata() -> None:
    from gpa_core.engine import flow
    from gpa_core.studies.batches import _batch_key
    from ui import playground_state, query

    assert {n for n, i in FIELDS.items() if i.per_member} == PER_MEMBER_FIELDS
    assert {n for n, i in FIELDS.items() if i.live} == LIVE_FIELDS
    assert flow.LIVE_FIELDS is LIVE_FIELDS
    assert SHARED_FIELDS == tuple(n for n in RUN_FIELDS if n not in PER_MEMBER_FIELDS)
    assert [name for name, _ in _batch_key(FlowConfig())] == list(SHARED_FIELDS)
    assert playground_state.CONFIG_KEYS == tuple(n for n, i in FIELDS.items() if i.playground)
    assert query.CONFIG_PARAMS == RUN_FIELDS == tuple(n for n in FIELDS if n != "notes")
    assert (field_label("dt"), field_label("inner_steps"), field_label("hidden")) == ("Δt", "m_max", "hidden")


def test_ranges_come_from_the_metadata() -> None:
    """validate checks each number against its FieldInfo range, with the message naming both."""
    for name, info in FIELDS.items():
        if info.kind not in ("int", "float"):
            continue
        changes = {"f": "alpha"} if info.only_if else {}
        too_big = info.high + 1 if info.kind == "int" else info.high * 2 + 1
        with pytest.raises(ConfigError, match=f"^{name} must be"):
            FlowConfig(**changes, **{name: too_big})
    FlowConfig(alpha=0.5)  # α is read only for f = alpha (only_if), so only then checked


def _extended() -> type:
    """FlowConfig with one more field: the one edit a new field needs."""
    extra = dataclasses.field(
        default="a", metadata=about("a new choice", per_member=True, live=True, cli=("run",))
    )
    return dataclasses.make_dataclass(
        "Extended", [("extra", Literal["a", "b"], extra)], bases=(FlowConfig,), frozen=True
    )


def test_a_new_field_needs_one_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added with its metadata is taken up by what reads FIELDS: its kind and choices, the
    per-member and live sets, the text codec, and the command-line flags."""
    infos = field_infos(_extended())
    info = infos["extra"]
    assert (info.kind, info.choices, info.default, info.label) == ("choice", ("a", "b"), "a", "extra")
    assert list(infos)[:-1] == list(FIELDS)
    monkeypatch.setattr(config_mod, "FIELDS", infos)
    monkeypatch.setattr(cli, "FIELDS", infos)
    assert "extra" in config_mod.cli_fields("run")
    assert field_from_text("extra", field_to_text("extra", "b")) == "b"
    run = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["run"]
    flag = next(a for a in run._actions if a.dest == "extra")
    assert flag.option_strings == ["--extra"] and tuple(flag.choices) == ("a", "b") and flag.default == "a"


def test_a_field_without_metadata_is_refused() -> None:
    bare = dataclasses.make_dataclass(
        "Bare", [("extra", int, dataclasses.field(default=1))], bases=(FlowConfig,), frozen=True
    )
    with pytest.raises(TypeError, match=r"Bare\.extra has no FieldInfo"):
        field_infos(bare)
