"""The latent page's integration pipeline without the page: read, align, encode, integrate, score.

``python -m gpa_core integrate`` (:func:`add_parser`, :func:`main`) and ``bench/bench_latent.py``
run it, so the page's numbers can be checked from a shell:

1. two studies on the same genes: two files (any format :func:`gpa_core.genes.readers.load_study`
   reads, labels from the file or from a label file, as on the page), or one combined table with
   a sample sheet naming each sample's batch and label (:func:`load_combined`);
2. :func:`gpa_core.study.align_studies` (shared genes; genes with missing values dropped);
3. one :class:`~gpa_core.genes.encoder.PCAEncoder` (per-gene standardization + PCA to d′, fitted
   on both studies) shared by every method, so all scores are in the same latent space;
4. :func:`gpa_core.genes.latent.integrate` for each method, with the settings of
   :data:`gpa_core.genes.latent.GPA_DEFAULTS` unless told otherwise;
5. one JSON-able dict per method (:func:`summary`): its settings, time, the full score table (the
   page's) and the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpa_core.genes.encoder import PCAEncoder
from gpa_core.genes.latent import (
    GPA_DEFAULTS,
    METHODS,
    POOLED_METRICS,
    IntegrationResult,
    assessment,
    flow_config,
    integrate,
    verdict,
)
from gpa_core.genes.study import GeneDataError, Study, align_studies

__all__ = [
    "METHOD_NAMES",
    "add_parser",
    "compile_kernel",
    "fit_encoder",
    "load_combined",
    "load_pair",
    "main",
    "run_methods",
    "summary",
    "write_outputs",
]

#: the command line's method names (the issue's spelling "meanstd" included) → integrate's
METHOD_NAMES = {
    "gpa": "gpa",
    "combat": "combat",
    "meanstd": "mean_std",
    "mean_std": "mean_std",
    "none": "none",
}


# ------------------------------------------------------------------------------------------ data
def _read_table(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path, sep=None, engine="python", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise GeneDataError(f"{path}: cannot be read as a table ({exc}).") from None


def load_combined(
    expression: str | Path,
    batch_file: str | Path,
    *,
    source_batch: str,
    target_batch: str,
    batch_column: str = "batch",
    label_column: str | None = "label",
    sample_column: str | None = None,
) -> tuple[Study, Study]:
    """Source and target from one expression table holding both (read by
    :func:`gpa_core.genes.readers.load_study`) and a sample sheet (CSV/TSV): one row per sample, the
    sample ID in ``sample_column`` (default: the first column), its batch in ``batch_column`` and
    its label in ``label_column`` (None: unlabelled). Samples of other batches are left out; every
    sample of the two batches needs a row."""
    from gpa_core.genes.readers import load_study

    expr_path, sheet_path = Path(expression), Path(batch_file)
    table = _read_table(sheet_path)
    sample_col = sample_column or str(table.columns[0])
    for col in (sample_col, batch_column, label_column):
        if col is not None and col not in table.columns:
            raise GeneDataError(
                f"{sheet_path}: no column {col!r}; its columns: {', '.join(map(repr, table.columns[:10]))}."
            )
    sheet = table.drop_duplicates(subset=sample_col).set_index(sample_col)
    study = load_study(str(expr_path), filename=expr_path.name, label_tag=None, name=expr_path.name)
    missing = [sid for sid in study.sample_ids.tolist() if sid not in sheet.index]
    batches = sheet[batch_column].reindex(study.sample_ids).to_numpy(dtype=object)
    out = []
    for role, value in (("source", source_batch), ("target", target_batch)):
        rows = batches == value
        if not rows.any():
            known = sorted({str(b) for b in sheet[batch_column].tolist()})
            raise GeneDataError(
                f"no sample of {expr_path.name} is in {batch_column} = {value!r} ({role}); "
                f"the sheet's values: {', '.join(map(repr, known[:10]))}."
            )
        out.append(
            Study(
                study.expression[rows],
                study.gene_ids,
                study.sample_ids[rows],
                labels=None
                if label_column is None
                else sheet[label_column].reindex(study.sample_ids[rows]).to_numpy(dtype=str),
                name=str(value),
            )
        )
    if missing and len(missing) == study.n_samples:
        raise GeneDataError(
            f"none of the {study.n_samples} samples of {expr_path.name} is in {sheet_path.name} "
            f"(its IDs look like {', '.join(map(repr, study.sample_ids[:3].tolist()))})."
        )
    return out[0], out[1]


def _load_one(path: str | Path, labels: str | Path | None, name: str) -> Study:
    from gpa_core.genes.readers import attach_labels, load_study, read_label_file

    p = Path(path)
    study = load_study(str(p), filename=p.name, name=name)
    if labels is not None:
        lp = Path(labels)
        study = attach_labels(study, read_label_file(str(lp), filename=lp.name))
    return study


def load_pair(
    source: str | Path,
    target: str | Path,
    source_labels: str | Path | None = None,
    target_labels: str | Path | None = None,
) -> tuple[Study, Study]:
    """Two study files as the page reads them (labels from a label file when given, else from the
    file itself: a series matrix's characteristics or a label column)."""
    return _load_one(source, source_labels, Path(source).name), _load_one(
        target, target_labels, Path(target).name
    )


# ------------------------------------------------------------------------------------------ running
def fit_encoder(source: Study, target: Study, settings: dict[str, Any] | None = None) -> PCAEncoder:
    """The page's encoder: d′ = min(settings' n_components, samples − 1, genes), standardized, with
    latent scale 1 (plain PCA units; each method gets its own scale by
    :meth:`~gpa_core.genes.encoder.PCAEncoder.with_latent_scale`)."""
    cfg = {**GPA_DEFAULTS, **(settings or {})}
    d = int(min(cfg["n_components"], source.n_samples + target.n_samples - 1, source.n_genes))
    return PCAEncoder(d, standardize=True, latent_scale=1.0).fit(source.expression, target.expression)


def run_methods(
    source: Study,
    target: Study,
    methods: Sequence[str] = METHODS,
    settings: dict[str, Any] | None = None,
    *,
    encoder: PCAEncoder | None = None,
    gene_scores: bool = True,
    sinkhorn: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, IntegrationResult]:
    """Align the studies (if needed), fit one encoder and run :func:`integrate` for each method
    with ``settings`` (:data:`GPA_DEFAULTS` updated by it). Returns {method: result}."""
    cfg = {**GPA_DEFAULTS, **(settings or {})}
    if source.n_genes != target.n_genes or not np.array_equal(source.gene_ids, target.gene_ids):
        source, target, _ = align_studies(source, target)
    enc = encoder or fit_encoder(source, target, cfg)
    if any(METHOD_NAMES.get(m, m) == "gpa" for m in methods):
        compile_kernel()  # else the first flows run on the eager engine, ~10× slower
    out: dict[str, IntegrationResult] = {}
    for m in methods:
        method = METHOD_NAMES.get(m, m)
        if progress is not None:
            progress(method)
        kwargs: dict[str, Any] = {}
        if method == "gpa":
            kwargs = {
                "config": flow_config(cfg),
                "steps": int(cfg["steps"]),
                "stop_at_floor": bool(cfg["stop_at_floor"]),
            }
        out[method] = integrate(
            source,
            target,
            method=method,  # type: ignore[arg-type]
            encoder=enc.with_latent_scale(cfg["latent_scale"]) if method == "gpa" else enc,
            gene_scores=gene_scores,
            sinkhorn=sinkhorn,
            floor_splits=int(cfg["floor_splits"]),
            **kwargs,
        )
    return out


def _num(x: Any) -> Any:
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def summary(
    result: IntegrationResult,
    source: Study,
    target: Study,
    settings: dict[str, Any] | None = None,
    best: str | None = None,
) -> dict[str, Any]:
    """One method's result as a JSON-able dict: what was integrated, how, in how long, the headline
    numbers (``latent_W2``: per label the latent W₂² before/after/relative/floor/excess and the
    spread and nearest-target ratios; ``pooled``: the scores over all samples before/after/floor),
    :func:`~gpa_core.genes.latent.assessment` (``assessment``), the best method of the run
    (``best``, from :func:`~gpa_core.genes.latent.verdict`) and the full score table (``scores``:
    the page's rows; NaN as null)."""
    cfg = {**GPA_DEFAULTS, **(settings or {})}
    enc = result.encoder
    rows = [{k: _num(v) for k, v in r.items()} for r in result.scores]
    latent = {}
    for lab in result.labels:
        w = result.score("W2²", lab)
        entry = {k: _num(w[k]) for k in ("before", "after", "relative_%", "floor", "floor_%", "excess_%")}
        for name in ("spread ratio", "nearest-target ratio"):
            try:
                entry[name] = _num(result.score(name, lab)["after"])
            except KeyError:
                entry[name] = None
        latent[lab] = entry
    pooled = {}
    for name in POOLED_METRICS:
        try:
            r = result.score(name)
        except KeyError:
            continue
        pooled[name] = {k: _num(r[k]) for k in ("before", "after", "floor")}
    out: dict[str, Any] = {
        "method": result.method,
        "source": {"name": source.name, "samples": source.n_samples, "labels": source.label_counts()},
        "target": {"name": target.name, "samples": target.n_samples, "labels": target.label_counts()},
        "genes": int(enc.n_features_),
        "n_components": int(enc.n_components_),
        "explained_variance": _num(float(np.sum(enc.explained_variance_ratio_))),
        "seconds": _num(result.seconds),
        "latent_W2": latent,
        "pooled": pooled,
        "assessment": {k: _num(v) for k, v in assessment(result).items()},
        "best": best,
        "scores": rows,
    }
    if result.method == "gpa" and result.transport is not None:
        t = result.transport
        out["gpa"] = {
            "latent_scale": _num(enc.latent_scale),
            "median_distance": _num(enc.median_distance_ / enc.latent_scale),
            "settings": {k: cfg[k] for k in ("f", "kl_form", "L", "dt", "inner_steps", "lr", "solver")}
            | {
                "hidden": list(cfg["hidden"]),
                "steps": int(cfg["steps"]),
                "stop_at_floor": cfg["stop_at_floor"],
            },
            "steps_done": dict(t.steps_done),
            "status": dict(t.status),
            "untouched_labels": list(t.untouched_labels),
        }
    return out


def write_outputs(out_dir: str | Path, source: Study, target: Study, results: dict[str, IntegrationResult],
                  summaries: list[dict[str, Any]]) -> list[str]:  # fmt: skip
    """Into ``out_dir``: ``scores.csv`` (every method's table), ``summary.json`` (the list of
    :func:`summary` dicts), ``latent.csv`` (latent coordinates before and after each method) and
    ``integrated_<method>.csv.gz`` (the integrated source, samples × genes). Returns the paths."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    frames = []
    for m, res in results.items():
        t = res.score_table()
        t.insert(0, "method", m)
        frames.append(t)
    p = out / "scores.csv"
    pd.concat(frames, ignore_index=True).to_csv(p, index=False)
    written.append(str(p))
    p = out / "summary.json"
    p.write_text(json.dumps(summaries, indent=1) + "\n")
    written.append(str(p))
    first = next(iter(results.values()))
    cols: dict[str, Any] = {
        "sample": np.concatenate([source.sample_ids, target.sample_ids]),
        "study": ["source"] * source.n_samples + ["target"] * target.n_samples,
    }
    for j in range(first.Z_target.shape[1]):
        cols[f"given_z{j + 1}"] = np.concatenate([first.Z_source_before[:, j], first.Z_target[:, j]])
    for m, res in results.items():
        for j in range(res.Z_target.shape[1]):
            cols[f"{m}_z{j + 1}"] = np.concatenate([res.Z_source_after[:, j], res.Z_target[:, j]])
    p = out / "latent.csv"
    pd.DataFrame(cols).to_csv(p, index=False)
    written.append(str(p))
    for m, res in results.items():
        p = out / f"integrated_{m}.csv.gz"
        frame = pd.DataFrame(
            np.asarray(res.source_integrated, dtype=np.float32),
            index=source.sample_ids,
            columns=source.gene_ids,
        )
        frame.index.name = "sample"
        frame.to_csv(p, compression={"method": "gzip", "compresslevel": 3, "mtime": 0})
        written.append(str(p))
    return written


# ------------------------------------------------------------------------------------------ command
def _methods(text: str) -> list[str]:
    names = [w.strip().lower() for w in text.replace(" ", ",").split(",") if w.strip()]
    if names == ["all"]:
        return list(METHODS)
    bad = [n for n in names if n not in METHOD_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"methods are gpa, combat, meanstd, none or all (comma-separated), got {text!r}"
        )
    return list(dict.fromkeys(METHOD_NAMES[n] for n in names))


def _scale(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}")
    return value


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``integrate`` subcommand on ``sub`` (argparse subparsers)."""
    d = GPA_DEFAULTS
    p = sub.add_parser(
        "integrate",
        help="integrate two gene-expression studies as the latent page does; print the scores",
        description="Encode (standardization + PCA), integrate the source onto the target with each method, "
        "score before/after with the floors (two halves of the target). SOURCE and TARGET are study files "
        "(series matrix, CSV/TSV, .h5ad); with --batch-file, SOURCE is one table holding both studies.",
    )
    p.add_argument("source", type=Path, metavar="SOURCE")
    p.add_argument("target", type=Path, nargs="?", default=None, metavar="TARGET")
    p.add_argument(
        "--source-labels", type=Path, default=None, help="label file (sample ID, label) for SOURCE"
    )
    p.add_argument(
        "--target-labels", type=Path, default=None, help="label file (sample ID, label) for TARGET"
    )
    p.add_argument(
        "--batch-file", type=Path, default=None,
        help="sample sheet (sample ID first, then columns) of a combined SOURCE table",
    )  # fmt: skip
    p.add_argument("--batch-column", default="batch", help="the sheet's batch column (default batch)")
    p.add_argument(
        "--label-column", default="label", help="the sheet's label column (default label; '' = none)"
    )
    p.add_argument("--source-batch", default=None, help="the batch value of the source samples")
    p.add_argument("--target-batch", default=None, help="the batch value of the target samples")
    p.add_argument(
        "--method", type=_methods, default=list(METHODS),
        help="gpa, combat, meanstd, none, or several comma-separated, or all (default all)",
    )  # fmt: skip
    p.add_argument(
        "--d", type=_positive(int), default=d["n_components"], help="latent dimension d′ (default 50)"
    )
    p.add_argument(
        "--latent-scale", type=_scale, default=d["latent_scale"],
        help="GPA: divide the latent data by this; auto = median distance / 5 (default auto)",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=_positive(int), default=d["steps"], help="GPA: most steps per label (5000)"
    )
    p.add_argument("--L", type=_positive(float), default=d["L"], help="GPA: Lipschitz bound (default 1)")
    p.add_argument("--dt", type=_positive(float), default=d["dt"], help="GPA: time step (default 0.2)")
    p.add_argument(
        "--inner-steps", type=_positive(int), default=d["inner_steps"], help="GPA: inner Adam steps (5)"
    )
    p.add_argument("--lr", type=_positive(float), default=d["lr"], help="GPA: Adam learning rate (1e-3)")
    p.add_argument("--no-stop-at-floor", action="store_true",
                   help="GPA: run every step (default: a label's flow stops at its W2² floor)")  # fmt: skip
    p.add_argument("--floor-splits", type=int, default=d["floor_splits"],
                   help="random halves of the target for the floors (default 5; 0 = no floors)")  # fmt: skip
    p.add_argument("--no-gene-scores", action="store_true", help="latent scores only (faster on many genes)")
    p.add_argument(
        "--sinkhorn", action="store_true", help="also the Sinkhorn divergence (blur 0.05, Table SM2)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="write scores, latent coordinates, integrated data here"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per method, one per line")
    return p


class UsageError(Exception):
    """A bad combination of arguments or unreadable input: one line, exit status 2."""


def _studies(args: argparse.Namespace) -> tuple[Study, Study]:
    try:
        if args.batch_file is not None:
            if args.target is not None:
                raise UsageError("with --batch-file give one combined table (SOURCE), not TARGET")
            if not args.source_batch or not args.target_batch:
                raise UsageError("--batch-file needs --source-batch and --target-batch")
            return load_combined(
                args.source,
                args.batch_file,
                source_batch=args.source_batch,
                target_batch=args.target_batch,
                batch_column=args.batch_column,
                label_column=args.label_column or None,
            )
        if args.target is None:
            raise UsageError("give SOURCE and TARGET, or one combined table with --batch-file")
        for path in (args.source, args.target, args.source_labels, args.target_labels):
            if path is not None and not path.exists():
                raise UsageError(f"file not found: {path}")
        return load_pair(args.source, args.target, args.source_labels, args.target_labels)
    except (GeneDataError, ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    """Run ``integrate`` for parsed ``args``; prints JSON lines (``--json``) or a short table."""
    if args.floor_splits < 0:
        raise UsageError(f"--floor-splits must be ≥ 0, got {args.floor_splits}")
    source, target = _studies(args)
    settings = {
        "n_components": args.d,
        "latent_scale": args.latent_scale,
        "steps": args.steps,
        "L": args.L,
        "dt": args.dt,
        "inner_steps": args.inner_steps,
        "lr": args.lr,
        "stop_at_floor": not args.no_stop_at_floor,
        "floor_splits": args.floor_splits,
    }
    try:
        source, target, report = align_studies(source, target)
    except GeneDataError as exc:
        raise UsageError(str(exc)) from None
    print(f"{report.summary()}", file=sys.stderr)
    if "gpa" in args.method:
        import torch

        torch.set_num_threads(1)  # a few hundred particles per flow: one thread is fastest
        compile_kernel(verbose=True)
    start = time.perf_counter()
    try:
        results = run_methods(
            source, target, args.method, settings, gene_scores=not args.no_gene_scores,
            sinkhorn=args.sinkhorn, progress=lambda m: print(f"{m} …", file=sys.stderr),
        )  # fmt: skip
    except (GeneDataError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    judged = verdict(results)
    summaries = [summary(res, source, target, settings, judged["best"]) for res in results.values()]
    print(f"done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.out is not None:
        try:
            for path in write_outputs(args.out, source, target, results, summaries):
                print(f"wrote {path}", file=sys.stderr)
        except OSError as exc:
            raise UsageError(f"cannot write to {args.out}: {exc.strerror or exc}") from None
    if args.json:
        for s in summaries:
            print(json.dumps(s, ensure_ascii=False))
    else:
        _print_table(summaries)
        print("\n".join(judged["lines"]))
    return 0


def compile_kernel(verbose: bool = False) -> None:
    """Wait for the compiled GPA kernel (once per machine; then a disk-cache load of about a second)."""
    from gpa_core.engine import kernel

    if kernel.available() and not kernel.ready():
        if verbose and not kernel.cache_is_warm():
            print("compiling the GPA kernel (once per machine, about a minute) …", file=sys.stderr)
        kernel.ensure_compiled(block=True)


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:.0f} %" if pct else f"{x:.3f}"


def _print_table(summaries: list[dict[str, Any]]) -> None:
    for s in summaries:
        extra = ""
        if "gpa" in s:
            g = s["gpa"]
            extra = f", latent scale {g['latent_scale']:.3g}, steps {g['steps_done']}"
        print(f"{s['method']} ({s['seconds']:.2f} s{extra})")
        for lab, w in s["latent_W2"].items():
            print(
                f"  {lab}: latent W2² {_fmt(w['relative_%'], True)} of raw (floor {_fmt(w['floor_%'], True)},"
                f" excess over floor {_fmt(w['excess_%'], True)}), spread ratio {_fmt(w['spread ratio'])},"
                f" nearest-target ratio {_fmt(w['nearest-target ratio'])}"
            )
        for name, v in s["pooled"].items():
            print(f"  {name}: {_fmt(v['before'])} → {_fmt(v['after'])} (floor {_fmt(v['floor'])})")
