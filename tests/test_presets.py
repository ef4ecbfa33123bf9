"""Tests for gpa_core.data.presets and the shipped preset files in assets/presets."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from gpa_core import GPAFlow
from gpa_core.data.presets import PRESET_DIR, PresetError, get_preset, list_presets, load_preset, parse_preset

GOOD = {
    "id": "tiny",
    "title": "Tiny",
    "source": {"name": "gaussian", "params": {"std": 0.5}},
    "target": {"name": "mixture"},
    "M": 20,
    "N": 10,
    "config": {"kl_form": "dv", "steps": 5},
    "members": [{"label": "a", "L": 1}, {"label": "b", "L": "inf"}],
}


def test_shipped_presets_load_and_are_unique() -> None:
    presets = list_presets()
    ids = [p.id for p in presets]
    assert len(ids) == len(set(ids)) >= 6
    assert ids[0] == "fig2-3-mixture"  # the playground's default comes first
    for p in presets:
        assert p.title and p.paper and p.notes
        src, tgt = p.sample_source(), p.sample_target()
        assert src.shape == (p.M, p.dim) and tgt.shape == (p.N, p.dim)
        flow = GPAFlow(src, tgt, p.configs)  # every member set is a valid ensemble
        assert flow.K == len(p.members)


def test_presets_follow_the_paper_settings() -> None:
    mix = get_preset("fig2-3-mixture")
    assert [c.L for c in mix.configs] == [1.0, 10.0, 100.0, math.inf]
    c = mix.member_config()
    assert (c.f, c.kl_form, c.dt, c.steps, c.inner_steps, c.solver, c.lr) == (
        "kl",
        "dv",
        0.5,
        500,
        3,
        "euler",
        1e-3,
    )
    assert (mix.M, mix.N, mix.dim) == (200, 200, 2)
    assert c.hidden == (32, 32, 32) and c.L == 1.0

    tails = get_preset("fig4-heavy-tails")
    assert [(c.f, c.alpha if c.f == "alpha" else None) for c in tails.configs] == [
        ("kl", None),
        ("alpha", 2.0),
        ("alpha", 10.0),
    ]
    assert all(c.L == 1.0 for c in tails.configs)
    assert tails.target.name == "student_t" and tails.target.params["nu"] == 0.5
    assert np.allclose(tails.sample_source().mean(axis=0), 10.0, atol=0.2)

    roll = get_preset("fig6-swiss-roll")
    assert (roll.M, roll.N, roll.dim, roll.config.solver, roll.config.kl_form) == (5000, 200, 3, "heun", "lt")
    carpet = get_preset("fig7-sierpinski")
    assert (carpet.M, carpet.N, carpet.config.dt, carpet.config.last_activation) == (
        4096,
        4096,
        0.2,
        "smooth_relu",
    )
    digits = get_preset("digits")
    assert digits.dim == 64 and digits.image_shape == (8, 8) and digits.config.inner_steps == 5


def test_sampling_is_deterministic() -> None:
    p = get_preset("fig2-3-mixture")
    np.testing.assert_array_equal(p.sample_source(), p.sample_source())
    assert not np.array_equal(p.sample_source(), p.sample_target())


def test_parse_good_and_labels() -> None:
    p = parse_preset(GOOD)
    assert p.labels == ("a", "b") and p.dim == 2 and p.default_member == 0
    assert math.isinf(p.member_config(1).L)
    with pytest.raises(PresetError, match=r"members 0\.\.1"):
        p.member_config(2)
    unlabeled = parse_preset({**GOOD, "members": [{"f": "alpha", "alpha": 2}]})
    assert unlabeled.labels == ("α = 2, L = 1",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"M": 0}, "'M' must be a whole number"),
        ({"M": "200"}, "'M' must be a whole number"),
        ({"id": "Bad Id"}, "'id'"),
        ({"colour": "red"}, "unknown field"),
        ({"source": {"name": "nope"}}, "Unknown dataset"),
        ({"source": {"name": "gaussian", "params": {"std": -1}}}, "std"),
        ({"source": {"name": "gaussian", "extra": 1}}, "unknown field"),
        ({"target": {"name": "mixture"}, "dim": 3}, "dim must be 2"),
        ({"config": {"dt": -1}}, "dt must be"),
        ({"config": {"colour": 1}}, "unknown configuration field"),
        ({"config": []}, "'config' must be an object"),
        ({"members": [{"L": 1}, {"hidden": [4]}]}, "must share hidden"),
        ({"members": "L=1"}, "'members' must be a list"),
        ({"default_member": 5}, "default_member"),
        ({"image_shape": [8, 8]}, "image_shape"),
        ({"title": 3}, "'title' must be text"),
        ({"data_seed": -1}, "data_seed"),
    ],
)
def test_bad_presets_are_named(change: dict, message: str) -> None:
    data = copy.deepcopy(GOOD)
    data.update(change)
    with pytest.raises(PresetError, match=message) as info:
        parse_preset(data, where="mine.json")
    assert str(info.value).startswith("mine.json: ")


def test_missing_field() -> None:
    data = {k: v for k, v in GOOD.items() if k != "target"}
    with pytest.raises(PresetError, match="missing field 'target'"):
        parse_preset(data)
    with pytest.raises(PresetError, match="JSON object"):
        parse_preset([1, 2])


def test_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(GOOD), encoding="utf-8")
    assert load_preset(tmp_path / "a.json").id == "tiny"
    (tmp_path / "b.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PresetError, match=r"b\.json: not valid JSON"):
        list_presets(tmp_path)
    (tmp_path / "b.json").write_text(json.dumps(GOOD), encoding="utf-8")
    with pytest.raises(PresetError, match="duplicate preset id"):
        list_presets(tmp_path)
    with pytest.raises(PresetError, match="cannot read"):
        load_preset(tmp_path / "missing.json")
    with pytest.raises(PresetError, match="no preset 'zzz'"):
        get_preset("zzz")
    assert PRESET_DIR.is_dir()
