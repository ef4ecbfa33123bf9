"""The real-browser harness, shared by the browser tests (through ``conftest.py``) and by
``bench/bench_uploads.py``: a headless ``streamlit run app.py`` on a free local port, Debian's Chromium
flags, and :func:`wait_for_app`."""

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bind to port 0 and read back what the OS chose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python_executable() -> str:
    venv_python = ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def stop_group(proc: subprocess.Popen[bytes]) -> None:
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


class ServerError(RuntimeError):
    """The app's server exited or did not answer its health check; the message holds its output."""


@contextmanager
def streamlit_app() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``(base URL, server process)`` of a headless ``streamlit run app.py`` on a free local port; the
    server's whole process group is terminated on exit."""
    port = free_port()
    cmd = [
        python_executable(), "-m", "streamlit", "run", "app.py",
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
                raise ServerError(
                    f"streamlit exited with code {proc.returncode} before serving:\n{server_output()}"
                )
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"streamlit did not answer {base}/_stcore/health within {SERVER_START_TIMEOUT_S:.0f} s:\n"
                    f"{server_output()}"
                )
            time.sleep(0.25)
        yield base, proc
    finally:
        stop_group(proc)
        log.close()


STATUS = re.compile(r"step n = (\d+)")  # the playground's status line


def step_number(page: Any) -> int:
    """The playground's step counter n, read from its status line."""
    text = page.get_by_text(STATUS).first.inner_text(timeout=60_000)
    match = STATUS.search(text)
    assert match, text
    return int(match.group(1))
