"""Guided lessons: each a few sentences with its equation, buttons that load a run into the playground (or a
comparison into the compare page) and start it, and a question to look at. The lessons' content and the
requests they build live in ``ui/lessons.py``."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

from ui.lessons import (
    COMPARE,
    COMPARE_REQUEST,
    LESSONS,
    Lesson,
    LessonRun,
    compare_request,
    playground_request,
)
from ui.session import inside_the_app

ROOT = Path(__file__).resolve().parent.parent
REQUEST = "playground_request"  # what pages/playground.py reads (with ui/jobs.open_in_playground)
PLAYGROUND = "pages/playground.py"


def available(lesson: Lesson) -> bool:
    """A lesson about another page is shown only where that page exists."""
    return lesson.page is None or (ROOT / lesson.page).exists()


def _open_run(run: LessonRun) -> None:
    params = playground_request(run)
    st.session_state[REQUEST] = params
    try:
        st.switch_page(PLAYGROUND, query_params={k: v for k, v in params.items() if k != "play"})
    except StreamlitAPIException:  # the playground is not a page of this app (a test of this page alone)
        st.info("The playground page is not available here; the run is waiting for it.")


def _open_comparison(preset_id: str) -> None:
    st.session_state[COMPARE_REQUEST] = compare_request(preset_id)
    try:
        st.switch_page(COMPARE)
    except StreamlitAPIException:  # the compare page is not a page of this app (a test of this page alone)
        st.info("The compare page is not available here; the comparison is waiting for it.")


def _open_page(page: str) -> None:
    try:
        st.switch_page(page)
    except StreamlitAPIException:
        st.info(f"The page {page} is not available here.")


def _lesson(number: int, lesson: Lesson) -> None:
    with st.container(border=True):
        st.subheader(f"{number}. {lesson.title}")
        st.markdown(lesson.text)
        st.latex(lesson.equation)
        st.markdown(f"**Look at:** {lesson.question}")
        if lesson.page is not None:
            if st.button("Open the divergence lab", key=f"lesson:{lesson.id}:page", type="primary"):
                _open_page(lesson.page)
            return
        if lesson.comparisons:
            columns = st.columns(max(2, len(lesson.comparisons)))
            for i, (column, (label, preset)) in enumerate(zip(columns, lesson.comparisons, strict=False)):
                kind = "primary" if i == 0 else "secondary"
                if column.button(label, key=f"lesson:{lesson.id}:{i}", type=kind, width="stretch"):
                    _open_comparison(preset)
            return
        columns = st.columns(max(2, len(lesson.runs)))
        for i, (column, run) in enumerate(zip(columns, lesson.runs, strict=False)):
            kind = "primary" if i == 0 else "secondary"
            if column.button(run.label, key=f"lesson:{lesson.id}:{i}", type=kind, width="stretch"):
                _open_run(run)


def main() -> None:
    st.title("Lessons")
    st.caption(
        "Short guided tours of the generative particle algorithm. Each button loads a run into the "
        "Particle flow page and starts it at a pace you can follow (the speed control there goes faster), "
        "or a comparison into the Compare page."
    )
    for number, lesson in enumerate((x for x in LESSONS if available(x)), start=1):
        _lesson(number, lesson)


inside_the_app()  # a link opened first still gets the app's navigation
main()
