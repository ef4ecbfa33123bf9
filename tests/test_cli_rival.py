"""python -m gpa_core rival: the MMD and Sinkhorn-divergence flows from the command line (JSON output,
saved runs, a diverged or stalled flow as an outcome, one clear line with exit 2 for a bad value)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpa_core.cli import build_parser, main
from gpa_core.config import RIVAL_FIELDS, RivalConfig, about, field_infos
from gpa_core.data.datasets import sample_spec
from gpa_core.ot import wasserstein2
from gpa_core.rivals.flow import RivalFlow, auto_width

ROOT = Path(__file__).resolve().parent.parent
FIG2 = ["--source", "gaussian:std=0.5", "--target", "mixture:std=0.5"]
KEYS = (
    "status",
    "reason",
    "steps",
    "t",
    "kinetic_energy",
    "objective",
    "objective_name",
    "width",
    "marginal_error",
    "w2",
    "seconds",
    "steps_per_second",
    "device",
    "M",
    "N",
    "d",
    "config",
)


def objective_name(**config: Any) -> str:
    """What RivalFlow calls the objective of this configuration ("½MMD²", "S_ε", ...)."""
    points = np.array([[0.0, 0.0], [1.0, 0.0]])
    return RivalFlow(points, points + 1.0, RivalConfig(**config)).objective_name


def rival(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """Run ``rival ARGS --json`` in this process; its JSON (the last stdout line), exit status 0."""
    code = main(["rival", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out.strip().splitlines()[-1])


def test_mmd_json_and_save(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every promised key; the width the data gave (median heuristic); an objective that came down and
    particles nearer the target than they started; the saved history, particles and target."""
    out = tmp_path / "mmd.npz"
    result = rival(
        capsys, *FIG2, "--flow", "mmd", "--M", "60", "--N", "50", "--steps", "60", "--save", str(out)
    )
    assert set(KEYS) <= set(result)
    assert (result["steps"], result["t"], result["M"], result["N"], result["d"]) == (60, 30.0, 60, 50, 2)
    assert result["status"] in {"running", "converged"} and result["reason"] is None
    assert result["objective_name"] == objective_name(flow="mmd") and "MMD" in result["objective_name"]
    assert result["marginal_error"] is None
    assert result["device"] in {"cpu", "cuda"} and result["seconds"] > 0 and result["steps_per_second"] > 0
    assert result["config"] == RivalConfig(flow="mmd", steps=60).to_dict()
    source = sample_spec("gaussian:std=0.5", 60, seed=0)  # run's convention: source --seed, target + 1
    target = sample_spec("mixture:std=0.5", 50, seed=1)
    assert result["width"] == pytest.approx(auto_width(RivalConfig(), source, target))
    assert math.isfinite(result["w2"]) and result["w2"] < 0.8 * wasserstein2(source, target)

    z = np.load(out)
    for name in ("time", "kinetic_energy", "objective", "max_speed", "marginal_error", "step"):
        assert z[name].shape == (60,), name
    assert np.allclose(z["time"], 0.5 * np.arange(60))
    assert z["objective"][-1] < 0.5 * z["objective"][0]
    assert z["objective"][-1] == pytest.approx(result["objective"])
    assert z["particles"].shape == (60, 60, 2) and np.allclose(z["particles"][0], source)
    assert z["final_particles"].shape == (60, 2) and np.array_equal(z["target"], target)
    assert result["w2"] == pytest.approx(wasserstein2(z["final_particles"], target))
    assert json.loads(str(z["config"])) == result["config"]
    assert result["saved"] == str(out)


def test_energy_kernel_has_no_width(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "energy"  # no suffix: .npz is added
    args = ["--flow", "mmd", "--kernel", "energy", "--M", "40", "--N", "40", "--steps", "40"]
    result = rival(capsys, *FIG2, *args, "--save", str(out))
    assert result["width"] is None and result["config"]["kernel"] == "energy"
    assert result["objective_name"] == objective_name(flow="mmd", kernel="energy")
    assert result["marginal_error"] is None
    z = np.load(tmp_path / "energy.npz")
    assert z["objective"][-1] < 0.5 * z["objective"][0] and math.isfinite(result["w2"])


def test_sinkhorn_reports_its_blur_and_marginal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sinkhorn.npz"
    args = ["--flow", "sinkhorn", "--M", "30", "--N", "30", "--steps", "15", "--save", str(out)]
    result = rival(capsys, *FIG2, *args)
    assert result["objective_name"] == objective_name(flow="sinkhorn") != objective_name(flow="mmd")
    assert result["status"] in {"running", "converged"}
    assert result["width"] > 0 and result["config"]["width"] is None  # the blur the data gave
    assert result["marginal_error"] is not None and 0 <= result["marginal_error"] <= 1e-4
    z = np.load(out)
    assert np.nanmax(z["marginal_error"]) <= 1e-4
    assert z["objective"][-1] < 0.1 * z["objective"][0] and math.isfinite(result["w2"])


def test_sinkhorn_width_is_the_blur_given(capsys: pytest.CaptureFixture[str]) -> None:
    result = rival(
        capsys, *FIG2, "--flow", "sinkhorn", "--width", "1", "--M", "20", "--N", "20", "--steps", "3"
    )
    assert result["width"] == 1.0 and result["config"]["width"] == 1.0


def test_a_diverged_flow_is_an_outcome_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    """Sinkhorn's Euler steps with Δt = 2.5 overshoot and the particles run away: exit 0, status
    diverged, and when and why."""
    args = ["--flow", "sinkhorn", "--dt", "2.5", "--steps", "100", "--M", "20", "--N", "20"]
    result = rival(capsys, *FIG2, *args)
    assert result["status"] == "diverged" and result["steps"] < 100
    assert result["diverged_at"] == pytest.approx(result["t"]) == pytest.approx(2.5 * result["steps"])
    assert "ran away" in result["reason"] or "non-finite" in result["reason"]
    assert result["w2"] is not None and result["w2"] > 100  # the last finite particles, far away


def test_narrow_kernel_far_target_stalls(capsys: pytest.CaptureFixture[str]) -> None:
    """A Gaussian kernel of σ = 0.5 barely reaches a target 6 away (Arbel et al. §3): the flow stops
    with its objective (½MMD²) above half its start. With the median-heuristic width the same flow
    gets there."""
    data = ["--source", "gaussian:mean=0,std=0.5", "--target", "gaussian:mean=6,std=0.5", "--M", "100"]
    common = [*data, "--N", "100", "--flow", "mmd", "--dt", "0.5", "--steps", "200"]
    stalled = rival(capsys, *common, "--width", "0.5")
    assert stalled["status"] == "stalled" and stalled["steps"] == 200 and stalled["width"] == 0.5
    assert "MMD²" in stalled["reason"] and "does not reach" in stalled["reason"]
    moving = rival(capsys, *common)
    assert moving["status"] != "stalled" and moving["width"] > 3
    assert moving["w2"] < 0.5 * stalled["w2"] and moving["objective"] < stalled["objective"]


def test_seed_draws_source_and_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seed.npz"
    rival(capsys, *FIG2, "--M", "10", "--N", "12", "--steps", "2", "--seed", "3", "--save", str(out))
    z = np.load(out)
    assert np.allclose(z["particles"][0], sample_spec("gaussian:std=0.5", 10, seed=3))
    assert np.array_equal(z["target"], sample_spec("mixture:std=0.5", 12, seed=4))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--width", "-1"], "width must be in"),
        (["--width", "0"], "width must be in"),
        (["--width", "abc"], "width must be a number"),
        (["--dt", "0"], "dt must be in"),
        (["--dt", "nan"], "dt must be in"),
        (["--flow", "foo"], "--flow: invalid choice"),
        (["--kernel", "cubic"], "--kernel: invalid choice"),
        (["--solver", "rk4"], "--solver: invalid choice"),
        (["--steps", "0"], "--steps: expected a positive whole number"),
        (["--steps", "1.5"], "--steps: expected a whole number"),
        (["--flow", "sinkhorn", "--sinkhorn-iters", "0"], "--sinkhorn-iters: expected a positive"),
        (["--M", "0"], "--M: expected a positive"),
        (["--dim", "3"], "dim must be 2"),  # the mixture is 2-D only
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_field(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rival", *FIG2, "--steps", "2", *extra]) == 2
    out = capsys.readouterr()
    err = out.err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert message in err and out.out == ""


def test_other_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    three = tmp_path / "three.csv"
    np.savetxt(three, np.random.default_rng(0).standard_normal((20, 3)), delimiter=",")
    cases = [
        (["rival", "--target", "mixture"], "--source"),
        (["rival", "--source", "nope", "--target", "mixture"], "Unknown dataset"),
        (["rival", "--source", "gaussian", "--target", f"file:{three}"], "dimensions differ: 2 vs 3"),
        (["rival", "--source", "gaussian", "--target", "file:/no/such/file.csv"], "file.csv"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err, err


def test_a_flag_the_flow_does_not_read_is_noted(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--flow", "sinkhorn", "--kernel", "energy", "--M", "10", "--N", "10", "--steps", "1"]
    code = main(["rival", *FIG2, *args])
    err = capsys.readouterr().err
    assert code == 0 and "note: --kernel energy: ignored: read only with --flow mmd" in err


def test_flags_come_from_the_field_metadata() -> None:
    """Every RivalConfig field is a flag with the field's default, choices and help."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["rival"]
    flags = {a.dest: a for a in sub._actions if a.dest in RIVAL_FIELDS}
    assert list(flags) == list(RIVAL_FIELDS)
    for name, action in flags.items():
        info = RIVAL_FIELDS[name]
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.default == info.default
        assert tuple(action.choices or ()) == info.choices
        assert info.help in action.help


def test_a_new_rival_field_gets_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added to RivalConfig with its metadata becomes a flag with its name, default, help and
    kind: a number is parsed, text that is not one is refused with one line naming the field."""
    from gpa_core import cli

    extra = dataclasses.field(default=0.25, metadata=about("a new number", low=0.0, high=1.0))
    extended = dataclasses.make_dataclass(
        "ExtendedRival", [("extra_weight", float, extra)], bases=(RivalConfig,), frozen=True
    )
    infos = field_infos(extended)
    monkeypatch.setattr(cli, "RIVAL_FIELDS", infos)
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command").choices["rival"]
    flag = next(a for a in sub._actions if a.dest == "extra_weight")
    assert flag.option_strings == ["--extra-weight"] and flag.default == 0.25 and "a new number" in flag.help
    args = cli.build_parser().parse_args(["rival", *FIG2, "--extra-weight", "0.5"])
    assert args.extra_weight == 0.5
    with pytest.raises(cli.CLIError, match="extra_weight must be a number"):
        cli.build_parser().parse_args(["rival", *FIG2, "--extra-weight", "heavy"])


def test_flags_reach_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--flow", "sinkhorn", "--width", "0.75", "--dt", "0.25", "--steps", "3", "--solver", "heun"]
    result = rival(
        capsys, *FIG2, "--M", "15", "--N", "15", *flags, "--sinkhorn-iters", "7", "--device", "cpu"
    )
    expected = RivalConfig(flow="sinkhorn", width=0.75, dt=0.25, steps=3, solver="heun", sinkhorn_iters=7)
    assert result["config"] == expected.replace(device="cpu").to_dict()
    assert (result["steps"], result["t"], result["device"]) == (3, 0.75, "cpu")
    result = rival(capsys, *FIG2, "--M", "15", "--N", "15", "--steps", "2", "--width", "none")
    assert result["config"]["width"] is None and result["width"] > 0


def test_module_entry_point_prints_json_last() -> None:
    """``python -m gpa_core rival`` in a fresh process: exit 0, the JSON object as the last stdout line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpa_core",
            "rival",
            *FIG2,
            "--M",
            "20",
            "--N",
            "20",
            "--steps",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] == 5 and result["config"]["flow"] == "mmd" and "MMD" in result["objective_name"]
