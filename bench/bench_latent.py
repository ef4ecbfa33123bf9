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

``python bench/bench_latent.py --quality [--real-dir DIR]``: the integration-quality table of the
README ("Latent integration, measured") instead: none, mean/std, ComBat, GPA with the page's old
settings, GPA with the paper's 5000 steps in plain PCA units and GPA with the new defaults
(``gpa_core.genes.latent.GPA_DEFAULTS``) on the synthetic studies (the page's defaults: 5,000 genes,
226 → 265) and, when ``DIR`` (default ``../shared/data/real_batches`` beside the repository) holds
the CellBench CEL-seq2/Drop-seq set, on it; then the held-out check of GPA (flow onto one half of
the target, W₂² to the other half) and ComBat on studies with genes nearly constant in the target,
with and without the guard on its priors. Prints JSON lines and the Markdown tables.
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
from gpa_core.genes.study import make_synthetic_studies
from gpa_core.ot import sinkhorn_divergence
from gpa_core.ot import wasserstein2_squared as w2_squared


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
    parser.add_argument("--quality", action="store_true", help="the integration-quality tables instead")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR, help="the real two-batch set's folder")
    args = parser.parse_args()
    if args.quality:
        quality(args.real_dir)
        return
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

    from gpa_core import FlowConfig, GPAFlow
    from gpa_core.engine import kernel

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


# ------------------------------------------------------------------------------------------ quality
REAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real_batches"
PLAIN = {"latent_scale": 1.0, "stop_at_floor": False}  # the flow in plain PCA units, every step run
#: the rows of the quality table: (name, method, settings over GPA_DEFAULTS)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("none", "none", {}),
    ("mean/std", "mean_std", {}),
    ("ComBat", "combat", {}),
    ("GPA, old page settings (300 steps, PCA units)", "gpa", {**PLAIN, "steps": 300}),
    ("GPA, paper's 5000 steps (PCA units)", "gpa", {**PLAIN, "steps": 5000}),
    ("GPA, new defaults", "gpa", {}),
]  # fmt: skip


def real_studies(folder: Path, source: str = "Dropseq", target: str = "CELseq2") -> tuple[Any, Any]:
    """The CellBench set (SOURCE.md in ``folder``): Drop-seq → CEL-seq2 by default."""
    import pandas as pd

    from gpa_core.genes.study import Study

    X = pd.read_csv(folder / "expression.csv.gz", index_col=0)
    meta = pd.read_csv(folder / "meta.csv", index_col=0).loc[X.index]
    out = []
    for batch in (source, target):
        rows = (meta["batch"] == batch).to_numpy()
        out.append(
            Study(
                X.to_numpy(np.float32)[rows], X.columns.to_numpy(), X.index.to_numpy()[rows],
                labels=meta["label"].to_numpy()[rows], name=batch,
            )
        )  # fmt: skip
    return out[0], out[1]


def _slash(values: list[float], digits: int = 0) -> str:
    return " / ".join("—" if not np.isfinite(v) else f"{v:.{digits}f}" for v in values)


def quality_rows(name: str, source: Any, target: Any) -> list[dict[str, Any]]:
    """Every variant on one pair of studies, all scored in the same latent space (one encoder)."""
    from gpa_core.genes.pipeline import fit_encoder, run_methods, summary

    enc = fit_encoder(source, target)
    rows = []
    for title, method, settings in VARIANTS:
        res = run_methods(source, target, [method], settings, encoder=enc)[method]
        s = summary(res, source, target, settings)
        s["variant"], s["set"] = title, name
        print(
            json.dumps({"bench": "latent-quality", **{k: v for k, v in s.items() if k != "scores"}}),
            flush=True,
        )
        rows.append({"title": title, "result": res, "summary": s})
    return rows


def quality_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of :func:`quality_rows` (a floor row first)."""
    first = rows[0]["result"]
    labels = first.labels
    head = (
        "| method | latent W₂², % of raw (" + " / ".join(labels) + ") | excess over floor, % | "
        "batch silhouette (within labels) | k-NN mixing (within labels) | pooled: silhouette by study / "
        "k-NN mixing | label silhouette | label transfer | spread ratio | nearest-target ratio | "
        "steps per label | time |\n|" + "---|" * 12
    )
    lines = [head]

    def scores(res: Any, key: str) -> list[str]:
        """The pooled scores and per-label ratios of ``res`` under ``key`` ("after" or "floor")."""

        def pooled(metric: str) -> float:
            return float(res.score(metric)[key])

        return [
            f"{pooled('silhouette by study (within labels)'):.3f}",
            f"{pooled('k-NN mixing (within labels)'):.2f}",
            f"{pooled('silhouette by study'):.3f} / {pooled('k-NN mixing'):.2f}",
            f"{pooled('silhouette by label'):.3f}",
            f"{pooled('label transfer accuracy'):.2f}",
            _slash([res.score("spread ratio", lab)[key] for lab in labels], 2),
            _slash([res.score("nearest-target ratio", lab)[key] for lab in labels], 2),
        ]

    fl = [
        "floor (estimated from the target alone)",
        _slash([first.score("W2²", lab)["floor_%"] for lab in labels]),
        "0",
        *scores(first, "floor"),
        "",
        "",
    ]
    lines.append("| " + " | ".join(fl) + " |")
    for row in rows:
        res = row["result"]
        t = res.transport
        steps = _slash([t.steps_done.get(lab, 0) for lab in labels]) if t is not None else ""
        cells = [
            row["title"],
            _slash([res.score("W2²", lab)["relative_%"] for lab in labels]),
            _slash([res.score("W2²", lab)["excess_%"] for lab in labels]),
            *scores(res, "after"),
            steps,
            f"{res.seconds:.2f} s",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def heldout(name: str, source: Any, target: Any, seed: int = 1) -> str:
    """GPA onto a label-stratified half T₁ of the target; W₂² to T₁ (in-sample) and to the other
    half T₂ (held out), each over the floor W₂²(T₁, T₂). A flow that copies T₁'s points goes below
    1 in-sample but not held out."""
    from gpa_core.genes.pipeline import fit_encoder, run_methods
    from gpa_core.genes.scores import half_splits
    from gpa_core.genes.study import Study
    from gpa_core.ot import wasserstein2_squared as w2

    enc = fit_encoder(source, target)
    h = half_splits(target.labels, 1, seed)[0]
    t1 = Study(
        target.expression[h], target.gene_ids, target.sample_ids[h], labels=target.labels[h], name="T1"
    )
    Z2 = enc.encode(target.expression[~h])
    l2 = target.labels[~h]
    lines = [
        f"| {name}: onto half T₁ of the target | W₂² to T₁ / W₂²(T₁, T₂) | W₂² to T₂ / W₂²(T₁, T₂) | steps |",
        "|---|---|---|---|",
    ]
    for title, method, settings in VARIANTS:
        if method not in ("gpa", "combat", "mean_std"):
            continue
        res = run_methods(source, t1, [method], settings, encoder=enc, gene_scores=False, sinkhorn=False)[
            method
        ]
        ins, out = [], []
        for lab in res.labels:
            A = res.Z_source_after[source.labels == lab]
            T1z, T2z = res.Z_target[t1.labels == lab], Z2[l2 == lab]
            floor = w2(T1z, T2z, max_points=None)
            ins.append(w2(A, T1z, max_points=None) / floor)
            out.append(w2(A, T2z, max_points=None) / floor)
        t = res.transport
        steps = _slash([t.steps_done.get(lab, 0) for lab in res.labels]) if t is not None else ""
        lines.append(f"| {title} | {_slash(ins, 2)} | {_slash(out, 2)} | {steps} |")
        emit(f"{name} held-out {title}: in-sample / held-out W2²/floor", float(np.mean(out)), "ratio")
    return "\n".join(lines)


def combat_floor_genes(frac: float = 0.02, seed: int = 3) -> str:
    """ComBat, with and without the guard on its priors, on small studies (38 → 34 samples, 5,000
    genes, labels 27/11 → 20/14: the sizes of a two-batch leukemia set) where ``frac`` of the genes
    are nearly constant in the target (1 ± 0.001, a detection floor)."""
    import gpa_core.genes.latent as latent_module
    from gpa_core.genes.combat import combat
    from gpa_core.genes.pipeline import fit_encoder, run_methods
    from gpa_core.genes.study import Study, make_synthetic_studies

    rng = np.random.default_rng(0)
    g = make_synthetic_studies(
        n_genes=5000, n_source=38, n_target=34, source_labels=(27, 11), target_labels=(20, 14), seed=seed
    )
    s, t = g.source, g.target
    Xt = t.expression.copy()
    cols = rng.choice(Xt.shape[1], int(frac * Xt.shape[1]), replace=False)
    Xt[:, cols] = 1.0 + 1e-3 * rng.standard_normal((Xt.shape[0], cols.size)).astype(Xt.dtype)
    t = Study(Xt, t.gene_ids, t.sample_ids, labels=t.labels, name="target with floor genes")
    enc = fit_encoder(s, t)
    lines = [
        f"| ComBat, {frac:.0%} of genes constant in the target | latent W₂², % of raw (ER+ / ER−) | "
        "floor, % | "
        "batch silhouette (within labels) | k-NN mixing (within labels) | label silhouette | spread ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    original = latent_module.combat_baseline

    def unguarded(Xs: Any, ls: Any, Xt: Any, lt: Any, *, labelled: bool = True) -> Any:
        batch = np.array(["source"] * Xs.shape[0] + ["target"] * Xt.shape[0])
        out = combat(
            np.vstack([Xs, Xt]), batch, np.concatenate([ls, lt]), reference="target", prior_range=None
        )
        return out[: Xs.shape[0]].astype(Xs.dtype, copy=False)

    for title, fn in (("none", None), ("mean/std", None), ("sva/scanpy priors (no guard)", unguarded),
                      ("with the guard (default)", original)):  # fmt: skip
        method = {"none": "none", "mean/std": "mean_std"}.get(title, "combat")
        latent_module.combat_baseline = fn or original
        try:
            res = run_methods(s, t, [method], {}, encoder=enc, gene_scores=False)[method]
        finally:
            latent_module.combat_baseline = original
        labs = ["ER+", "ER-"]
        lines.append(
            f"| {title} | {_slash([res.score('W2²', lab)['relative_%'] for lab in labs])} | "
            f"{_slash([res.score('W2²', lab)['floor_%'] for lab in labs])} | "
            f"{res.score('silhouette by study (within labels)')['after']:.3f} | "
            f"{res.score('k-NN mixing (within labels)')['after']:.2f} | "
            f"{res.score('silhouette by label')['after']:.3f} "
            f"(target {res.score('silhouette by label')['floor']:.3f}) | "
            f"{_slash([res.score('spread ratio', lab)['after'] for lab in labs], 2)} |"
        )
    return "\n".join(lines)


def quality(real_dir: Path) -> None:
    import torch

    from gpa_core.genes.pipeline import compile_kernel
    from gpa_core.genes.study import make_synthetic_studies

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    compile_kernel()
    emit("GPA kernel compile or disk-cache load", time.perf_counter() - t0, "s")
    g = make_synthetic_studies(
        n_genes=5000, n_source=226, n_target=265, source_labels=(138, 88), target_labels=(49, 216), seed=0
    )
    sets = [("synthetic (5,000 genes, 226 → 265, ER+ / ER−)", g.source, g.target)]
    if (real_dir / "expression.csv.gz").exists():
        s, t = real_studies(real_dir)
        sets.append(("CellBench Drop-seq → CEL-seq2 (450 cells, 2,000 genes)", s, t))
    else:
        print(f"note: {real_dir} has no expression.csv.gz; the real set is skipped", file=sys.stderr)
    tables = []
    for name, s, t in sets:
        tables.append(f"**{name}**\n\n" + quality_table(quality_rows(name, s, t)))
    for name, s, t in sets:
        tables.append(heldout(name.split(" (")[0], s, t))
    tables.append(combat_floor_genes())
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
