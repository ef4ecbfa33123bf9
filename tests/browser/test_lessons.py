"""Real-browser test of the lessons page: a lesson's button opens the playground with the lesson's run
already playing (the generated-particles lesson: green diamonds and the W₂ figure), at a pace a person
can follow. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import ARTIFACTS, step_number

pytestmark = pytest.mark.browser


def test_a_lesson_button_starts_its_run(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    page = browser_page
    page.goto(streamlit_server, timeout=90_000)
    wait_for_app(page, timeout=120)
    # through the app's navigation (st.navigation in app.py), as a person gets there
    page.get_by_role("link", name=re.compile("Lessons")).first.click()
    page.get_by_role("heading", name="Lessons").first.wait_for(timeout=60_000)
    wait_for_app(page, timeout=120)
    assert page.get_by_role("heading", name=re.compile("Generated particles")).count() >= 1
    page.get_by_role("button", name="Run with 600 generated particles", exact=True).click()
    # the playground opens with the run playing: Pause is shown, the counter moves by itself
    page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=90_000)
    assert "/lessons" not in page.url
    first = step_number(page)
    deadline = time.monotonic() + 60
    n = first
    while n <= first + 10 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        n = step_number(page)
    assert n > first + 10, f"the step counter stayed at {n}"
    page.get_by_text("W₂ to the target", exact=False).first.wait_for(timeout=60_000)
    assert page.get_by_text("generated (G = 600)", exact=False).count() >= 1
    # a watchable pace: 5 steps per 0.2 s frame, so the 500 steps are far from done after a few seconds
    assert step_number(page) < 400
    page.wait_for_timeout(1500)  # let WebGL finish drawing
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lesson_generated_particles.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0


# traces with points and the title of each Plotly chart, as plotly.js holds them after decoding
_CHARTS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => [
  (g.layout && g.layout.title && g.layout.title.text) || '',
  (g._fullData || []).filter(t => t.visible !== false && t.x && t.x.length > 0).length])
"""


def test_the_rivals_lesson_runs_gpa_beside_mmd_and_sinkhorn(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    """ "MMD vs Sinkhorn vs GPA": the button opens the compare page with the far-target comparison
    running; it finishes with six particle panels, a W₂ curve per run, and the narrow-kernel MMD
    flow reported stalled."""
    page = browser_page
    page.goto(streamlit_server, timeout=90_000)
    wait_for_app(page, timeout=120)
    page.get_by_role("link", name=re.compile("Lessons")).first.click()
    page.get_by_role("heading", name=re.compile("MMD vs Sinkhorn vs GPA")).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Compare on a far target", exact=True).click()
    page.get_by_role("heading", name="Compare runs").first.wait_for(timeout=60_000)
    page.get_by_text("state: finished").wait_for(timeout=240_000)
    deadline = time.monotonic() + 60
    charts: list[list[Any]] = []
    while time.monotonic() < deadline:
        charts = page.evaluate(_CHARTS)
        w2 = [n for title, n in charts if "W₂" in title]
        if charts and charts[0][1] >= 12 and w2 and w2[0] >= 6:
            break
        page.wait_for_timeout(500)
    assert charts and charts[0][1] >= 12, charts  # 6 panels × (target, particles)
    by_title = {title: n for title, n in charts if title}
    assert next(n for t, n in by_title.items() if "W₂" in t) >= 6, by_title
    assert next(n for t, n in by_title.items() if "kinetic energy" in t) >= 6, by_title
    assert next(n for t, n in by_title.items() if "own objective" in t) >= 6, by_title
    assert page.get_by_text("stalled", exact=False).count() >= 1
    page.wait_for_timeout(1500)  # let WebGL finish drawing
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lesson_rivals_far_target.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
