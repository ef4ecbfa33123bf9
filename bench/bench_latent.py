"""Benchmark of the latent-space (gene data) backend at the paper's full size.

Measures, on the synthetic stand-in for GSE26639 → GSE76275 (491 samples × 54,675 genes, float32):
synthetic generation; the PCA encoder fit (d′ = 50) with its peak memory; encode + decode; the
mean/std baseline; W₂² and the Sinkhorn divergence per label in latent and gene space; UMAP of the
491 latent points, cold (the first call in this process: umap-learn's import and, if numba's disk
cache is empty, its compilation) and warm.

Peak memory is tracemalloc's peak of traced allocations during the fit (NumPy registers its
buffers with tracemalloc; BLAS scratch space is not included), measured in a separate, untimed run.

Run: ``python bench/bench_latent.py [--repeats 3]``. Prints JSON lines
``{"bench": "latent", "metric": ..., "value": ..., "unit": ..., "target": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from gpa_core.genes.latent import PCAEncoder, combat_baseline, mean_std_baseline, umap_embedding
from gpa_core.genes.scores import sinkhorn_divergence, w2_squared
from gpa_core.genes.study import make_synthetic_studies


def emit(metric: str, value: float, unit: str, target: str = "") -> None:
    record = {
        "bench": "latent",
        "metric": metric,
        "value": round(float(value), 4),
        "unit": unit,
        "target": target,
    }
    print(json.dumps(record, ensure_ascii=False), flush=True)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time over ``repeats`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    r = max(1, args.repeats)
    emit("load average at start (1 min)", os.getloadavg()[0], "processes", f"{os.cpu_count()} CPUs")

    t_gen, gs = timed(make_synthetic_studies, r)
    emit("synthetic generation 491×54675 float32", t_gen, "s", "< 3")
    s, t = gs.studies
    lo, hi = np.percentile(s.expression, [1, 99])
    emit("synthetic 1st percentile", lo, "log2", "≈2")
    emit("synthetic 99th percentile", hi, "log2", "≈14")

    t_fit, enc = timed(lambda: PCAEncoder(50).fit(s.expression, t.expression), r)
    emit("PCA fit d'=50, 491×54675 float32", t_fit, "s", "< 3")
    c0 = time.process_time()
    PCAEncoder(50).fit(s.expression, t.expression)
    emit("PCA fit CPU time (all threads; load-independent)", time.process_time() - c0, "s")
    tracemalloc.start()
    PCAEncoder(50).fit(s.expression, t.expression)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    emit("PCA fit peak memory (tracemalloc)", peak / 2**20, "MB", "< 1500")

    t_enc, (Zs, Zt) = timed(lambda: (enc.encode(s.expression), enc.encode(t.expression)), r)
    emit("encode both studies", t_enc, "s")
    t_dec, _ = timed(lambda: enc.decode(Zs), r)
    emit("decode 226 samples to 54675 genes", t_dec, "s")
    emit("explained variance, 50 axes", float(enc.explained_variance_ratio_.sum()), "fraction")

    t_base, Xb = timed(lambda: mean_std_baseline(s.expression, s.labels, t.expression, t.labels), r)
    emit("mean/std baseline, gene space", t_base, "s")
    t_cb, Xc = timed(lambda: combat_baseline(s.expression, s.labels, t.expression, t.labels), r)
    emit("ComBat baseline (target as reference, label covariate), gene space", t_cb, "s")

    for lab in ("ER+", "ER-"):
        ms, mt = s.labels == lab, t.labels == lab
        t_w, w = timed(lambda ms=ms, mt=mt: w2_squared(Zs[ms], Zt[mt]), r)
        emit(f"W2² latent {lab} ({ms.sum()}→{mt.sum()})", t_w, "s")
        t_s, sk = timed(lambda ms=ms, mt=mt: sinkhorn_divergence(Zs[ms], Zt[mt], blur=0.05), r)
        emit(f"Sinkhorn blur 0.05 latent {lab}", t_s, "s")
        emit(f"Sinkhorn / (½W2²) latent {lab}", sk / (0.5 * w), "ratio", "≈1")
        t_g, wg = timed(lambda ms=ms, mt=mt: w2_squared(s.expression[ms], t.expression[mt]), r)
        emit(f"W2² gene space {lab}", t_g, "s")
        t_gs, _ = timed(lambda ms=ms, mt=mt: sinkhorn_divergence(s.expression[ms], t.expression[mt]), 1)
        emit(f"Sinkhorn blur 0.05 gene space {lab}", t_gs, "s")
        wb = w2_squared(Xb[ms], t.expression[mt])
        emit(f"baseline W2² relative to raw, genes {lab}", 100 * wb / wg, "%", "paper 3.95 / 4.87")
        wc = w2_squared(Xc[ms], t.expression[mt])
        emit(f"ComBat W2² relative to raw, genes {lab}", 100 * wc / wg, "%")

    latent_gpa_speed(Zs, s.labels, Zt, t.labels, enc)

    Z = np.vstack([Zs, Zt])
    t0 = time.perf_counter()
    umap_embedding(Z)
    emit("UMAP 491 points, cold (first call in process)", time.perf_counter() - t0, "s")
    t_warm, _ = timed(lambda: umap_embedding(Z), r)
    emit("UMAP 491 points, warm", t_warm, "s", "< 3")


def latent_gpa_speed(Zs: np.ndarray, ls: np.ndarray, Zt: np.ndarray, lt: np.ndarray, enc: Any) -> None:
    """Particle steps per second of each label's latent flow (d' = 50, 3×32, 5 inner Adam steps), on
    the compiled path (its compile or cache load reported first) and, for the ratio, the eager one."""
    import torch

    from gpa_core import FlowConfig, GPAFlow, kernel

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    kernel.ensure_compiled(block=True)
    emit("GPA kernel compile or disk-cache load", time.perf_counter() - t0, "s")
    scale = float(np.std(np.vstack([Zs, Zt])))
    for lab in ("ER+", "ER-"):
        src, tgt = (Zs[ls == lab] / scale).astype(np.float32), (Zt[lt == lab] / scale).astype(np.float32)
        for engine, steps in (("compiled", 600), ("eager", 60)):
            cfg = FlowConfig(hidden=(32, 32, 32), inner_steps=5, steps=10**6, engine=engine)
            flow = GPAFlow(src, tgt, cfg)
            flow.step(5)
            rates = []
            for _ in range(3):
                t1 = time.perf_counter()
                flow.step(steps // 3)
                rates.append((steps // 3) / (time.perf_counter() - t1))
            emit(
                f"latent GPA {lab} ({len(src)}→{len(tgt)}, d'=50) steps/s, {flow.engine} path",
                statistics.median(rates),
                "steps/s",
                ">= 300" if engine == "compiled" else "",
            )


if __name__ == "__main__":
    main()
