"""Divergence lab: the exact D_f^{Γ_L}(P‖Q) over all L-Lipschitz φ (a convex program,
gpa_core.algorithm.exact) beside the spectrally normalized network's estimate (gpa_core.estimate), over
a range of L, for two samples of at most 150 points each."""

from __future__ import annotations

import math
import time
from typing import Any

import streamlit as st

from gpa_core.algorithm.divergences import F_NAMES, ObjectiveKind
from gpa_core.algorithm.exact import ExactSolveError, exact_divergence
from gpa_core.config import ConfigError, FlowConfig, parse_hidden
from gpa_core.data.datasets import DatasetError, format_spec
from gpa_core.estimate import divergence as network_divergence
from gpa_core.jobs import EnsembleJob, JobControl
from gpa_core.ot import wasserstein1
from gpa_core.plots.lab import TABLE_FORMATS, exact_vs_network_figure, lab_table
from gpa_core.studies.batches import sample_pair
from ui import playground_state
from ui.jobs import JobPage, job_progress, number_table
from ui.session import inside_the_app, keep_widget_state

MAX_POINTS = 150
#: The playground's settings in session state (pages/playground.py's SETTINGS), read to copy its data.
PLAYGROUND_SETTINGS = "pg.settings"
JOB = JobPage("divergence_lab", poll_seconds=0.5)

DEFAULTS: dict[str, Any] = {
    "lab_source": "gaussian",
    "lab_target": "gaussian:mean=1.0",
    "lab_dim": 2,
    "lab_n": 60,
    "lab_seed": 0,
    "lab_f": "kl",
    "lab_alpha": 2.0,
    "lab_Ls": "0.1, 0.3, 1, 3, 10",
    "lab_hidden": "32,32,32",
    "lab_iterations": 4000,
    "lab_net_seed": 0,
}


def parse_Ls(text: str) -> list[float]:
    """'0.1, 1, 10' → [0.1, 1.0, 10.0]: positive finite numbers, sorted, at most 20."""
    try:
        values = sorted({float(t) for t in text.replace(";", ",").split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"L values must be numbers separated by commas; got {text!r}") from None
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ConfigError("L values must be positive finite numbers (the exact program needs a finite L)")
    if len(values) > 20:
        raise ConfigError(f"at most 20 values of L; got {len(values)}")
    return values


def _from_playground() -> None:
    """Copy the playground's source, target, dimension, seed, f and α into the widgets (the first
    ≤ 150 points of its samples)."""
    settings = st.session_state.get(PLAYGROUND_SETTINGS)
    ss = st.session_state
    try:
        specs = [
            format_spec(settings[side], playground_state.dataset_params(settings, side))
            for side in ("src", "tgt")
        ]
    except (DatasetError, KeyError, TypeError, ValueError):
        ss["lab_note"] = (
            "The playground's data are an upload or unreadable here: enter dataset specs instead."
        )
        return
    ss["lab_source"], ss["lab_target"] = specs
    ss["lab_dim"] = int(settings.get("dim", 2))
    ss["lab_seed"] = int(settings.get("data_seed", 0))
    ss["lab_n"] = min(MAX_POINTS, int(settings.get("M", 60)), int(settings.get("N", 60)))
    if settings.get("f") in F_NAMES:
        ss["lab_f"] = settings["f"]
        ss["lab_alpha"] = float(settings.get("alpha", 2.0))
    ss["lab_note"] = None


def _widgets() -> None:
    keep_widget_state(st.session_state, DEFAULTS)
    c1, c2, c3, c4, c5 = st.columns([3, 3, 1, 1, 1])
    c1.text_input("Source P (dataset spec)", key="lab_source", help="e.g. gaussian:mean=0,std=0.5")
    c2.text_input("Target Q (dataset spec)", key="lab_target", help="e.g. mixture:std=0.5")
    c3.number_input("dimension", min_value=1, max_value=50, key="lab_dim")
    c4.number_input("points each", min_value=2, max_value=MAX_POINTS, key="lab_n")
    c5.number_input("data seed", min_value=0, max_value=2**31 - 1, key="lab_seed")
    d1, d2, d3, d4, d5, d6 = st.columns([2, 1, 3, 2, 1, 1])
    d1.selectbox("f", F_NAMES, format_func=lambda name: ObjectiveKind(name).label.split(" (")[0], key="lab_f")
    d2.number_input(
        "α", min_value=1.01, max_value=1000.0, key="lab_alpha", disabled=st.session_state.lab_f != "alpha"
    )
    d3.text_input("values of L", key="lab_Ls", help="positive numbers separated by commas")
    d4.text_input("network widths", key="lab_hidden", help="hidden layer widths of φ, e.g. 32,32,32")
    d5.number_input("max iterations", min_value=400, max_value=100_000, step=500, key="lab_iterations")
    d6.number_input("network seed", min_value=0, max_value=2**31 - 1, key="lab_net_seed")
    if st.button(
        "Use the playground's data", key="lab_from_pg", disabled=PLAYGROUND_SETTINGS not in st.session_state
    ):
        _from_playground()
        st.rerun()
    if st.session_state.get("lab_note"):
        st.caption(st.session_state["lab_note"])


def _start() -> None:
    ss = st.session_state
    Ls = parse_Ls(str(ss["lab_Ls"]))
    hidden = FlowConfig(hidden=parse_hidden(str(ss["lab_hidden"]))).hidden  # validated here, not in the job
    n, f, alpha = int(ss["lab_n"]), str(ss["lab_f"]), float(ss["lab_alpha"])
    P, Q = sample_pair(str(ss["lab_source"]), str(ss["lab_target"]), n, n, data_seed=int(ss["lab_seed"]),
                       dim=int(ss["lab_dim"]))  # fmt: skip
    if P.shape[1] != Q.shape[1]:
        raise ConfigError(f"the source has {P.shape[1]} dimension(s) and the target {Q.shape[1]}")
    w1 = wasserstein1(P, Q)
    rows: list[dict[str, Any]] = [{"L": L, "bound": L * w1} for L in Ls]
    iterations, seed = int(ss["lab_iterations"]), int(ss["lab_net_seed"])

    def work(ctl: JobControl) -> list[dict[str, Any]]:
        for k, row in enumerate(rows):
            ctl.check()
            ctl.report(2 * k, 2 * len(rows), f"exact at L = {row['L']:g}")
            start = time.perf_counter()
            try:
                exact = exact_divergence(P, Q, f=f, L=row["L"], alpha=alpha)
                row.update(exact=exact.value, solver=exact.solver)
            except ExactSolveError as exc:  # not certified (e.g. α near 100): say so, go on
                row.update(exact=None, solver=f"not certified: {exc}")
            row["exact_seconds"] = time.perf_counter() - start
            ctl.publish([dict(r) for r in rows])
            ctl.check()
            ctl.report(2 * k + 1, 2 * len(rows), f"network at L = {row['L']:g}")
            start = time.perf_counter()
            value = network_divergence(
                P, Q, f=f, L=row["L"], alpha=alpha, hidden=hidden, seed=seed, max_iterations=iterations
            )
            row.update(network=value, network_seconds=time.perf_counter() - start)
            ctl.publish([dict(r) for r in rows])
        ctl.report(1, 1, "done")
        return rows

    JOB.start(EnsembleJob(work, name="divergence-lab", threads=1), rows=rows, n=n, f=f, w1=w1)


def _live_view(job: EnsembleJob) -> bool:
    holder = JOB.holder
    rows = job.partial or holder["rows"]
    job_progress(job, f"{sum('network' in r for r in rows)}/{len(rows)} values of L", "computation")
    st.plotly_chart(exact_vs_network_figure(rows), key="lab_figure")
    number_table(lab_table(rows), TABLE_FORMATS)
    above = [
        r["L"]
        for r in rows
        if r.get("network") is not None
        and r.get("exact") is not None
        and r["network"] > r["exact"] * (1 + 1e-3) + 1e-5
    ]
    if above:  # a spectrally normalized net is one L-Lipschitz φ: it cannot beat the supremum
        st.warning(
            f"The network's estimate exceeds the exact value at L = {', '.join(f'{L:g}' for L in above)}."
        )
    st.caption(
        f"{holder['n']} + {holder['n']} points, W₁(P, Q) = {holder['w1']:.4g}. The exact value is the "
        "supremum of eq. (1.4) over all L-Lipschitz φ; the network's φ is L-Lipschitz because the product "
        "of its layers' spectral norms is L, a conservative bound that leaves out most L-Lipschitz "
        "functions, so its estimate falls short — close to the exact value at small L, where both are "
        "≈ L·W₁, and further below it as L grows."
    )
    return job.done


def _buttons() -> None:
    b1, b2, b3 = st.columns([1, 1, 4])
    if b1.button("Compute", type="primary", key="lab_start"):
        try:
            _start()
        except (ConfigError, DatasetError, ValueError) as exc:
            b3.error(str(exc))
    JOB.cancel_button(b2, "lab_cancel")


def main() -> None:
    st.title("Divergence lab")
    st.caption(
        "The paper's divergence (eq. 1.4) takes the supremum over all L-Lipschitz φ. On samples that is a "
        "convex program over φ's values at the points (McShane–Whitney extension), solved here exactly "
        "and certified by its dual, the infimal convolution of eq. (1.1); beside it, the estimate of a "
        "freshly trained spectrally normalized network, as the app's flows use."
    )
    _widgets()
    _buttons()
    JOB.live(_live_view, idle="Choose the samples and the values of L, then press **Compute**.")


inside_the_app()  # a link opened first still gets the app's navigation
main()
