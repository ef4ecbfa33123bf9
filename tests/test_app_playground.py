"""Streamlit AppTest for app.py and the playground page: loading, presets, controls, live changes,
links (query parameters) and bad uploads that must leave the current run untouched."""

from __future__ import annotations

import io
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from hypothesis import given, settings
from hypothesis import strategies as st_h
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 120


def _runner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gpa-runner" and t.is_alive()]


@pytest.fixture
def app():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    yield at
    runner = at.session_state["pg.runner"] if "pg.runner" in at.session_state else None
    st.cache_resource.clear()  # fires on_release for the session's runners, as a closed tab would
    if runner is not None:
        assert runner.closed and not runner.alive
    for t in _runner_threads():
        t.join(5)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _upload(app: AppTest, side: str, filename: str, content: bytes, mime: str = "text/csv") -> None:
    """Choose "upload" for ``side`` ("src" or "tgt") and upload ``content`` as ``filename``."""
    app.selectbox(key=f"pg:{side}").set_value("upload")
    _run(app)
    app.file_uploader(key=f"pg:{side}_upload").set_value((filename, content, mime))
    _run(app)


def _status(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**step n ="))


def test_app_opens_on_the_playground(app: AppTest) -> None:
    _run(app)
    assert app.title[0].value == "Particle flow"
    assert app.button(key="pg:play").label == "Play"
    assert {"Step", "Reset"} <= {b.label for b in app.button}
    assert _status(app).startswith("**step n = 0**")
    runner = app.session_state["pg.runner"]
    snap = runner.snapshot()
    # the opening run: Gaussian → the four wells with L = 1 (Fig. 2–3)
    assert snap.configs[0].L == 1.0 and snap.M == 200 and snap.d == 2
    assert not runner.alive  # nothing runs until asked
    assert len(app.get("plotly_chart")) == 2
    assert app.query_params["source"] == "gaussian:mean=0.0,std=0.5"
    assert app.query_params["L"] == "1.0"
    assert not app.error


def test_play_pause_step_and_reset(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    app.button(key="pg:step").click()
    _run(app)
    assert runner.snapshot().n == 1
    assert _status(app).startswith("**step n = 1**")
    # one step per frame: the compiled path would otherwise finish the 500 steps within a rerun
    app.select_slider(key="pg:speed").set_value(1)
    app.button(key="pg:play").click()
    _run(app)
    assert runner.playing and app.button(key="pg:pause").label == "Pause"
    assert not [b for b in app.button if b.label == "Play"]
    app.button(key="pg:pause").click()
    _run(app)
    assert not runner.playing and app.button(key="pg:play").label == "Play"
    app.button(key="pg:reset").click()
    _run(app)
    assert runner.snapshot().n == 0


def test_preset_applies(app: AppTest) -> None:
    _run(app)
    app.button(key="pg:preset:fig4-heavy-tails:1").click()
    _run(app)
    runner = app.session_state["pg.runner"]
    cfg = runner.configs[0]
    assert (cfg.f, cfg.alpha, cfg.L, cfg.steps) == ("alpha", 2.0, 1.0, 1000)
    assert app.session_state["pg:src"] == "gaussian" and app.session_state["pg:src.gaussian.mean"] == 10.0
    assert app.session_state["pg:tgt"] == "student_t"
    snap = runner.wait_idle()
    assert snap.n == 0 and abs(snap.particles[0].mean() - 10.0) < 0.5
    assert any("Fig. 4" in e.label for e in app.expander)
    assert app.query_params["f"] == "alpha"


def test_a_rivals_preset_runs_its_gpa_members_here(app: AppTest) -> None:
    """The rival-flow presets list GPA members too: the playground runs those (the rivals run on the
    compare page); here GPA at L = ∞ toward the far target N((6, 6), 0.5²I)."""
    _run(app)
    app.button(key="pg:preset:rivals-far-target:1").click()
    _run(app)
    cfg = app.session_state["pg.runner"].configs[0]
    assert (cfg.L, cfg.steps, cfg.dt) == (math.inf, 400, 0.5)
    assert app.session_state["pg:tgt"] == "gaussian" and app.session_state["pg:tgt.gaussian.mean"] == 6.0
    assert any("Rival flows" in e.label for e in app.expander)


def test_live_change_keeps_particles(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    app.button(key="pg:step").click()
    _run(app)
    before = runner.snapshot()
    app.number_input(key="pg:dt").set_value(0.25)
    _run(app)
    after = runner.wait_idle()
    assert after.configs[0].dt == 0.25
    assert after.run_id == before.run_id and after.n == 1  # not reset
    np.testing.assert_array_equal(after.particles, before.particles)
    assert "live" in after.message
    app.text_input(key="pg:hidden").input("16, 16")
    _run(app)
    after = runner.wait_idle()
    assert after.n == 0 and after.configs[0].hidden == (16, 16) and "reset" in after.message


def test_bad_flow_setting_keeps_run(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    app.text_input(key="pg:hidden").input("32, lots")
    _run(app)
    assert any("hidden widths must be whole numbers" in e.value for e in app.error)
    assert runner.configs[0].hidden == (32, 32, 32)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _pickle_as_npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([_Evil(), 1], dtype=object), allow_pickle=True)
    return buf.getvalue()


BAD_UPLOADS = {
    "text in a numeric column": ("points.csv", b"x,y\n1,2\n3,abc\n5,6\n", "row 3"),
    "NaN": ("points.csv", b"1,2\nnan,4\n5,6\n", "NaN"),
    "one row": ("points.csv", b"1,2\n", "at least 2 points"),
    "a 10^6-column file": ("wide.csv", (",".join(["1"] * 1_000_000) + "\n").encode() * 2, "columns"),
    "a pickle disguised as .npy": ("points.npy", _pickle_as_npy(), "pickle"),
    "an image that is not an image": ("photo.png", b"this is not a PNG at all", "not an image"),
    "an empty file": ("points.csv", b"", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_upload_shows_error_and_keeps_run(app: AppTest, case: str) -> None:
    filename, content, expected = BAD_UPLOADS[case]
    _run(app)
    runner = app.session_state["pg.runner"]
    before = runner.snapshot()
    app.selectbox(key="pg:src").set_value("upload")
    _run(app)
    assert any("Upload a file" in i.value for i in app.info)
    app.file_uploader(key="pg:src_upload").set_value((filename, content, "application/octet-stream"))
    _run(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1, errors
    assert expected.lower() in errors[0].lower(), errors[0]
    after = runner.snapshot()
    assert after.run_id == before.run_id  # the run was left alone
    np.testing.assert_array_equal(after.particles, before.particles)


def test_upload_over_the_size_limit(app: AppTest, monkeypatch) -> None:
    import ui.uploads as ui

    monkeypatch.setattr(ui, "MAX_UPLOAD_BYTES", 1000)  # the same check, with a limit a test can afford
    _run(app)
    runner = app.session_state["pg.runner"]
    run_id = runner.snapshot().run_id
    _upload(app, "tgt", "big.csv", b"1,2\n" * 400)
    assert len(app.error) == 1 and "upload limit" in app.error[0].value
    assert runner.snapshot().run_id == run_id


def test_good_uploads_replace_the_data(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    pts = np.random.default_rng(0).normal(5, 1, (150, 2))
    _upload(app, "tgt", "mine.npy", _npy(pts), "application/octet-stream")
    assert not app.error
    snap = runner.wait_idle()
    assert snap.N == 150 and "new data" in snap.message
    np.testing.assert_allclose(snap.target[0], pts)

    from PIL import Image, ImageDraw

    img = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(img).rectangle([10, 10, 30, 30], fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    _upload(app, "src", "square.png", buf.getvalue(), "image/png")
    assert not app.error
    snap = runner.wait_idle()
    assert snap.M == 200 and snap.particles.shape == (1, 200, 2)


def test_an_upload_sets_the_dimension(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    pts = np.random.default_rng(1).normal(0, 1, (90, 3))
    csv = "x,y,z\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in pts) + "\n"
    _upload(app, "tgt", "cloud.csv", csv.encode())
    assert not app.error
    snap = runner.wait_idle()
    assert snap.d == 3 and snap.N == 90 and snap.M == 200  # the Gaussian source follows the upload's d
    assert any("d = 3" in c.value for c in app.caption)


def test_link_reopens_a_run() -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(
        {
            "source": "gaussian:mean=1.0,std=0.5",
            "target": "sierpinski:level=2",
            "M": "120",
            "L": "inf",
            "dt": "0.25",
        }
    )
    at.query_params["steps"] = "bad"
    try:
        _run(at)
        cfg = at.session_state["pg.runner"].configs[0]
        assert cfg.L == float("inf") and cfg.dt == 0.25 and cfg.steps == 500  # default kept for steps
        assert cfg.kl_form == "lt"  # a link lists non-defaults only: the rest are FlowConfig's defaults
        assert at.session_state["pg.runner"].snapshot().M == 120
        warnings = [w.value for w in at.warning]
        assert any("steps=bad" in w for w in warnings)
    finally:
        st.cache_resource.clear()


def test_request_from_another_page() -> None:
    from gpa_core import FlowConfig
    from ui.query import playground_params

    params = playground_params(
        FlowConfig(L=10.0, f="alpha", alpha=3.0), source="gaussian:std=0.5", target="mixture", M=64, N=80
    )
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["playground_request"] = params
    try:
        _run(at)
        cfg = at.session_state["pg.runner"].configs[0]
        assert (cfg.L, cfg.f, cfg.alpha) == (10.0, "alpha", 3.0)
        snap = at.session_state["pg.runner"].snapshot()
        assert (snap.M, snap.N) == (64, 80)
    finally:
        st.cache_resource.clear()


def test_every_page_loads() -> None:
    import app as gpa_app

    existing = [path for path, *_ in gpa_app.PAGES if (ROOT / path).exists()]
    assert existing[0] == "pages/playground.py"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    try:
        _run(at)
        for page in existing:
            at.switch_page(page)
            _run(at)
            assert at.title or at.header, page
    finally:
        st.cache_resource.clear()


def test_stale_browser_cannot_undo_a_preset(app: AppTest) -> None:
    """A click from a page that has not drawn the preset yet carries the old widget values (and the
    old settings version in its URL): the preset must survive it."""
    _run(app)
    old_sv = app.query_params["sv"]
    app.button(key="pg:preset:fig2-3-mixture:2").click()  # L = 100
    _run(app)
    assert app.session_state["pg.runner"].configs[0].L == 100.0
    assert app.query_params["sv"] != old_sv
    # what a lagging browser sends: the old L, with the old version in its URL
    app.query_params["sv"] = old_sv
    app.select_slider(key="pg:L").set_value(1.0)
    _run(app)
    assert app.session_state["pg.runner"].configs[0].L == 100.0
    assert app.session_state["pg:L"] == 100.0
    # the same change from an up-to-date page is applied
    app.select_slider(key="pg:L").set_value(10.0)
    _run(app)
    assert app.session_state["pg.runner"].configs[0].L == 10.0


def test_runner_slots_stop_what_they_drop() -> None:
    """The session's runner holder: replacing a runner stops the old one, closing (the session's
    on_release) stops all. (AppTest gives every AppTest the same session id, so that two sessions get
    two runners is checked in the browser test, with two tabs.)"""
    from gpa_core import FlowConfig
    from gpa_core.engine.runner import Runner
    from ui.session import RunnerSlots

    rng = np.random.default_rng(0)
    data = (rng.normal(0, 1, (10, 2)), rng.normal(2, 1, (10, 2)), FlowConfig(hidden=(4,)))
    slots = RunnerSlots()
    first, second, other = Runner(*data), Runner(*data), Runner(*data)
    slots.put("playground", first)
    first.step_once(1)
    slots.put("playground", second)
    slots.put("compare", other)
    assert first.closed and not first.alive and slots.get("playground") is second
    slots.close()
    assert second.closed and other.closed and slots.get("compare") is None and len(slots) == 0


@settings(max_examples=40, deadline=None)
@given(
    L=st_h.sampled_from([0.3, 1.0, 3.0, 100.0, float("inf")]),
    dt=st_h.floats(1e-3, 5.0),
    steps=st_h.integers(1, 10_000),
    m=st_h.integers(1, 20),
    lr=st_h.sampled_from([1e-4, 5e-4, 1e-3, 3e-3]),
    f=st_h.sampled_from(["kl", "alpha", "reverse_kl", "js"]),
    alpha=st_h.floats(1.01, 20.0),
    hidden=st_h.lists(st_h.integers(1, 64), min_size=1, max_size=4),
    seed=st_h.integers(0, 2**31 - 1),
    M=st_h.integers(1, 20_000),
)
def test_link_round_trip(L, dt, steps, m, lr, f, alpha, hidden, seed, M) -> None:
    """Settings → query parameters → settings reproduce the same FlowConfig and data."""
    from gpa_core import FlowConfig
    from ui import playground_state

    cfg = FlowConfig(
        L=L, dt=dt, steps=steps, inner_steps=m, lr=lr, f=f, alpha=alpha, hidden=tuple(hidden), seed=seed
    )
    state = {**playground_state.default_state(), **playground_state.config_state(cfg), "M": M}
    query = playground_state.to_query(state)
    assert all(isinstance(v, str) for v in query.values())
    back, warnings = playground_state.from_query(query, playground_state.default_state())
    assert not warnings
    assert playground_state.config_from_state(back) == cfg
    assert back["M"] == M and back["src"] == state["src"] and back["tgt.mixture.std"] == 0.5


def _csv(rows: np.ndarray, header: str = "x,y") -> bytes:
    return (header + "\n" + "\n".join(",".join(f"{v:.6g}" for v in row) for row in rows) + "\n").encode()


_LINE = np.column_stack([np.random.default_rng(2).normal(0, 1, 60), np.full(60, 5.0)])
_GRID = np.repeat(np.stack(np.meshgrid(np.arange(4), np.arange(4)), -1).reshape(-1, 2), 3, axis=0)
DEGENERATE_UPLOADS = {
    # case: (side, file, content, a note under the upload, a note of the stability read-out)
    "all points identical (target)": (
        "tgt",
        "same.csv",
        _csv(np.full((40, 2), 5.0)),
        "Every row is the same point (5, 5)",
        "The target has no spread",
    ),
    "a constant column (source)": (
        "src",
        "line.csv",
        _csv(_LINE),
        "Column 2 ('y') is constant (every value is 5)",
        "Stability",
    ),
    "a grid with duplicates (source)": (
        "src",
        "grid.csv",
        _csv(_GRID),
        "32 of the 48 rows repeat an earlier row (16 distinct points)",
        "Particle spacing 0",
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE_UPLOADS))
def test_degenerate_upload_runs_and_says_why(app: AppTest, case: str) -> None:
    side, filename, content, note, readout = DEGENERATE_UPLOADS[case]
    _run(app)
    runner = app.session_state["pg.runner"]
    _upload(app, side, filename, content)
    assert not app.error, [e.value for e in app.error]
    shown = [w.value for w in app.warning] + [c.value for c in app.caption]
    assert any(note in text for text in shown), shown
    snap = runner.wait_idle()
    assert "new data" in snap.message
    app.button(key="pg:step").click()
    _run(app)
    assert runner.snapshot().n == 1 and runner.snapshot().state != "error"
    shown = [m.value for m in app.markdown] + [w.value for w in app.warning] + [c.value for c in app.caption]
    assert any(readout in text for text in shown), shown
    assert not app.error


def test_identical_points_are_refused_as_the_source(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    run_id = runner.snapshot().run_id
    _upload(app, "src", "same.csv", _csv(np.full((40, 2), 5.0)))
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("'same.csv' cannot be the source"), errors
    assert runner.snapshot().run_id == run_id


def test_upload_notes_are_shown_under_the_upload(app: AppTest) -> None:
    _run(app)
    runner = app.session_state["pg.runner"]
    pts = np.random.default_rng(3).normal(0, 1, (80, 2))
    pandas_csv = ",x,y\n" + "\n".join(f"{i},{a:.6f},{b:.6f}" for i, (a, b) in enumerate(pts)) + "\n"
    _upload(app, "tgt", "frame.csv", pandas_csv.encode())
    assert not app.error
    captions = [c.value for c in app.caption]
    assert "frame.csv: 80 points in 2 dimension(s)" in captions
    assert any(
        c.startswith("Dropped column 1 (no name in the header): it numbers the rows 0, 1") for c in captions
    )
    snap = runner.wait_idle()
    assert snap.d == 2 and snap.N == 80
    np.testing.assert_allclose(snap.target[0], pts, atol=1e-6)

    run_id = snap.run_id
    big = pts.copy()
    big[5, 1] = 1e300
    app.file_uploader(key="pg:tgt_upload").set_value(("big.csv", _csv(big), "text/csv"))
    _run(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("'big.csv' has 1 value that is beyond float32's range")
    assert "Rescale the data" in errors[0]
    assert runner.snapshot().run_id == run_id


def test_a_bad_image_upload_names_the_file(app: AppTest) -> None:
    _run(app)
    _upload(app, "src", "photo.png", b"x,y\n1,2\n3,4\n")
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("'photo.png' is not an image"), errors
    assert "upload it with the .csv" in errors[0]


def test_default_pace_is_watchable(app: AppTest) -> None:
    """The opening run goes at 5 steps per 0.2 s frame (500 steps in about 20 s), 'max' on request."""
    _run(app)
    assert app.select_slider(key="pg:speed").value == 5
    runner = app.session_state["pg.runner"]
    assert (runner._steps_per_frame, runner._frame_interval) == (5, 0.2)
    app.select_slider(key="pg:speed").set_value("max")
    _run(app)
    assert runner._steps_per_frame is None


def test_generated_particles_control_and_downloads(app: AppTest) -> None:
    _run(app)
    assert app.session_state["pg.runner"].snapshot().generated is None
    assert not [b for b in app.get("download_button") if "Generated" in b.proto.label]
    app.number_input(key="pg:G").set_value(150)
    _run(app)
    runner = app.session_state["pg.runner"]
    snap = runner.wait_idle()
    assert snap.generated.shape == (1, 150, 2) and snap.n == 0  # a new G: a new run
    assert len(snap.distances) == 1 and snap.distances.step[0] == 0
    # fresh samples of the source (data seed + 2), not the training particles
    assert not np.allclose(snap.generated[0][:10], snap.particles[0][:10])
    assert abs(snap.generated[0].std() - 0.5) < 0.1
    assert app.query_params["generated"] == "150"
    assert len(app.get("plotly_chart")) == 3  # particles, history and the W₂ figure
    labels = {b.proto.label for b in app.get("download_button")}
    assert {"Generated particles (CSV)", "Generated particles (NPY)", "W₂ over time (CSV)"} <= labels
    app.button(key="pg:step").click()
    _run(app)
    snap = runner.wait_idle()
    assert snap.n == 1 and list(snap.distances.step) == [0, 1]
    csv = snap.generated_csv().splitlines()
    assert csv[0] == "x1,x2" and len(csv) == 151
    app.number_input(key="pg:G").set_value(0)
    _run(app)
    assert app.session_state["pg.runner"].wait_idle().generated is None
    assert "generated" not in app.query_params


def test_stop_rule_widget(app: AppTest) -> None:
    _run(app)
    app.number_input(key="pg:stop_divergence").set_value(1e6)
    app.select_slider(key="pg:speed").set_value("max")
    _run(app)
    runner = app.session_state["pg.runner"]
    assert runner.configs[0].stop_divergence == 1e6
    assert app.query_params["stop_divergence"] == "1000000.0"
    app.button(key="pg:play").click()
    _run(app)
    assert _wait_until(lambda: runner.snapshot().state == "finished")
    assert runner.snapshot().status == ("stopped",)
    _run(app)
    assert any("D ≤ ε" in s.value for s in app.success)


def _wait_until(cond, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_request_with_generated_points_starts_playing() -> None:
    """What a lesson's button hands over: the run, generated points, a speed, and play at once."""
    from gpa_core import FlowConfig
    from ui.query import playground_params

    params = playground_params(FlowConfig(steps=40), source="gaussian:std=0.5", target="mixture", M=50, N=50)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["playground_request"] = {**params, "generated": "30", "speed": "max", "play": "1"}
    try:
        _run(at)
        runner = at.session_state["pg.runner"]
        assert at.session_state["pg:G"] == 30 and at.session_state["pg:speed"] == "max"
        assert _wait_until(lambda: runner.snapshot().n > 0)
        assert runner.snapshot().generated.shape == (1, 30, 2)
        assert "pg.autoplay" not in at.session_state
    finally:
        st.cache_resource.clear()
