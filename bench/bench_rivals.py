"""Cost of one particle step of the rival flows (gpa_core.rivals: the MMD gradient flow with a Gaussian
or energy kernel, the Sinkhorn-divergence flow) beside GPA's, on the paper's Fig. 2–3 data: source
N(0, 0.5² I) (seed 0), target the four wells of std 0.5 at the corners of a square of side 4 (seed 1),
M = N = 200, 2-D.

Prints one JSON object per result line:
    {"bench": "rivals", "metric": ..., "value": ..., "unit": ..., "target": ..., ...}
Seconds per particle step are medians over repeats of a block of steps, the flows timed in turns in
this one run so that the machine's noise falls on all alike (compare the ratios, not absolute
numbers, on a noisy 2-core machine); each flow's block is sized to last about ``--block-seconds``.
The flows start together from the source and are timed over their first few hundred steps, where the
particles move (a Sinkhorn step's cost depends on how many sweeps its warm-started plans need).
The rivals compute in float64 with the width the data gives (RivalConfig's width None: the median
heuristic σ, a tenth of the clouds' RMS radius as the blur); GPA is a default FlowConfig (float32,
3×32 network, m_max = 3) on the eager engine, and on the compiled engine too when the kernel is
already compiled or Numba's disk cache holds it (a load of about a second; a cold compile takes a
minute or two and is left out unless ``--compile``). The ratios divide each rival's step by GPA
eager's (and compiled's, when timed); the Sinkhorn flow's median and largest marginal error
‖a − π1‖₁ over the timed steps follow.
Usage: python bench/bench_rivals.py [--quick] [--device auto|cpu|cuda] [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from gpa_core import FlowConfig, GPAFlow
from gpa_core.config import RivalConfig
from gpa_core.data.datasets import sample_spec
from gpa_core.devices import describe_device
from gpa_core.engine import kernel
from gpa_core.ot import one_blas_thread
from gpa_core.rivals.flow import RivalFlow
from gpa_core.rivals.sinkhorn import TOL

SOURCE, TARGET, SIZE = "gaussian:mean=0,std=0.5", "mixture:std=0.5,spacing=4", 200
FOREVER = 10**6  # steps: no flow reaches its horizon while it is timed
WARM_UP_STEPS = 3
PROBE_STEPS = 3  # single steps timed after the warm-up to size a flow's blocks
MIN_BLOCK = 3
UNTIMED = WARM_UP_STEPS + PROBE_STEPS  # steps before the timed blocks


class Steppable(Protocol):
    device: torch.device

    def step(self, n: int = 1) -> int: ...


def _rounded(x: float) -> float:
    return round(x, 4) if abs(x) >= 1e-2 or x == 0 else float(f"{x:.3g}")


def emit(metric: str, value: float | None, unit: str, target: float | None, **extra: object) -> None:
    value = None if value is None else _rounded(value)
    print(
        json.dumps(
            {"bench": "rivals", "metric": metric, "value": value, "unit": unit, "target": target, **extra}
        ),
        flush=True,
    )


def data() -> tuple[np.ndarray, np.ndarray]:
    return sample_spec(SOURCE, SIZE, seed=0), sample_spec(TARGET, SIZE, seed=1)


def _sync(flow: Steppable) -> None:
    if flow.device.type == "cuda":
        torch.cuda.synchronize()


def _timed(flow: Steppable, steps: int) -> float:
    _sync(flow)
    t0 = time.perf_counter()
    done = flow.step(steps)
    _sync(flow)
    if done != steps:
        raise RuntimeError(f"{type(flow).__name__} stopped after {done} of {steps} steps (diverged?)")
    return time.perf_counter() - t0


def time_in_turns(flows: dict[str, Steppable], repeats: int, block_seconds: float) -> dict[str, float]:
    """Median seconds per particle step of each flow, over ``repeats`` blocks timed in turns; a
    flow's block has as many steps as last about ``block_seconds`` (from the median of
    :data:`PROBE_STEPS` single steps), at least :data:`MIN_BLOCK`."""
    steps: dict[str, int] = {}
    for name, flow in flows.items():
        flow.step(WARM_UP_STEPS)
        probe = statistics.median(_timed(flow, 1) for _ in range(PROBE_STEPS))
        steps[name] = max(MIN_BLOCK, min(500, round(block_seconds / max(probe, 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in flows}
    for _ in range(repeats):
        for name, flow in flows.items():
            samples[name].append(_timed(flow, steps[name]) / steps[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def compiled_kernel(force: bool) -> tuple[bool, str]:
    """Whether to time the compiled engine, and why (or why not); loads the kernel when it may."""
    if not kernel.available():
        return False, "Numba is not installed"
    if kernel.ready():
        return True, "already compiled in this process"
    if not (force or kernel.cache_is_warm()):
        return False, "Numba's disk cache is cold (a compile takes a minute or two; --compile to wait)"
    t0 = time.perf_counter()
    ok = kernel.ensure_compiled(block=True)
    seconds = time.perf_counter() - t0
    emit(
        "compile_or_cache_load_seconds",
        seconds,
        "s",
        None,
        path="compiled",
        ok=ok,
        error=kernel.compile_error(),
    )
    return ok, "loaded from the disk cache" if ok else f"failed: {kernel.compile_error()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (smoke test)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--compile", action="store_true", help="compile the GPA kernel if its cache is cold")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, block = (3, 0.1) if args.quick else (9, 0.3)
    source, target = data()

    rivals: dict[str, RivalConfig] = {
        "mmd_gaussian": RivalConfig(flow="mmd", kernel="gaussian", steps=FOREVER, device=args.device),
        "mmd_energy": RivalConfig(flow="mmd", kernel="energy", steps=FOREVER, device=args.device),
        "sinkhorn": RivalConfig(flow="sinkhorn", steps=FOREVER, device=args.device),
    }
    makers: dict[str, Callable[[], Steppable]] = {
        name: (lambda c=c: RivalFlow(source, target, c)) for name, c in rivals.items()
    }
    makers["gpa_eager"] = lambda: GPAFlow(
        source, target, FlowConfig(steps=FOREVER, engine="eager", device=args.device)
    )
    use_compiled, why = compiled_kernel(args.compile)
    if use_compiled:
        makers["gpa_compiled"] = lambda: GPAFlow(
            source, target, FlowConfig(steps=FOREVER, engine="compiled", device="cpu")
        )

    with one_blas_thread():  # Sinkhorn's Newton polish: small dense NumPy factorizations
        flows = {name: make() for name, make in makers.items()}
        seconds = time_in_turns(flows, repeats, block)

    info: dict[str, dict[str, Any]] = {}
    for name, flow in flows.items():
        if isinstance(flow, RivalFlow):
            info[name] = {"flow": flow.config.name, "width": flow.width, "dtype": "float64"}
        else:
            assert isinstance(flow, GPAFlow)
            info[name] = {"flow": "GPA (default FlowConfig)", "path": flow.engine, "dtype": "float32"}
        info[name]["device"] = describe_device(flow.device)
        info[name]["steps_timed"] = int(flow.n) - UNTIMED
    for name, value in seconds.items():
        emit(f"seconds_per_step_{name}", value, "s", None, **info[name])
    if not use_compiled:
        emit("seconds_per_step_gpa_compiled", None, "s", None, skipped=why)
    for rival in rivals:
        for base in ("gpa_eager", "gpa_compiled"):
            if base in seconds:
                emit(f"{rival}_over_{base}", seconds[rival] / seconds[base], "ratio", None)

    sinkhorn = flows["sinkhorn"]
    assert isinstance(sinkhorn, RivalFlow)
    errors = sinkhorn.history_arrays()["marginal_error"][UNTIMED:]  # the timed steps
    emit("sinkhorn_marginal_error_median", float(np.nanmedian(errors)), "L1", TOL, steps=len(errors))
    emit("sinkhorn_marginal_error_max", float(np.nanmax(errors)), "L1", None, steps=len(errors))


if __name__ == "__main__":
    main()
