"""Real-browser test harness: a Streamlit server of ``app.py`` and headless Chromium pages (Playwright).

Fixtures
- ``streamlit_server`` (session): starts ``python -m streamlit run app.py`` headless on a free port of
  127.0.0.1, waits until ``/_stcore/health`` answers ``ok`` and yields the base URL
  (``http://127.0.0.1:<port>``); at the end the server's whole process group is terminated.
- ``browser_page`` (per test): a fresh 1400×1000 page in Debian's Chromium (``/usr/bin/chromium``, or
  ``$GPA_CHROMIUM``); its screenshot is saved to ``test-artifacts/<test name>.png`` on teardown.
- ``wait_for_app``: the helper below, as a fixture.

Tests using them are skipped with a reason when Chromium or Playwright is missing; mark them
``@pytest.mark.browser``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("GPA_CHROMIUM", "/usr/bin/chromium")
SERVER_START_TIMEOUT_S = 60.0
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--enable-unsafe-swiftshader",  # software WebGL, for Plotly's Scattergl charts
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1000}

# Streamlit 1.67 DOM, checked by sampling a live page every 0.5 s and dumping page.content(): the app
# root div[data-testid="stApp"] carries data-test-script-state = "initial" before the first run,
# "running" while the script runs and "notRunning" when it has finished, and
# data-test-connection-state = "CONNECTING" / "CONNECTED". While a run is in progress the toolbar shows
# div[data-testid="stStatusWidget"] holding [data-testid="stStatusWidgetRunningIcon"]
# (aria-label "Running...") and a Stop button; it is gone when idle. Lazily loaded elements (Plotly
# charts among them) show a [data-testid="stSkeleton"] placeholder until their code has loaded, and a
# drawn Plotly chart is a div.js-plotly-plot inside [data-testid="stPlotlyChart"]. Uncaught
# exceptions render div[data-testid="stException"].
_APP_IDLE_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app !== null
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && document.querySelector('[data-testid="stStatusWidgetRunningIcon"]') === null
    && document.querySelector('[data-testid="stMain"]') !== null
    && document.querySelector('[data-testid="stSkeleton"]') === null
    && Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]'))
         .every(c => c.querySelector('.js-plotly-plot') !== null);
}
"""


def wait_for_app(page: Any, timeout: float = 60.0) -> None:
    """Wait until Streamlit has drawn the app, its script run has finished (no 'Running…') and lazily
    loaded elements such as Plotly charts are drawn.

    Raises Playwright's ``TimeoutError`` after ``timeout`` seconds. A page with an ``st.fragment`` that
    reruns on a timer may flip back to running later; this waits for the first idle moment only.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    page.wait_for_function(_APP_IDLE_JS, timeout=timeout * 1000, polling=100)


def _free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to port 0 and read back what the OS chose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _python() -> str:
    venv_python = ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's process group (SIGTERM, then SIGKILL after 10 s): no orphans."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def streamlit_server() -> Iterator[str]:
    """Base URL of a headless ``streamlit run app.py`` on a free local port, for the whole session."""
    port = _free_port()
    cmd = [
        _python(), "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server can never block on it
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def server_output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {proc.returncode} before serving:\n{server_output()}"
                )
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not answer {base}/_stcore/health within {SERVER_START_TIMEOUT_S:.0f} s:\n"
                    f"{server_output()}"
                )
            time.sleep(0.25)
        yield base
    finally:
        _stop_group(proc)
        log.close()


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
