"""python -m gpa_core: JSON output, saved runs, and one clear line with exit 2 for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpa_core.cli import main

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
