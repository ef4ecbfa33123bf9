"""Real-browser test of the playground, on the harness of ``tests/browser/conftest.py`` (a headless
``streamlit run app.py`` on a free local port, Debian's Chromium through Playwright): press Play and see
the particle plot and the step counter change; Pause and Step; two tabs have their own runs; the page
fetches nothing from the network. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from harness import ARTIFACTS, step_number

pytestmark = pytest.mark.browser


def _wait_for_step(page: Any, predicate: Callable[[int], bool], timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    n = step_number(page)
    while not predicate(n) and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        n = step_number(page)
    return n


def _plot_png(page: Any, box: dict[str, float]) -> bytes:
    """The particle chart's pixels (by position: Streamlit remounts the chart on every redraw)."""
    return page.screenshot(clip=box)


def test_play_moves_particles_and_counter(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    page = browser_page
    outside: list[str] = []  # the app must never fetch anything from the network
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if r.url.startswith(("http://", "https://"))
            and not r.url.startswith(streamlit_server.rstrip("/"))
            else None
        ),
    )
    # a million steps (the widget's maximum): the compiled path finishes the default 500 in a
    # fraction of a second and 20,000 in about six, so shorter runs can end before the test looks
    page.goto(f"{streamlit_server}/?steps=1000000", timeout=90_000)
    wait_for_app(page, timeout=120)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for(timeout=90_000)
    page.wait_for_timeout(1500)  # let WebGL finish drawing
    assert step_number(page) == 0
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    before = _plot_png(page, box)
    assert page.locator('[data-testid="stException"]').count() == 0

    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=90_000)
    n = _wait_for_step(page, lambda n: n >= 20)
    assert n >= 20, f"the step counter stayed at {n}"
    page.wait_for_timeout(1000)
    after = _plot_png(page, box)
    assert after != before, "the particle plot did not change"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground_playing.png"), full_page=True)

    # Pause and Step on a run long enough not to finish first (a link that sets a million steps)
    page.goto(f"{streamlit_server}/?steps=1000000", timeout=90_000)
    wait_for_app(page, timeout=120)
    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=90_000)
    assert _wait_for_step(page, lambda n: n >= 10) >= 10
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_role("button", name="Play", exact=True).wait_for(timeout=90_000)
    wait_for_app(page, timeout=120)  # the rerun that shows where it stopped has been drawn
    paused_at = step_number(page)
    page.wait_for_timeout(1000)
    assert step_number(page) == paused_at  # paused: the counter stands still
    page.get_by_role("button", name="Step", exact=True).click()
    _wait_for_step(page, lambda n: n != paused_at, timeout=60)
    wait_for_app(page, timeout=120)
    assert step_number(page) == paused_at + 1
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not outside, f"requests outside the app: {sorted(set(outside))}"


def test_two_tabs_have_their_own_runs(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    """Each tab is a session with its own runner: a step in one tab does not move the other."""
    first = browser_page
    second = first.context.new_page()
    try:
        for page in (first, second):
            page.goto(streamlit_server, timeout=90_000)
            wait_for_app(page, timeout=120)
        for page in (first, second):  # a fresh run in each tab (the server may be reused)
            page.get_by_role("button", name="Reset", exact=True).click()
            assert _wait_for_step(page, lambda n: n == 0, timeout=60) == 0
        first.get_by_role("button", name="Step", exact=True).click()
        assert _wait_for_step(first, lambda n: n == 1, timeout=60) == 1
        second.get_by_role("button", name="Step", exact=True).click()
        assert _wait_for_step(second, lambda n: n == 1, timeout=60) == 1  # 1, not 2: its own run
        first.get_by_role("button", name="Step", exact=True).click()
        assert _wait_for_step(first, lambda n: n == 2, timeout=60) == 2
    finally:
        second.close()
