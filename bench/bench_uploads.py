"""Every file of tests/upload_corpus.py uploaded through the real app in headless Chromium.

For each file: how long the page takes to settle (the upload's message or its points on screen, the
app idle), whether an exception box appeared, whether the outcome is the expected one (used or refused
with a message naming the file) and how far the server's peak memory (VmHWM of the whole process
group) rose above its idle size. Prints one JSON object per result line; the last lines are the
summary: the slowest file (target < 45 s), the largest peak growth (target < 2048 MB) and the number
of files with an exception box or the wrong outcome (target 0).

    .venv/bin/python bench/bench_uploads.py            # all cases
    .venv/bin/python bench/bench_uploads.py --page playground
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "browser")]

from harness import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, streamlit_app, wait_for_app  # noqa: E402
from upload_corpus import Case, all_cases, large_cases  # noqa: E402

SETTLE_LIMIT_S = 45.0
GROWTH_LIMIT_MB = 2048.0
ERROR = '[data-testid="stAlertContentError"]'
EXCEPTION = '[data-testid="stException"]'


def _emit(bench: str, metric: str, value: float, unit: str, target: str, **extra: Any) -> None:
    print(
        json.dumps(
            {"bench": bench, "metric": metric, "value": value, "unit": unit, "target": target, **extra}
        )
    )


def _group(pid: int) -> list[Path]:
    """/proc folders of the processes in the server's process group (the server is its leader)."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pid:
                out.append(proc)
        except (OSError, ValueError, IndexError):
            continue
    return out


def _group_kib(pid: int, field: str) -> int:
    """Sum of ``field`` (VmRSS or VmHWM, kB) over the processes of the server's group."""
    total = 0
    for proc in _group(pid):
        try:
            lines = (proc / "status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith(field + ":"))
    return total


def _reset_peaks(pid: int) -> None:
    """Start the group's peak-memory counters (VmHWM) afresh at the current size (Linux ≥ 4.0)."""
    for proc in _group(pid):
        try:
            (proc / "clear_refs").write_text("5")
        except OSError:
            pass


def _open_upload(page: Any, base: str, case: Case, tmp: Path) -> Any:
    """A fresh page with the case's uploader showing; returns its file input. A label file goes beside
    a good expression table (the corpus's first latent case), uploaded first."""
    if case.page == "playground":
        page.goto(base + "/")
        wait_for_app(page)
        page.get_by_text("Data", exact=True).first.click()
        wait_for_app(page)
        page.get_by_role("combobox", name="dataset").first.click()
        page.get_by_role("option", name="Upload points or an image…").click()
        wait_for_app(page)
        return page.locator('input[type="file"]').first
    page.goto(base + "/latent_space")
    wait_for_app(page)
    page.get_by_text("upload two studies").click()
    wait_for_app(page)
    inputs = page.locator('input[type="file"]')  # source table, source labels, target table, ...
    if case.slot == "labels":
        table = next(c for c in all_cases() if c.page == "latent" and c.expect == "ok")
        path = tmp / table.filename
        path.write_bytes(table.data)
        inputs.nth(0).set_input_files(str(path))
        _wait_until(page, lambda: _shown(page, table.filename))
    return inputs.nth(0 if case.slot == "expression" else 1)


def _shown(page: Any, name: str) -> bool:
    """Whether a caption reports the file as read (the pages' "name: n points …" / "name: n samples …"
    or, for a label file, "labels from name")."""
    captions = page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    return any(c.startswith(f"{name}:") or f"labels from {name}" in c for c in captions)


def _outcome(page: Any, case: Case) -> str | None:
    """ "refused" (an error naming the file), "ok" (the file's summary is shown) or None (not yet)."""
    if any(case.filename in e for e in page.locator(ERROR).all_inner_texts()):
        return "refused"
    return "ok" if _shown(page, case.filename) else None


def _wait_until(page: Any, done: Any) -> float:
    """Seconds until ``done()`` holds with the app idle, or an exception box shows (at most the limit)."""
    start = time.monotonic()
    while time.monotonic() - start < SETTLE_LIMIT_S:
        wait_for_app(page, timeout=SETTLE_LIMIT_S)
        if done() or page.locator(EXCEPTION).count():
            break
        page.wait_for_timeout(200)
    return time.monotonic() - start


def run_case(page: Any, base: str, pid: int, case: Case, tmp: Path) -> dict[str, Any]:
    upload = _open_upload(page, base, case, tmp)
    _reset_peaks(pid)
    idle = _group_kib(pid, "VmRSS")
    path = tmp / case.filename
    path.write_bytes(case.data)
    upload.set_input_files(str(path))
    settle = _wait_until(page, lambda: _outcome(page, case) is not None)
    peak = _group_kib(pid, "VmHWM")
    return {
        "case": case.name,
        "file": case.filename,
        "page": case.page,
        "settle_s": round(settle, 2),
        "outcome": _outcome(page, case),
        "expected": case.expect,
        "exception": page.locator(EXCEPTION).count() > 0,
        "peak_growth_mb": round((peak - idle) / 1024, 1),
        "message": (page.locator(ERROR).all_inner_texts() or [""])[0][:200],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", choices=["playground", "latent"], default=None)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cases = [c for c in all_cases() + large_cases() if args.page in (None, c.page)]
    results = []
    tmp = ROOT / "test-artifacts" / "upload-corpus"
    tmp.mkdir(parents=True, exist_ok=True)
    with streamlit_app() as (base, proc), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for case in cases:
            context = browser.new_context(
                viewport=VIEWPORT
            )  # a new session: the server's idle is measured fresh
            page = context.new_page()
            try:
                result = run_case(page, base, proc.pid, case, tmp)
            finally:
                context.close()
            results.append(result)
            _emit("uploads", "settle_time", result["settle_s"], "s", f"< {SETTLE_LIMIT_S:g}", **result)
        browser.close()
    wrong = [r for r in results if r["exception"] or r["outcome"] != r["expected"]]
    _emit("uploads", "slowest_settle", max(r["settle_s"] for r in results), "s", f"< {SETTLE_LIMIT_S:g}")
    _emit("uploads", "largest_peak_growth", max(r["peak_growth_mb"] for r in results), "MB",
          f"< {GROWTH_LIMIT_MB:g}")  # fmt: skip
    _emit("uploads", "wrong_outcomes", len(wrong), "files", "0", cases=[r["case"] for r in wrong])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
