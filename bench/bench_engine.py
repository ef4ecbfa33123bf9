"""Speed of one GPA particle step (Algorithm 3.1) on the paper's Fig. 2–3 setting and at M = N = 4096.

Prints one JSON object per result line:
    {"bench": "engine", "metric": ..., "value": ..., "unit": ..., "target": ..., ...}
Times are medians over repeats measured in this one run; compare ratios, not absolute numbers, on a
noisy 2-core machine. Both paths are timed: ``compiled`` (the Numba kernel, gpa_core/engine/kernel/; its
compile or disk-cache load is reported first) and ``eager`` (Torch operations); each line says which.
Usage: python bench/bench_engine.py [--quick] [--device auto|cpu|cuda] [--engine both|eager|compiled]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from gpa_core import FlowConfig, GPAFlow
from gpa_core.data.datasets import sample
from gpa_core.devices import describe_device
from gpa_core.engine import kernel


def flops_per_step(M: int, N: int, d: int, hidden: tuple[int, ...], inner: int) -> float:
    """Multiply–adds ×2 of the matrix products: per inner step a forward (2nS) and a backward for
    weights and inputs (4nS) on n = M + N points, then one forward/backward for ∇φ (4nS)."""
    widths = [d, *hidden, 1]
    S = sum(a * b for a, b in itertools.pairwise(widths))
    n = M + N
    return (6 * inner + 4) * n * S


def make_flow(M: int, N: int, K: int, device: str, engine: str, seed0: int = 0) -> GPAFlow:
    src = sample("gaussian", M, seed=0, std=0.5)
    tgt = sample("mixture", N, seed=1, std=0.5)
    cfgs = [
        FlowConfig(L=1.0, dt=0.5, steps=10**6, inner_steps=3, seed=seed0 + k, device=device, engine=engine)
        for k in range(K)
    ]
    return GPAFlow(src, tgt, cfgs)


def emit(metric: str, value: float, unit: str, target: float | None, **extra: object) -> None:
    print(
        json.dumps(
            {
                "bench": "engine",
                "metric": metric,
                "value": round(value, 4),
                "unit": unit,
                "target": target,
                **extra,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument(
        "--engine",
        default="both",
        choices=["both", "eager", "compiled"],
        help="which path to time (default: both, compiled first)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.engine in ("both", "compiled"):
        # the compile (or disk-cache load) is paid once per process, in the background in the app
        t0 = time.perf_counter()
        ok = kernel.ensure_compiled(block=True)
        emit(
            "compile_or_cache_load_seconds",
            time.perf_counter() - t0,
            "s",
            None,
            path="compiled",
            ok=ok,
            error=kernel.compile_error(),
        )
    if args.engine == "both":
        first_motion_cold()
    engines = ["compiled", "eager"] if args.engine == "both" else [args.engine]
    for engine in engines:
        run_engine(args, engine)


COLD_START = """
import time, sys
sys.path.insert(0, {root!r})
from gpa_core import FlowConfig, GPAFlow
from gpa_core.data.datasets import sample
src, tgt = sample("gaussian", 200, seed=0, std=0.5), sample("mixture", 200, seed=1, std=0.5)
t0 = time.perf_counter()
flow = GPAFlow(src, tgt, FlowConfig(steps=100))
flow.step(1)
print(time.perf_counter() - t0, flow.engine)
"""


def first_motion_cold() -> None:
    """Seconds from asking for a run to its first step in a fresh process, with Numba's cache empty
    (the first run on a new machine: it goes eagerly while the kernel compiles) and with it warm
    (the kernel loads, then runs): the compile must never hold the first step back > 3 s."""
    code = COLD_START.format(root=str(Path(__file__).resolve().parent.parent))
    with tempfile.TemporaryDirectory() as empty:
        for cache, label in ((empty, "empty"), (None, "warm")):
            env = dict(os.environ)
            if cache is not None:
                env["NUMBA_CACHE_DIR"] = cache
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            seconds, path = out.stdout.split()[-2:] if out.returncode == 0 else ("nan", "failed")
            emit(f"first_step_seconds_{label}_kernel_cache", float(seconds), "s", 3.0, path=path)


def time_in_turns(flows: dict[str, tuple[GPAFlow, int]], repeats: int) -> dict[str, float]:
    """Median seconds per particle step of each flow (name → (flow, steps per block)), the blocks
    timed in turns so that the machine's noise falls on every flow alike."""
    for flow, _ in flows.values():
        flow.step(3)  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in flows}
    for _ in range(repeats):
        for name, (flow, steps) in flows.items():
            if flow.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            flow.step(steps)
            if flow.device.type == "cuda":
                torch.cuda.synchronize()
            samples[name].append((time.perf_counter() - t0) / steps)
    return {name: statistics.median(values) for name, values in samples.items()}


def run_engine(args: argparse.Namespace, engine: str) -> None:
    """K = 1 and K = 16 at both sizes, and on the compiled path K = 1 with its rows split over two
    threads (``threads_per_member = 2``, the CLI's ``--threads 2``; off by default)."""
    reps = 3 if args.quick else 9
    # steps per timed block, long enough that a call's fixed cost (threads, workspaces) stays small
    blocks = {"fig2": (200, 200, 20), "4096": (4096, 15, 4)}
    if args.quick:
        blocks = {"fig2": (200, 100, 5), "4096": (4096, 3, 0)}
    for size, (M, steps1, steps16) in blocks.items():
        single = make_flow(M, M, 1, args.device, engine)
        flows = {"K1": (single, steps1)}
        compiled = single.engine == "compiled"
        if compiled:
            split = make_flow(M, M, 1, args.device, engine)
            split.threads_per_member = 2
            flows["K1_split"] = (split, steps1)
        if steps16:
            flows["K16"] = (make_flow(M, M, 16, args.device, engine), steps16)
        t = time_in_turns(flows, reps if size == "fig2" else max(3, reps // 2))
        fl = flops_per_step(M, M, 2, (32, 32, 32), 3)
        common: dict[str, object] = {"path": single.engine, "device": describe_device(single.device)}
        if compiled:
            common["threads"] = f"{single.kernel_threads}, one per member"
        else:
            common["threads"] = f"torch intra-op threads: {args.threads}"
        target = 0.5 if size == "fig2" else 10.0
        emit(
            f"ms_per_step_{size}_K1",
            t["K1"] * 1e3,
            "ms",
            target,
            gflops=round(fl / t["K1"] / 1e9, 3),
            **common,
        )
        if compiled:
            emit(
                f"ms_per_step_{size}_K1_rows_split_over_2_threads",
                t["K1_split"] * 1e3,
                "ms",
                None,
                gflops=round(fl / t["K1_split"] / 1e9, 3),
                **{**common, "threads": "2 sharing the member's rows (opt-in)"},
            )
        if "K16" in t:
            name = (
                "batched_K16_over_16_sequential" if size == "fig2" else "batched_4096_K16_over_16_sequential"
            )
            emit(
                f"ms_per_step_{size}_K16",
                t["K16"] * 1e3,
                "ms",
                None,
                gflops=round(16 * fl / t["K16"] / 1e9, 3),
                **common,
            )
            emit(name, t["K16"] / (16 * t["K1"]), "ratio", 0.6, **common)


if __name__ == "__main__":
    main()
