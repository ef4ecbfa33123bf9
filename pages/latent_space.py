"""Latent-space GPA for gene-expression integration (paper §9, Fig. 8, Table SM2): two studies →
standardization + PCA (d′) → per-label GPA (each label its own discriminator) or the mean/std baseline →
decode; scores, UMAP/PCA views and downloads. The work runs in a background job polled by a fragment."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import streamlit as st

from gpa_core.config import ConfigError, field_to_text, parse_hidden
from gpa_core.genes.batches import (
    batch_columns,
    batch_values,
    guess_batch_column,
    guess_label_column,
    label_columns,
    split_by_batch,
    with_annotation_labels,
)
from gpa_core.genes.encoder import AUTO_MEDIAN_DISTANCE
from gpa_core.genes.latent import GPA_DEFAULTS, REACHED_FLOOR, LatentError, default_settings, verdict
from gpa_core.genes.readers import PAGE_ORIENTATION, sheet_label_column
from gpa_core.genes.study import PAGE_MISSING, GeneDataError, Study, align_studies
from gpa_core.jobs import EnsembleJob
from gpa_core.plots import latent as plots
from ui import latent as latent_ui
from ui.jobs import JobPage, job_progress
from ui.session import inside_the_app

ORIENTATIONS = {"auto": "auto-detect", **PAGE_ORIENTATION}  # the readers' messages quote these labels
#: This session's integration: the job, the two studies and the settings it ran with.
JOB = JobPage("latent_space")


# ------------------------------------------------------------------------------------------ data
def _naming(message: str, filename: str) -> str:
    """``message``, prefixed with the file's name unless it already names it."""
    return message if filename in message else f"'{filename}': {message}"


def _expression_help(limit: int, cap: int) -> str:
    return (
        "CSV/TSV table (plain or gzipped; genes × samples or samples × genes; annotation columns such as a "
        "gene description and per-sample P/A/M call columns are dropped and named), a GEO series-matrix file "
        "(GSE…_series_matrix.txt[.gz]) or an AnnData .h5ad file (needs the optional package anndata; its obs "
        f"columns offer the batch and label). At most {limit} MB per file and {cap // 2**20} MB of text once "
        f"decompressed (environment variable {latent_ui.CAP_ENV} when the app starts)."
    )


def _scale(col: Any, study: Study, key: str, read: tuple[bytes, str, str, str, int]) -> Study:
    """The study on the scale chosen for linear values (the control shows only for them); ``read``:
    the arguments of :func:`ui.latent.read_study` that gave ``study``."""
    if study.linear is None:
        return study
    scales = list(latent_ui.SCALES)
    choice = col.selectbox(
        "scale (the values look linear)", scales, index=scales.index(study.linear.suggested), key=key,
        format_func=latent_ui.SCALES.get,
        help=f"The values look linear, not log-scale ({study.linear.describe()}): PCA and GPA expect log "
        "values (the paper's are log2 intensities, 2–16). log2 needs a floor for values ≤ 0: 1, or 20 with a "
        "ceiling of 16000 as for Affymetrix MAS4/MAS5 data; log2(x + 1) suits counts.",
    )  # fmt: skip
    return latent_ui.with_scale(study, *read, choice)


def _label_column(col: Any, study: Study, key: str) -> Study:
    """Labels from one of the study's sample-information columns (a table's text columns, .h5ad obs),
    when it has any: the column the reader took, else a label-named one, else none."""
    columns = label_columns(study)
    if not columns:
        return study
    options = ["", *columns]
    default = guess_label_column(study) or ""
    if study.labels is not None:  # the reader took a label column: preselect it
        default = next((c for c in columns if _gives_labels(study, c)), default)
    choice = col.selectbox(
        "label column (sample information)", options, index=options.index(default), key=key,
        format_func=lambda c: c or "no labels",
    )  # fmt: skip
    return with_annotation_labels(study, choice or None)


def _gives_labels(study: Study, column: str) -> bool:
    """Whether sample-information ``column`` gives the study's present labels."""
    try:
        return np.array_equal(with_annotation_labels(study, column).labels, study.labels)
    except GeneDataError:
        return False


def _upload_column(col: Any, role: str, cap: int) -> Study | None:
    """One study's upload widgets; returns the labelled study, or None (with an st.error) on failure.
    ``cap``: the most text (bytes, after decompression) a study file may hold."""
    col.markdown(f"**{role.capitalize()} study**")
    limit = latent_ui.upload_mb(cap)
    f = col.file_uploader(
        f"{role} expression file",
        type=None,  # every file reaches the reader, which names what it cannot use
        key=f"lat_up_{role}",
        max_upload_size=2 * limit,  # more than the reader takes: see UPLOADER_LIMIT_MB in ui/uploads.py
        help=_expression_help(limit, cap),
    )
    orient = col.selectbox(
        "orientation", list(ORIENTATIONS), format_func=ORIENTATIONS.get, key=f"lat_orient_{role}"
    )
    lab = col.file_uploader(
        f"{role} label file (optional: sample ID, label)",
        type=None,
        key=f"lat_lab_{role}",
        max_upload_size=4 * latent_ui.LABEL_UPLOAD_MB,
        help="Two columns, a header row optional; or a sample sheet with a header (sample ID, batch, label, "
        "…), whose label column you choose. Rows of samples not in the study are ignored.",
    )
    if f is None:
        return None
    read = (f.getvalue(), f.name, orient, f"{role} ({f.name})", cap)
    try:
        study = latent_ui.read_study(*read)
        study = _scale(col, study, f"lat_scale_{role}", read)
    except (GeneDataError, ValueError) as exc:
        col.error(_naming(str(exc), f.name))
        return None
    try:
        if lab is not None:
            sheet = latent_ui.read_sheet(lab.getvalue(), lab.name)
            columns = list(sheet.columns)
            column = None
            if len(columns) > 1:
                column = col.selectbox(
                    "label column of the label file", columns,
                    index=columns.index(sheet_label_column(sheet)), key=f"lat_labcol_{role}",
                )  # fmt: skip
            study = latent_ui.with_label_file(study, lab.getvalue(), lab.name, column)
        else:
            tags = latent_ui.label_tags(study)
            if tags:
                auto = next((i for i, t in enumerate(tags) if "er" in t.lower()), 0)
                tag = col.selectbox(
                    "label tag (!Sample_characteristics_ch1)",
                    tags,
                    index=auto,
                    key=f"lat_tag_{role}",
                    disabled=len(tags) == 1,
                )
                study = latent_ui.with_tag_labels(study, tag)
            else:
                study = _label_column(col, study, f"lat_info_{role}")
    except (GeneDataError, ValueError) as exc:
        col.error(_naming(str(exc), lab.name if lab is not None else f.name))
        return None
    counts = study.label_counts()
    col.caption(
        f"{f.name}: {study.n_samples} samples × {study.n_genes:,} genes · "
        + (f"labels from {lab.name}: " if lab is not None else "")
        + (", ".join(f"{k}: {v}" for k, v in counts.items()) if counts else "no labels")
        + (" · " + "; ".join(study.notes) if study.notes else "")
    )
    return study


def _two_files(cap: int) -> tuple[Study | None, Study | None]:
    c1, c2 = st.columns(2)
    return _upload_column(c1, "source", cap), _upload_column(c2, "target", cap)


def _combined(cap: int) -> tuple[Study, Study] | None:
    """One file holding both studies, split by a batch column (in the file itself or in a sample
    sheet): the source and the target batch and the label column are chosen; None until both exist."""
    limit = latent_ui.upload_mb(cap)
    c1, c2 = st.columns(2)
    f = c1.file_uploader(
        "expression file (both studies)", type=None, key="lat_up_combined", max_upload_size=2 * limit,
        help=_expression_help(limit, cap),
    )  # fmt: skip
    orient = c1.selectbox(
        "orientation", list(ORIENTATIONS), format_func=ORIENTATIONS.get, key="lat_orient_combined"
    )
    sheet = c2.file_uploader(
        "sample sheet (sample ID, batch, label, …; a header row names the columns)", type=None,
        key="lat_sheet_combined", max_upload_size=4 * latent_ui.LABEL_UPLOAD_MB,
        help="One row per sample: its ID as in the expression file, then columns such as the batch "
        "(which study) and the label. Not needed when the expression file has them itself (a samples × "
        "genes table's text columns, an .h5ad file's obs).",
    )  # fmt: skip
    if f is None:
        return None
    read = (f.getvalue(), f.name, orient, f"combined ({f.name})", cap)
    try:
        study = latent_ui.read_study(*read)
        study = _scale(c1, study, "lat_scale_combined", read)
    except (GeneDataError, ValueError) as exc:
        c1.error(_naming(str(exc), f.name))
        return None
    if sheet is not None:
        try:
            study = latent_ui.with_sheet(study, sheet.getvalue(), sheet.name)
        except (GeneDataError, ValueError) as exc:
            c2.error(_naming(str(exc), sheet.name))
            return None
    st.caption(
        f"{f.name}: {study.n_samples} samples × {study.n_genes:,} genes"
        + (" · " + "; ".join(study.notes) if study.notes else "")
    )
    columns = batch_columns(study)
    if not columns and sheet is None:
        st.info(
            f"{f.name} has no column that tells the batches apart: upload a sample sheet (sample ID, batch, "
            "label, …) beside it."
        )
        return None
    if not columns:
        st.error(
            f"'{f.name}': no column splits the samples into batches (a column with 2 to 50 different "
            "values). Upload a sample sheet with a batch column (sample ID, batch, label), or choose "
            "'upload two studies'."
        )
        return None
    b1, b2, b3, b4 = st.columns(4)
    batch = b1.selectbox(
        "batch column", columns, index=columns.index(guess_batch_column(study) or columns[0]), key="lat_batch"
    )
    counts = batch_values(study, batch)
    values = list(counts)

    def fmt(v: str) -> str:
        return f"{v} ({counts.get(v, 0)} samples)"

    src = b2.selectbox("source batch", values, index=0, key="lat_batch_source", format_func=fmt)
    tgt = b3.selectbox("target batch", values, index=1, key="lat_batch_target", format_func=fmt)
    options = ["", *label_columns(study)]  # the same whatever the batch column: the choice stays
    default = guess_label_column(study, exclude=batch) or ""
    lab = b4.selectbox(
        "label column", options, index=options.index(default), key="lat_label_column",
        format_func=lambda c: c or "no labels",
    )  # fmt: skip
    try:
        source, target = split_by_batch(study, batch, src, tgt, lab or None)
    except GeneDataError as exc:
        st.error(_naming(str(exc), f.name))
        return None
    for s in (source, target):
        counts_s = s.label_counts()
        st.caption(
            f"**{s.name}**: {s.n_samples} samples · "
            + (", ".join(f"{k}: {v}" for k, v in counts_s.items()) if counts_s else "no labels")
            + "".join(f" · {n}" for n in s.notes[len(study.notes) + 1 :])
        )
    return source, target


def _uploaded(kind: str) -> tuple[Study, Study, str, str] | None:
    """The uploaded source and target (two files or one combined file), a key naming them and the
    missing-values choice, or None (messages shown)."""
    cap, warning = latent_ui.study_cap()
    if warning:
        st.warning(warning)
    pair = _combined(cap) if kind == "combined" else _two_files(cap)
    missing = st.radio(
        "missing values", list(PAGE_MISSING), horizontal=True, key="lat_missing",
        format_func=PAGE_MISSING.get,
        help="Genes with a missing value in either study: drop them, or replace the missing values "
        "by the gene's mean within its study (a gene with no value at all in a study is dropped).",
    )  # fmt: skip
    if pair is None or pair[0] is None or pair[1] is None:
        st.info(
            "Upload one file holding both studies, with a batch column in it or in a sample sheet, "
            "to continue."
            if kind == "combined"
            else "Upload a source and a target study (and labels, if the files have none) to continue."
        )
        return None
    source, target = pair
    if (source.labels is None) != (target.labels is None):
        st.error("Label both studies or neither: per-label transport needs labels on both sides.")
        return None
    h = hashlib.sha1()
    for s in (source, target):
        h.update(s.name.encode())
        h.update(str(s.expression.shape).encode())
        h.update(np.ascontiguousarray(s.expression[:, : min(50, s.n_genes)]).tobytes())
        h.update("".join(s.labels.tolist() if s.labels is not None else []).encode())
    return source, target, f"upload-{missing}-" + h.hexdigest(), missing


def _data() -> tuple[Study, Study, str] | None:
    """The two aligned studies and a key naming them, or None (messages shown)."""
    d = latent_ui.defaults()
    kind = st.radio(
        "Data", ["synthetic", "upload", "combined"], horizontal=True, key="lat_data",
        format_func={"synthetic": "built-in synthetic studies", "upload": "upload two studies",
                     "combined": "upload one file with both studies (batch column)"}.get,
    )  # fmt: skip
    if kind == "synthetic":
        sizes = sorted(set(latent_ui.GENE_SIZES) | {int(d["genes"])})
        c1, c2, c3, c4 = st.columns(4)
        genes = c1.selectbox(
            "genes", sizes, index=sizes.index(int(d["genes"])), key="lat_genes", format_func="{:,}".format,
            help="54,675 = the paper's scale (GPL570 probes); smaller sizes respond faster.",
        )  # fmt: skip
        n_s = c2.number_input("source samples", 4, 2000, int(d["n_source"]), key="lat_ns")
        n_t = c3.number_input("target samples", 4, 2000, int(d["n_target"]), key="lat_nt")
        seed = c4.number_input("seed", 0, 2**31 - 1, 0, key="lat_seed")
        st.caption(
            "Seeded microarray-like studies with a shared ER signature and a gene-wise study (batch) effect; "
            "paper sizes: 226 source (138 ER+, 88 ER−) → 265 target (49 ER+, 216 ER−), 54,675 genes "
            "(selectable above; 5,000 is the quick default)."
        )
        source, target = latent_ui.synthetic(int(genes), int(n_s), int(n_t), int(seed))
        key = f"synthetic-{genes}-{n_s}-{n_t}-{seed}"
        missing = "drop"  # the synthetic studies have no missing values
    else:
        uploaded = _uploaded(kind)
        if uploaded is None:
            return None
        source, target, key, missing = uploaded
    try:
        source, target, report = align_studies(source, target, missing=missing)
    except GeneDataError as exc:
        st.error(f"The studies cannot be aligned: {exc}")
        return None
    counts = [
        ", ".join(f"{k}: {v}" for k, v in s.label_counts().items()) or "unlabelled" for s in (source, target)
    ]
    st.caption(
        f"**Alignment:** {report.summary()} Source: {source.n_samples} samples ({counts[0]}); "
        f"target: {target.n_samples} ({counts[1]})."
    )
    return source, target, key


# ------------------------------------------------------------------------------------------ controls
def _controls(source: Study, target: Study, key: str) -> dict[str, Any] | None:
    d = latent_ui.defaults()
    st.subheader("Encoder")
    c1, c2, c3 = st.columns(3)
    standardize = c1.checkbox("standardize genes", value=True, key="lat_std")
    n_max = max(1, min(source.n_samples + target.n_samples - 1, source.n_genes))
    dprime = c2.number_input("d′ (latent dimension)", 1, n_max, min(50, n_max), key="lat_d")
    auto = c3.checkbox(
        "latent scale from the data", value=GPA_DEFAULTS["latent_scale"] == "auto", key="lat_scale_auto",
        help="Divide the latent coordinates so that the median distance between two samples is "
        f"{AUTO_MEDIAN_DISTANCE:g}: a step of at most L·Δt then moves a particle a fixed share of it, "
        "whatever the data's units (README, 'Latent integration, measured').",
    )  # fmt: skip
    scale: float | str = "auto"
    if not auto:
        scale = float(c3.number_input(
            "latent scale", min_value=1e-3, max_value=1e3, value=1.0, format="%.3g", key="lat_scale",
            help="The latent coordinates are divided by this before transport. 1 = the paper; the "
            "authors' code divides by 10.",
        ))  # fmt: skip
    try:
        enc = latent_ui.fit_encoder(source, target, key, int(dprime), bool(standardize), scale)
    except (LatentError, ValueError) as exc:
        st.error(f"The encoder could not be fitted: {exc}")
        return None
    st.caption(
        f"Latent scale {enc.latent_scale:.3g} (the median distance between two samples in PCA units is "
        f"{enc.median_distance_:.3g}){' — chosen from the data' if auto else ''}."
    )
    e1, e2 = st.columns(2)
    e1.plotly_chart(plots.scree_figure(enc, int(dprime)), key="lat_scree")
    e2.plotly_chart(plots.reconstruction_figure(enc, int(dprime)), key="lat_recon")
    st.subheader("Integration")
    D = GPA_DEFAULTS
    with st.expander("GPA settings (paper Fig. 8: KL (DV), L = 1, Δt = 0.2, 5 inner steps, 5000 steps)"):
        g1, g2, g3, g4, g5, g6, g7 = st.columns(7)
        L = g1.number_input("L", min_value=1e-3, max_value=1e4, value=D["L"], format="%.3g", key="lat_L")
        dt = g2.number_input("Δt", min_value=1e-4, max_value=10.0, value=D["dt"], format="%.3g", key="lat_dt")
        inner = g3.number_input("inner steps", 1, 100, D["inner_steps"], key="lat_inner")
        lr = g4.number_input("lr", min_value=1e-6, max_value=1.0, value=D["lr"], format="%.1e", key="lat_lr")
        steps = g5.number_input(
            "steps", 1, 20000, int(d["steps"]), key="lat_steps",
            help="at most, per label (the paper's 5000); with the floor rule a label stops earlier",
        )  # fmt: skip
        f = g6.selectbox("f", ["kl", "alpha", "reverse_kl", "js"], key="lat_f", help="kl = KL in DV form")
        hidden = g7.text_input("hidden widths", field_to_text("hidden", D["hidden"]), key="lat_hidden")
        stop_at_floor = st.checkbox(
            "stop each label at its floor", value=D["stop_at_floor"], key="lat_stop_floor",
            help="A label's flow stops once its latent W₂² to the target is down to the distance between "
            "two samples of the target itself: beyond it the flow only copies the target's points.",
        )  # fmt: skip
    m1, m2, m3 = st.columns([3, 2, 2])
    methods = m1.multiselect(
        "methods", ["mean_std", "combat", "gpa"], default=["mean_std", "combat", "gpa"], key="lat_methods",
        format_func=latent_ui.VIEW_TITLES.get,
        help="ComBat: parametric empirical Bayes (Johnson et al. 2007) in gene space, the target study "
        "as the reference batch and the label as a covariate.",
    )  # fmt: skip
    do_umap = m2.checkbox(
        "UMAP views (seeded, random_state 100)", value=bool(d["umap"]), key="lat_umap",
        help="The first UMAP in a process compiles numba kernels: it may take a while (in the background).",
    )  # fmt: skip
    sinkhorn = m3.checkbox(
        "Sinkhorn divergence scores (blur 0.05, Table SM2)", value=False, key="lat_sinkhorn"
    )
    try:
        widths = parse_hidden(str(hidden))
    except ConfigError as exc:
        st.error(f"hidden widths: {exc}")
        return None
    try:
        config = latent_ui.gpa_config(float(L), float(dt), int(inner), float(lr), int(steps), str(f), widths)
    except (ConfigError, ValueError) as exc:
        st.error(f"GPA settings: {exc}")
        return None
    return {
        "encoder": enc,
        "methods": tuple(m for m in ("mean_std", "combat", "gpa") if m in methods),
        "config": config,
        "steps": int(steps),
        "umap": bool(do_umap),
        "sinkhorn": bool(sinkhorn),
        "stop_at_floor": bool(stop_at_floor),
    }


def _start(source: Study, target: Study, ctl: dict[str, Any]) -> None:
    work = latent_ui.integration_job(
        source, target, ctl["encoder"], methods=ctl["methods"], config=ctl["config"], steps=ctl["steps"],
        do_umap=ctl["umap"], sinkhorn=ctl["sinkhorn"], stop_at_floor=ctl["stop_at_floor"],
    )  # fmt: skip
    JOB.start(
        EnsembleJob(work, name="latent", threads=1), source=source, target=target, methods=ctl["methods"],
        config=ctl["config"], steps=ctl["steps"],
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ live + results
def _live_view(job: EnsembleJob) -> bool:
    """Progress and, while GPA runs, its curves so far; True once done."""
    gpa_phase = job.control.message.startswith("GPA")  # UMAP's compile time cannot be extrapolated
    job_progress(job, job.control.message or "starting …", "integration", eta=not job.done and gpa_phase)
    partial = job.partial
    if partial and partial.get("histories") and not (job.done and job.result is not None):
        _curves(partial["histories"], "")
    return job.done


def _curves(histories: dict[str, Any], suffix: str) -> None:
    """Kinetic energy and divergence of every label's flow, side by side (keys end with ``suffix``)."""
    ke = plots.label_curves_figure(histories, "kinetic_energy", "kinetic energy (3.3)", True)
    div = plots.label_curves_figure(histories, "divergence", "divergence estimate", False)
    c1, c2 = st.columns(2)
    c1.plotly_chart(ke, key=f"lat_ke{suffix}")
    c2.plotly_chart(div, key=f"lat_div{suffix}")


def _views(out: dict[str, Any], source: Study, target: Study) -> None:
    kinds = [k for k in ("umap", "pca") if k in out["views"]]
    kind = st.radio(
        "2-D view", kinds, horizontal=True, key="lat_view",
        format_func={"umap": "UMAP (random_state 100)", "pca": "PCA of the latent data"}.get,
    )  # fmt: skip
    views = out["views"][kind]
    study, labels = latent_ui.sample_groups(source, target)
    lcol = plots.label_colors(labels)
    cols = st.columns(len(views))
    for col, (name, xy) in zip(cols, views.items(), strict=True):
        title = latent_ui.VIEW_TITLES.get(name, name)
        col.plotly_chart(
            plots.embedding_figure(xy, study, f"{title}: by study", plots.STUDY_COLORS),
            key=f"lat_v_{kind}_{name}_s",
        )
        col.plotly_chart(
            plots.embedding_figure(xy, labels, f"{title}: by label", lcol), key=f"lat_v_{kind}_{name}_l"
        )


def _status(status: str) -> str:
    """The flow's member status in words ("running" = it did all its steps without converging)."""
    words = {"running": "all steps done", "converged": "converged", "diverged": "diverged"}
    return {**words, REACHED_FLOOR: "reached its floor"}.get(status, status)


def _reach_note(holder: dict[str, Any], gpa: Any) -> str:
    """How far a particle can move at most (L·Δt per step) against the typical latent distance."""
    cfg = holder.get("config")
    rows = [r for r in gpa.scores if r["space"] == "latent" and r["metric"] == "W2²"]
    if cfg is None or not rows:
        return ""
    reach = float(cfg.L) * float(cfg.dt) * int(holder.get("steps", cfg.steps)) * gpa.encoder.latent_scale
    typical = float(np.sqrt(np.mean([r["before"] for r in rows])))
    return (
        f" · a particle moves at most L·Δt·steps = {reach:.3g} (in PCA units) against a typical "
        f"source–target distance √W₂² ≈ {typical:.3g}: more steps, a larger L·Δt or a larger latent scale "
        "(the authors' ÷10) let GPA get closer."
    )


def _results() -> None:
    """Once the job is done: scores, views and downloads."""
    holder = JOB.holder
    job: EnsembleJob | None = holder.get("job")
    if job is None or not job.done or job.result is None:
        return
    out = job.result
    source: Study = holder["source"]
    target: Study = holder["target"]
    table = _scores(out["results"])
    _verdict(out["results"], source, target)
    st.subheader("Views")
    if out.get("umap_seconds"):
        st.caption(f"UMAP's first use compiled its kernels in {out['umap_seconds']:.1f} s.")
    _views(out, source, target)
    _downloads(source, target, out["results"], table)


def _verdict(results: dict[str, Any], source: Study, target: Study) -> None:
    """Which method integrated these data best, and what limits the reading (small labels, d′)."""
    said = verdict(results)
    first = next(iter(results.values()))
    notes = default_settings(
        first.Z_source_before, first.Z_target, source.labels, target.labels, n_genes=source.n_genes
    )["notes"]
    lines = [*said["lines"], *notes]
    if said["best"] is None:
        lines.insert(0, "No method passes every check here (see the flags).")
    st.markdown("\n".join(f"- {line}" for line in lines))


def _scores(results: dict[str, Any]) -> Any:
    """The score table of every method and GPA's per-label outcome; returns the table."""
    st.subheader("Scores")
    st.caption(
        "Per label: W₂² between the integrated source and the target, before and after, and the remaining "
        "percentage of the raw distance (latent: PCA coordinates; genes: integrated source vs raw target, "
        "which includes the decoder's projection error for GPA). **floor**: the same score between two "
        "samples of the target itself (size-corrected), what a perfect integration would still read; "
        "**excess %**: the share of the batch effect above that floor still left. Study silhouette and "
        "k-NN mixing are also computed within labels (a pooled score also measures the labels' "
        "proportions); label silhouette says whether the biology is kept, label transfer whether a "
        "classifier trained on the target recognises the integrated source."
    )
    table = latent_ui.score_table(results)
    st.dataframe(table, key="lat_scores", hide_index=True)
    gpa = results.get("gpa")
    if gpa is not None and gpa.transport is not None:
        t = gpa.transport
        st.caption(
            "GPA per label: "
            + "; ".join(
                f"{lab}: {t.steps_done.get(lab, 0)} steps, {_status(t.status.get(lab, '?'))}"
                for lab in t.status
            )
            + (
                f"; not transported (absent from the target): {', '.join(t.untouched_labels)}"
                if t.untouched_labels
                else ""
            )
            + (" · stopped early" if t.stopped else "")
            + _reach_note(JOB.holder, gpa)
        )
        if t.histories:
            _curves(t.histories, "_f")
    return table


def _downloads(source: Study, target: Study, results: dict[str, Any], table: Any) -> None:
    """Per method, the integrated source matrix (genes × samples, CSV.gz; with anndata also the source
    and the target as one .h5ad); the latent coordinates and the scores of all methods."""
    st.subheader("Downloads")
    for method, res in results.items():
        title = latent_ui.VIEW_TITLES.get(method, method)
        c1, c2 = st.columns(2)
        c1.download_button(
            f"Integrated source matrix, {title} (genes × samples, CSV.gz)",
            data=lambda res=res: latent_ui.integrated_matrix(source, res),
            file_name=f"integrated_source_{method}.csv.gz", mime="application/gzip",
            key=f"lat_dl_matrix_{method}",
        )  # fmt: skip
        h5ad = latent_ui.integrated_h5ad(source, target, res, method)
        if h5ad is None:
            c2.caption("`.h5ad` downloads need the optional package anndata (`pip install anndata`).")
        else:
            c2.download_button(
                f"Source and target, {title} (.h5ad)", data=h5ad, file_name=f"integrated_{method}.h5ad",
                mime="application/octet-stream", key=f"lat_dl_h5ad_{method}",
            )  # fmt: skip
    d1, d2 = st.columns(2)
    d1.download_button(
        "Latent coordinates (CSV)",
        data=latent_ui.latent_frame(source, target, results).to_csv(index=False),
        file_name="latent_coordinates.csv",
        mime="text/csv",
        key="lat_dl_latent",
    )
    d2.download_button(
        "Scores (CSV)", data=table.to_csv(index=False), file_name="integration_scores.csv", mime="text/csv",
        key="lat_dl_scores",
    )  # fmt: skip


def main() -> None:
    st.title("Latent-space integration of gene-expression studies")
    st.caption(
        "§9: encode both studies (per-gene standardization + PCA to d′ dimensions, fitted on both), "
        "transport each label's source samples onto the same label's target samples with its own GPA flow, "
        "decode. Compared with the per-label mean/std baseline."
    )
    data = _data()
    if data is None:
        return
    source, target, key = data
    ctl = _controls(source, target, key)
    b1, b2, _ = st.columns([2, 1, 4])
    start = b1.button(
        "Run integration", type="primary", key="lat_run", disabled=ctl is None or not ctl["methods"]
    )
    JOB.cancel_button(b2, "lat_cancel")
    if start and ctl is not None:
        try:
            _start(source, target, ctl)
        except (ValueError, ConfigError, LatentError) as exc:
            st.error(f"Cannot start: {exc}")
    JOB.live(_live_view, idle="Choose the data and settings, then press **Run integration**.")
    _results()


inside_the_app()  # a link opened first still gets the app's navigation
main()
