"""Real-browser tests of the upload pages: a bad file, then a file the old filters would have refused in
the browser (wrong type, too large), then a good one. Each time: no exception box, the message on screen
is about the file just uploaded (never the previous one's), and the good file is the one used."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

ERROR = '[data-testid="stAlertContentError"]'
EXCEPTION = '[data-testid="stException"]'


def _settle(page: Any, wait_for_app: Callable[..., None], done: Callable[[], bool]) -> None:
    """Wait (at most 45 s, the time an upload may take to settle) until ``done()`` holds and the app
    is idle: the file is sent first, and only then does the page rerun."""
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        wait_for_app(page, timeout=45)
        if done():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the page did not settle; messages: {_errors(page)}")


def _errors(page: Any) -> list[str]:
    return page.locator(ERROR).all_inner_texts()


def _choose(page: Any, combobox: Any, option: str) -> None:
    combobox.click()
    page.get_by_role("option", name=option).click()


def test_playground_upload_bad_then_good(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None], tmp_path: Path
) -> None:
    page = browser_page
    page.goto(streamlit_server + "/")
    wait_for_app(page)
    page.get_by_text("Data", exact=True).first.click()
    wait_for_app(page)
    _choose(page, page.get_by_role("combobox", name="dataset").first, "Upload points or an image…")
    wait_for_app(page)
    upload = page.locator('input[type="file"]').first

    upload.set_input_files(files=[{"name": "ragged.csv", "mimeType": "text/csv", "buffer": b"1,2\n3,4\n5\n"}])
    _settle(page, wait_for_app, lambda: any("'ragged.csv'" in e for e in _errors(page)))
    assert any("row 3" in e for e in _errors(page)), _errors(page)

    exe = {"name": "prog.exe", "mimeType": "application/octet-stream", "buffer": b"MZ\x90\x00"}
    upload.set_input_files(files=[exe])
    _settle(page, wait_for_app, lambda: any("'prog.exe'" in e for e in _errors(page)))
    assert not any("ragged" in e for e in _errors(page)), _errors(page)

    big = tmp_path / "big.csv"  # over the reader's 50 MB, under what the browser may send
    big.write_bytes(b"1.5,2.5\n" * (7 * 2**20 + 1))
    upload.set_input_files(str(big))
    _settle(page, wait_for_app, lambda: any("'big.csv'" in e for e in _errors(page)))
    errors = _errors(page)
    assert any("50 MB" in e for e in errors) and not any("prog" in e for e in errors), errors

    good = b"x,y\n1,2\n3,4\n5,7\n"
    upload.set_input_files(files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good}])
    # the plot is redrawn for the new data: its legend counts the uploaded points
    _settle(page, wait_for_app, lambda: page.get_by_text("particles (M = 3)").count() >= 1)
    assert _errors(page) == []
    assert page.get_by_text("good.csv: 3 points in 2 dimension(s)").count() == 1
    assert page.locator(EXCEPTION).count() == 0


def test_latent_upload_bad_then_good(
    streamlit_server: str, browser_page: Any, wait_for_app: Callable[..., None]
) -> None:
    from upload_corpus import latent_cases

    cases = {c.name: c for c in latent_cases()}
    page = browser_page
    page.goto(streamlit_server + "/latent_space")
    wait_for_app(page)
    page.get_by_text("upload two studies").click()
    wait_for_app(page)
    upload = page.locator('input[type="file"]').first  # the source study's expression file

    def send(name: str) -> str:
        case = cases[name]
        upload.set_input_files(files=[{"name": case.filename, "mimeType": "text/plain", "buffer": case.data}])
        return case.filename

    sheet = send("xlsx renamed csv")
    _settle(page, wait_for_app, lambda: any(f"'{sheet}'" in e for e in _errors(page)))
    assert any("save the sheet" in e or "as CSV" in e for e in _errors(page)), _errors(page)

    upload.set_input_files(files=[{"name": "prog.exe", "mimeType": "application/octet-stream",
                                   "buffer": b"MZ\x90\x00" + bytes(200)}])  # fmt: skip
    _settle(page, wait_for_app, lambda: any("'prog.exe'" in e for e in _errors(page)))
    assert not any(sheet in e for e in _errors(page)), _errors(page)

    good = send("good table")
    captions = '[data-testid="stCaptionContainer"]'
    _settle(page, wait_for_app, lambda: any(
        c.startswith(f"{good}:") for c in page.locator(captions).all_inner_texts()
    ))  # fmt: skip
    assert not any("prog.exe" in e or sheet in e for e in _errors(page)), _errors(page)
    assert any("12 samples × 300 genes" in c for c in page.locator(captions).all_inner_texts())
    assert page.locator(EXCEPTION).count() == 0
