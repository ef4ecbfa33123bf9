"""Shared test settings: one Torch thread (small flows are overhead-bound, and two cores are shared
with the browser tests' server), a deterministic Hypothesis profile on CI, and the compiled kernel
compiled once up front, so that every ``engine="auto"`` flow in the suite takes the same path
(on a fresh clone this is Numba's one-time compile, cached on disk afterwards)."""

from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, settings

from gpa_core.engine import kernel

torch.set_num_threads(1)
kernel.ensure_compiled(block=True)

settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
