"""Real-browser test harness: a Streamlit server of ``app.py`` and headless Chromium pages (Playwright).

Fixtures
- ``streamlit_server`` (session): starts ``python -m streamlit run app.py`` headless on a free port of
  127.0.0.1, waits until ``/_stcore/health`` answers ``ok`` and yields the base URL
  (``http://127.0.0.1:<port>``); at the end the server's whole process group is terminated.
- ``browser_page`` (per test): a fresh 1400×1000 page in Debian's Chromium (``/usr/bin/chromium``, or
  ``$GPA_CHROMIUM``); its screenshot is saved to ``test-artifacts/<test name>.png`` on teardown.
- ``wait_for_app``: the harness's helper (``tests/browser/harness.py``), as a fixture.

Tests using them are skipped with a reason when Chromium or Playwright is missing; mark them
``@pytest.mark.browser``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, VIEWPORT, ServerError, streamlit_app, wait_for_app

__all__ = ["wait_for_app"]


@pytest.fixture(scope="session")
def streamlit_server() -> Iterator[str]:
    """Base URL of a headless ``streamlit run app.py`` on a free local port, for the whole session."""
    try:
        with streamlit_app() as (base, _proc):
            yield base
    except ServerError as exc:  # raised only while the server starts
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Any]:
    """One headless Chromium for the session (pages are per test)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"Chromium not installed at {CHROMIUM} (apt-get install chromium; `bash .ci/run` does it)"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is missing")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(_chromium: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh Chromium page (own context, 1400×1000); screenshot to test-artifacts/<test>.png at the end."""
    context = _chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=30_000)
        except Exception as exc:  # a failed screenshot must not hide the test's own result
            print(f"screenshot of {name} failed: {exc}", file=sys.stderr)
        context.close()


@pytest.fixture(name="wait_for_app")
def wait_for_app_fixture() -> Callable[..., None]:
    """The :func:`wait_for_app` helper, for tests that prefer a fixture to an import."""
    return wait_for_app
