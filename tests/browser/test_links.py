"""Real-browser test of a shared link: a page URL (``/compare?preset=…``) opened as the very first
request of a fresh server is drawn inside the app (its navigation, titles and wide layout), not as a
lone script under Streamlit's automatic list of the files in ``pages/``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from harness import ServerError, streamlit_app, wait_for_app

pytestmark = pytest.mark.browser


def test_a_page_link_opened_first_gets_the_apps_navigation(browser_page: Any) -> None:
    page = browser_page
    try:
        server = streamlit_app()
        base, _proc = server.__enter__()
    except ServerError as exc:
        pytest.fail(str(exc))
    try:
        page.goto(f"{base}/compare?preset=rivals-far-target&T=10", timeout=90_000)
        wait_for_app(page, timeout=120)
        page.get_by_role("heading", name="Compare runs").first.wait_for(timeout=60_000)
        nav = page.locator('[data-testid="stSidebarNav"]')
        # the app's titles ("Particle flow", "Compare runs"), not the file names ("playground", "compare")
        assert nav.get_by_text("Particle flow", exact=True).count() == 1, nav.inner_text()
        assert nav.get_by_text("playground", exact=True).count() == 0
        assert re.search(r"Rival flows: MMD vs Sinkhorn vs GPA on a far target", page.content())
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        server.__exit__(None, None, None)
