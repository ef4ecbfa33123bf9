"""python -m gpa_core: JSON output, saved runs, and one clear line with exit 2 for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpa_core.cli import build_parser, main
from gpa_core.config import FIELDS, cli_fields

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpa_core", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_run_json_and_save(tmp_path: Path) -> None:
    out = tmp_path / "run.npz"
    proc = run_cli(
        "run",
        "--source",
        "gaussian:std=0.5",
        "--target",
        "mixture:std=0.5",
        "--M",
        "50",
        "--N",
        "60",
        "--steps",
        "12",
        "--json",
        "--save",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in (
        "status",
        "diverged_at",
        "steps",
        "t",
        "kinetic_energy",
        "divergence",
        "seconds",
        "steps_per_second",
    ):
        assert key in result
    assert (
        result["steps"] == 12
        and result["t"] == pytest.approx(6.0)
        and result["status"] in {"running", "converged"}
    )
    assert result["engine"] == "compiled"  # conftest compiled the kernel: this process loads its cache
    z = np.load(out)
    assert z["time"].shape == (12,) and z["kinetic_energy"].shape == (12,) and z["divergence"].shape == (12,)
    assert z["particles"].shape == (12, 50, 2) and z["target"].shape == (60, 2)


def test_engine_can_be_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--source", "gaussian", "--target", "gaussian:mean=2", "--M", "20", "--N", "20"]
    assert main([*args, "--steps", "3", "--engine", "eager", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["engine"] == "eager" and result["steps"] == 3
    assert main([*args, "--engine", "fast"]) == 2  # argparse refuses an unknown choice
    assert "invalid choice" in capsys.readouterr().err


def test_threads_split_a_run_without_changing_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--source", "gaussian", "--target", "mixture", "--M", "31", "--N", "29", "--steps", "250"]
    finals = []
    for threads in ("1", "2"):
        out = tmp_path / f"run{threads}.npz"
        assert main([*args, "--threads", threads, "--json", "--save", str(out)]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["steps"] == 250 and result["engine"] == "compiled"
        finals.append(np.load(out))
    assert np.array_equal(finals[0]["particles"], finals[1]["particles"])
    assert np.array_equal(finals[0]["kinetic_energy"], finals[1]["kinetic_energy"])
    assert main([*args, "--threads", "0"]) == 2
    assert "positive whole number" in capsys.readouterr().err


def test_chunked_run_stops_at_its_steps(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --save the CLI steps in chunks of 100 (98 here: whole multiples of --record-every);
    the run still stops exactly at --steps."""
    args = ["run", "--source", "gaussian", "--target", "gaussian:mean=2", "--M", "20", "--N", "20"]
    assert main([*args, "--steps", "250", "--record-every", "7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 250 and result["t"] == pytest.approx(125.0)


def test_divergence_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    np.savetxt(p, np.zeros((6, 2)), delimiter=",")
    np.savetxt(q, np.tile([0.0, 2.0], (6, 1)), delimiter=",")
    assert main(["divergence", str(p), str(q), "--L", "1", "--json"]) == 0
    value = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["divergence"]
    assert 1.5 < value <= 2.0 * (1 + 1e-3)


def test_divergence_exact_prints_the_value_solver_points_and_time(tmp_path: Path) -> None:
    """``--exact --json``: the supremum over all L-Lipschitz φ; for two point masses 2 apart it is 2L
    (KL), and on Gaussian samples it equals :func:`exact_divergence` and bounds the network's estimate."""
    from gpa_core.algorithm.exact import exact_divergence

    rng = np.random.default_rng(21)
    P, Q = rng.standard_normal((30, 2)), rng.standard_normal((25, 2)) + 1.0
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    np.savetxt(p, P, delimiter=",")
    np.savetxt(q, Q, delimiter=",")
    proc = run_cli("divergence", str(p), str(q), "--exact", "--L", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["method"] == "exact" and result["solver"].startswith("clarabel")
    assert (result["M"], result["N"], result["points_given"]) == (30, 25, [30, 25])
    assert result["seconds"] > 0 and result["gap"] <= 1e-5 and result["upper_bound"] >= result["divergence"]
    expected = exact_divergence(P, Q, f="kl", L=2.0).value
    assert result["divergence"] == pytest.approx(expected, rel=1e-6)


def test_divergence_exact_of_two_point_masses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    np.savetxt(p, np.zeros((6, 2)), delimiter=",")
    np.savetxt(q, np.tile([0.0, 2.0], (6, 1)), delimiter=",")
    for f in ("kl", "alpha"):
        assert main(["divergence", str(p), str(q), "--exact", "--L", "0.5", "--f", f, "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["divergence"] == pytest.approx(1.0)
    assert main(["divergence", str(p), str(q), "--exact", "--L", "1"]) == 0  # text output
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert float(lines["divergence"]) == pytest.approx(2.0) and lines["solver"].startswith("clarabel")


def test_divergence_exact_points_subsamples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(22)
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    np.savetxt(p, rng.standard_normal((40, 2)), delimiter=",")
    np.savetxt(q, rng.standard_normal((30, 2)) + 1.0, delimiter=",")
    assert main(["divergence", str(p), str(q), "--exact", "--exact-points", "12", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["M"], result["N"], result["points_given"]) == (12, 12, [40, 30])


def test_divergence_exact_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One clear line, exit 2: L = ∞, --exact-points without --exact, and too many points (the message
    says how to subsample)."""
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    np.savetxt(p, np.random.default_rng(0).standard_normal((510, 2)), delimiter=",")
    np.savetxt(q, np.random.default_rng(1).standard_normal((500, 2)), delimiter=",")
    cases = [
        (["--exact", "--L", "inf"], "finite L"),
        (["--exact-points", "10"], "--exact-points is for --exact"),
        (["--exact"], "--exact-points 500"),
        (["--exact", "--exact-points", "0"], "positive whole number"),
    ]
    for extra, message in cases:
        assert main(["divergence", str(p), str(q), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1 and message in err, err


def test_diverging_run_is_an_outcome_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    """The authors' naive Donsker–Varadhan form overflows float32 when the target is 200 away."""
    code = main(
        [
            "run",
            "--source",
            "gaussian:std=0.5",
            "--target",
            "gaussian:mean=200,std=0.5",
            "--M",
            "40",
            "--N",
            "40",
            "--lr",
            "0.05",
            "--steps",
            "400",
            "--numerics",
            "authors",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "diverged"
    assert result["diverged_at"] == pytest.approx(result["steps"] * 0.5)
    assert "overflow" in result["reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--source", "nope", "--target", "mixture"], "Unknown dataset"),
        (["run", "--source", "gaussian:std=-1", "--target", "mixture"], "std"),
        (["run", "--source", "gaussian", "--target", "mixture", "--L", "-1"], "L must be a positive number"),
        (["run", "--source", "gaussian", "--target", "mixture", "--L", "abc"], "L must be a positive number"),
        (["run", "--source", "gaussian", "--target", "mixture", "--f", "hellinger"], "invalid choice"),
        (
            ["run", "--source", "gaussian", "--target", "mixture", "--f", "alpha", "--alpha", "0.5"],
            "alpha must be",
        ),
        (["run", "--source", "gaussian", "--target", "mixture", "--dt", "0"], "dt must be"),
        (["run", "--source", "gaussian", "--target", "mixture", "--steps", "0"], "positive whole number"),
        (["run", "--source", "gaussian", "--target", "mixture", "--M", "x"], "whole number"),
        (["run", "--source", "gaussian:dim=3", "--target", "mixture"], ""),
        (["run", "--source", "file:/no/such/file.csv", "--target", "mixture"], ""),
        (["run", "--source", "gaussian", "--target", "mixture", "--device", "cuda"], ""),
        (["run", "--target", "mixture"], "--source"),
        (["divergence", "/no/such/p.csv", "/no/such/q.csv"], "file not found"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA device exists here")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert message in err


def test_bad_file_content_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "p.csv"
    p.write_text("1,2\n3,abc\n")
    q = tmp_path / "q.csv"
    q.write_text("1,2\n3,4\n")
    assert main(["divergence", str(p), str(q)]) == 2
    assert "abc" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "divergence"])
def test_config_flags_come_from_the_field_metadata(command: str) -> None:
    """Every FlowConfig field whose metadata names the command is a flag, with the field's default and
    choices; no other field is."""
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    flags = {a.dest: a for a in sub._actions if a.dest in FIELDS}
    assert list(flags) == list(cli_fields(command))
    for name, action in flags.items():
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.default == FIELDS[name].default
        assert tuple(action.choices or ()) == FIELDS[name].choices


def test_config_flags_reach_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--source", "gaussian", "--target", "gaussian:mean=2", "--M", "20", "--N", "20", "--json"]
    flags = {
        "steps": "4",
        "inner-steps": "2",
        "record-every": "2",
        "lipschitz": "frobenius",
        "solver": "heun",
    }
    flags |= {"L": "inf", "dt": "0.25", "seed": "3"}
    assert main([*args, *(x for k, v in flags.items() for x in (f"--{k}", v))]) == 0
    config = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["config"]
    expected = {"steps": 4, "inner_steps": 2, "record_every": 2, "lipschitz": "frobenius", "solver": "heun"}
    assert {k: config[k] for k in expected} == expected
    assert (config["L"], config["dt"], config["seed"]) == ("inf", 0.25, 3)
