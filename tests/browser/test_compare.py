"""Real-browser test of the compare page: headless Chromium opens it, starts the Fig. 2–3 preset on a
short horizon and waits until every curve (one per run) has appeared in the kinetic-energy, divergence
and W₂ charts, and the particle small multiples show all four runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("GPA_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def compare_url() -> Iterator[str]:
    """A Streamlit server of the whole app (app.py) if it exists, else of the compare page alone."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    port = _free_port()
    app = ROOT / "app.py"
    script, path = (app, "compare") if app.exists() else (ROOT / "pages" / "compare.py", "")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
        "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("the Streamlit server did not start")
        yield f"{base}/{path}?preset=fig2-3-mixture&T=6&M=40&N=40"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# traces with points, as plotly.js holds them after decoding (``_fullData``: typed arrays decoded)
TRACE_COUNTS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  g => (g._fullData || []).filter(t => t.visible !== false && t.x && t.x.length > 0).length)
"""
TITLES = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(
  g => (g.layout && g.layout.title && g.layout.title.text) || '')
"""


def test_compare_page_shows_all_curves(compare_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--enable-unsafe-swiftshader", "--no-sandbox"], headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(compare_url, timeout=60_000)
            page.get_by_role("button", name="Start").click(timeout=60_000)
            page.get_by_text("state: finished").wait_for(timeout=120_000)
            deadline = time.monotonic() + 60
            counts: list[int] = []
            titles: list[str] = []
            while time.monotonic() < deadline:
                counts = page.evaluate(TRACE_COUNTS)
                titles = page.evaluate(TITLES)
                curves = [c for c, t in zip(counts, titles, strict=False) if t]
                if len(curves) >= 3 and all(c >= 4 for c in curves) and counts and counts[0] >= 8:
                    break
                page.wait_for_timeout(500)
            by_title = dict(zip(titles, counts, strict=False))
            ke = next(c for t, c in by_title.items() if "kinetic energy" in t)
            div = next(c for t, c in by_title.items() if "divergence" in t)
            w2 = next(c for t, c in by_title.items() if "W₂" in t)
            assert ke >= 4 and div >= 1 and w2 >= 4, by_title
            assert counts[0] >= 8, counts  # 4 panels × (target, particles)
            assert page.get_by_text("L = ∞").count() > 0
        finally:
            browser.close()
