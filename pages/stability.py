"""Stability map: a grid over L × Δt (log-spaced, up to 8 × 8), every cell a run to the horizon T, computed
as batched ensembles in a background job. Lines of constant LΔt show the CFL-type condition of §6."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import streamlit as st

from gpa_core.config import ConfigError, FlowConfig, authors_numerics, parse_hidden
from gpa_core.devices import cpu_threads
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.plots import studies as plots
from gpa_core.studies.batches import (
    STRATEGIES,
    EnsembleStats,
    data_scale,
    member_step_flops,
    sample_pair,
    steps_for,
)
from gpa_core.studies.outcome import ConvergenceCriteria, Outcome
from gpa_core.studies.stability import (
    MAX_AXIS,
    StabilityGrid,
    StabilityResult,
    log_spaced,
    run_stability,
    stability_grid,
)
from ui.jobs import JobPage, job_progress, open_in_playground
from ui.session import inside_the_app, keep_widget_state

#: This session's map: the job, its result, data, metrics, the selected and last clicked cell.
JOB = JobPage("stability")
_CPUS = cpu_threads()
#: Widget defaults, set once per session (widgets then keep their values across page visits).
DEFAULTS: dict[str, Any] = {
    "stab_source": "gaussian:mean=0,std=0.5",
    "stab_target": "mixture:std=0.5,spacing=4",
    "stab_M": 200,
    "stab_N": 200,
    "stab_seed": 0,
    "stab_L_lo": 0.1,
    "stab_L_hi": 100.0,
    "stab_nL": 8,
    "stab_dt_lo": 0.01,
    "stab_dt_hi": 1.0,
    "stab_ndt": 8,
    "stab_T": 100.0,
    "stab_L_inf": False,
    "stab_click_opens": True,
    "stab_f": "kl",
    "stab_alpha": 2.0,
    "stab_solver": "euler",
    "stab_numerics": "paper",
    "stab_inner": 3,
    "stab_hidden": "32,32,32",
    "stab_net_seed": 0,
    "stab_metrics": ["w2"],
    "stab_move_tol": 0.1,
    "stab_window": 0.1,
    "stab_strategy": "packed",
    "stab_workers": min(2, _CPUS),
}


def _settings() -> dict[str, Any]:
    ss = st.session_state
    keep_widget_state(ss, DEFAULTS)
    c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 1, 1])
    c1.text_input("Source P₀", key="stab_source")
    c2.text_input("Target Q", key="stab_target")
    c3.number_input("M", min_value=2, max_value=20000, step=50, key="stab_M")
    c4.number_input("N", min_value=2, max_value=20000, step=50, key="stab_N")
    c5.number_input("data seed", min_value=0, max_value=2**31 - 2, key="stab_seed")
    g1, g2, g3, g4, g5, g6, g7 = st.columns(7)
    g1.number_input("L from", min_value=1e-4, max_value=1e5, format="%.3g", key="stab_L_lo")
    g2.number_input("L to", min_value=1e-4, max_value=1e5, format="%.3g", key="stab_L_hi")
    g3.number_input("# L", min_value=1, max_value=MAX_AXIS, key="stab_nL")
    g4.number_input("Δt from", min_value=1e-5, max_value=1e3, format="%.3g", key="stab_dt_lo")
    g5.number_input("Δt to", min_value=1e-5, max_value=1e3, format="%.3g", key="stab_dt_hi")
    g6.number_input("# Δt", min_value=1, max_value=MAX_AXIS, key="stab_ndt")
    g7.number_input("horizon T", min_value=0.01, max_value=1e6, key="stab_T")
    h1, h2 = st.columns(2)
    h1.checkbox(
        "add a row L = ∞ (no Lipschitz regularization; then at most 7 finite L)",
        key="stab_L_inf",
        help="The unregularized flow of §6 beside the regularized ones: it is where Δt must be smallest.",
    )
    h2.checkbox(
        "clicking a cell opens its run in the playground",
        key="stab_click_opens",
        help="Off: a click only selects the cell, whose details show below the map.",
    )
    with st.expander("Run settings, outcome test and schedule"):
        r1, r2, r3, r4 = st.columns(4)
        r1.selectbox("f", ["kl", "alpha", "reverse_kl", "js"], key="stab_f")
        r2.number_input("α", min_value=1.001, max_value=1000.0, key="stab_alpha")
        r3.selectbox("solver", ["euler", "heun"], key="stab_solver")
        r4.radio("numerics", ["paper", "authors"], key="stab_numerics", horizontal=True)
        r5, r6, r7, r8 = st.columns(4)
        r5.number_input("inner steps m_max", min_value=1, max_value=100, key="stab_inner")
        r6.text_input("hidden widths", key="stab_hidden")
        r7.number_input("network seed", min_value=0, max_value=2**31 - 2, key="stab_net_seed")
        r8.multiselect(
            "quality numbers",
            ["w2", "sinkhorn"],
            key="stab_metrics",
            help="W₂: exact optimal transport (fast at M = N = 200). Sinkhorn: debiased, blur 0.05 — "
            "can take seconds per cell.",
        )
        o1, o2, o3, o4 = st.columns(4)
        o1.number_input(
            "converged: move less than … of the target's size", min_value=1e-4, max_value=1.0,
            format="%.3g", key="stab_move_tol",
        )  # fmt: skip
        o2.number_input("… over the last fraction of T", min_value=0.01, max_value=1.0, key="stab_window")
        o3.selectbox("schedule", list(STRATEGIES), key="stab_strategy")
        o4.number_input("worker threads", min_value=1, max_value=_CPUS, key="stab_workers")
        st.caption(
            "Schedules: *packed* deals all cells into balanced batches and drops each member as soon as "
            "it has reached T (or diverged); *by_steps* batches cells with equal Δt; *sequential* runs "
            "cells one at a time. A cell has *converged* when, over the last part of the run, the "
            "particles' RMS speed √I times that duration is below the chosen fraction of the target's "
            "spread and their kinetic energy has fallen below 5 % of its peak."
        )
    return dict(ss)


def _build() -> tuple[StabilityGrid, np.ndarray, np.ndarray, ConvergenceCriteria, dict[str, Any]]:
    ss = st.session_state
    hidden = parse_hidden(ss["stab_hidden"])
    base = FlowConfig(
        f=ss["stab_f"],
        alpha=float(ss["stab_alpha"]),
        solver=ss["stab_solver"],
        inner_steps=int(ss["stab_inner"]),
        hidden=hidden,
        seed=int(ss["stab_net_seed"]),
    )
    if ss["stab_numerics"] == "authors":
        base = authors_numerics(base)
    Ls = None
    if ss["stab_L_inf"]:
        n_L = int(ss["stab_nL"])
        if n_L >= MAX_AXIS:
            raise ValueError(
                f"with the L = ∞ row a map has at most {MAX_AXIS - 1} finite L values; set # L to "
                f"{MAX_AXIS - 1} or fewer"
            )
        Ls = (*log_spaced(float(ss["stab_L_lo"]), float(ss["stab_L_hi"]), n_L, name="L"), math.inf)
    grid = stability_grid(
        base,
        T=float(ss["stab_T"]),
        L_range=(float(ss["stab_L_lo"]), float(ss["stab_L_hi"])),
        dt_range=(float(ss["stab_dt_lo"]), float(ss["stab_dt_hi"])),
        n_L=int(ss["stab_nL"]),
        n_dt=int(ss["stab_ndt"]),
        Ls=Ls,
    )
    source, target = sample_pair(
        ss["stab_source"],
        ss["stab_target"],
        int(ss["stab_M"]),
        int(ss["stab_N"]),
        data_seed=int(ss["stab_seed"]),
    )
    criteria = ConvergenceCriteria(window=float(ss["stab_window"]), move_tol=float(ss["stab_move_tol"]))
    data = {
        "source": ss["stab_source"],
        "target": ss["stab_target"],
        "M": int(ss["stab_M"]),
        "N": int(ss["stab_N"]),
        "data_seed": int(ss["stab_seed"]),
        "dim": int(source.shape[1]),
    }
    return grid, source, target, criteria, data


def _start() -> None:
    grid, source, target, criteria, data = _build()
    metrics = tuple(st.session_state["stab_metrics"]) or ("w2",)
    strategy = st.session_state["stab_strategy"]
    workers = int(st.session_state["stab_workers"])
    result = StabilityResult(grid, [None] * len(grid.cells), EnsembleStats(), data_scale(target))

    def work(ctl: JobControl) -> StabilityResult:
        return run_stability(
            grid, source, target, metrics=metrics, criteria=criteria, strategy=strategy, workers=workers,
            on_progress=lambda done, total: ctl.report(done, total),
            on_cell=lambda cell: ctl.publish(result), cancel=ctl.cancel_event, result=result,
        )  # fmt: skip

    job = EnsembleJob(work, name="stability", threads=1)
    JOB.start(
        job, result=result, data=data, metrics=metrics, selected=None, target_points=target, last_pick=None
    )


def _open_in_playground(result: StabilityResult, index: int) -> None:
    open_in_playground(result.grid.cells[index].config, **JOB.holder["data"])


def _cell_details(result: StabilityResult, index: int) -> None:
    res = result.cells[index]
    cell = result.grid.cells[index]
    st.markdown(f"**Cell {index}: {cell.label}, LΔt = {cell.L_dt:.3g}, {cell.steps} steps**")
    if res is None:
        st.caption("This cell has not finished yet.")
        return
    s = res.run.summary
    text = f"outcome: **{res.outcome.value}**"
    if s.diverged_at is not None:
        text += f" at t = {plots.fmt(s.diverged_at)} ({s.reason})"
    text += " · " + " · ".join(f"{k}: {plots.fmt(v)}" for k, v in res.metrics.items())
    text += f" · final kinetic energy {plots.fmt(s.kinetic_energy)} · divergence {plots.fmt(s.divergence)}"
    st.markdown(text)
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.curves_figure(
            [res.run.history], [cell.label], "kinetic_energy", title="kinetic energy (3.3)",
            y_label="kinetic energy I",
            diverged_at=[s.diverged_at], uirevision=f"stab_ke_{index}",
        ),
        key="stab_cell_ke",
    )  # fmt: skip
    target = JOB.holder.get("target_points")
    c2.plotly_chart(
        plots.particle_grid(
            res.run.particles[None], target if target is not None else res.run.particles,
            ["final particles (grey: target)"], cols=1, height_per_row=320, uirevision=f"stab_p_{index}",
        ),
        key="stab_cell_particles",
    )  # fmt: skip


def _cost_text() -> str:
    """The size of the map about to be computed."""
    ss = st.session_state
    hidden = parse_hidden(ss["stab_hidden"])
    base = FlowConfig(inner_steps=int(ss["stab_inner"]), hidden=hidden, solver=ss["stab_solver"])
    dts = log_spaced(float(ss["stab_dt_lo"]), float(ss["stab_dt_hi"]), int(ss["stab_ndt"]), name="Δt")
    n_L = int(ss["stab_nL"]) + (1 if ss["stab_L_inf"] else 0)  # the L = ∞ row, as in _build
    steps = n_L * sum(steps_for(float(ss["stab_T"]), dt) for dt in dts)
    d = 2
    flops = steps * member_step_flops(base, int(ss["stab_M"]), int(ss["stab_N"]), d)
    return f"{n_L * len(dts)} runs, {steps:,} particle steps in all (≈ {flops / 1e12:.2f} TFLOP for 2-D data)"


def _live_view(job: EnsembleJob) -> bool:
    """Progress, outcome counts and the heat map so far (a click selects a cell); True once done."""
    holder = JOB.holder
    result: StabilityResult = holder["result"]
    n_done = sum(c is not None for c in result.cells)
    job_progress(job, f"{n_done}/{len(result.cells)} cells · {job.fraction:.0%} of the member-steps", "map")
    counts = result.counts()
    st.caption(" · ".join(f"{o.symbol} {o.value}: {counts[o.value]}" for o in Outcome))
    _heat_map(result)
    return job.done


def _heat_map(result: StabilityResult) -> None:
    """The map coloured by a quality number; a new click selects its cell (and opens it, if asked)."""
    holder = JOB.holder
    metric_options = list(holder.get("metrics", ("w2",)))
    metric = metric_options[0]
    if len(metric_options) > 1:
        metric = st.radio("colour", metric_options, horizontal=True, key="stab_colour")
    selected = holder.get("selected")
    event = st.plotly_chart(
        plots.stability_figure(result, metric, selected=selected),
        key="stab_heatmap",
        on_select="rerun",
        selection_mode="points",
        config={"displayModeBar": False},
    )
    picked = _picked_cell(event)
    if picked is not None and picked != holder.get("last_pick"):
        holder["last_pick"] = picked  # a new click: show that cell below (and open it, if asked)
        st.session_state["stab_cell_choice"] = picked
        if st.session_state.get("stab_click_opens", True) and result.cells[picked] is not None:
            holder["open_pick"] = picked
        st.rerun()


def _picked_cell(event: Any) -> int | None:
    """The cell index of a click on the heat map (the marker trace carries it in customdata)."""
    try:
        points = event.selection.points  # type: ignore[union-attr]
    except AttributeError:
        return None
    for p in points or []:
        data = p.get("customdata")
        if data is None:
            continue
        value = data[0] if isinstance(data, (list, tuple)) else data
        try:
            return int(value)
        except (TypeError, ValueError):
            continue
    return None


def _buttons() -> None:
    """Compute map, Cancel and the size of the map."""
    b1, b2, b3 = st.columns([1, 1, 4])
    if b1.button("Compute map", type="primary", key="stab_start"):
        try:
            _start()
        except (ValueError, ConfigError) as exc:
            st.error(f"Cannot start: {exc}")
    JOB.cancel_button(b2, "stab_cancel")
    try:
        b3.caption(_cost_text())
    except (ValueError, ConfigError) as exc:
        b3.error(str(exc))


def _cell_choice() -> None:
    """A cell of the map (chosen here or clicked on it): its details, and a button to open it."""
    holder = JOB.holder
    result: StabilityResult | None = holder.get("result")
    if result is None:
        return
    pick = holder.pop("open_pick", None)
    if pick is not None:  # a click on a finished cell, with "clicking a cell opens…" on
        _open_in_playground(result, int(pick))
    labels = {c.index: f"{c.index}: {c.label}" for c in result.grid.cells}
    if st.session_state.get("stab_cell_choice") not in labels:
        st.session_state["stab_cell_choice"] = 0
    c1, c2 = st.columns([3, 1])
    choice = c1.selectbox(
        "Cell (or click one on the map)", list(labels), format_func=labels.get, key="stab_cell_choice"
    )
    holder["selected"] = int(choice)
    _cell_details(result, int(choice))
    if c2.button("Open in playground", key="stab_open"):
        _open_in_playground(result, int(choice))


def main() -> None:
    st.title("Stability map over (L, Δt)")
    st.caption(
        "§6: the Lipschitz bound L caps the particle speed, so one step moves a particle at most LΔt — a "
        "CFL-type condition. Each cell is a full run to T; dashed lines are constant LΔt."
    )
    _settings()
    _buttons()
    JOB.live(
        _live_view, idle="Set the grid and press **Compute map**. Each cell is a full run to the horizon T."
    )
    _cell_choice()


inside_the_app()  # a link opened first still gets the app's navigation
main()
