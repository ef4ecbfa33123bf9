"""Tests for ui.jobs, the job pages' shared scaffolding: a page's job in its session holder, started,
polled in a fragment with a progress bar, cancelled, failed; and stopping a job of either kind."""

from __future__ import annotations

import time

import numpy as np
from streamlit.testing.v1 import AppTest

from gpa_core import FlowConfig
from gpa_core.engine.runner import Runner
from gpa_core.jobs import EnsembleJob, JobControl
from ui.jobs import stop_job


def _page() -> None:
    """A job page in miniature: Start (a job that reports, then waits to be cancelled, or fails when the
    session state says ``fail``), Cancel and the live view."""
    import time

    import pandas as pd
    import streamlit as st

    from gpa_core.jobs import EnsembleJob
    from ui.jobs import JobPage, job_progress, number_table

    job_page = JobPage("test_page", poll_seconds=0.1)
    fail = bool(st.session_state.get("fail"))

    def work(ctl) -> int:
        ctl.report(1, 4, "a quarter")
        if fail:
            raise RuntimeError("no luck")
        while not ctl.cancelled():
            time.sleep(0.01)
        ctl.check()
        return 0

    def view(job) -> bool:
        job_progress(job, f"{job.control.message} · kept {job_page.holder['kept']}", "test")
        number_table(pd.DataFrame({"x": [1.23456]}), {"x": "%.2f"}, key="tbl")
        return job.done

    if st.button("Start", key="start"):
        job_page.start(EnsembleJob(work, name="test"), kept="yes")
    job_page.cancel_button(st, "cancel")
    job_page.live(view, idle="Press **Start**.")
    st.caption(f"live: {job_page.holder.get('live')}")


def _progress(at: AppTest) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def _reruns(at: AppTest, timeout: float = 20.0):
    """Rerun the app every 50 ms, yielding it after each run; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        yield at
        time.sleep(0.05)
    raise AssertionError(f"not reached in time; progress {_progress(at)!r}")


def _until(at: AppTest, done) -> None:
    """Rerun the app until ``done(at)``."""
    next(a for a in _reruns(at) if done(a))


def test_a_job_page_starts_polls_and_cancels() -> None:
    at = AppTest.from_function(_page, default_timeout=20)
    at.run()
    assert [i.value for i in at.info] == ["Press **Start**."] and at.button(key="cancel").disabled
    at.button(key="start").click()
    at.run()
    assert not at.exception, at.exception
    _until(at, lambda a: "a quarter" in _progress(a))
    assert _progress(at).startswith("running: a quarter · kept yes · ")
    assert at.caption[-1].value == "live: True" and not at.button(key="cancel").disabled
    assert at.dataframe[0].proto.columns  # the number table is drawn, with its column formats
    at.button(key="cancel").click()
    _until(at, lambda a: a.caption[-1].value == "live: False")  # the stopped job is no longer polled
    assert _progress(at).startswith("cancelled: a quarter")
    assert at.button(key="cancel").disabled and not at.error


def test_a_failed_job_says_so() -> None:
    at = AppTest.from_function(_page, default_timeout=20)
    at.session_state["fail"] = True
    at.run()
    at.button(key="start").click()
    _until(at, lambda a: _progress(a).startswith("done: "))
    assert [e.value for e in at.error] == ["The test failed: no luck"]


def test_stop_job_cancels_a_job_and_stops_a_runner() -> None:
    def wait(ctl: JobControl) -> None:
        while not ctl.cancelled():
            time.sleep(0.01)
        ctl.check()

    job = EnsembleJob(wait, name="wait").start()
    stop_job({"job": job})
    assert job.join(5.0) and job.cancelled
    rng = np.random.default_rng(0)
    runner = Runner(rng.normal(size=(8, 2)), rng.normal(size=(8, 2)), FlowConfig(hidden=(4,)))
    runner.play()
    stop_job({"job": runner})
    assert runner.closed
    stop_job({})  # nothing to stop
