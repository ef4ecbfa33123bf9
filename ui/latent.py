"""Helpers of the latent-space (gene expression) page: cached data, the background integration job,
figures and download payloads. Numerical work stays in :mod:`gpa_core.genes.latent`; this module only
wires it to Streamlit."""

from __future__ import annotations

import gzip
import io
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from gpa_core.config import FlowConfig
from gpa_core.genes.latent import (
    IntegrationResult,
    PCAEncoder,
    integrate,
    pca_2d,
    umap_embedding,
    warm_up_umap,
)
from gpa_core.genes.readers import (
    CAP_ENV,
    MAX_BYTES,
    MAX_LABEL_BYTES,
    attach_labels,
    find_label_tags,
    labels_from_characteristics,
    load_study,
    read_label_file,
)
from gpa_core.genes.study import GeneDataError, Study, make_synthetic_studies
from gpa_core.jobs import JobControl
from gpa_core.plots.studies import curves_figure
from ui.session import check_upload_size

#: gene counts offered for the synthetic studies (54,675 = the paper's GPL570 probes)
GENE_SIZES: tuple[int, ...] = (2_000, 5_000, 10_000, 54_675)
#: defaults of the data controls; a test may override any of them with ``st.session_state["lat_defaults"]``
DEFAULTS: dict[str, Any] = {"genes": 5_000, "n_source": 226, "n_target": 265, "umap": True, "steps": 300}
#: the paper's label counts (ER+, ER−) per study, scaled when fewer samples are asked for
PAPER_SOURCE = (138, 88)
PAPER_TARGET = (49, 216)
UMAP_SEED = 100  # paper Fig. 8
STUDY_COLORS = {"source": "#d62728", "target": "#1f77b4"}
LABEL_COLORS = ("#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
#: per-file upload caps in MB: an expression file (a gzipped one may hold up to the study cap of
#: text, :func:`study_cap`) and a label file (the reader's own cap, MAX_LABEL_BYTES, is larger)
UPLOAD_MB = 200
LABEL_UPLOAD_MB = 5


def defaults() -> dict[str, Any]:
    """:data:`DEFAULTS`, with the test override from session state."""
    return {**DEFAULTS, **dict(st.session_state.get("lat_defaults", {}))}


def split_counts(n: int, paper: tuple[int, int]) -> tuple[int, int]:
    """``n`` samples split into (ER+, ER−) in the paper's proportions, each at least 1."""
    pos = round(n * paper[0] / (paper[0] + paper[1]))
    pos = min(max(pos, 1), n - 1)
    return pos, n - pos


@st.cache_resource(max_entries=2, show_spinner="Generating the synthetic studies …")
def synthetic(n_genes: int, n_source: int, n_target: int, seed: int) -> tuple[Study, Study]:
    """The seeded synthetic source and target (cached: the full size is ~100 MB per study)."""
    g = make_synthetic_studies(
        n_genes=int(n_genes),
        n_source=int(n_source),
        n_target=int(n_target),
        source_labels=split_counts(int(n_source), PAPER_SOURCE),
        target_labels=split_counts(int(n_target), PAPER_TARGET),
        seed=int(seed),
    )
    return g.source, g.target


def study_cap() -> tuple[int, str | None]:
    """The cap on one study file's text in bytes: ``GPA_MAX_STUDY_MB`` (MB) if set, else the core's
    default (512 MB); and a warning when the variable is not a positive whole number."""
    raw = os.environ.get(CAP_ENV, "").strip()
    if not raw:
        return MAX_BYTES, None
    if raw.isdigit() and int(raw) > 0:
        return int(raw) * 2**20, None
    return MAX_BYTES, (
        f"{CAP_ENV}={raw!r} is not a positive whole number of MB; using the default cap of "
        f"{MAX_BYTES // 2**20} MB of text per study file."
    )


def upload_mb(cap: int) -> int:
    """The expression uploaders' cap in MB: :data:`UPLOAD_MB`, or less when the study cap is lower."""
    return max(1, min(UPLOAD_MB, cap // 2**20))


@st.cache_resource(max_entries=4, show_spinner="Reading the file …")
def read_study(data: bytes, filename: str, orientation: str, name: str, max_bytes: int = MAX_BYTES) -> Study:
    """An uploaded study (series matrix or table) of at most ``max_bytes`` of text; labels are
    attached separately."""
    advice = "upload a smaller study file (gzip it, or keep fewer genes)"
    check_upload_size(data, filename, upload_mb(max_bytes) * 2**20, advice)
    return load_study(
        data,
        filename=filename,
        orientation=orientation,  # type: ignore[arg-type]
        label_tag=None,
        name=name,
        max_bytes=max_bytes,
    )


def label_tags(study: Study) -> list[str]:
    """The characteristics tags of a series-matrix study (empty for tables)."""
    return [tag for tag, _ in find_label_tags(study)]


def with_tag_labels(study: Study, tag: str) -> Study:
    """The study labelled by characteristics tag ``tag``; samples without a value are an error."""
    labels = labels_from_characteristics(study, tag)
    if labels is None:
        raise GeneDataError(f"{study.name}: no sample characteristic {tag!r}.")
    empty = int(np.sum(np.char.str_len(labels.astype(str)) == 0))
    if empty:
        raise GeneDataError(
            f"{study.name}: {empty} of {study.n_samples} samples have no value for {tag!r}; "
            "choose another tag or upload a label file."
        )
    return study.with_labels(labels)


def with_label_file(study: Study, data: bytes, filename: str) -> Study:
    """The study labelled from an uploaded label file (sample ID, label)."""
    check_upload_size(
        data, filename, LABEL_UPLOAD_MB * 2**20, "a label file holds two short columns: sample ID, label"
    )
    return attach_labels(study, read_label_file(data, filename=filename, max_bytes=MAX_LABEL_BYTES))


@st.cache_resource(max_entries=2, show_spinner="Fitting the encoder (standardization + PCA) …")
def fit_encoder(
    _source: Study, _target: Study, key: str, n_components: int, standardize: bool, latent_scale: float
) -> PCAEncoder:
    """The encoder fitted on both studies; ``key`` identifies the data (the studies are not hashed)."""
    d = int(min(n_components, _source.n_samples + _target.n_samples - 1, _source.n_genes))
    return PCAEncoder(d, standardize=standardize, latent_scale=latent_scale).fit(
        _source.expression, _target.expression
    )


def gpa_config(
    L: float, dt: float, inner_steps: int, lr: float, steps: int, f: str, hidden: tuple[int, ...]
) -> FlowConfig:
    """The paper's Fig. 8 flow (KL in Donsker–Varadhan form, Euler), with the page's values."""
    kl_form = "dv" if f == "kl" else "lt"
    return FlowConfig(
        f=f,  # type: ignore[arg-type]
        kl_form=kl_form,  # type: ignore[arg-type]
        L=L,
        dt=dt,
        inner_steps=inner_steps,
        lr=lr,
        steps=steps,
        hidden=hidden,
        solver="euler",
        device="cpu",
    )


# ------------------------------------------------------------------------------------------ the job
def integration_job(
    source: Study,
    target: Study,
    encoder: PCAEncoder,
    *,
    methods: tuple[str, ...],
    config: FlowConfig,
    steps: int,
    do_umap: bool,
    sinkhorn: bool,
) -> Callable[[JobControl], dict[str, Any]]:
    """The background work: baseline and/or GPA via :func:`integrate`, then PCA and UMAP views.

    Publishes ``{"histories": {label: history dict}, "label": current label}`` while GPA runs."""
    n_labels = len(set((source.labels if source.labels is not None else np.array(["all"])).tolist()))
    gpa_units = steps * n_labels if "gpa" in methods else 0
    total = float(gpa_units + 2 + (1 + len(methods) + 1 if do_umap else 0))

    def work(ctl: JobControl) -> dict[str, Any]:
        out: dict[str, Any] = {"results": {}, "views": {}, "umap_seconds": None}
        done = 0.0
        baselines = {"mean_std": "mean/std baseline …", "combat": "ComBat (target as reference) …"}
        for method, message in baselines.items():
            if method in methods:
                ctl.report(done, total, message)
                out["results"][method] = integrate(
                    source, target, method=method, encoder=encoder, sinkhorn=sinkhorn
                )
            ctl.check()
            done += 1
        if "gpa" in methods:
            flows: list[Any] = []  # one flow per label, in order: the last is the running one
            histories: dict[str, dict[str, np.ndarray]] = {}

            def factory(src: np.ndarray, tgt: np.ndarray, cfg: FlowConfig) -> Any:
                from gpa_core.engine.flow import GPAFlow

                flows.append(GPAFlow(src, tgt, cfg))
                return flows[-1]

            labels_order: list[str] = []

            def progress(label: str, step: int, tot: int) -> None:
                if label not in labels_order:
                    labels_order.append(label)
                histories[label] = flows[-1].history.member(0)
                ctl.publish({"histories": dict(histories), "label": label, "step": step, "total": tot})
                before = (len(labels_order) - 1) * steps
                ctl.report(done + before + step, total, f"GPA: label {label}, step {step}/{tot}")

            out["results"]["gpa"] = integrate(
                source,
                target,
                method="gpa",
                encoder=encoder,
                config=config,
                steps=steps,
                progress=progress,
                should_stop=ctl.cancelled,
                flow_factory=factory,
                sinkhorn=sinkhorn,
            )
            ctl.check()
            done += gpa_units
        first = next(iter(out["results"].values()))
        sets: dict[str, np.ndarray] = {"given": np.concatenate([first.Z_source_before, first.Z_target])}
        for m, res in out["results"].items():
            sets[m] = np.concatenate([res.Z_source_after, res.Z_target])
        out["views"]["pca"] = {k: pca_2d(v) for k, v in sets.items()}
        if do_umap:
            ctl.report(done, total, "UMAP: compiling on first use (numba), this can take a while …")
            out["umap_seconds"] = warm_up_umap()
            done += 1
            out["views"]["umap"] = {}
            for k, v in sets.items():
                ctl.check()
                ctl.report(done, total, f"UMAP of {VIEW_TITLES.get(k, k)} …")
                out["views"]["umap"][k] = umap_embedding(v, random_state=UMAP_SEED)
                done += 1
        ctl.report(total, total, "done")
        return out

    return work


VIEW_TITLES = {
    "given": "the studies as given",
    "mean_std": "mean/std baseline",
    "combat": "ComBat (target as reference)",
    "gpa": "GPA",
}


# ------------------------------------------------------------------------------------------ tables
def score_table(results: dict[str, IntegrationResult]) -> pd.DataFrame:
    """All methods' scores in one table (a ``method`` column first)."""
    frames = []
    for m, res in results.items():
        t = res.score_table()
        t.insert(0, "method", VIEW_TITLES.get(m, m))
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latent_frame(source: Study, target: Study, results: dict[str, IntegrationResult]) -> pd.DataFrame:
    """Latent coordinates of every sample: before, and after each method (target rows do not move)."""
    first = next(iter(results.values()))
    d = first.Z_target.shape[1]
    n_s = source.n_samples
    base = pd.DataFrame(
        {
            "sample": np.concatenate([source.sample_ids, target.sample_ids]),
            "study": ["source"] * n_s + ["target"] * target.n_samples,
            "label": np.concatenate(
                [
                    source.labels if source.labels is not None else np.full(n_s, "all"),
                    target.labels if target.labels is not None else np.full(target.n_samples, "all"),
                ]
            ),
        }
    )
    cols: dict[str, np.ndarray] = {}
    Z = np.concatenate([first.Z_source_before, first.Z_target])
    for j in range(d):
        cols[f"given_z{j + 1}"] = Z[:, j]
    for m, res in results.items():
        Z = np.concatenate([res.Z_source_after, res.Z_target])
        for j in range(d):
            cols[f"{m}_z{j + 1}"] = Z[:, j]
    return pd.concat([base, pd.DataFrame(cols)], axis=1)


def gz_csv(frame: pd.DataFrame, index: bool = False) -> bytes:
    """``frame`` as gzipped CSV bytes (fast compression level)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=3, mtime=0) as fh:
        fh.write(frame.to_csv(index=index).encode())
    return buf.getvalue()


def integrated_matrix(source: Study, res: IntegrationResult) -> bytes:
    """The integrated source, samples × genes, as gzipped CSV (gene IDs as the header)."""
    frame = pd.DataFrame(
        np.asarray(res.source_integrated, dtype=np.float32), index=source.sample_ids, columns=source.gene_ids
    )
    frame.index.name = "sample"
    return gz_csv(frame, index=True)


# ------------------------------------------------------------------------------------------ figures
def scree_figure(encoder: PCAEncoder, chosen: int) -> go.Figure:
    """Explained-variance ratio per component and its cumulative sum; a line at d′."""
    s = encoder.scree()
    shown = int(min(s["component"].shape[0], max(100, 2 * chosen)))
    s = {k: v[:shown] for k, v in s.items()}
    fig = go.Figure()
    fig.add_bar(x=s["component"], y=s["ratio"], name="per component", marker_color="#1f77b4")
    fig.add_scatter(x=s["component"], y=s["cumulative"], name="cumulative", mode="lines", yaxis="y2")
    fig.add_vline(x=chosen + 0.5, line_dash="dash", line_color="grey")
    fig.update_layout(
        title=f"Scree plot (explained variance, first {shown} components)",
        height=300,
        margin={"l": 50, "r": 50, "t": 40, "b": 40},
        xaxis_title="component",
        yaxis_title="ratio",
        yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.02], "title": "cumulative"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def reconstruction_figure(encoder: PCAEncoder, chosen: int) -> go.Figure:
    """Relative reconstruction error of the standardized data against d′ (exact, from the spectrum)."""
    ds, err = encoder.reconstruction_error()
    fig = go.Figure(go.Scatter(x=ds, y=err, mode="lines+markers", marker={"size": 3}))
    fig.add_vline(x=chosen, line_dash="dash", line_color="grey")
    fig.update_layout(
        title="Reconstruction error vs d′",
        height=300,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        xaxis_title="d′",
        yaxis_title="‖X − P X‖ / ‖X‖",
        yaxis={"range": [0, 1.02]},
    )
    return fig


def curves(histories: dict[str, dict[str, np.ndarray]], field: str, title: str, log_y: bool) -> go.Figure:
    """One curve per label of a GPA history field against physical time."""
    labels = list(histories)
    fig = curves_figure(
        [histories[k] for k in labels],
        [f"label {k}" for k in labels],
        field,
        title=title,
        y_label=title,
        log_y=log_y,
        uirevision=f"lat_{field}",
    )
    fig.update_layout(height=300)
    return fig


def embedding_figure(xy: np.ndarray, groups: np.ndarray, title: str, colors: dict[str, str]) -> go.Figure:
    """A 2-D scatter, one trace per group."""
    fig = go.Figure()
    for g in dict.fromkeys(groups.tolist()):
        m = groups == g
        fig.add_scattergl(
            x=xy[m, 0],
            y=xy[m, 1],
            mode="markers",
            name=str(g),
            marker={"size": 5, "color": colors.get(str(g)), "opacity": 0.75},
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=330,
        margin={"l": 30, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.12},
        xaxis={"showticklabels": False},
        yaxis={"showticklabels": False},
    )
    return fig


def label_colors(labels: np.ndarray) -> dict[str, str]:
    return {
        str(lab): LABEL_COLORS[k % len(LABEL_COLORS)] for k, lab in enumerate(dict.fromkeys(labels.tolist()))
    }


def fmt(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"
