"""The lessons page (pages/lessons.py, content in ui/lessons.py): every lesson shows its text, equation
and question; each button hands the playground a request that builds the lesson's run and starts it."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from ui import lessons, playground_state

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
LESSONS_PAGE = str(ROOT / "pages" / "lessons.py")
TIMEOUT = 120
RUNS = [(lesson.id, i) for lesson in lessons.LESSONS for i in range(len(lesson.runs))]


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_lessons_and_their_runs_are_valid() -> None:
    from gpa_core.studies.compare import compare_presets

    assert 4 <= len(lessons.LESSONS) <= 6
    titles = [x.title for x in lessons.LESSONS]
    assert "L is a speed limit (CFL)" in titles and "Generated particles" in titles
    assert "MMD vs Sinkhorn vs GPA" in titles
    comparisons = compare_presets()
    for lesson in lessons.LESSONS:
        assert lesson.text and lesson.equation and lesson.question
        # a run to start, a comparison to start, or a page to open
        assert bool(lesson.runs) + bool(lesson.comparisons) + bool(lesson.page) == 1
        for _, preset in lesson.comparisons:
            assert comparisons[preset].rivals and comparisons[preset].runs  # GPA beside the rival flows
        for run in lesson.runs:
            state = lessons.run_settings(run)
            playground_state.config_from_state(state)
            request = lessons.playground_request(run)
            assert request["play"] == "1" and request["speed"] == str(run.speed)
            back, warnings = playground_state.from_query(request, playground_state.default_state())
            assert warnings == [], (lesson.id, warnings)
            assert playground_state.config_from_state(back) == playground_state.config_from_state(state)
    # a lesson's run may take 15–30 s at its pace, not minutes
    for lesson in lessons.LESSONS:
        for run in lesson.runs:
            steps = lessons.run_settings(run)["steps"]
            assert 10 <= steps / int(run.speed) / 5 <= 40, (lesson.id, run.label)


def test_lessons_page_shows_every_lesson() -> None:
    at = AppTest.from_file(LESSONS_PAGE, default_timeout=TIMEOUT)
    _run(at)
    assert at.title[0].value == "Lessons"
    shown = [lesson for lesson in lessons.LESSONS if lesson.page is None or (ROOT / lesson.page).exists()]
    assert [h.value for h in at.subheader] == [f"{i}. {x.title}" for i, x in enumerate(shown, start=1)]
    assert len(at.get("latex")) == len(shown)
    labels = {b.label for b in at.button}
    assert all(run.label in labels for x in shown for run in x.runs)
    assert all(label in labels for x in shown for label, _ in x.comparisons)


@pytest.mark.parametrize(("lesson_id", "index"), RUNS)
def test_each_button_starts_its_run_in_the_playground(lesson_id: str, index: int) -> None:
    lesson = lessons.get_lesson(lesson_id)
    run = lesson.runs[index]
    page = AppTest.from_file(LESSONS_PAGE, default_timeout=TIMEOUT)
    _run(page)
    page.button(key=f"lesson:{lesson_id}:{index}").click()
    _run(page)  # outside the app, switching pages is not possible: the request is what it hands over
    request = page.session_state["playground_request"]
    assert request == lessons.playground_request(run)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["playground_request"] = request
    try:
        _run(at)
        runner = at.session_state["pg.runner"]
        assert runner.playing  # started by the button, no Play needed
        runner.pause()
        snap = runner.wait_idle()
        want = playground_state.config_from_state(lessons.run_settings(run))
        assert snap.configs[0] == want
        assert snap.M == lessons.run_settings(run)["M"] and snap.d == lessons.run_settings(run)["dim"]
        assert at.session_state["pg:speed"] == run.speed
        assert (snap.generated is None) == (run.generated == 0)
        if run.generated:
            assert snap.generated.shape[1] == run.generated
    finally:
        st.cache_resource.clear()


def test_the_spectral_lesson_opens_the_divergence_lab() -> None:
    lesson = lessons.get_lesson("spectral")
    assert lesson.page == "pages/divergence_lab.py" and not lesson.runs
    if not (ROOT / lesson.page).exists():
        pytest.skip("the divergence lab page is not in this tree")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    try:
        _run(at)
        at.switch_page("pages/lessons.py")
        _run(at)
        assert at.title[0].value == "Lessons"
        at.button(key="lesson:spectral:page").click()
        _run(at)
        assert at.title[0].value == "Divergence lab"
    finally:
        st.cache_resource.clear()


@pytest.mark.parametrize("index", [0, 1])
def test_the_rivals_lesson_starts_its_comparison(index: int) -> None:
    """Each button of "MMD vs Sinkhorn vs GPA" opens the compare page with its preset running."""
    lesson = lessons.get_lesson("rivals")
    _, preset = lesson.comparisons[index]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    try:
        _run(at)
        at.switch_page("pages/lessons.py")
        _run(at)
        at.button(key=f"lesson:rivals:{index}").click()
        _run(at)
        assert at.title[0].value == "Compare runs"
        assert at.selectbox(key="cmp_preset").value == preset
        assert not at.error, [e.value for e in at.error]
        outcome = at.dataframe[1].value  # the live table of the started comparison
        assert {"GPA", "MMD", "Sinkhorn"} <= set(outcome["flow"])
        at.button(key="cmp_pause").click()
        _run(at)
    finally:
        st.cache_resource.clear()
