"""Plotly figures for ensembles: small multiples of particles, overlaid curves against physical time,
the stability heat map over (L, Δt) with lines of constant LΔt (§6), and heavy-tail table helpers (§7).

Pure functions of NumPy data (no Streamlit), testable without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gpa_core.algorithm.divergences import FLOAT32_EXP_LIMIT
from gpa_core.studies.heavy_tails import HeavyTailResult
from gpa_core.studies.outcome import Outcome
from gpa_core.studies.stability import StabilityResult

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
)
TARGET_COLOR = "rgba(120, 120, 120, 0.45)"
OUTCOME_COLORS = {
    Outcome.CONVERGED: "#2ca02c",
    Outcome.MOVING: "#ff7f0e",
    Outcome.DIVERGED: "#d62728",
}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def color(k: int) -> str:
    """Member ``k``'s colour (the palette repeats after 8 members)."""
    return PALETTE[k % len(PALETTE)]


def fmt(x: float | None, digits: int = 3) -> str:
    """A short number: 0.0123 → '0.0123', 1.2e-07 → '1.2e-07', NaN/None → '—'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}"


def order_of_magnitude(x: float) -> str:
    """'O(10⁻⁴)' like the paper's Table 1 (by the nearest power of ten of |x|)."""
    if not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    return f"O(10{str(round(math.log10(abs(x)))).translate(_SUPERSCRIPT)})"


def label_L(L: float) -> str:
    """A Lipschitz constant as a label: ``∞`` or 3 significant digits."""
    return "∞" if math.isinf(L) else f"{L:.3g}"


# ------------------------------------------------------------------------------------- particles
def robust_extent(
    *clouds: np.ndarray, quantile: float = 0.01, pad: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """Axis ranges (lo, hi) per coordinate covering the clouds between the ``quantile`` and
    1 − ``quantile`` quantiles (so that a few samples at 10⁶ from a heavy tail do not squash the view)."""
    pts = np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1, np.shape(c)[-1]) for c in clouds])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if pts.size == 0:
        return np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    lo = np.quantile(pts, quantile, axis=0) if quantile > 0 else pts.min(axis=0)
    hi = np.quantile(pts, 1 - quantile, axis=0) if quantile > 0 else pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-9)
    return lo - pad * span, hi + pad * span


def _markers(points: np.ndarray, colour: str, *, name: str, **style: Any) -> go.Scattergl:
    """Size-4 markers at the first two coordinates of ``points`` ((n, d); with d = 1 they lie on y = 0),
    out of the legend unless ``style`` says otherwise."""
    y = points[:, 1] if points.shape[1] > 1 else np.zeros(len(points))
    style.setdefault("showlegend", False)
    return go.Scattergl(
        x=points[:, 0], y=y, mode="markers", marker={"size": 4, "color": colour}, name=name, **style
    )


def particle_grid(
    particles: np.ndarray,
    target: np.ndarray,
    titles: Sequence[str],
    *,
    cols: int | None = None,
    extent: tuple[np.ndarray, np.ndarray] | None = None,
    quantile: float = 0.0,
    height_per_row: int = 260,
    uirevision: str = "compare",
) -> go.Figure:
    """Small multiples: member k's particles (K, M, d) over its target ((N, d) or (K, N, d)), the first two
    coordinates, every panel with the same axes."""
    particles = np.asarray(particles)
    K = particles.shape[0]
    cols = cols or min(K, 4)
    rows = math.ceil(K / cols)
    targets = [np.asarray(target) if np.ndim(target) == 2 else np.asarray(target)[k] for k in range(K)]
    if extent is None:
        extent = robust_extent(particles, *targets, quantile=quantile)
    lo, hi = extent
    two_lines = any("<br>" in str(t) for t in titles)  # titles of two lines need more room above
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[str(t) for t in titles],
        shared_xaxes="all",
        shared_yaxes="all",
        horizontal_spacing=0.03,
        vertical_spacing=(0.18 if two_lines else 0.12) / max(rows, 1),
    )
    for k in range(K):
        r, c = divmod(k, cols)
        under = _markers(
            targets[k], TARGET_COLOR, name="target", legendgroup="target", showlegend=k == 0, hoverinfo="skip"
        )
        moved = _markers(particles[k], color(k), name=str(titles[k]))
        fig.add_traces([under, moved], rows=r + 1, cols=c + 1)
    fig.update_xaxes(range=[float(lo[0]), float(hi[0])])
    if len(lo) > 1:
        fig.update_yaxes(range=[float(lo[1]), float(hi[1])])
    fig.update_layout(
        height=max(280, height_per_row * rows + 60),
        margin={"l": 30, "r": 10, "t": 60 if two_lines else 40, "b": 30},
        uirevision=uirevision,
        legend={"orientation": "h", "y": -0.05},
    )
    return fig


# ---------------------------------------------------------------------------------------- curves
def curves_figure(
    histories: Sequence[dict[str, np.ndarray]],
    labels: Sequence[str],
    field: str,
    *,
    title: str = "",
    y_label: str = "",
    log_x: bool = False,
    log_y: bool = True,
    diverged_at: Sequence[float | None] | None = None,
    x_field: str = "time",
    uirevision: str = "curves",
) -> go.Figure:
    """One curve per member of ``field`` against physical time (``history['time']``); on a log axis the
    non-positive values are left out. A cross marks the time a member diverged."""
    fig = go.Figure()
    for k, (h, label) in enumerate(zip(histories, labels, strict=True)):
        x = np.asarray(h.get(x_field, np.zeros(0)), dtype=np.float64)
        y = np.asarray(h.get(field, np.zeros(0)), dtype=np.float64)
        if log_y:
            y = np.where(y > 0, y, np.nan)
        if log_x:
            x = np.where(x > 0, x, np.nan)
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", name=str(label), line={"color": color(k), "width": 1.6})
        )
        at = diverged_at[k] if diverged_at is not None and k < len(diverged_at) else None
        if at is not None:
            finite = np.isfinite(y)
            y_at = float(y[finite][-1]) if finite.any() else 1.0
            fig.add_trace(
                go.Scatter(
                    x=[max(at, 1e-12) if log_x else at],
                    y=[y_at],
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": color(k), "line": {"width": 2}},
                    name=f"{label}: diverged at t = {fmt(at)}",
                    showlegend=True,
                )
            )
    fig.update_xaxes(title="physical time t", type="log" if log_x else "linear")
    fig.update_yaxes(title=y_label or field, type="log" if log_y else "linear", exponentformat="power")
    fig.update_layout(
        title=title,
        height=340,
        margin={"l": 50, "r": 10, "t": 40 if title else 10, "b": 40},
        uirevision=uirevision,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


# --------------------------------------------------------------------------------- stability map
def _axis_positions(values: Sequence[float]) -> tuple[np.ndarray, list[str]]:
    """log10 positions of grid values (∞ one step above the largest finite value) and tick labels."""
    finite = [v for v in values if math.isfinite(v)]
    logs = np.log10(finite) if finite else np.zeros(0)
    step = float(np.min(np.diff(np.sort(logs)))) if len(logs) > 1 else 1.0
    top = (float(np.max(logs)) if len(logs) else 0.0) + step
    pos = np.array([math.log10(v) if math.isfinite(v) else top for v in values])
    return pos, [label_L(v) for v in values]


def stability_heatmap(
    Ls: Sequence[float],
    dts: Sequence[float],
    quality: np.ndarray,
    outcome: np.ndarray,
    diverged_at: np.ndarray,
    *,
    quality_label: str = "W₂ to target",
    lines: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    selected: int | None = None,
    uirevision: str = "stability",
) -> go.Figure:
    """Heat map over log Δt (x) × log L (y): colour = log10 of the quality number (final distance to the
    target; diverged and unfinished cells blank), a symbol per cell (✓ converged, → still moving,
    ✗ diverged with its time), dashed lines of constant LΔt. A marker trace over the cell centres carries
    each cell's index (row-major i_L · n_dt + i_dt) in ``customdata`` for click selection."""
    n_L, n_dt = len(Ls), len(dts)
    y, y_text = _axis_positions(Ls)
    x, _ = _axis_positions(dts)
    q = np.asarray(quality, dtype=np.float64)
    code = np.asarray(outcome, dtype=np.float64)
    when = np.asarray(diverged_at, dtype=np.float64)
    shown = np.where((code != 2) & np.isfinite(q) & (q > 0), q, np.nan)
    z = np.log10(shown)
    text = np.full((n_L, n_dt), "…", dtype=object)
    symbols = {0: Outcome.CONVERGED, 1: Outcome.MOVING, 2: Outcome.DIVERGED}
    for i in range(n_L):
        for j in range(n_dt):
            if not np.isfinite(code[i, j]):
                continue
            out = symbols[int(code[i, j])]
            if out is Outcome.DIVERGED:
                text[i, j] = f"✗ t={fmt(when[i, j], 3)}"
            else:
                text[i, j] = f"{out.symbol} {fmt(q[i, j], 2)}"
    finite_z = z[np.isfinite(z)]
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=x,
            y=y,
            z=z,
            zmin=float(finite_z.min()) if finite_z.size else None,
            zmax=float(finite_z.max()) if finite_z.size else None,
            colorscale="Viridis",
            reversescale=True,
            colorbar={"title": {"text": f"log₁₀ {quality_label}"}},
            text=text,
            texttemplate="%{text}",
            textfont={"size": 11},
            hoverinfo="skip",
            xgap=2,
            ygap=2,
        )
    )
    # diverged cells: a red layer under the text
    red = np.where(code == 2, 1.0, np.nan)
    if np.isfinite(red).any():
        fig.add_trace(
            go.Heatmap(
                x=x,
                y=y,
                z=red,
                colorscale=[[0, "rgba(214,39,40,0.55)"], [1, "rgba(214,39,40,0.55)"]],
                showscale=False,
                text=np.where(code == 2, text, ""),
                texttemplate="%{text}",
                textfont={"size": 11, "color": "white"},
                hoverinfo="skip",
                xgap=2,
                ygap=2,
            )
        )
    # lines of constant LΔt: log L = log c − log Δt
    x_lo, x_hi = float(x.min()) - 0.5, float(x.max()) + 0.5
    y_lo, y_hi = float(y.min()) - 0.5, float(y.max()) + 0.5
    for c in lines:
        xs = np.linspace(x_lo, x_hi, 50)
        ys = math.log10(c) - xs
        keep = (ys >= y_lo) & (ys <= y_hi)
        if not keep.any():
            continue
        fig.add_trace(
            go.Scatter(
                x=xs[keep],
                y=ys[keep],
                mode="lines",
                line={"dash": "dash", "color": "rgba(255,255,255,0.9)", "width": 1.5},
                name=f"LΔt = {c:g}",
                hoverinfo="name",
                showlegend=False,
            )
        )
        i_end = int(np.nonzero(keep)[0][-1])
        fig.add_annotation(
            x=float(xs[i_end]),
            y=float(ys[i_end]),
            text=f"LΔt={c:g}",
            showarrow=False,
            font={"size": 10, "color": "white"},
            bgcolor="rgba(0,0,0,0.45)",
            xanchor="right",
            yanchor="bottom",
        )
    # clickable cell centres
    xx, yy = np.meshgrid(x, y)
    idx = np.arange(n_L * n_dt).reshape(n_L, n_dt)
    hover = []
    for i in range(n_L):
        for j in range(n_dt):
            state = text[i, j]
            hover.append(
                f"L = {label_L(Ls[i])}, Δt = {dts[j]:.3g}, LΔt = {Ls[i] * dts[j]:.3g}<br>{state}"
                f"<br>{quality_label}: {fmt(q[i, j])}"
            )
    sizes = np.full(n_L * n_dt, 14.0)
    line_w = np.zeros(n_L * n_dt)
    if selected is not None and 0 <= selected < n_L * n_dt:
        line_w[selected] = 3.0
        sizes[selected] = 26.0
    fig.add_trace(
        go.Scatter(
            x=xx.ravel(),
            y=yy.ravel(),
            mode="markers",
            marker={
                "size": sizes,
                "color": "rgba(0,0,0,0.01)",
                "symbol": "square",
                "line": {"color": "white", "width": line_w},
            },
            customdata=idx.ravel(),
            hovertext=hover,
            hoverinfo="text",
            name="cells",
            showlegend=False,
        )
    )
    fig.update_xaxes(
        title="time step Δt", tickvals=list(x), ticktext=[f"{v:.3g}" for v in dts], range=[x_lo, x_hi]
    )
    fig.update_yaxes(title="Lipschitz constant L", tickvals=list(y), ticktext=y_text, range=[y_lo, y_hi])
    fig.update_layout(
        height=520,
        margin={"l": 60, "r": 10, "t": 20, "b": 50},
        uirevision=uirevision,
        clickmode="event+select",
    )
    return fig


def stability_figure(
    result: StabilityResult,
    metric: str = "w2",
    *,
    selected: int | None = None,
    lines: Sequence[float] | None = None,
) -> go.Figure:
    """:func:`stability_heatmap` of a (possibly unfinished) StabilityResult."""
    label = {"w2": "W₂ to target", "sinkhorn": "Sinkhorn divergence"}.get(metric, metric)
    grid = result.grid
    if lines is None:
        prods = [L * dt for L in grid.Ls for dt in grid.dts if math.isfinite(L)]
        lo, hi = (min(prods), max(prods)) if prods else (0.01, 10.0)
        lines = [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    return stability_heatmap(
        grid.Ls,
        grid.dts,
        result.matrix(metric),
        result.matrix("outcome"),
        result.matrix("diverged_at"),
        quality_label=label,
        lines=lines,
        selected=selected,
    )


def stability_table(result: StabilityResult, metric: str = "w2") -> pd.DataFrame:
    """One row per cell: L, Δt, LΔt, steps, outcome, diverged at, final kinetic energy and divergence,
    and the metric (empty for unfinished cells)."""
    rows: list[dict[str, Any]] = []
    for cell, res in zip(result.grid.cells, result.cells, strict=True):
        row: dict[str, Any] = {
            "cell": cell.index,
            "L": label_L(cell.L),
            "Δt": cell.dt,
            "LΔt": cell.L_dt,
            "steps": cell.steps,
        }
        if res is None:
            row.update({"outcome": "…", "diverged at t": None, "kinetic energy": None, "divergence": None})
            row[metric] = None
        else:
            s = res.run.summary
            row.update(
                {
                    "outcome": res.outcome.value,
                    "diverged at t": s.diverged_at,
                    "kinetic energy": s.kinetic_energy,
                    "divergence": s.divergence,
                    metric: res.metrics.get(metric, math.nan),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- heavy tails
def heavy_tail_table(result: HeavyTailResult) -> pd.DataFrame:
    """Table 1 as measured: per case, divergence and numerics, how many seeds diverged and when, the final
    divergence (median and range over the others), the largest argument of exp against float32's limit,
    and the paper's one-run outcome."""
    rows = []
    for r in result.rows():
        times = r["diverged_at"]
        if r["done"] == 0:
            outcome = "…"
        elif times:
            when = ", ".join(fmt(t, 3) for t in times[:4]) + (" …" if len(times) > 4 else "")
            outcome = f"{r['diverged']}/{r['done']} diverged (t = {when})"
        else:
            outcome = f"0/{r['done']} diverged"
        med = r["final_divergence_median"]
        final = (
            f"{fmt(med)} [{fmt(r['final_divergence_min'], 2)}, {fmt(r['final_divergence_max'], 2)}]"
            if math.isfinite(med)
            else "—"
        )
        rows.append(
            {
                "case": r["case"],
                "source P₀": r["source"],
                "target Q": r["target"],
                "f": r["f"],
                "numerics": r["numerics"],
                "outcome over seeds": outcome,
                "final D (median [min, max])": final,
                "order": order_of_magnitude(med)
                if math.isfinite(med) and med > 0
                else ("< 0" if med <= 0 else "—"),
                "max φ(X)−ν (limit 88.7)": fmt(r["peak_exp_arg"], 4),
                "paper (one run)": r["paper"],
                "done": f"{r['done']}/{r['seeds']}",
            }
        )
    return pd.DataFrame(rows)


def exp_gauge_figure(
    histories: Sequence[dict[str, np.ndarray]],
    labels: Sequence[str],
    *,
    limit: float = FLOAT32_EXP_LIMIT,
    diverged_at: Sequence[float | None] | None = None,
) -> go.Figure:
    """The overflow gauge (largest argument of f* over the target, ``max_exp_arg``) against time, one
    curve per seed, with the float32 exp limit as a red line."""
    fig = curves_figure(
        histories,
        labels,
        "max_exp_arg",
        y_label="max_j φ(X_j) − ν",
        log_y=False,
        diverged_at=diverged_at,
        uirevision="gauge",
    )
    fig.add_hline(
        y=limit,
        line={"color": "#d62728", "dash": "dot"},
        annotation_text=f"exp overflows beyond {limit:.1f}",
        annotation_position="top left",
    )
    return fig
