"""Benchmark of the playground's live view: can the page redraw ≥ 5 times a second while the flow runs
at full speed in the background, and what does drawing cost the flow?

What one redraw costs is measured the way the page draws: the runner's snapshot → the particle figure
(φ heat map, −∇φ arrows, trails) and the history figure as fast spec figures → the stability read-out
→ what ``st.plotly_chart`` does with a figure (``to_dict`` with base64 packing, ``plotly.io.to_json``,
an md5 of the spec for the element id). Then the flow's steps per second are measured with no viewer
and with a viewer redrawing every 0.2 s (the page's refresh), alternating to even out load drift.

Run: ``python bench/bench_playground.py [--M 2000 --N 2000 --seconds 8 --repeats 2]``. Prints JSON
lines ``{"bench": "playground", "metric": ..., "value": ..., "unit": ..., "target": ...}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.io as pio

from gpa_core import FlowConfig
from gpa_core.data.datasets import sample
from gpa_core.engine import kernel
from gpa_core.engine.runner import Runner
from gpa_core.engine.snapshot import Snapshot
from gpa_core.plots import flow as plots
from gpa_core.plots import readout

REFRESH = 0.2  # the page polls the runner every 0.2 s while playing


def emit(metric: str, value: float, unit: str, target: str = "") -> None:
    print(
        json.dumps(
            {
                "bench": "playground",
                "metric": metric,
                "value": round(float(value), 4),
                "unit": unit,
                "target": target,
            },
            ensure_ascii=False,
        ),
        flush=True,
    )


def redraw(snap: Snapshot) -> int:
    """One redraw as the page does it; returns the bytes sent for the two charts."""
    figs = [plots.particles_figure(snap, validate=False), plots.history_figure(snap, validate=False)]
    readout.stability_readout(snap)
    size = 0
    for fig in figs:
        spec = pio.to_json(fig, validate=False)  # st.plotly_chart: to_dict + to_json
        hashlib.md5(spec.encode()).hexdigest()  # st.plotly_chart: the element id
        size += len(spec)
    return size


def flow_rate(runner: Runner, seconds: float, viewer: bool) -> tuple[float, list[float], list[int]]:
    """Steps per second of a playing runner over ``seconds`` (after a warm-up), optionally with a viewer
    redrawing every REFRESH seconds; also the viewer's per-frame times and sizes."""
    runner.reset()
    runner.wait_idle()
    runner.play()
    warm_end = time.monotonic() + 1.5
    while time.monotonic() < warm_end:
        runner.snapshot()
        time.sleep(0.05)
    n0, t0 = runner.snapshot().n, time.monotonic()
    times: list[float] = []
    sizes: list[int] = []
    end = t0 + seconds
    next_frame = t0
    while time.monotonic() < end:
        if viewer:
            now = time.monotonic()
            if now >= next_frame:
                a = time.perf_counter()
                sizes.append(redraw(runner.snapshot()))
                times.append(time.perf_counter() - a)
                next_frame += REFRESH
            time.sleep(max(0.0, min(next_frame, end) - time.monotonic()))
        else:
            runner.snapshot()
            time.sleep(0.05)
    snap = runner.snapshot()
    elapsed = time.monotonic() - t0
    runner.pause()
    return (snap.n - n0) / elapsed, times, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--M", type=int, default=2000)
    ap.add_argument("--N", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    kernel.ensure_compiled(block=True)  # the app compiles in the background at start; here, first
    src = sample("gaussian", args.M, seed=0, std=0.5)
    tgt = sample("mixture", args.N, seed=1)
    cfg = FlowConfig(kl_form="dv", dt=0.5, steps=1_000_000)  # Fig. 2–3 numerics, never finishing here
    runner = Runner(src, tgt, cfg, idle_timeout=600.0)
    try:
        # cost of one redraw (snapshot → figures → JSON), measured while the flow runs
        runner.play()
        time.sleep(1.0)
        frame_times, frame_sizes = [], []
        for _ in range(40):
            snap = runner.snapshot()
            a = time.perf_counter()
            frame_sizes.append(redraw(snap))
            frame_times.append(time.perf_counter() - a)
            time.sleep(0.05)
        runner.pause()
        med = statistics.median(frame_times)
        p95 = sorted(frame_times)[int(0.95 * (len(frame_times) - 1))]
        emit("M", args.M, "particles")
        emit("N", args.N, "target samples")
        emit("device", 0, runner.snapshot().device)
        snap = runner.snapshot()
        emit("path", 0, f"{snap.engine} ({snap.engine_reason})")
        emit("snapshot_to_figure_median", 1e3 * med, "ms", "< 200 ms (5 redraws/s)")
        emit("snapshot_to_figure_p95", 1e3 * p95, "ms", "< 200 ms")
        emit("figure_json_size", statistics.median(frame_sizes) / 1024, "KiB per redraw (both charts)")
        emit("redraws_per_second_achievable", 1.0 / med, "frames/s", ">= 5")

        alone, viewed, live_times = [], [], []
        for _ in range(args.repeats):
            rate, _, _ = flow_rate(runner, args.seconds, viewer=False)
            alone.append(rate)
            rate, times, _ = flow_rate(runner, args.seconds, viewer=True)
            viewed.append(rate)
            live_times.extend(times)
        a, v = statistics.mean(alone), statistics.mean(viewed)
        emit("flow_steps_per_second_alone", a, "steps/s")
        emit("flow_steps_per_second_with_viewer", v, "steps/s", f"viewer redraws every {REFRESH} s")
        emit("flow_rate_ratio_with_viewer", v / a, "ratio", ">= 0.8")
        emit("viewer_redraw_median_while_flowing", 1e3 * statistics.median(live_times), "ms", "< 200 ms")
        fps = len(live_times) / (args.repeats * args.seconds)
        emit("viewer_frames_drawn_per_second", fps, "frames/s", ">= 5")
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
