"""Tests for gpa_core.plots.latent: the latent page's figures, built from a small fitted encoder and
arrays (no Streamlit, no browser)."""

from __future__ import annotations

import numpy as np
import pytest

from gpa_core.genes.encoder import PCAEncoder
from gpa_core.plots import latent as plots


@pytest.fixture(scope="module")
def encoder() -> PCAEncoder:
    rng = np.random.default_rng(0)
    source, target = rng.normal(0, 1, (20, 40)), rng.normal(1, 2, (25, 40))
    return PCAEncoder(5, standardize=True).fit(source, target)


def test_scree_figure_bars_cumulative_and_d_prime(encoder: PCAEncoder) -> None:
    fig = plots.scree_figure(encoder, 5)
    assert [t.type for t in fig.data] == ["bar", "scatter"]
    bars, cumulative = fig.data
    n = encoder.scree()["component"].shape[0]  # fewer than 100: every component is shown
    assert len(bars.x) == n and list(bars.x[:3]) == [1, 2, 3]
    np.testing.assert_allclose(cumulative.y, np.cumsum(bars.y))
    assert cumulative.yaxis == "y2" and fig.layout.yaxis2.title.text == "cumulative"
    assert fig.layout.xaxis.title.text == "component" and fig.layout.yaxis.title.text == "ratio"
    assert f"first {n} components" in fig.layout.title.text
    (line,) = fig.layout.shapes
    assert line.x0 == 5.5 and line.line.dash == "dash"


def test_reconstruction_figure_falls_to_zero(encoder: PCAEncoder) -> None:
    fig = plots.reconstruction_figure(encoder, 3)
    (trace,) = fig.data
    y = np.asarray(trace.y)
    assert np.all(np.diff(y) <= 1e-12) and y[-1] == pytest.approx(0.0, abs=1e-6)
    assert fig.layout.xaxis.title.text == "d′" and fig.layout.yaxis.title.text == "‖X − P X‖ / ‖X‖"
    assert fig.layout.shapes[0].x0 == 3


def test_label_curves_one_curve_per_label() -> None:
    t = np.linspace(0, 1, 5)
    histories = {"ER+": {"time": t, "kinetic_energy": t + 1}, "ER-": {"time": t, "kinetic_energy": 2 * t}}
    fig = plots.label_curves_figure(histories, "kinetic_energy", "kinetic energy (3.3)", True)
    assert [t.name for t in fig.data] == ["label ER+", "label ER-"]
    assert (
        fig.layout.title.text == "kinetic energy (3.3)"
        and fig.layout.yaxis.title.text == "kinetic energy (3.3)"
    )
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "physical time t"
    assert np.isnan(fig.data[1].y[0])  # a zero on a log axis is left out
    assert fig.layout.height == 300 and fig.layout.uirevision == "lat_kinetic_energy"


def test_embedding_figure_one_trace_per_group_in_order() -> None:
    xy = np.arange(12.0).reshape(6, 2)
    groups = np.array(["target", "source", "target", "source", "source", "target"])
    fig = plots.embedding_figure(xy, groups, "GPA: by study", plots.STUDY_COLORS)
    assert [t.type for t in fig.data] == ["scattergl", "scattergl"]
    assert [t.name for t in fig.data] == ["target", "source"]  # order of first appearance
    np.testing.assert_array_equal(fig.data[1].x, [2.0, 6.0, 8.0])
    assert fig.data[0].marker.color == plots.STUDY_COLORS["target"]
    assert fig.layout.title.text == "GPA: by study" and fig.layout.xaxis.showticklabels is False


def test_label_colors_cycle_in_order_of_appearance() -> None:
    labels = np.array(["b", "a", "b", *(f"x{k}" for k in range(6))])
    colors = plots.label_colors(labels)
    assert list(colors)[:2] == ["b", "a"]
    assert colors["b"] == plots.LABEL_COLORS[0] and colors["a"] == plots.LABEL_COLORS[1]
    assert colors["x4"] == plots.LABEL_COLORS[0]  # the seventh label takes the first colour again
