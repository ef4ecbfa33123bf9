"""Figures of the latent-space integration (paper §9, Fig. 8): the encoder's scree plot and reconstruction
error, per-label GPA curves, and 2-D views of the samples coloured by study or label. Pure functions of
arrays and results (no Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from gpa_core.plots.studies import curves_figure

if TYPE_CHECKING:
    from gpa_core.genes.encoder import PCAEncoder

#: colours of the two studies in the 2-D views
STUDY_COLORS = {"source": "#d62728", "target": "#1f77b4"}
#: colours of the labels, in order of first appearance (repeated past six labels)
LABEL_COLORS = ("#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def scree_figure(encoder: PCAEncoder, chosen: int) -> go.Figure:
    """Explained-variance ratio per component (bars) and its cumulative sum (a line on a second axis) of
    a fitted encoder, over the first ``max(100, 2 · chosen)`` components; a dashed line after d′ =
    ``chosen``."""
    s = encoder.scree()
    shown = int(min(s["component"].shape[0], max(100, 2 * chosen)))
    s = {k: v[:shown] for k, v in s.items()}
    fig = go.Figure()
    fig.add_bar(x=s["component"], y=s["ratio"], name="per component", marker_color="#1f77b4")
    fig.add_scatter(x=s["component"], y=s["cumulative"], name="cumulative", mode="lines", yaxis="y2")
    fig.add_vline(x=chosen + 0.5, line_dash="dash", line_color="grey")
    fig.update_layout(
        title=f"Scree plot (explained variance, first {shown} components)",
        height=300,
        margin={"l": 50, "r": 50, "t": 40, "b": 40},
        xaxis_title="component",
        yaxis_title="ratio",
        yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.02], "title": "cumulative"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def reconstruction_figure(encoder: PCAEncoder, chosen: int) -> go.Figure:
    """Relative reconstruction error of the standardized data against d′ (exact, from the spectrum of a
    fitted encoder); a dashed line at d′ = ``chosen``."""
    ds, err = encoder.reconstruction_error()
    fig = go.Figure(go.Scatter(x=ds, y=err, mode="lines+markers", marker={"size": 3}))
    fig.add_vline(x=chosen, line_dash="dash", line_color="grey")
    fig.update_layout(
        title="Reconstruction error vs d′",
        height=300,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        xaxis_title="d′",
        yaxis_title="‖X − P X‖ / ‖X‖",
        yaxis={"range": [0, 1.02]},
    )
    return fig


def label_curves_figure(
    histories: Mapping[str, Mapping[str, np.ndarray]], field: str, title: str, log_y: bool
) -> go.Figure:
    """One curve per label (``histories``: label → a GPA history with ``time`` and ``field``) against
    physical time, titled and labelled ``title``; the y axis logarithmic if ``log_y``."""
    labels = list(histories)
    fig = curves_figure(
        [histories[k] for k in labels],
        [f"label {k}" for k in labels],
        field,
        title=title,
        y_label=title,
        log_y=log_y,
        uirevision=f"lat_{field}",
    )
    fig.update_layout(height=300)
    return fig


def embedding_figure(xy: np.ndarray, groups: np.ndarray, title: str, colors: Mapping[str, str]) -> go.Figure:
    """A 2-D scatter of the rows of ``xy`` (n × 2), one trace per group of ``groups`` (n names, in order of
    first appearance) coloured by ``colors`` (group → colour; Plotly's own where absent); no tick
    labels (the axes of UMAP and PCA views have no units)."""
    fig = go.Figure()
    for g in dict.fromkeys(groups.tolist()):
        m = groups == g
        fig.add_scattergl(
            x=xy[m, 0],
            y=xy[m, 1],
            mode="markers",
            name=str(g),
            marker={"size": 5, "color": colors.get(str(g)), "opacity": 0.75},
        )
    fig.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=330,
        margin={"l": 30, "r": 10, "t": 40, "b": 30},
        legend={"orientation": "h", "y": -0.12},
        xaxis={"showticklabels": False},
        yaxis={"showticklabels": False},
    )
    return fig


def label_colors(labels: np.ndarray) -> dict[str, str]:
    """A colour of :data:`LABEL_COLORS` for each distinct label, in order of first appearance."""
    return {
        str(lab): LABEL_COLORS[k % len(LABEL_COLORS)] for k, lab in enumerate(dict.fromkeys(labels.tolist()))
    }
