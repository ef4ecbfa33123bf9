"""Smoke test of the real-browser harness: headless Chromium opens ``streamlit run app.py`` and the app
renders its first page completely, titled "GPA Explorer", without a Streamlit exception box."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.browser

APP_TITLE = "GPA Explorer"


def test_app_opens_without_exception(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    page = browser_page
    page.goto(streamlit_server, timeout=60_000)
    wait_for_app(page, timeout=120)

    assert (
        page.title() == APP_TITLE
    )  # st.set_page_config(page_title=...) or Streamlit's default from st.title
    main = page.locator('[data-testid="stMain"]')
    assert main.is_visible()
    heading = main.locator("h1").first
    assert heading.is_visible(), "the first page shows no heading"
    assert heading.inner_text().strip()
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
