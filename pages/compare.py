"""Compare runs: up to 8 runs on the same data and seed: GPA runs differing in L, Δt, f, α, solver or
Lipschitz mode (advanced together as one batched ensemble), and rival flows (the MMD gradient flow and the
Sinkhorn-divergence flow) stepped beside them from the same particles, in the session's background job."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gpa_core.config import (
    ConfigError,
    FlowConfig,
    RivalConfig,
    authors_numerics,
    parse_hidden,
    parse_lipschitz,
)
from gpa_core.data.presets import PresetError
from gpa_core.plots import studies as plots
from gpa_core.rivals.sinkhorn import NEWTON_POINTS
from gpa_core.studies.batches import sample_pair, steps_for
from gpa_core.studies.compare import (
    MAX_COMPARE,
    CompareJob,
    ComparePreset,
    CompareRun,
    CompareSnapshot,
    CompareSpec,
    RivalRun,
    compare_presets,
)
from ui.jobs import JobPage, number_table, open_in_playground
from ui.session import inside_the_app, keep_widget_state

F_CHOICES = ["kl", "alpha", "reverse_kl", "js"]
SOLVERS = ["euler", "heun"]
LIP_MODES = ["spectral", "frobenius", "penalty", "none"]
#: The runs table's flows: GPA, or a rival flow as (RivalConfig.flow, RivalConfig.kernel).
FLOWS: dict[str, tuple[str, str] | None] = {
    "GPA": None,
    "MMD (Gaussian)": ("mmd", "gaussian"),
    "MMD (energy)": ("mmd", "energy"),
    "Sinkhorn": ("sinkhorn", "gaussian"),
}
#: The runs table's columns, as _gpa_row and _rival_row fill them.
RUN_COLUMNS = ("run", "flow", "f", "α", "L", "Δt", "solver", "Lipschitz", "width")
#: This session's comparison: its CompareJob (which also measures W₂), spec, rates and data.
JOB = JobPage("compare")
#: What the Lessons page leaves for this page: {"preset": id} (load that preset and start it).
REQUEST = "compare_request"
#: Number formats of the outcome table's columns.
TABLE_FORMATS = {
    "diverged at t": "%.4g",
    "t": "%.4g",
    "kinetic energy": "%.3e",
    "value": "%.3e",
    "W₂ to target": "%.4g",
    "Sinkhorn": "%.4g",
    "steps/s": "%.1f",
}


def _rival_flow(c: RivalConfig) -> str:
    """The runs table's flow name of a rival configuration."""
    return next(
        name for name, kind in FLOWS.items() if kind == (c.flow, c.kernel if c.flow == "mmd" else "gaussian")
    )


def _gpa_row(label: str, c: FlowConfig) -> dict[str, Any]:
    return {
        "run": label, "flow": "GPA", "f": c.f, "α": c.alpha, "L": "inf" if math.isinf(c.L) else f"{c.L:g}",
        "Δt": c.dt, "solver": c.solver, "Lipschitz": c.lipschitz, "width": None,
    }  # fmt: skip


def _rival_row(label: str, c: RivalConfig) -> dict[str, Any]:
    return {
        "run": label, "flow": _rival_flow(c), "f": None, "α": None, "L": None, "Δt": c.dt,
        "solver": c.solver, "Lipschitz": None, "width": c.width,
    }  # fmt: skip


def _preset_frame(preset: ComparePreset) -> pd.DataFrame:
    rows = [_gpa_row(run.label, run.config) for run in preset.runs]
    rows += [_rival_row(run.label, run.config) for run in preset.rivals]
    return pd.DataFrame(rows)


def _with_rivals(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table plus GPA at L = ∞ and the three rival flows (those it lacks), with the first
    row's Δt and solver, up to MAX_COMPARE rows: "what does Lipschitz regularization buy?"."""
    table = table.dropna(how="all").reset_index(drop=True)
    records = table.to_dict("records")
    first = records[0] if records else {}
    dt = first.get("Δt") if not _empty(first.get("Δt")) else 0.5
    solver = first.get("solver") or "euler"
    flows = [str(r.get("flow") or "GPA") for r in records]
    gpa_inf = any(
        f == "GPA" and str(r.get("L", "")).strip().lower() in ("inf", "∞")
        for f, r in zip(flows, records, strict=True)
    )
    extra: list[dict[str, Any]] = []
    if not gpa_inf:
        base = next((r for f, r in zip(flows, records, strict=True) if f == "GPA"), None)
        row = _gpa_row("GPA L = ∞", FlowConfig(dt=float(dt), solver=solver, L=math.inf))
        if base is not None:
            row.update({k: base.get(k) for k in ("f", "α", "Lipschitz")}, L="inf")
        extra.append(row)
    for name in ("MMD (Gaussian)", "MMD (energy)", "Sinkhorn"):
        if name not in flows:
            kind = FLOWS[name]
            assert kind is not None
            extra.append(
                _rival_row(name, RivalConfig(flow=kind[0], kernel=kind[1], dt=float(dt), solver=solver))
            )
    rows = (records + extra)[:MAX_COMPARE]
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


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


def _configs_from_table(
    table: pd.DataFrame, base: FlowConfig, T: float, authors: bool
) -> tuple[list[CompareRun], list[RivalRun]]:
    """Rows of the runs table → the GPA runs and the rival flows; raises ValueError naming the row and
    column. A rival row reads Δt, solver and width (empty: from the data); f, α, L and Lipschitz are
    GPA's and ignored there."""
    runs: list[CompareRun] = []
    rivals: list[RivalRun] = []
    table = table.dropna(how="all")
    if len(table) == 0:
        raise ValueError("add at least one run to the table")
    if len(table) > MAX_COMPARE:
        raise ValueError(f"at most {MAX_COMPARE} runs can be compared; the table has {len(table)}")
    for i, row in enumerate(table.to_dict("records"), start=1):
        label = str(row.get("run") or f"run {i}")
        try:
            flow = str(row.get("flow") or "GPA")
            if flow not in FLOWS:
                raise ValueError(f"flow must be one of {', '.join(FLOWS)}; got {flow!r}")
            if _empty(row.get("Δt")):
                raise ValueError("Δt is empty: give a positive time step")
            dt = float(row["Δt"])
            solver = str(row.get("solver") or "euler")
            kind = FLOWS[flow]
            if kind is not None:
                width = None if _empty(row.get("width")) or kind[1] == "energy" else float(row["width"])
                rival = RivalConfig(
                    flow=kind[0], kernel=kind[1], width=width, dt=dt, steps=steps_for(T, dt), solver=solver
                )
                rivals.append(RivalRun(label, rival))
                continue
            if _empty(row.get("L")):
                raise ValueError("L is empty: give a positive number or inf")
            L = parse_lipschitz(str(row["L"]))
            alpha = 2.0 if _empty(row.get("α")) else float(row["α"])
            cfg = base.replace(
                f=str(row.get("f") or "kl"),
                alpha=alpha,
                L=L,
                dt=dt,
                steps=steps_for(T, dt),
                solver=solver,
                lipschitz=str(row.get("Lipschitz") or "spectral"),
            )
            if authors:
                cfg = authors_numerics(cfg)
        except (ValueError, TypeError, ConfigError) as exc:
            raise ValueError(f"row {i} ({label}): {exc}") from exc
        runs.append(CompareRun(label, cfg))
    return runs, rivals


def _start(spec: CompareSpec) -> None:
    source, target = sample_pair(spec.source_spec, spec.target_spec, spec.M, spec.N, data_seed=spec.data_seed)
    job = CompareJob(spec, source, target)
    # what the playground needs to open one of the runs (the keywords of ui.query.playground_params)
    data = {
        "source": spec.source_spec, "target": spec.target_spec, "M": spec.M, "N": spec.N,
        "data_seed": spec.data_seed, "dim": int(source.shape[1]),
    }  # fmt: skip
    JOB.start(
        job,
        spec=spec,
        sps=[math.nan] * len(spec.labels),
        started=time.monotonic(),
        data=data,
    )


def _requested_start() -> None:
    """A lesson's request (``st.session_state[REQUEST]``): load its preset and start it."""
    request = st.session_state.pop(REQUEST, None)
    if not request:
        return
    _init_state()
    presets = _presets()
    preset = presets.get(str(request.get("preset")))
    if preset is None:
        st.error(f"The lesson's comparison {request.get('preset')!r} is not among the presets.")
        return
    st.session_state["cmp_preset"] = preset.key
    _apply_preset()  # the widgets show what runs
    try:
        _start(preset.spec)
    except (ValueError, ConfigError) as exc:
        st.error(f"Cannot start: {exc}")


#: Widgets whose values survive a visit to another page (their defaults come from the preset).
PERSIST = ("cmp_preset", "cmp_source", "cmp_target", "cmp_M", "cmp_N", "cmp_T", "cmp_sinkhorn", "cmp_logx")
PERSIST += ("cmp_zoom",)


def _controls() -> pd.DataFrame:
    """The data, runs table and shared settings; returns the runs table as edited."""
    _init_state()
    keep_widget_state(st.session_state, {**DEFAULTS, **dict.fromkeys(PERSIST)})
    available = _presets()  # the preset files, read once for this run
    presets = {**{k: p.title for k, p in available.items()}, "custom": "Custom (keep the table)"}
    st.selectbox(
        "Preset",
        list(presets),
        format_func=presets.get,
        key="cmp_preset",
        on_change=_apply_preset,
        help="Fills the data and the runs table with the settings of a figure of the paper.",
    )
    chosen = available.get(st.session_state["cmp_preset"])
    if chosen is not None:
        st.caption(chosen.description)
    c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 1, 1])
    c1.text_input("Source P₀ (dataset spec)", key="cmp_source", help="e.g. gaussian:mean=0,std=0.5")
    c2.text_input("Target Q (dataset spec)", key="cmp_target", help="e.g. mixture:std=0.5,spacing=4")
    c3.number_input("M", min_value=2, max_value=20000, step=50, key="cmp_M")
    c4.number_input("N", min_value=2, max_value=20000, step=50, key="cmp_N")
    c5.number_input("data seed", min_value=0, max_value=2**31 - 2, key="cmp_seed")
    st.markdown(
        "**Runs** (same data and seed; a GPA row may change L, Δt, f, α, solver, Lipschitz mode; a rival "
        "row reads Δt, solver and width)"
    )
    edited = st.data_editor(
        st.session_state["cmp_runs"],
        num_rows="dynamic",
        key=f"cmp_editor_{st.session_state.get('cmp_editor_version', 0)}",
        column_config={
            "run": st.column_config.TextColumn("run", help="A label for the run"),
            "flow": st.column_config.SelectboxColumn(
                "flow",
                options=list(FLOWS),
                required=True,
                help="GPA, or a rival flow: the MMD gradient flow (Gaussian or energy kernel) or the "
                "Sinkhorn-divergence flow",
            ),
            "f": st.column_config.SelectboxColumn("f", options=F_CHOICES, help="GPA rows: the f-divergence"),
            "α": st.column_config.NumberColumn("α", min_value=1.001, max_value=1000.0, format="%.3g"),
            "L": st.column_config.TextColumn("L", help="a positive number or inf (no regularization)"),
            "Δt": st.column_config.NumberColumn("Δt", min_value=1e-6, max_value=1000.0, format="%.4g"),
            "solver": st.column_config.SelectboxColumn("solver", options=SOLVERS, required=True),
            "Lipschitz": st.column_config.SelectboxColumn(
                "Lipschitz", options=LIP_MODES, help="GPA rows: how φ is kept L-Lipschitz"
            ),
            "width": st.column_config.NumberColumn(
                "width",
                min_value=1e-6,
                max_value=1e6,
                format="%.3g",
                help="Rival flows: the Gaussian kernel's σ (MMD) or the blur (Sinkhorn, ε = blur²); empty: "
                "from the data (median heuristic; a tenth of the clouds' radius)",
            ),
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
    runs, rivals = _configs_from_table(table, base, float(ss["cmp_T"]), ss["cmp_numerics"] == "authors")
    return CompareSpec(
        str(ss["cmp_source"]),
        str(ss["cmp_target"]),
        int(ss["cmp_M"]),
        int(ss["cmp_N"]),
        tuple(runs),
        data_seed=int(ss["cmp_seed"]),
        metric_every=int(ss["cmp_metric_every"]),
        metrics=("w2", "sinkhorn") if ss.get("cmp_sinkhorn") else ("w2",),
        rivals=tuple(rivals),
    )


def _outcome_table(
    snap: CompareSnapshot, spec: CompareSpec, job: CompareJob, holder: dict[str, Any]
) -> pd.DataFrame:
    sps: list[float] = holder["sps"]
    elapsed = max(time.monotonic() - holder["started"], 1e-9)
    rows = []
    for k, m in enumerate(snap.members):
        if not m.finished and m.steps_per_second > 0:
            sps[k] = m.steps_per_second  # while running: the measured rate
        elif m.finished and not math.isfinite(sps[k]):
            sps[k] = m.steps / elapsed  # finished before we saw it run: the average rate
        rows.append(
            {
                "run": m.label,
                "flow": m.flow,
                "status": m.status,
                "diverged at t": m.diverged_at,
                "t": m.t,
                "steps": m.steps,
                "kinetic energy": m.kinetic_energy,
                "objective": m.objective_name,
                "value": m.objective,
                "W₂ to target": job.latest(k, "w2"),
                **({"Sinkhorn": job.latest(k, "sinkhorn")} if "sinkhorn" in spec.metrics else {}),
                "steps/s": sps[k],
                "why": m.reason,
            }
        )
    return pd.DataFrame(rows)


def _live_view(job: CompareJob) -> bool:
    """The state line, outcome table, particles and curves of the comparison; True once it has stopped."""
    holder = JOB.holder
    spec: CompareSpec = holder["spec"]
    snap = job.snapshot()
    done = sum(1 for f in snap.finished if f)
    st.caption(
        f"state: **{snap.state}** · {done}/{snap.K} runs finished"
        + (f" · GPA on {snap.device}" if snap.device else "")
        + (f" · {snap.message}" if snap.message else "")
    )
    if snap.error:
        st.error(f"The run failed: {snap.error}")
    if any(r.config.flow == "sinkhorn" for r in spec.rivals) and min(spec.M, spec.N) > NEWTON_POINTS:
        st.warning(
            f"The Sinkhorn flow polishes its plans by Newton steps only up to {NEWTON_POINTS} points per "
            f"cloud; with M = {spec.M} and N = {spec.N} they stay at the sweeps' accuracy (the why column "
            "says how far) and a step can take seconds. Fewer points give an exact flow."
        )
    if job.metric_error:
        st.warning(f"Measuring the distances to the target failed: {job.metric_error}")
    number_table(_outcome_table(snap, spec, job, holder), TABLE_FORMATS)
    _particles(snap)
    _curves(snap, spec, job)
    return snap.state in ("finished", "error", "stopped", "paused")


def _particles(snap: CompareSnapshot) -> None:
    """Every run's particles over the target, titled with its status."""
    zoom = st.session_state.get("cmp_zoom", False)
    titles = [
        f"{m.label}<br>{m.status}" + ("" if m.diverged_at is None else f" at t = {plots.fmt(m.diverged_at)}")
        for m in snap.members
    ]
    st.plotly_chart(
        plots.particle_grid(snap.particles, snap.target, titles, quantile=0.01 if zoom else 0.0),
        key="cmp_particles",
        config={"displayModeBar": False},
    )


def _curves(snap: CompareSnapshot, spec: CompareSpec, job: CompareJob) -> None:
    """Kinetic energy, each flow's own objective and W₂ of every run against physical time."""
    labels = snap.labels
    histories = [dict(m.history) for m in snap.members]
    diverged_at = [m.diverged_at for m in snap.members]
    log_x = bool(st.session_state.get("cmp_logx", False))
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.curves_figure(
            histories, labels, "kinetic_energy", title="kinetic energy: mean |velocity|² (3.3)",
            y_label="kinetic energy I", log_x=log_x, diverged_at=diverged_at, uirevision="cmp_ke",
        ),
        key="cmp_ke",
    )  # fmt: skip
    named = {"D_f^Γ": "GPA's divergence estimate D_f^Γ", "½MMD²": "½MMD²", "S_ε": "S_ε"}
    names = [text for name, text in named.items() if any(m.objective_name == name for m in snap.members)]
    c2.plotly_chart(
        plots.curves_figure(
            histories, labels, "objective", title=f"each flow's own objective: {', '.join(names)}",
            y_label="objective", log_x=log_x, diverged_at=diverged_at, uirevision="cmp_div",
        ),
        key="cmp_div",
    )  # fmt: skip
    series = [{"time": np.asarray(s["time"]), "w2": np.asarray(s["w2"])} for s in job.series()]
    st.plotly_chart(
        plots.curves_figure(
            series, labels, "w2", title=f"W₂ to the target (every {spec.metric_every} steps)", y_label="W₂",
            log_x=log_x, uirevision="cmp_w2",
        ),
        key="cmp_w2",
    )  # fmt: skip


def _buttons(table: pd.DataFrame) -> None:
    """Start, Pause, Resume, Add the rival flows, and the two view toggles."""
    b1, b2, b3, b4, b5, b6 = st.columns([1, 1, 1, 2, 2, 2])
    if b1.button("Start", type="primary", key="cmp_start"):
        try:
            _start(_spec_from_widgets(table))
        except (ValueError, ConfigError) as exc:
            st.error(f"Cannot start: {exc}")
    job: CompareJob | None = JOB.job
    if b2.button("Pause", key="cmp_pause", disabled=job is None):
        assert job is not None
        job.pause()
        JOB.set_live(False)
    if b3.button("Resume", key="cmp_resume", disabled=job is None):
        assert job is not None
        job.play()
        JOB.set_live(True)
    if b4.button(
        "Add the rival flows",
        key="cmp_add_rivals",
        help="Adds GPA at L = ∞, the MMD flow (Gaussian kernel, σ by the median heuristic; energy "
        "kernel) and the Sinkhorn-divergence flow (blur from the data), stepped with the first run's Δt "
        "and solver from the same particles (up to 8 runs).",
    ):
        st.session_state["cmp_runs"] = _with_rivals(table)
        st.session_state["cmp_editor_version"] = st.session_state.get("cmp_editor_version", 0) + 1
        st.rerun()
    b5.toggle("log time axis", key="cmp_logx")
    b6.toggle("zoom particles to the bulk (1–99 %)", key="cmp_zoom")


def _open_choice() -> None:
    """Pick a GPA run of the comparison and open it in the playground."""
    spec: CompareSpec | None = JOB.holder.get("spec")
    if spec is None or not spec.runs:
        return
    c1, c2 = st.columns([3, 1])
    k = c1.selectbox(
        "Open a GPA run in the playground", range(len(spec.runs)), format_func=lambda i: spec.runs[i].label,
        key="cmp_open_choice",
    )  # fmt: skip
    if c2.button("Open in playground", key="cmp_open"):
        open_in_playground(spec.runs[int(k)].config, **JOB.holder["data"])


def main() -> None:
    st.title("Compare runs")
    st.caption(
        "Up to 8 runs on the same data and seed: GPA runs advanced together as one batched ensemble, and "
        "rival flows (MMD, Sinkhorn) stepped beside them from the same particles. Curves are plotted "
        "against physical time t = Σ Δt, so runs with different Δt line up."
    )
    _requested_start()
    table = _controls()
    _buttons(table)
    JOB.live(_live_view, idle="Choose a preset or edit the runs, then press **Start**.")
    _open_choice()


inside_the_app()  # a link opened first still gets the app's navigation
main()
