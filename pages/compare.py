"""Compare runs: up to 8 GPA runs on the same data and seed, differing in L, Δt, f, α, solver or Lipschitz
mode, advanced together as one batched ensemble by the session's background Runner."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gpa_core.config import ConfigError, FlowConfig, authors_numerics, parse_hidden, parse_lipschitz
from gpa_core.data.presets import PresetError
from gpa_core.engine.runner import Runner
from gpa_core.plots import studies as plots
from gpa_core.studies.batches import sample_pair, steps_for
from gpa_core.studies.compare import (
    MAX_COMPARE,
    ComparePreset,
    CompareRun,
    CompareSpec,
    MetricTracker,
    compare_presets,
)
from ui.jobs import JobPage, number_table, open_in_playground
from ui.session import keep_widget_state

F_CHOICES = ["kl", "alpha", "reverse_kl", "js"]
SOLVERS = ["euler", "heun"]
LIP_MODES = ["spectral", "frobenius", "penalty", "none"]
#: This session's comparison: its Runner (the job), spec, metric tracker, rates and data.
JOB = JobPage("compare")
#: Number formats of the outcome table's columns.
TABLE_FORMATS = {
    "diverged at t": "%.4g",
    "t": "%.4g",
    "kinetic energy": "%.3e",
    "divergence D": "%.3e",
    "W₂ to target": "%.4g",
    "Sinkhorn": "%.4g",
    "steps/s": "%.1f",
}


def _preset_frame(preset: ComparePreset) -> pd.DataFrame:
    rows = []
    for run in preset.runs:
        c = run.config
        rows.append(
            {
                "run": run.label,
                "f": c.f,
                "α": c.alpha,
                "L": "inf" if math.isinf(c.L) else f"{c.L:g}",
                "Δt": c.dt,
                "solver": c.solver,
                "Lipschitz": c.lipschitz,
            }
        )
    return pd.DataFrame(rows)


def _presets() -> dict[str, ComparePreset]:
    """The shared presets with several members (assets/presets), by id; none (and the reason shown)
    when a preset file cannot be read, so the page still runs with its runs table."""
    try:
        return compare_presets()
    except (PresetError, OSError) as exc:
        st.error(f"The paper's presets could not be read: {exc}")
        return {}


DEFAULTS: dict[str, Any] = {
    "cmp_seed": 0,
    "cmp_inner": 3,
    "cmp_lr": 1e-3,
    "cmp_hidden": "32,32,32",
    "cmp_dtype": "float32",
    "cmp_numerics": "paper",
    "cmp_metric_every": 25,
    "cmp_base": FlowConfig().to_dict(),
}


def _apply_preset() -> None:
    presets = _presets()
    key = st.session_state["cmp_preset"]
    if key not in presets:
        return
    p = presets[key]
    base = p.base
    ss = st.session_state
    ss["cmp_source"] = p.spec.source_spec
    ss["cmp_target"] = p.spec.target_spec
    ss["cmp_M"] = p.spec.M
    ss["cmp_N"] = p.spec.N
    ss["cmp_T"] = float(p.T)
    ss["cmp_seed"] = p.spec.data_seed
    ss["cmp_inner"] = base.inner_steps
    ss["cmp_lr"] = base.lr
    ss["cmp_hidden"] = ",".join(str(h) for h in base.hidden)
    ss["cmp_dtype"] = base.dtype
    ss["cmp_numerics"] = "paper"
    ss["cmp_base"] = base.to_dict()  # fields the table does not show (KL form, init, …)
    ss["cmp_runs"] = _preset_frame(p)
    ss["cmp_editor_version"] = ss.get("cmp_editor_version", 0) + 1


def _init_state() -> None:
    """First visit: the preset named by the query parameter ``preset`` (a preset id; default the Fig. 2–3
    L sweep); ``T``, ``M``, ``N`` in the query override the preset's (``?preset=fig4-heavy-tails&T=50``)."""
    if "cmp_preset" in st.session_state:
        return
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
    presets = _presets()
    query = st.query_params
    first = "fig2-3-mixture" if "fig2-3-mixture" in presets else next(iter(presets), "custom")
    preset = query.get("preset", first)
    st.session_state["cmp_preset"] = preset if preset in presets else first
    _apply_preset()
    for key, cast, low, high in (("T", float, 0.01, 1e6), ("M", int, 2, 20000), ("N", int, 2, 20000)):
        if key in query:
            try:
                value = cast(query[key])
            except ValueError:
                continue
            st.session_state[f"cmp_{key}"] = min(max(value, low), high)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _configs_from_table(table: pd.DataFrame, base: FlowConfig, T: float, authors: bool) -> list[CompareRun]:
    """Rows of the runs table → CompareRuns; raises ValueError naming the row and column."""
    runs: list[CompareRun] = []
    table = table.dropna(how="all")
    if len(table) == 0:
        raise ValueError("add at least one run to the table")
    if len(table) > MAX_COMPARE:
        raise ValueError(f"at most {MAX_COMPARE} runs can be compared; the table has {len(table)}")
    for i, row in enumerate(table.to_dict("records"), start=1):
        label = str(row.get("run") or f"run {i}")
        try:
            if _empty(row.get("L")):
                raise ValueError("L is empty: give a positive number or inf")
            if _empty(row.get("Δt")):
                raise ValueError("Δt is empty: give a positive time step")
            L = parse_lipschitz(str(row["L"]))
            dt = float(row["Δt"])
            alpha = 2.0 if _empty(row.get("α")) else float(row["α"])
            cfg = base.replace(
                f=str(row.get("f") or "kl"),
                alpha=alpha,
                L=L,
                dt=dt,
                steps=steps_for(T, dt),
                solver=str(row.get("solver") or "euler"),
                lipschitz=str(row.get("Lipschitz") or "spectral"),
            )
            if authors:
                cfg = authors_numerics(cfg)
        except (ValueError, TypeError, ConfigError) as exc:
            raise ValueError(f"row {i} ({label}): {exc}") from exc
        runs.append(CompareRun(label, cfg))
    return runs


def _start(spec: CompareSpec) -> None:
    source, target = sample_pair(spec.source_spec, spec.target_spec, spec.M, spec.N, data_seed=spec.data_seed)
    runner = Runner(source, target, spec.configs, grid=False, max_history=2000, idle_timeout=300.0)
    # what the playground needs to open one of the runs (the keywords of ui.query.playground_params)
    data = {
        "source": spec.source_spec, "target": spec.target_spec, "M": spec.M, "N": spec.N,
        "data_seed": spec.data_seed, "dim": int(source.shape[1]),
    }  # fmt: skip
    JOB.start(
        runner,
        spec=spec,
        tracker=MetricTracker(len(spec.runs), spec.metrics, every=spec.metric_every),
        sps=[math.nan] * len(spec.runs),
        started=time.monotonic(),
        data=data,
    )


#: Widgets whose values survive a visit to another page (their defaults come from the preset).
PERSIST = ("cmp_preset", "cmp_source", "cmp_target", "cmp_M", "cmp_N", "cmp_T", "cmp_sinkhorn", "cmp_logx")
PERSIST += ("cmp_zoom",)


def _controls() -> pd.DataFrame:
    """The data, runs table and shared settings; returns the runs table as edited."""
    _init_state()
    keep_widget_state(st.session_state, {**DEFAULTS, **dict.fromkeys(PERSIST)})
    presets = {**{k: p.title for k, p in _presets().items()}, "custom": "Custom (keep the table)"}
    st.selectbox(
        "Preset",
        list(presets),
        format_func=presets.get,
        key="cmp_preset",
        on_change=_apply_preset,
        help="Fills the data and the runs table with the settings of a figure of the paper.",
    )
    chosen = _presets().get(st.session_state["cmp_preset"])
    if chosen is not None:
        st.caption(chosen.description)
    c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 1, 1])
    c1.text_input("Source P₀ (dataset spec)", key="cmp_source", help="e.g. gaussian:mean=0,std=0.5")
    c2.text_input("Target Q (dataset spec)", key="cmp_target", help="e.g. mixture:std=0.5,spacing=4")
    c3.number_input("M", min_value=2, max_value=20000, step=50, key="cmp_M")
    c4.number_input("N", min_value=2, max_value=20000, step=50, key="cmp_N")
    c5.number_input("data seed", min_value=0, max_value=2**31 - 2, key="cmp_seed")
    st.markdown("**Runs** (same data and seed; each row may change L, Δt, f, α, solver, Lipschitz mode)")
    edited = st.data_editor(
        st.session_state["cmp_runs"],
        num_rows="dynamic",
        key=f"cmp_editor_{st.session_state.get('cmp_editor_version', 0)}",
        column_config={
            "run": st.column_config.TextColumn("run", help="A label for the run"),
            "f": st.column_config.SelectboxColumn("f", options=F_CHOICES, required=True),
            "α": st.column_config.NumberColumn("α", min_value=1.001, max_value=1000.0, format="%.3g"),
            "L": st.column_config.TextColumn("L", help="a positive number or inf (no regularization)"),
            "Δt": st.column_config.NumberColumn("Δt", min_value=1e-6, max_value=1000.0, format="%.4g"),
            "solver": st.column_config.SelectboxColumn("solver", options=SOLVERS, required=True),
            "Lipschitz": st.column_config.SelectboxColumn("Lipschitz", options=LIP_MODES, required=True),
        },
        width="stretch",
        hide_index=True,
    )
    with st.expander("Shared settings", expanded=False):
        s1, s2, s3, s4 = st.columns(4)
        s1.number_input(
            "horizon T", min_value=0.01, max_value=1e6, key="cmp_T", help="steps = round(T / Δt) per run"
        )
        s2.number_input("inner steps m_max", min_value=1, max_value=100, key="cmp_inner")
        s3.number_input("learning rate", min_value=1e-6, max_value=1.0, format="%.1e", key="cmp_lr")
        s4.text_input("hidden widths", key="cmp_hidden")
        s5, s6, s7 = st.columns(3)
        s5.radio(
            "numerics",
            ["paper", "authors"],
            format_func={"paper": "the paper's", "authors": "the authors' code"}.get,
            key="cmp_numerics",
            horizontal=True,
            help="The authors' code: Frobenius normalization, He-normal init, Adam reset every step, "
            "naive DV exp.",
        )
        s6.selectbox("dtype", ["float32", "float64"], key="cmp_dtype")
        s7.number_input("W₂ every … steps", min_value=1, max_value=100000, key="cmp_metric_every")
        st.toggle(
            "also the Sinkhorn divergence (blur 0.05; can take seconds per evaluation)",
            key="cmp_sinkhorn",
            help="Debiased Sinkhorn divergence (gpa_core.ot, POT in the log domain), at the same "
            "steps as W₂.",
        )
    return edited


def _spec_from_widgets(table: pd.DataFrame) -> CompareSpec:
    ss = st.session_state
    hidden = parse_hidden(ss["cmp_hidden"])
    base = FlowConfig.from_dict(ss["cmp_base"]).replace(
        inner_steps=int(ss["cmp_inner"]), lr=float(ss["cmp_lr"]), hidden=hidden, dtype=ss["cmp_dtype"]
    )
    runs = _configs_from_table(table, base, float(ss["cmp_T"]), ss["cmp_numerics"] == "authors")
    return CompareSpec(
        str(ss["cmp_source"]),
        str(ss["cmp_target"]),
        int(ss["cmp_M"]),
        int(ss["cmp_N"]),
        tuple(runs),
        data_seed=int(ss["cmp_seed"]),
        metric_every=int(ss["cmp_metric_every"]),
        metrics=("w2", "sinkhorn") if ss.get("cmp_sinkhorn") else ("w2",),
    )


def _status(summary: Any, finished: bool) -> str:
    """diverged / converged / reached T / running …"""
    if summary.status in ("diverged", "converged"):
        return str(summary.status)
    return "reached T" if finished else "running …"


def _outcome_table(
    snap: Any, spec: CompareSpec, tracker: MetricTracker, holder: dict[str, Any]
) -> pd.DataFrame:
    sps: list[float] = holder["sps"]
    elapsed = max(time.monotonic() - holder["started"], 1e-9)
    rows = []
    for k, s in enumerate(snap.summary):
        if not snap.finished[k] and snap.steps_per_second > 0:
            sps[k] = snap.steps_per_second  # while running: the runner's measured rate
        elif snap.finished[k] and not math.isfinite(sps[k]):
            sps[k] = s.steps / elapsed  # finished before we saw it run: the average rate
        rows.append(
            {
                "run": spec.runs[k].label,
                "status": _status(s, snap.finished[k]),
                "diverged at t": s.diverged_at,
                "t": float(snap.t[k]),
                "steps": s.steps,
                "kinetic energy": s.kinetic_energy,
                "divergence D": s.divergence,
                "W₂ to target": tracker.latest(k, "w2"),
                **({"Sinkhorn": tracker.latest(k, "sinkhorn")} if "sinkhorn" in spec.metrics else {}),
                "steps/s": sps[k],
                "why": s.reason,
            }
        )
    return pd.DataFrame(rows)


def _live_view(runner: Runner) -> bool:
    """The state line, outcome table, particles and curves of the ensemble; True once it has stopped."""
    holder = JOB.holder
    spec: CompareSpec = holder["spec"]
    tracker: MetricTracker = holder["tracker"]
    snap = runner.snapshot()
    tracker.update(snap.n, snap.t, snap.particles, snap.target, snap.finished)
    done = sum(1 for f in snap.finished if f)
    st.caption(
        f"state: **{snap.state}** · step {snap.n} · {done}/{snap.K} runs finished · "
        f"{snap.steps_per_second:.1f} batched steps/s "
        f"({snap.steps_per_second * snap.K:.0f} member-steps/s) · "
        f"{snap.device}" + (f" · {snap.message}" if snap.message else "")
    )
    if snap.error:
        st.error(f"The run failed: {snap.error}")
    number_table(_outcome_table(snap, spec, tracker, holder), TABLE_FORMATS)
    _particles(snap, spec.labels)
    _curves(snap, spec, tracker)
    return snap.state in ("finished", "error", "stopped", "paused")


def _particles(snap: Any, labels: list[str]) -> None:
    """Every run's particles over the target, titled with its status."""
    zoom = st.session_state.get("cmp_zoom", False)
    titles = [
        f"{lab} — {_status(s, snap.finished[k])}"
        + (f" t={plots.fmt(s.diverged_at)}" if s.diverged_at is not None else "")
        for k, (lab, s) in enumerate(zip(labels, snap.summary, strict=True))
    ]
    st.plotly_chart(
        plots.particle_grid(snap.particles, snap.target, titles, quantile=0.01 if zoom else 0.0),
        key="cmp_particles",
        config={"displayModeBar": False},
    )


def _curves(snap: Any, spec: CompareSpec, tracker: MetricTracker) -> None:
    """Kinetic energy, divergence and W₂ of every run against physical time."""
    labels = spec.labels
    histories = [snap.history.member(k) for k in range(snap.K)]
    log_x = bool(st.session_state.get("cmp_logx", False))
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.curves_figure(
            histories, labels, "kinetic_energy", title="kinetic energy (3.3)", y_label="kinetic energy I",
            log_x=log_x,
            diverged_at=list(snap.diverged_at), uirevision="cmp_ke",
        ),
        key="cmp_ke",
    )  # fmt: skip
    c2.plotly_chart(
        plots.curves_figure(
            histories, labels, "divergence", title="divergence estimate D_f^{Γ_L} (positive values)",
            y_label="D", log_x=log_x, diverged_at=list(snap.diverged_at), uirevision="cmp_div",
        ),
        key="cmp_div",
    )  # fmt: skip
    series = [{"time": np.asarray(s["time"]), "w2": np.asarray(s["w2"])} for s in tracker.series]
    st.plotly_chart(
        plots.curves_figure(
            series, labels, "w2", title=f"W₂ to the target (every {spec.metric_every} steps)", y_label="W₂",
            log_x=log_x, uirevision="cmp_w2",
        ),
        key="cmp_w2",
    )  # fmt: skip


def _buttons(table: pd.DataFrame) -> None:
    """Start, Pause, Resume and the two view toggles."""
    b1, b2, b3, b4, b5 = st.columns([1, 1, 1, 2, 2])
    if b1.button("Start", type="primary", key="cmp_start"):
        try:
            _start(_spec_from_widgets(table))
        except (ValueError, ConfigError) as exc:
            st.error(f"Cannot start: {exc}")
    runner: Runner | None = JOB.job
    if b2.button("Pause", key="cmp_pause", disabled=runner is None):
        assert runner is not None
        runner.pause()
        JOB.set_live(False)
    if b3.button("Resume", key="cmp_resume", disabled=runner is None):
        assert runner is not None
        runner.play()
        JOB.set_live(True)
    b4.toggle("log time axis", key="cmp_logx")
    b5.toggle("zoom particles to the bulk (1–99 %)", key="cmp_zoom")


def _open_choice() -> None:
    """Pick a run of the comparison and open it in the playground."""
    spec: CompareSpec | None = JOB.holder.get("spec")
    if spec is None:
        return
    c1, c2 = st.columns([3, 1])
    k = c1.selectbox(
        "Open a run in the playground", range(len(spec.runs)), format_func=lambda i: spec.runs[i].label,
        key="cmp_open_choice",
    )  # fmt: skip
    if c2.button("Open in playground", key="cmp_open"):
        open_in_playground(spec.runs[int(k)].config, **JOB.holder["data"])


def main() -> None:
    st.title("Compare runs")
    st.caption(
        "Up to 8 runs on the same data and seed, advanced together as one batched ensemble. Curves are "
        "plotted against physical time t = Σ Δt, so runs with different Δt line up."
    )
    table = _controls()
    _buttons(table)
    JOB.live(_live_view, idle="Choose a preset or edit the runs, then press **Start**.")
    _open_choice()


main()
