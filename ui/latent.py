"""Helpers of the latent-space (gene expression) page: cached data, the background integration job,
tables and download payloads. Numerical work stays in :mod:`gpa_core.genes.latent` and the figures in
:mod:`gpa_core.plots.latent`; this module only wires them to Streamlit."""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gpa_core.config import FlowConfig
from gpa_core.genes.batches import SampleSheet, attach_sheet, read_sample_sheet
from gpa_core.genes.latent import (
    GPA_DEFAULTS,
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
    sheet_label_column,
)
from gpa_core.genes.scale import TRANSFORMS, log2_transform
from gpa_core.genes.study import GeneDataError, Study, make_synthetic_studies
from gpa_core.jobs import JobControl
from ui.uploads import check_upload_size

#: gene counts offered for the synthetic studies (54,675 = the paper's GPL570 probes)
GENE_SIZES: tuple[int, ...] = (2_000, 5_000, 10_000, 54_675)
#: defaults of the data controls; a test may override any of them with ``st.session_state["lat_defaults"]``
DEFAULTS: dict[str, Any] = {
    "genes": 5_000, "n_source": 226, "n_target": 265, "umap": True, "steps": GPA_DEFAULTS["steps"],
}  # fmt: skip
#: the paper's label counts (ER+, ER−) per study, scaled when fewer samples are asked for
PAPER_SOURCE = (138, 88)
PAPER_TARGET = (49, 216)
UMAP_SEED = 100  # paper Fig. 8
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


def read_sheet(data: bytes, filename: str) -> SampleSheet:
    """An uploaded label file or sample sheet (sample ID, then label, batch, … columns)."""
    check_upload_size(
        data, filename, LABEL_UPLOAD_MB * 2**20, "a label file holds two short columns: sample ID, label"
    )
    return read_sample_sheet(data, filename=filename, max_bytes=MAX_LABEL_BYTES)


def with_label_file(study: Study, data: bytes, filename: str, column: str | None = None) -> Study:
    """The study labelled from an uploaded label file (sample ID, label; or a sample sheet, whose
    ``column`` — default: a label-named one, else the second — holds the labels)."""
    sheet = read_sheet(data, filename)
    return attach_labels(study, sheet.lookup(sheet_label_column(sheet, column)))


#: the page's choices of scale for linear values: keep them, or one of the log2 transforms
SCALES: dict[str, str] = {
    "none": "keep the values as they are",
    **{key: t.label for key, t in TRANSFORMS.items()},
}


@st.cache_resource(max_entries=2, show_spinner="Applying the log2 transform …")
def transformed(
    data: bytes, filename: str, orientation: str, name: str, max_bytes: int, transform: str
) -> Study:
    """The uploaded study (:func:`read_study`, cached) with the log2 ``transform`` of :data:`SCALES`
    applied (cached too: the transform copies the matrix)."""
    return log2_transform(read_study(data, filename, orientation, name, max_bytes), transform)


def with_scale(
    study: Study, data: bytes, filename: str, orientation: str, name: str, max_bytes: int, choice: str
) -> Study:
    """``study`` (read from ``data``) on the chosen scale: as read for ``"none"``, else transformed."""
    if choice == "none":
        return study
    return transformed(data, filename, orientation, name, max_bytes, choice)


def with_sheet(study: Study, data: bytes, filename: str) -> Study:
    """The study with an uploaded sample sheet's columns as its sample information (batch, label, …)."""
    return attach_sheet(study, read_sheet(data, filename))


@st.cache_resource(max_entries=2, show_spinner="Fitting the encoder (standardization + PCA) …")
def fit_encoder(
    _source: Study, _target: Study, key: str, n_components: int, standardize: bool, latent_scale: float | str
) -> PCAEncoder:
    """The encoder fitted on both studies; ``key`` identifies the data (the studies are not hashed).
    ``latent_scale="auto"``: chosen from the data (the median distance between two samples becomes
    :data:`~gpa_core.genes.encoder.AUTO_MEDIAN_DISTANCE`)."""
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
        f=f, kl_form=kl_form,  # type: ignore[arg-type]
        L=L, dt=dt, inner_steps=inner_steps, lr=lr, steps=steps, hidden=hidden, solver="euler", device="cpu",
    )  # fmt: skip


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
    stop_at_floor: bool = GPA_DEFAULTS["stop_at_floor"],
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
                stop_at_floor=stop_at_floor,
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


def sample_groups(source: Study, target: Study) -> tuple[np.ndarray, np.ndarray]:
    """The study ("source"/"target") and the label ("all" in an unlabelled study) of every sample, the
    source's first: the order of the latent coordinates and of the views."""
    study = np.array(["source"] * source.n_samples + ["target"] * target.n_samples)
    labels = [s.labels if s.labels is not None else np.full(s.n_samples, "all") for s in (source, target)]
    return study, np.concatenate(labels).astype(str)


def latent_frame(source: Study, target: Study, results: dict[str, IntegrationResult]) -> pd.DataFrame:
    """Latent coordinates of every sample: before, and after each method (target rows do not move)."""
    first = next(iter(results.values()))
    d = first.Z_target.shape[1]
    study, labels = sample_groups(source, target)
    base = pd.DataFrame(
        {"sample": np.concatenate([source.sample_ids, target.sample_ids]), "study": study, "label": labels}
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
    """The integrated source, genes × samples (the layout of an expression table: gene IDs in the first
    column, one column per sample), as gzipped CSV."""
    frame = pd.DataFrame(
        np.asarray(res.source_integrated, dtype=np.float32).T,
        index=source.gene_ids,
        columns=source.sample_ids,
    )
    frame.index.name = "gene"
    return gz_csv(frame, index=True)


def integrated_h5ad(source: Study, target: Study, res: IntegrationResult, method: str) -> bytes | None:
    """The integrated source and the target as one AnnData (``.h5ad``): ``X`` samples × genes, ``obs``
    with each sample's study ("source" integrated by ``method``, "target" as given) and label, ``var``
    the gene IDs. None without the optional package anndata."""
    try:
        import anndata  # type: ignore[import-not-found]
    except ImportError:
        return None
    study, labels = sample_groups(source, target)
    X = np.vstack([np.asarray(res.source_integrated, dtype=np.float32), target.expression.astype(np.float32)])
    methods = [method] * source.n_samples + ["none"] * target.n_samples
    # anndata 0.12 cannot write pandas 3's Arrow-backed strings: build obs and var with object strings
    with pd.option_context("future.infer_string", False):
        samples = pd.Index([str(s) for s in (*source.sample_ids, *target.sample_ids)], name="sample")
        obs = pd.DataFrame({"study": study, "label": labels, "method": methods}, index=samples)
        var = pd.DataFrame(index=pd.Index([str(g) for g in source.gene_ids], name="gene"))
        adata = anndata.AnnData(X=X, obs=obs, var=var)
    with tempfile.TemporaryDirectory() as folder:  # write_h5ad takes a path, not a buffer
        path = os.path.join(folder, "integrated.h5ad")
        adata.write_h5ad(path)
        with open(path, "rb") as fh:
            return fh.read()
