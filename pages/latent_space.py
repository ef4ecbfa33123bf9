"""Latent-space GPA for gene-expression integration (paper §9, Fig. 8, Table SM2): two studies →
standardization + PCA (d′) → per-label GPA (each label its own discriminator) or the mean/std baseline →
decode; scores, UMAP/PCA views and downloads. The work runs in a background job polled by a fragment."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import streamlit as st

from gpa_core.config import ConfigError
from gpa_core.genes.latent import LatentError
from gpa_core.genes.readers import PAGE_ORIENTATION
from gpa_core.genes.study import PAGE_MISSING, GeneDataError, Study, align_studies
from gpa_core.jobs import EnsembleJob
from ui import latent as latent_ui
from ui.session import cancel_job, session_job_holder

POLL_SECONDS = 0.5
ORIENTATIONS = {"auto": "auto-detect", **PAGE_ORIENTATION}  # the readers' messages quote these labels


def _holder() -> dict[str, Any]:
    return session_job_holder("latent_space")


# ------------------------------------------------------------------------------------------ data
def _naming(message: str, filename: str) -> str:
    """``message``, prefixed with the file's name unless it already names it."""
    return message if filename in message else f"'{filename}': {message}"


def _upload_column(col: Any, role: str, cap: int) -> Study | None:
    """One study's upload widgets; returns the labelled study, or None (with an st.error) on failure.
    ``cap``: the most text (bytes, after decompression) a study file may hold."""
    col.markdown(f"**{role.capitalize()} study**")
    limit = latent_ui.upload_mb(cap)
    f = col.file_uploader(
        f"{role} expression file",
        type=None,  # every file reaches the reader, which names what it cannot use
        key=f"lat_up_{role}",
        max_upload_size=2 * limit,  # more than the reader takes: see UPLOADER_LIMIT_MB in ui/session.py
        help="CSV/TSV table (plain or gzipped; genes × samples or samples × genes) or a GEO series-matrix "
        f"file (GSE…_series_matrix.txt[.gz]). At most {limit} MB per file and {cap // 2**20} MB of text "
        f"once decompressed (environment variable {latent_ui.CAP_ENV} when the app starts).",
    )
    orient = col.selectbox(
        "orientation", list(ORIENTATIONS), format_func=ORIENTATIONS.get, key=f"lat_orient_{role}"
    )
    lab = col.file_uploader(
        f"{role} label file (optional: sample ID, label)",
        type=None,
        key=f"lat_lab_{role}",
        max_upload_size=4 * latent_ui.LABEL_UPLOAD_MB,
    )
    if f is None:
        return None
    try:
        study = latent_ui.read_study(f.getvalue(), f.name, orient, f"{role} ({f.name})", cap)
    except (GeneDataError, ValueError) as exc:
        col.error(_naming(str(exc), f.name))
        return None
    try:
        if lab is not None:
            study = latent_ui.with_label_file(study, lab.getvalue(), lab.name)
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


def _data() -> tuple[Study, Study, str] | None:
    """The two aligned studies and a key naming them, or None (messages shown)."""
    d = latent_ui.defaults()
    kind = st.radio(
        "Data", ["synthetic", "upload"], horizontal=True, key="lat_data",
        format_func={"synthetic": "built-in synthetic studies", "upload": "upload two studies"}.get,
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
        cap, warning = latent_ui.study_cap()
        if warning:
            st.warning(warning)
        c1, c2 = st.columns(2)
        source = _upload_column(c1, "source", cap)
        target = _upload_column(c2, "target", cap)
        missing = st.radio(
            "missing values", list(PAGE_MISSING), horizontal=True, key="lat_missing",
            format_func=PAGE_MISSING.get,
            help="Genes with a missing value in either study: drop them, or replace the missing values "
            "by the gene's mean within its study (a gene with no value at all in a study is dropped).",
        )  # fmt: skip
        if source is None or target is None:
            st.info("Upload a source and a target study (and labels, if the files have none) to continue.")
            return None
        if (source.labels is None) != (target.labels is None):
            st.error("Label both studies or neither: per-label transport needs labels on both sides.")
            return None
        h = hashlib.sha1()
        for s in (source, target):
            h.update(s.name.encode())
            h.update(str(s.expression.shape).encode())
            h.update(np.ascontiguousarray(s.expression[:, : min(50, s.n_genes)]).tobytes())
            h.update("".join(s.labels.tolist() if s.labels is not None else []).encode())
        key = f"upload-{missing}-" + h.hexdigest()
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
    scale = c3.number_input(
        "latent scale", min_value=1e-3, max_value=1e3, value=1.0, format="%.3g", key="lat_scale",
        help="The latent coordinates are divided by this before transport. 1 = the paper; the authors' "
        "code divides by 10.",
    )  # fmt: skip
    try:
        enc = latent_ui.fit_encoder(source, target, key, int(dprime), bool(standardize), float(scale))
    except (LatentError, ValueError) as exc:
        st.error(f"The encoder could not be fitted: {exc}")
        return None
    e1, e2 = st.columns(2)
    e1.plotly_chart(latent_ui.scree_figure(enc, int(dprime)), key="lat_scree")
    e2.plotly_chart(latent_ui.reconstruction_figure(enc, int(dprime)), key="lat_recon")
    st.subheader("Integration")
    with st.expander("GPA settings (paper Fig. 8: KL (DV), L = 1, Δt = 0.2, 5 inner steps, 5000 steps)"):
        g1, g2, g3, g4, g5, g6, g7 = st.columns(7)
        L = g1.number_input("L", min_value=1e-3, max_value=1e4, value=1.0, format="%.3g", key="lat_L")
        dt = g2.number_input("Δt", min_value=1e-4, max_value=10.0, value=0.2, format="%.3g", key="lat_dt")
        inner = g3.number_input("inner steps", 1, 100, 5, key="lat_inner")
        lr = g4.number_input("lr", min_value=1e-6, max_value=1.0, value=1e-3, format="%.1e", key="lat_lr")
        steps = g5.number_input(
            "steps", 1, 20000, int(d["steps"]), key="lat_steps", help="per label; the paper uses 5000"
        )
        f = g6.selectbox("f", ["kl", "alpha", "reverse_kl", "js"], key="lat_f", help="kl = KL in DV form")
        hidden = g7.text_input("hidden widths", "32,32,32", key="lat_hidden")
    m1, m2, m3 = st.columns([3, 2, 2])
    methods = m1.multiselect(
        "methods", ["mean_std", "combat", "gpa"], default=["mean_std", "gpa"], key="lat_methods",
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
        widths = tuple(int(w) for w in str(hidden).replace(" ", "").split(",") if w)
        if not widths or min(widths) < 1:
            raise ValueError
    except ValueError:
        st.error(f"hidden widths must be positive integers separated by commas, got {hidden!r}.")
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
    }


def _start(source: Study, target: Study, ctl: dict[str, Any]) -> None:
    holder = _holder()
    cancel_job(holder)
    work = latent_ui.integration_job(
        source, target, ctl["encoder"], methods=ctl["methods"], config=ctl["config"], steps=ctl["steps"],
        do_umap=ctl["umap"], sinkhorn=ctl["sinkhorn"],
    )  # fmt: skip
    job = EnsembleJob(work, name="latent", threads=1)
    holder.clear()
    holder.update(
        job=job, source=source, target=target, live=True, methods=ctl["methods"], config=ctl["config"],
        steps=ctl["steps"],
    )  # fmt: skip
    job.start()


# ------------------------------------------------------------------------------------------ live + results
def _live_view() -> None:
    holder = _holder()
    job: EnsembleJob | None = holder.get("job")
    if job is None:
        st.info("Choose the data and settings, then press **Run integration**.")
        return
    status = "cancelled" if job.cancelled else ("done" if job.done else "running")
    eta = job.eta
    gpa_phase = job.control.message.startswith("GPA")  # UMAP's compile time cannot be extrapolated
    st.progress(
        job.fraction,
        text=f"{status}: {job.control.message or 'starting …'} · {job.elapsed:.0f} s"
        + (f" · about {eta:.0f} s left" if eta is not None and not job.done and gpa_phase else ""),
    )
    if job.error is not None:
        st.error(f"The integration failed: {job.error}")
    partial = job.partial
    if partial and partial.get("histories") and not (job.done and job.result is not None):
        c1, c2 = st.columns(2)
        c1.plotly_chart(
            latent_ui.curves(partial["histories"], "kinetic_energy", "kinetic energy (3.3)", True),
            key="lat_ke",
        )
        c2.plotly_chart(
            latent_ui.curves(partial["histories"], "divergence", "divergence estimate", False), key="lat_div"
        )
    if job.done and holder.get("live"):
        holder["live"] = False
        st.rerun()


def _views(out: dict[str, Any], source: Study, target: Study) -> None:
    kinds = [k for k in ("umap", "pca") if k in out["views"]]
    kind = st.radio(
        "2-D view", kinds, horizontal=True, key="lat_view",
        format_func={"umap": "UMAP (random_state 100)", "pca": "PCA of the latent data"}.get,
    )  # fmt: skip
    views = out["views"][kind]
    study = np.array(["source"] * source.n_samples + ["target"] * target.n_samples)
    ls = source.labels if source.labels is not None else np.full(source.n_samples, "all")
    lt = target.labels if target.labels is not None else np.full(target.n_samples, "all")
    labels = np.concatenate([ls, lt]).astype(str)
    lcol = latent_ui.label_colors(labels)
    cols = st.columns(len(views))
    for col, (name, xy) in zip(cols, views.items(), strict=True):
        title = latent_ui.VIEW_TITLES.get(name, name)
        col.plotly_chart(
            latent_ui.embedding_figure(xy, study, f"{title}: by study", latent_ui.STUDY_COLORS),
            key=f"lat_v_{kind}_{name}_s",
        )
        col.plotly_chart(
            latent_ui.embedding_figure(xy, labels, f"{title}: by label", lcol), key=f"lat_v_{kind}_{name}_l"
        )


def _status(status: str) -> str:
    """The flow's member status in words ("running" = it did all its steps without converging)."""
    return {"running": "all steps done", "converged": "converged", "diverged": "diverged"}.get(status, status)


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
    holder = _holder()
    job: EnsembleJob | None = holder.get("job")
    if job is None or not job.done or job.result is None:
        return
    out = job.result
    source: Study = holder["source"]
    target: Study = holder["target"]
    results = out["results"]
    st.subheader("Scores")
    st.caption(
        "Per label: W₂² between the integrated source and the target, before and after, and the remaining "
        "percentage of the raw distance (latent: PCA coordinates; genes: integrated source vs raw target, "
        "which includes the decoder's projection error for GPA). Over all samples: silhouette by study "
        "(lower = better mixed), silhouette by label (biology kept), k-NN mixing (1 = perfectly mixed)."
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
            + _reach_note(holder, gpa)
        )
        if t.histories:
            c1, c2 = st.columns(2)
            c1.plotly_chart(
                latent_ui.curves(t.histories, "kinetic_energy", "kinetic energy (3.3)", True), key="lat_ke_f"
            )
            c2.plotly_chart(
                latent_ui.curves(t.histories, "divergence", "divergence estimate", False), key="lat_div_f"
            )
    st.subheader("Views")
    if out.get("umap_seconds"):
        st.caption(f"UMAP's first use compiled its kernels in {out['umap_seconds']:.1f} s.")
    _views(out, source, target)
    st.subheader("Downloads")
    d1, d2, d3 = st.columns(3)
    main = "gpa" if "gpa" in results else next(iter(results))
    res = results[main]
    d1.download_button(
        f"Integrated source matrix ({latent_ui.VIEW_TITLES[main]}, CSV.gz)",
        data=lambda: latent_ui.integrated_matrix(source, res),
        file_name=f"integrated_source_{main}.csv.gz",
        mime="application/gzip",
        key="lat_dl_matrix",
    )
    d2.download_button(
        "Latent coordinates (CSV)",
        data=latent_ui.latent_frame(source, target, results).to_csv(index=False),
        file_name="latent_coordinates.csv",
        mime="text/csv",
        key="lat_dl_latent",
    )
    d3.download_button(
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
    holder = _holder()
    job: EnsembleJob | None = holder.get("job")
    b1, b2, _ = st.columns([2, 1, 4])
    start = b1.button(
        "Run integration", type="primary", key="lat_run", disabled=ctl is None or not ctl["methods"]
    )
    if b2.button("Cancel", key="lat_cancel", disabled=job is None or job.done):
        assert job is not None
        job.cancel()
    if start and ctl is not None:
        try:
            _start(source, target, ctl)
        except (ValueError, ConfigError, LatentError) as exc:
            st.error(f"Cannot start: {exc}")
    live = bool(holder.get("live"))
    st.fragment(run_every=POLL_SECONDS if live else None)(_live_view)()
    _results()


main()
