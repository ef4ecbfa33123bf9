"""Benchmark: the 8 × 8 stability map of the 4-well mixture as batched ensembles vs one cell at a time.

The issue's setting: M = N = 200, 3×32 ReLU network, 3 inner Adam steps, KL, T = 100, Δt log-spaced over
[0.01, 1], L log-spaced over [0.1, 100] — about 165,000 member-steps of ~19 MFLOP each (matrix products:
(3·m_max + 2) forward passes of 2·Σ w_l w_{l+1} FLOP over M + N points). Targets: under 3 minutes on this
2-core CPU and at most 0.6× the time of the 64 cells run one after another with the same engine.

Usage::

    python bench/bench_stability.py                      # default schedule + sampled sequential baseline
    python bench/bench_stability.py --T 10 --schedules   # compare schedules on a shorter horizon
    python bench/bench_stability.py --full-sequential    # time the whole one-at-a-time baseline (slow)

The sequential baseline is, by default, *sampled*: every cell is run alone for ``--seq-steps`` steps
(after a warm-up step) and its time extrapolated to its full number of steps (the cost of a step of a
K = 1 flow does not depend on L or Δt); ``--full-sequential`` runs every cell to the end instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from gpa_core import FlowConfig, GPAFlow
from gpa_core.engine import kernel
from gpa_core.studies.batches import STRATEGIES, member_step_flops, sample_pair
from gpa_core.studies.stability import StabilityGrid, StabilityResult, run_stability, stability_grid

TIME_LIMIT = 180.0
RATIO_LIMIT = 0.6


def setting(T: float, dtype: str) -> tuple[StabilityGrid, object, object]:
    base = FlowConfig(f="kl", hidden=(32, 32, 32), inner_steps=3, lr=1e-3, seed=0, device="cpu", dtype=dtype)
    grid = stability_grid(base, T=T, L_range=(0.1, 100.0), dt_range=(0.01, 1.0), n_L=8, n_dt=8)
    source, target = sample_pair(
        "gaussian:mean=0,std=0.5", "mixture:std=0.5,spacing=4", 200, 200, data_seed=0
    )
    return grid, source, target


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_batched(
    grid: StabilityGrid, source, target, *, strategy: str, workers: int, max_batch: int, metrics: bool
) -> tuple[float, float, StabilityResult]:
    last = [0.0]
    start = time.perf_counter()
    cpu0 = time.process_time()

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 15:
            last[0] = now
            print(f"    … {done / total:6.1%} after {now - start:6.1f} s", flush=True)

    result = run_stability(
        grid,
        source,
        target,
        metrics=("w2",) if metrics else (),
        strategy=strategy,  # type: ignore[arg-type]
        workers=workers,
        max_batch=max_batch,
        compact=True,
        chunk=50,
        on_progress=progress,
    )
    return time.perf_counter() - start, time.process_time() - cpu0, result


def run_sequential(
    grid: StabilityGrid, source, target, *, sample_steps: int | None
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, timed steps) for the 64 cells one after another (extrapolated from
    ``sample_steps`` timed steps per cell when it is set)."""
    wall = cpu = 0.0
    steps_done = 0
    for cell in grid.cells:
        t0, c0 = time.perf_counter(), time.process_time()
        flow = GPAFlow(source, target, cell.config)
        setup, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
        if sample_steps is None:
            t0, c0 = time.perf_counter(), time.process_time()
            flow.run(chunk=200)
            wall += setup + time.perf_counter() - t0
            cpu += setup_cpu + time.process_time() - c0
            steps_done += cell.steps
            continue
        flow.step(1)  # warm-up (first-call overheads)
        n = min(sample_steps, cell.steps)
        t0, c0 = time.perf_counter(), time.process_time()
        taken = max(flow.step(n), 1)
        wall += setup + (time.perf_counter() - t0) / taken * cell.steps
        cpu += setup_cpu + (time.process_time() - c0) / taken * cell.steps
        steps_done += taken + 1
    return wall, cpu, steps_done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=float, default=100.0, help="horizon (100 in the issue)")
    ap.add_argument("--strategy", default="packed", choices=STRATEGIES)
    ap.add_argument("--workers", type=int, default=2, help="worker threads running batches in parallel")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--no-metrics", action="store_true", help="skip the final W₂ of each cell")
    ap.add_argument("--seq-steps", type=int, default=40, help="steps per cell of the sampled baseline")
    ap.add_argument("--full-sequential", action="store_true", help="run the whole one-at-a-time baseline")
    ap.add_argument("--no-sequential", action="store_true", help="skip the baseline")
    ap.add_argument(
        "--schedules",
        action="store_true",
        help="time several schedules (strategy × workers × intra-op threads)",
    )
    ap.add_argument(
        "--intraop", action="store_true", help="with --schedules: also 1 worker × 2 intra-op threads"
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    compiled = kernel.ensure_compiled(block=True)  # so that every run takes the same path
    path = "compiled (Numba kernel)" if compiled and args.dtype == "float32" else "eager (Torch)"
    print(f"path: {path}; kernel compile or cache load {time.perf_counter() - t0:.1f} s", flush=True)
    grid, source, target = setting(args.T, args.dtype)
    flops = member_step_flops(grid.base, 200, 200, 2)
    member_steps = grid.member_steps
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, load average {load()}", flush=True)
    print(
        f"grid: {grid.shape[0]}×{grid.shape[1]}, T = {args.T:g}, {member_steps:,} member-steps × "
        f"{flops / 1e6:.1f} MFLOP = {member_steps * flops / 1e12:.2f} TFLOP ({args.dtype})"
    )

    if args.schedules:
        plans = [("packed", 2, 1), ("packed", 1, 1), ("by_steps", 2, 1), ("by_steps", 1, 1)]
        if args.intraop:
            plans.append(("packed", 1, 2))
        for strategy, workers, threads in plans:
            torch.set_num_threads(threads)
            wall, cpu, result = run_batched(
                grid, source, target, strategy=strategy, workers=workers, max_batch=args.max_batch,
                metrics=not args.no_metrics,
            )  # fmt: skip
            s = result.stats
            print(
                f"  {strategy:9s} workers={workers} threads={threads}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, "
                f"{member_steps * flops / wall / 1e9:5.2f} GFLOP/s, batches {s.batches}, compactions "
                f"{s.compactions}, waste {s.waste:.1%}  (load {load()})",
                flush=True,
            )
        torch.set_num_threads(args.threads)

    print(
        f"batched: strategy={args.strategy}, workers={args.workers}, max_batch={args.max_batch}, "
        f"intra-op threads={args.threads}",
        flush=True,
    )
    wall, cpu, result = run_batched(
        grid, source, target, strategy=args.strategy, workers=args.workers, max_batch=args.max_batch,
        metrics=not args.no_metrics,
    )  # fmt: skip
    s = result.stats
    print(
        f"  batched time: {wall:.1f} s wall ({cpu:.1f} s CPU), "
        f"{member_steps * flops / wall / 1e9:.2f} GFLOP/s, "
        f"{member_steps / wall:,.0f} member-steps/s; batches {s.batches}, compactions {s.compactions}, "
        f"computed {s.computed:,} member-steps (waste {s.waste:.1%}); outcomes {result.counts()}"
    )
    print(f"  target < {TIME_LIMIT:.0f} s: {'MET' if wall < TIME_LIMIT else 'MISSED'}  (load {load()})")

    if args.no_sequential:
        return
    torch.set_num_threads(1)
    sample = None if args.full_sequential else args.seq_steps
    t_seq, cpu_seq, steps_done = run_sequential(grid, source, target, sample_steps=sample)
    how = (
        "measured" if sample is None else f"extrapolated from {steps_done:,} timed steps ({sample} per cell)"
    )
    print(
        f"sequential (64 cells one after another, K = 1, 1 thread): {t_seq:.1f} s wall ({cpu_seq:.1f} s CPU; "
        f"{how}), {member_steps * flops / t_seq / 1e9:.2f} GFLOP/s  (load {load()})"
    )
    ratio = wall / t_seq
    verdict = "MET" if ratio <= RATIO_LIMIT else "MISSED"
    print(
        f"  batched / sequential = {ratio:.2f} wall, {cpu / cpu_seq:.2f} in CPU time; "
        f"target ≤ {RATIO_LIMIT}: {verdict}"
    )


if __name__ == "__main__":
    main()
