"""Figures of the divergence lab: the exact D_f^{Γ_L}(P‖Q) over all L-Lipschitz φ
(:mod:`gpa_core.algorithm.exact`) beside the spectrally normalized network's estimate, over L.

Pure functions of NumPy data (no Streamlit), testable without a browser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

EXACT_COLOR = "#1f77b4"
NETWORK_COLOR = "#d62728"
BOUND_COLOR = "rgba(120, 120, 120, 0.8)"

#: The columns of :func:`lab_table` and their printf formats.
TABLE_FORMATS: dict[str, str] = {
    "L": "%.4g",
    "exact": "%.6g",
    "network": "%.6g",
    "network / exact (%)": "%.1f",
    "L·W₁": "%.6g",
    "exact: s": "%.2f",
    "network: s": "%.1f",
}


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([math.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=float)


def ratio_percent(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """100 · network / exact per row (NaN where either is missing or the exact value is 0)."""
    exact, network = _values(rows, "exact"), _values(rows, "network")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(exact > 0, 100.0 * network / exact, math.nan)


def lab_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per L: the exact value, the network's estimate, their ratio, L·W₁ (eq. 1.3's upper
    bound) and the seconds each took (the columns of :data:`TABLE_FORMATS`, plus the solver)."""
    ratio = ratio_percent(rows)
    return pd.DataFrame(
        {
            "L": _values(rows, "L"),
            "exact": _values(rows, "exact"),
            "network": _values(rows, "network"),
            "network / exact (%)": ratio,
            "L·W₁": _values(rows, "bound"),
            "exact: s": _values(rows, "exact_seconds"),
            "network: s": _values(rows, "network_seconds"),
            "solver": [str(r.get("solver") or "") for r in rows],
        }
    )


def exact_vs_network_figure(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> go.Figure:
    """Two panels over L (log axis). Top: the exact D_f^{Γ_L} (all L-Lipschitz φ), the network's
    estimate and, where given, L·W₁(P, Q) — the bound of eq. (1.3) that the exact value meets as L → 0.
    Bottom: network / exact in per cent. ``rows``: dicts with ``L``, ``exact``, ``network`` and
    optionally ``bound`` (missing values, e.g. while computing, are left out of the lines)."""
    L = _values(rows, "L")
    exact, network, bound = _values(rows, "exact"), _values(rows, "network"), _values(rows, "bound")
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06,
        subplot_titles=("divergence D(P‖Q) over L", "network / exact"),
    )  # fmt: skip
    line = {"mode": "lines+markers"}
    if np.isfinite(bound).any():
        fig.add_trace(
            go.Scatter(x=L, y=bound, name="L·W₁ (eq. 1.3 bound)", line={"color": BOUND_COLOR, "dash": "dot"},
                       **line),
            row=1, col=1,
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=L, y=exact, name="exact: all L-Lipschitz φ", line={"color": EXACT_COLOR}, **line),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=L, y=network, name="network estimate", line={"color": NETWORK_COLOR}, **line),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=L, y=ratio_percent(rows), name="network / exact", showlegend=False,
                   line={"color": NETWORK_COLOR}, **line),
        row=2, col=1,
    )  # fmt: skip
    fig.add_hline(y=100.0, line={"color": BOUND_COLOR, "dash": "dot"}, row=2, col=1)
    fig.update_xaxes(type="log", title_text="L", row=2, col=1)
    fig.update_xaxes(type="log", row=1, col=1)
    fig.update_yaxes(title_text="D", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="%", range=[0, 105], row=2, col=1)
    fig.update_layout(
        title=title or None, height=560, margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": 1.12, "x": 0}, uirevision="lab",
    )  # fmt: skip
    return fig
