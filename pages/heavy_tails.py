"""Heavy tails (§7, Table 1): the eight cases with KL and α-divergences, each over several seeds, in the
paper's numerics and in the authors' code's numerics, with overflow diagnostics and the paper's outcome."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from gpa_core.algorithm.divergences import FLOAT32_EXP_LIMIT
from gpa_core.config import FlowConfig, parse_hidden
from gpa_core.devices import cpu_threads
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.plots import studies as plots
from gpa_core.studies.batches import steps_for
from gpa_core.studies.heavy_tails import (
    HEAVY_TAIL_CASES,
    NUMERICS,
    HeavyTailMember,
    HeavyTailResult,
    HeavyTailSettings,
    heavy_tail_members,
    run_heavy_tails,
)
from ui.jobs import JobPage, job_progress, number_table, open_in_playground
from ui.session import inside_the_app, keep_widget_state

NUMERICS_LABEL = {"paper": "paper", "authors": "authors' code"}
#: This session's sweep: the job, its result and the last clicked row.
JOB = JobPage("heavy_tails", poll_seconds=0.7)
#: Number formats of the columns of a row's seeds.
MEMBER_FORMATS = {
    "diverged at t": "%.4g",
    "final D": "%.3e",
    "max φ(X)−ν": "%.4g",
    "at t": "%.4g",
    "exp limit": "%.1f",
    "farthest source |y|": "%.3e",
    "farthest target |x|": "%.3e",
}


#: Widget defaults, set once per session (widgets then keep their values across page visits).
DEFAULTS: dict[str, Any] = {
    "ht_cases": [c.number for c in HEAVY_TAIL_CASES],
    "ht_seeds": 8,
    "ht_alpha": 0.0,
    "ht_L": 1.0,
    "ht_dt": 0.5,
    "ht_T": 250.0,
    "ht_MN": 200,
    "ht_numerics": list(NUMERICS),
    "ht_inner": 3,
    "ht_hidden": "32,32,32",
}


def _settings_widgets() -> None:
    keep_widget_state(st.session_state, DEFAULTS)
    labels = {c.number: c.label for c in HEAVY_TAIL_CASES}
    st.multiselect("Cases", list(labels), format_func=labels.get, key="ht_cases")
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    c1.number_input("seeds per case", min_value=1, max_value=64, key="ht_seeds")
    c2.number_input("extra α (0: none)", min_value=0.0, max_value=1000.0, key="ht_alpha")
    c3.number_input("L", min_value=1e-3, max_value=1e4, key="ht_L")
    c4.number_input("Δt", min_value=1e-4, max_value=100.0, key="ht_dt")
    c5.number_input("horizon T", min_value=0.01, max_value=1e5, key="ht_T")
    c6.number_input("M = N", min_value=4, max_value=5000, step=50, key="ht_MN")
    n1, n2, n3 = st.columns([2, 1, 1])
    n1.multiselect(
        "numerics",
        list(NUMERICS),
        format_func=NUMERICS_LABEL.get,
        key="ht_numerics",
        help="paper: spectral normalization, trained ν (Legendre form), Adam state kept. authors' code: "
        "Frobenius normalization, He-normal init, Adam reset every step, KL in the naive Donsker–Varadhan "
        "form log E[e^φ] (overflows in float32 past φ ≈ 88.7).",
    )
    n2.number_input("inner steps m_max", min_value=1, max_value=50, key="ht_inner")
    n3.text_input("hidden widths", key="ht_hidden")


def _settings() -> HeavyTailSettings:
    ss = st.session_state
    hidden = parse_hidden(ss["ht_hidden"])
    alpha = float(ss["ht_alpha"])
    return HeavyTailSettings(
        cases=tuple(int(c) for c in ss["ht_cases"]),
        seeds=int(ss["ht_seeds"]),
        extra_alpha=alpha if alpha > 1.0 else None,
        numerics=tuple(ss["ht_numerics"]),
        L=float(ss["ht_L"]),
        dt=float(ss["ht_dt"]),
        T=float(ss["ht_T"]),
        M=int(ss["ht_MN"]),
        N=int(ss["ht_MN"]),
        base=FlowConfig(hidden=hidden, inner_steps=int(ss["ht_inner"])),
    )


def _start(settings: HeavyTailSettings) -> None:
    members = heavy_tail_members(settings)
    result = HeavyTailResult(settings, members, [None] * len(members), [None] * len(members))

    def work(ctl: JobControl) -> HeavyTailResult:
        return run_heavy_tails(
            settings, result=result, workers=min(2, cpu_threads()),
            on_progress=lambda d, t: ctl.report(d, t), on_member=lambda m, r, d: ctl.publish(result),
            cancel=ctl.cancel_event,
        )  # fmt: skip

    JOB.start(EnsembleJob(work, name="heavy-tails", threads=1), result=result, last_pick=None)


def _open_in_playground(member: HeavyTailMember, settings: HeavyTailSettings) -> None:
    open_in_playground(
        member.config, source=member.case.source_spec, target=member.case.target_spec, M=settings.M,
        N=settings.N, data_seed=member.data_seed, dim=2,
    )  # fmt: skip


def _member_table(result: HeavyTailResult, idx: list[int]) -> pd.DataFrame:
    rows = []
    for i in idx:
        m = result.members[i]
        run = result.runs[i]
        diag = result.diagnostics[i]
        rows.append(
            {
                "seed": m.seed,
                "status": "…" if run is None else run.summary.status,
                "diverged at t": None if run is None else run.summary.diverged_at,
                "final D": None if run is None else run.summary.divergence,
                "max φ(X)−ν": None if diag is None else diag.peak_exp_arg,
                "at t": None if diag is None else diag.peak_time,
                "exp limit": None if diag is None else diag.limit,
                "farthest source |y|": None if diag is None else diag.farthest_source[0],
                "farthest target |x|": None if diag is None else diag.farthest_target[0],
                "why": "" if run is None else run.summary.reason,
            }
        )
    return pd.DataFrame(rows)


def _row_details(result: HeavyTailResult, row: dict[str, Any]) -> None:
    idx = row["members"]
    first = result.members[idx[0]]
    st.subheader(f"Case {first.case.label} · {first.variant} · {NUMERICS_LABEL[first.numerics]} numerics")
    st.caption(
        f"Paper (one run): **{row['paper']}**. The overflow gauge is the largest argument of f* over the "
        f"target samples (for KL: of the exponential); float32's e^x overflows past "
        f"{FLOAT32_EXP_LIMIT:.1f}. Heavy tails put samples far out, and a 1-Lipschitz φ can differ by up "
        "to the distance between samples."
    )
    number_table(_member_table(result, idx), MEMBER_FORMATS)
    done = [i for i in idx if result.runs[i] is not None]
    if not done:
        return
    histories = [result.runs[i].history for i in done]  # type: ignore[union-attr]
    labels = [f"seed {result.members[i].seed}" for i in done]
    diverged = [result.runs[i].summary.diverged_at for i in done]  # type: ignore[union-attr]
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        plots.exp_gauge_figure(histories, labels, limit=FLOAT32_EXP_LIMIT, diverged_at=diverged),
        key="ht_gauge",
    )
    c2.plotly_chart(
        plots.curves_figure(
            histories, labels, "divergence", title="divergence estimate", y_label="D", diverged_at=diverged,
            uirevision="ht_div",
        ),
        key="ht_div",
    )  # fmt: skip
    w1, w2 = st.columns([3, 1])
    pick = w1.selectbox(
        "Watch a seed in the playground", done, format_func=lambda i: f"seed {result.members[i].seed}",
        key="ht_watch_choice",
    )  # fmt: skip
    if w2.button("Open in playground", key="ht_open"):
        _open_in_playground(result.members[int(pick)], result.settings)


def _live_view(job: EnsembleJob) -> bool:
    """Progress and the table of cases so far (a click on a row shows its details); True once done."""
    holder = JOB.holder
    result: HeavyTailResult = holder["result"]
    done = sum(r is not None for r in result.runs)
    job_progress(job, f"{done}/{len(result.runs)} runs", "sweep")
    event = number_table(
        plots.heavy_tail_table(result), {}, on_select="rerun", selection_mode="single-row", key="ht_table"
    )
    try:
        rows = event.selection.rows  # type: ignore[union-attr]
    except AttributeError:
        rows = []
    if rows and int(rows[0]) != holder.get("last_pick"):
        holder["last_pick"] = int(rows[0])  # a new click: show that row below
        st.session_state["ht_row_choice"] = int(rows[0])
        st.rerun()
    return job.done


def _idle() -> None:
    st.info(
        "Choose the cases and press **Run sweep**. The paper's reported outcome is shown beside each row."
    )
    _paper_table()


def _paper_table() -> None:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "case": c.number,
                    "source P₀": c.source_label,
                    "target Q": c.target_label,
                    "paper: KL": c.paper_kl,
                    "paper: α = 2": c.paper_alpha2,
                }
                for c in HEAVY_TAIL_CASES
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def _buttons() -> None:
    """Run sweep, Cancel and the size of the sweep."""
    b1, b2, b3 = st.columns([1, 1, 4])
    try:
        settings = _settings()
        n = len(heavy_tail_members(settings))
        steps = steps_for(settings.T, settings.dt)
        b3.caption(f"{n} runs × {steps} steps = {n * steps:,} particle steps")
    except ValueError as exc:
        settings = None
        b3.error(str(exc))
    if b1.button("Run sweep", type="primary", key="ht_start", disabled=settings is None):
        assert settings is not None
        _start(settings)
    JOB.cancel_button(b2, "ht_cancel")


def _row_choice() -> None:
    """A row of the table (chosen here or clicked there): its seeds, and the largest overflow gauge."""
    result: HeavyTailResult | None = JOB.holder.get("result")
    if result is None:
        return
    rows = result.rows()
    if not rows:
        return
    if st.session_state.get("ht_row_choice") not in range(len(rows)):
        st.session_state["ht_row_choice"] = 0
    choice = st.selectbox(
        "Details of a row (or click a row of the table)",
        list(range(len(rows))),
        format_func=lambda i: (
            f"case {rows[i]['case']} · {rows[i]['f']} · {NUMERICS_LABEL[rows[i]['numerics']]}"
        ),
        key="ht_row_choice",
    )
    _row_details(result, rows[int(choice)])
    if np.isfinite([r["peak_exp_arg"] for r in rows]).any():
        worst = max((r for r in rows if math.isfinite(r["peak_exp_arg"])), key=lambda r: r["peak_exp_arg"])
        st.caption(
            f"Largest overflow gauge so far: {plots.fmt(worst['peak_exp_arg'])} (case {worst['case']}, "
            f"{worst['f']}, {NUMERICS_LABEL[worst['numerics']]} numerics) against float32's limit "
            f"{FLOAT32_EXP_LIMIT:.1f}."
        )


def main() -> None:
    st.title("Heavy-tailed data")
    st.caption(
        "§7 and Table 1: transporting heavy tails to a Gaussian (cases 1–4) and a Gaussian to heavy tails "
        "(cases 5–8) with (f, Γ_L)-GPA. The paper reports one run per case; here every case runs over "
        "several seeds as one batched ensemble, so you see how often KL overflows and when. The paper "
        "published no configuration for this table: Δt = 0.5 and T = 250 are our choice."
    )
    _settings_widgets()
    _buttons()
    JOB.live(_live_view, idle=_idle)
    _row_choice()


inside_the_app()  # a link opened first still gets the app's navigation
main()
