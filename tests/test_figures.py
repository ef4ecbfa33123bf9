"""Tests for gpa_core.plots.flow: pure figure builders from runner snapshots (no browser)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpa_core import FlowConfig
from gpa_core.engine.runner import Runner
from gpa_core.engine.snapshot import Snapshot, nondegenerate_box
from gpa_core.plots import flow as plots
from gpa_core.plots import readout

CFG = FlowConfig(hidden=(8, 8), steps=1000, kl_form="dv", dt=0.5)


def _snapshot(d: int = 2, m: int = 30, n: int = 25, steps: int = 3, configs=None, **kwargs) -> Snapshot:
    rng = np.random.default_rng(1)
    r = Runner(rng.normal(0, 0.5, (m, d)), rng.normal(4, 0.5, (n, d)), configs or CFG, **kwargs)
    try:
        for _ in range(steps):
            r.step_once(1)
        return r.wait_idle()
    finally:
        r.stop()


@pytest.fixture(scope="module")
def snap2d() -> Snapshot:
    return _snapshot(trail_length=4, trail_particles=6)


def _types(fig: go.Figure) -> list[str]:
    return [t.type for t in fig.data]


def test_particles_2d_has_all_layers(snap2d: Snapshot) -> None:
    fig = plots.particles_figure(snap2d)
    assert _types(fig) == ["heatmap", "scatter", "scattergl", "scatter", "scattergl"]
    heat, arrows, target, trails, particles = fig.data
    assert heat.z.shape == snap2d.grid.phi.shape
    assert len(particles.x) == snap2d.M and len(target.x) == snap2d.N
    assert arrows.marker.symbol == "arrow"
    # fixed ranges from the data, equal aspect, a constant uirevision
    xr = fig.layout.xaxis.range
    assert xr[0] <= snap2d.particles[0, :, 0].min() and xr[1] >= snap2d.target[0, :, 0].max()
    assert fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.uirevision
    # trails: T points per particle then a gap
    assert len(trails.x) == 6 * 5 and np.isnan(np.asarray(trails.x, dtype=float)[4])


def _polylines(trace: go.Scatter) -> list[np.ndarray]:
    """The separate polylines a line trace draws: runs of finite points between NaN gaps."""
    xy = np.column_stack([np.asarray(trace.x, dtype=float), np.asarray(trace.y, dtype=float)])
    gaps = np.flatnonzero(~np.isfinite(xy).all(axis=1))
    runs = [run[np.isfinite(run).all(axis=1)] for run in np.split(xy, gaps)]
    return [run for run in runs if len(run)]


def test_each_particles_trail_is_its_own_polyline() -> None:
    """A trail joins only the positions of one particle. Stopped particles (flat segments) are where
    WebGL lines ignored the gaps and joined one particle's trail to the next across the plot, so the
    trace must be one that honours gaps (SVG scatter, connectgaps off)."""
    snap = _snapshot(trail_length=5, trail_particles=7)
    still = snap.trails.copy()
    still[:, 2] = still[-1, 2]  # particle 2 has not moved: its trail is a flat run of equal points
    snap = dataclasses.replace(snap, trails=still)
    trails = next(t for t in plots.particles_figure(snap).data if t.name == "trails")
    assert trails.type == "scatter" and trails.connectgaps is False and trails.mode == "lines"
    lines = _polylines(trails)
    P = still.shape[1]
    assert len(lines) == P
    for p, line in enumerate(lines):
        np.testing.assert_array_equal(line, still[:, p, :2].astype(np.float32))


def test_layers_can_be_switched_off(snap2d: Snapshot) -> None:
    fig = plots.particles_figure(
        snap2d, show_phi=False, show_arrows=False, show_trails=False, show_target=False
    )
    assert _types(fig) == ["scattergl"]


def test_spec_figure_matches_validated(snap2d: Snapshot) -> None:
    fast = plots.particles_figure(snap2d, validate=False)
    slow = plots.particles_figure(snap2d)
    assert isinstance(fast, plots.SpecFigure)
    a = json.loads(pio.to_json(fast, validate=False))
    b = json.loads(pio.to_json(slow, validate=False))
    assert [t["type"] for t in a["data"]] == [t["type"] for t in b["data"]]
    assert a["data"][-1]["x"] == b["data"][-1]["x"]  # same base64 payload
    assert a["layout"]["xaxis"]["range"] == b["layout"]["xaxis"]["range"]
    fast.validated()  # the spec is a valid Plotly figure
    # to_dict never alters the spec (base64 packing works on a copy)
    fast.to_dict()
    assert isinstance(fast.spec["data"][-1]["x"], np.ndarray)


def test_uirevision_stable_within_a_run() -> None:
    rng = np.random.default_rng(0)
    r = Runner(rng.normal(0, 1, (20, 2)), rng.normal(3, 1, (20, 2)), CFG)
    try:
        a = r.snapshot()
        r.step_once(2)
        b = r.wait_idle()
    finally:
        r.stop()
    assert b.version > a.version
    fa, fb = plots.particles_figure(a, validate=False), plots.particles_figure(b, validate=False)
    assert fa.spec["layout"]["uirevision"] == fb.spec["layout"]["uirevision"]
    assert fa.spec["layout"]["xaxis"]["range"] == fb.spec["layout"]["xaxis"]["range"]


def test_3d_and_projection_and_1d() -> None:
    s3 = _snapshot(d=3, steps=1)
    fig = plots.particles_figure(s3)
    assert _types(fig) == ["scatter3d", "scatter3d"]
    assert fig.layout.scene.zaxis.range is not None
    s5 = _snapshot(d=5, steps=1)
    fig = plots.particles_figure(s5)
    assert _types(fig) == ["scattergl", "scattergl"] and "PC1" in fig.layout.xaxis.title.text
    s1 = _snapshot(d=1, steps=1)
    assert _types(plots.particles_figure(s1)) == ["scattergl", "scattergl"]
    with pytest.raises(ValueError, match="member"):
        plots.particles_figure(s1, member=3)


def test_digits_figure() -> None:
    s = _snapshot(d=64, m=12, n=10, steps=1)
    fig = plots.digits_figure(s, n_images=8, cols=4)
    assert _types(fig) == ["heatmap", "heatmap"]
    assert fig.data[0].z.shape == (2 * 9 - 1, 4 * 9 - 1)
    with pytest.raises(ValueError, match="image_shape"):
        plots.digits_figure(s, image_shape=(7, 7))


def test_history_figure_log_axes_and_members() -> None:
    s = _snapshot(configs=[CFG, CFG.replace(L=10.0)], steps=4)
    fig = plots.history_figure(s)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis2.type == "log"
    names = {t.name for t in fig.data}
    assert names == {"L = 1", "L = 10"}
    assert all(np.all(np.asarray(t.x, dtype=float) > 0) for t in fig.data)  # t = 0 left out
    assert len(fig.data[0].x) == 3  # steps 1..3 (t > 0)


def test_history_marks_divergence(snap2d: Snapshot) -> None:
    s = dataclasses.replace(
        snap2d,
        status=("diverged",),
        diverged_at=(1.0,),
        reason=("the objective overflowed (largest argument of exp was 95; float32's limit is 88.7)",),
    )
    fig = plots.history_figure(s)
    assert any(t.mode == "markers" and t.marker.symbol == "x" for t in fig.data)
    kind, text = readout.banner(s)
    assert kind == "error"
    assert text == "Diverged at t = 1: the objective overflowed — try an α-divergence or a smaller L."


def test_banners(snap2d: Snapshot) -> None:
    assert readout.banner(snap2d) is None
    conv = dataclasses.replace(snap2d, status=("converged",))
    assert readout.banner(conv)[0] == "success" and "Converged" in readout.banner(conv)[1]
    done = dataclasses.replace(snap2d, finished=(True,))
    assert readout.banner(done)[0] == "info" and "Finished" in readout.banner(done)[1]
    err = dataclasses.replace(snap2d, state="error", error="OutOfMemoryError: boom")
    assert readout.banner(err)[0] == "error" and "boom" in readout.banner(err)[1]
    inf = dataclasses.replace(
        snap2d,
        status=("diverged",),
        diverged_at=(3.0,),
        reason=("particles ran away",),
        configs=(CFG.replace(L=math.inf, f="alpha"),),
    )
    assert "finite L" in readout.banner(inf)[1]


def test_stability_readout(snap2d: Snapshot) -> None:
    ro = readout.stability_readout(snap2d)
    cfg = snap2d.configs[0]
    assert ro.max_step == pytest.approx(cfg.L * cfg.dt)
    assert ro.cfl == pytest.approx(ro.max_grad / cfg.L)
    assert ro.realized_step == pytest.approx(ro.max_grad * cfg.dt)
    assert ro.nn_spacing > 0 and ro.data_scale > 0
    assert ro.steps_to_cross == pytest.approx(ro.distance / ro.max_step)
    assert len(ro.rows()) == 6 and ro.notes
    unreg = dataclasses.replace(snap2d, configs=(cfg.replace(L=math.inf),))
    ro = readout.stability_readout(unreg)
    assert ro.level == "warn" and math.isinf(ro.max_step) and "L = ∞" in ro.notes[0][1]
    big = dataclasses.replace(snap2d, configs=(cfg.replace(L=100.0),))
    assert readout.stability_readout(big).level == "warn"


def test_nearest_neighbour_spacing_on_a_lattice() -> None:
    g = np.stack(np.meshgrid(np.arange(10) * 0.5, np.arange(10) * 0.5), -1).reshape(-1, 2)
    assert plots.nearest_neighbour_spacing(g) == pytest.approx(0.5)
    assert math.isnan(plots.nearest_neighbour_spacing(np.zeros((1, 2))))


@settings(max_examples=60, deadline=None)
@given(
    shift=st.floats(-1e3, 1e3),
    scale=st.floats(1e-3, 1e3),
    runaway=st.floats(-1e12, 1e12),
)
def test_axis_ranges_hold_the_data(snap2d: Snapshot, shift: float, scale: float, runaway: float) -> None:
    parts = np.array(snap2d.particles, copy=True) * scale + shift
    tgt = np.array(snap2d.target) * scale + shift
    lo, hi = np.minimum(parts.min((0, 1)), tgt.min((0, 1))), np.maximum(parts.max((0, 1)), tgt.max((0, 1)))
    parts[0, 0, 0] = runaway
    s = dataclasses.replace(snap2d, particles=parts, target=tgt, extent=(lo, hi))
    (x0, x1), (y0, y1) = plots.axis_ranges(s)
    span = hi[0] - lo[0]
    assert x0 <= lo[0] and x1 >= hi[0] and y0 <= lo[1] and y1 >= hi[1]
    assert x1 - x0 <= 41 * span + 1e-9  # a runaway particle cannot squash the view
    assert all(math.isfinite(v) for v in (x0, x1, y0, y1))


def test_member_labels() -> None:
    assert plots.member_labels([CFG]) == ["KL, L = 1"]
    labels = plots.member_labels([CFG, CFG.replace(f="alpha", alpha=2.0), CFG.replace(f="alpha", alpha=10.0)])
    assert labels == ["KL", "α = 2", "α = 10"]
    assert plots.member_labels([CFG, CFG.replace(L=math.inf)]) == ["L = 1", "L = ∞"]


def test_animation_html_is_self_contained() -> None:
    rng = np.random.default_rng(0)
    r = Runner(rng.normal(0, 1, (15, 2)), rng.normal(3, 1, (15, 2)), CFG)
    try:
        for _ in range(3):
            r.step_once(2)
        r.wait_idle()
        frames = r.frames()
        snap = r.snapshot()
    finally:
        r.stop()
    fig = plots.animation_figure(frames, snap.target[0], extent=snap.extent)
    assert len(fig.frames) == len(frames) == 4
    assert fig.layout.updatemenus[0].buttons[0].label == "Play"
    html = plots.animation_html(fig)
    assert '<script src="https://cdn' not in html and "Plotly.newPlot" in html
    assert len(html) > 1_000_000  # plotly.js embedded
    with pytest.raises(ValueError, match="no frames"):
        plots.animation_figure([], snap.target[0])


# ---- degenerate data: zero spacing, zero spread ------------------------------------------------------------

_RNG = np.random.default_rng(7)
_GRID = np.repeat(np.stack(np.meshgrid(np.arange(3.0), np.arange(3.0)), -1).reshape(-1, 2), 4, axis=0)
DEGENERATE = {
    "all points identical": (np.full((30, 2), 5.0), np.full((25, 2), 5.0)),
    "identical source": (np.full((30, 2), 5.0), _RNG.normal(0, 1, (25, 2))),
    "point-mass target": (_RNG.normal(0, 1, (30, 2)), np.full((25, 2), 5.0)),
    "a constant column": (
        np.column_stack([_RNG.normal(size=30), np.full(30, 5.0)]),
        np.column_stack([_RNG.normal(size=25), np.full(25, 5.0)]),
    ),
    "a grid with duplicates": (_GRID, _GRID + 0.5),
    "identical at 1e6": (np.full((30, 2), 1e6), np.full((25, 2), 1e6)),
    "identical in 3-D": (np.full((20, 3), -2.0), np.full((20, 3), -2.0)),
    "identical in 5-D": (np.full((20, 5), 1.0), np.full((20, 5), 1.0)),
    "a constant column in 5-D": (
        np.column_stack([_RNG.normal(size=(20, 4)), np.zeros(20)]),
        np.column_stack([_RNG.normal(size=(20, 4)), np.zeros(20)]),
    ),
    "identical in 1-D": (np.full((20, 1), 3.0), np.full((20, 1), 3.0)),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_data_run_and_draw(case: str) -> None:
    source, target = DEGENERATE[case]
    r = Runner(source, target, CFG.replace(steps=20), trail_length=4, trail_particles=6)
    try:
        for _ in range(3):
            r.step_once(1)
        snap = r.wait_idle()
        frames = r.frames()
    finally:
        r.stop()
    assert snap.state != "error" and snap.n == 3, snap.error
    ro = readout.stability_readout(snap)  # spacing 0 and data scale 0 divided by before
    assert ro.rows() and ro.notes and all(text for _, text in ro.notes)
    for fig in (
        plots.particles_figure(snap),
        plots.particles_figure(snap, validate=False),
        plots.history_figure(snap),
    ):
        json.loads(pio.to_json(fig, validate=False))  # what the browser is sent
    layout = plots.particles_figure(snap).layout
    axes = [layout.scene.xaxis, layout.scene.yaxis, layout.scene.zaxis] if snap.d == 3 else [layout.xaxis]
    if snap.d != 3:
        axes.append(layout.yaxis)
    eps32 = float(np.finfo(np.float32).eps)
    for axis in axes:  # every axis is wide enough to show float32 positions apart (64 steps at least)
        lo, hi = axis.range
        assert math.isfinite(lo) and math.isfinite(hi)
        assert hi - lo > 64 * eps32 * max(1.0, abs(lo), abs(hi)), (case, axis.range)
    if frames:
        plots.animation_figure(frames, snap.target[0], extent=snap.extent)


def test_readout_explains_zero_spacing_and_zero_spread() -> None:
    source, target = DEGENERATE["all points identical"]
    r = Runner(source, target, CFG)
    try:
        snap = r.wait_idle()
    finally:
        r.stop()
    assert snap.spacing[0] == 0
    ro = readout.stability_readout(snap)
    assert ro.nn_spacing == 0 and ro.data_scale == 0
    texts = [text for _, text in ro.notes]
    assert any(
        t.startswith("The target has no spread (all its points coincide; data scale 0)") for t in texts
    )
    assert any(
        t.startswith("Particle spacing 0: at least half the particles sit exactly on another") for t in texts
    )
    assert ro.level == "warn"
    assert dict((q, v) for q, v, _ in ro.rows())["particle spacing"] == "0"
    inf = readout.stability_readout(dataclasses.replace(snap, configs=(CFG.replace(L=math.inf),)))
    assert math.isinf(inf.max_step) and inf.level == "warn"


def test_nondegenerate_box() -> None:
    lo, hi = nondegenerate_box(np.array([0.0, 5.0]), np.array([4.0, 5.0]))  # y is constant
    np.testing.assert_array_equal(lo, [0.0, 3.0])
    np.testing.assert_array_equal(hi, [4.0, 7.0])
    lo, hi = nondegenerate_box(np.array([2.0, 2.0]), np.array([2.0, 2.0]))  # a single point
    np.testing.assert_array_equal(hi - lo, [1.0, 1.0])
    lo, hi = nondegenerate_box(np.full(2, 1e6 - 1e-7), np.full(2, 1e6 + 1e-7))  # a point at 1e6
    np.testing.assert_allclose(hi - lo, [100.0, 100.0])
    assert (np.float32(lo) < np.float32(1e6)).all() and (np.float32(hi) > np.float32(1e6)).all()
    box = (np.array([-1.0, 0.0, 3.0]), np.array([1.0, 0.5, 3.5]))  # nothing degenerate: kept exactly
    for got, want in zip(nondegenerate_box(*box), box, strict=True):
        np.testing.assert_array_equal(got, want)


def test_data_extent_of_degenerate_clouds_is_a_usable_box() -> None:
    """The φ grid and the arrows are laid over the run's extent: a single repeated point or a constant
    coordinate must still give a box of real size (it was 1.6e-7 wide, so φ drew as a dot)."""
    from gpa_core.engine.snapshot import data_extent

    lo, hi = data_extent(np.full((40, 2), 5.0), np.full((30, 2), 5.0))
    assert np.all(hi - lo >= 1.0) and np.all(lo < 5.0) and np.all(hi > 5.0)
    line = np.column_stack([np.linspace(0, 4, 30), np.full(30, 2.0)])
    lo, hi = data_extent(line)
    assert hi[1] - lo[1] == pytest.approx(hi[0] - lo[0]) and lo[1] < 2.0 < hi[1]


def _generated_snapshot(d: int, steps: int = 3) -> Snapshot:
    rng = np.random.default_rng(2)
    from functools import partial

    from gpa_core.ot import wasserstein2

    w2 = partial(wasserstein2, max_points=400)
    return _snapshot(
        d=d, steps=steps, generated=rng.normal(0, 0.5, (17, d)), distance=w2, distance_interval=0.0
    )


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_generated_points_have_their_own_trace(d: int) -> None:
    snap = _generated_snapshot(d)
    fig = plots.particles_figure(snap)
    names = [t.name for t in fig.data]
    gen = fig.data[names.index("generated (G = 17)")]
    assert len(gen.x) == 17 and gen.marker.color == plots.GENERATED_COLOR
    assert gen.marker.symbol == "diamond"
    assert names[-1].startswith("particles")  # the trained particles stay on top
    if d == 2:
        np.testing.assert_allclose(np.asarray(gen.x, dtype=float), snap.generated[0, :, 0], rtol=1e-6)
    off = plots.particles_figure(snap, show_generated=False)
    assert "generated (G = 17)" not in [t.name for t in off.data]
    spec = plots.particles_figure(snap, validate=False).to_dict()
    assert any(t["name"] == "generated (G = 17)" for t in spec["data"])


def test_distances_figure() -> None:
    snap = _generated_snapshot(2, steps=4)
    fig = plots.distances_figure(snap)
    assert [t.name for t in fig.data] == ["generated (G = 17)", f"trained particles (M = {snap.M})"]
    assert len(fig.data[0].x) == len(snap.distances) == 5  # step 0 and each single step
    np.testing.assert_allclose(np.asarray(fig.data[0].y, dtype=float), snap.distances.generated, rtol=1e-6)
    assert "W₂" in fig.layout.title.text
    json.loads(pio.to_json(plots.distances_figure(snap, validate=False)))
    empty = plots.distances_figure(_snapshot(steps=1))
    assert not empty.data and "no generated points" in empty.layout.annotations[0].text


def test_stopped_banner() -> None:
    # any estimate is ≤ 1e6: the rule stops the run once its estimate has come down from its peak
    rng = np.random.default_rng(1)
    r = Runner(rng.normal(0, 0.5, (30, 2)), rng.normal(4, 0.5, (25, 2)), CFG.replace(stop_divergence=1e6))
    try:
        for _ in range(40):
            r.step_once(25)
            snap = r.wait_idle()
            if snap.status == ("stopped",):
                break
    finally:
        r.stop()
    assert snap.status == ("stopped",)
    kind, text = readout.banner(snap)
    assert kind == "success" and "D ≤ ε" in text and "augmented" in text
