"""gpa_core.jobs at interpreter exit: a job still inside a Torch operation when the program ends is
cancelled and waited for, so the process exits cleanly (a daemon thread torn down inside Torch aborts
it: "terminate called without an active exception", status 134, on every try before the fix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUSY_JOB = """
import time, torch
from gpa_core.jobs import EnsembleJob

def work(control):
    a = torch.randn(600, 600, dtype=torch.float64)
    while True:
        control.check()
        for _ in range(20):  # about a tenth of a second inside Torch between checks
            a = torch.tanh(a @ a / 600.0)

EnsembleJob(work, name="busy", threads=None).start()
time.sleep(0.5)
print("leaving with the job running")
"""


def test_a_running_job_does_not_abort_the_interpreter_at_exit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUSY_JOB], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "leaving with the job running" in done.stdout
