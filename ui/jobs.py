"""The live background-job scaffolding of the job pages (compare, stability map, heavy tails, latent space).

A page names its job once, ``JOB = JobPage("stability")``, and then draws with it:

* ``JOB.holder`` — the page's dict in this browser session: the job under ``"job"`` and whatever inputs
  and results the page keeps beside it. The job is stopped when the session ends.
* ``JOB.start(job, **state)`` — stop the page's previous job, keep the new one (and ``state``) in a fresh
  holder, start it and poll it.
* ``JOB.cancel_button(col, key)`` — the Cancel button (disabled without a running job).
* ``JOB.live(view, idle)`` — the live view, in a fragment that reruns every ``poll_seconds`` while the job
  is live; :func:`job_progress` draws the progress bar (status, elapsed time, ETA) and a failure.
* :func:`open_in_playground` — a run of a study, opened in the playground.

A job is a :class:`~gpa_core.jobs.EnsembleJob` (stability, heavy tails, latent space), a
:class:`~gpa_core.engine.runner.Runner` (a batched ensemble that plays) or a
:class:`~gpa_core.studies.compare.CompareJob` (compare: a GPA Runner and the rival flows, one
play/pause/stop).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from gpa_core.config import FlowConfig
from gpa_core.engine.runner import Runner
from gpa_core.jobs import EnsembleJob
from gpa_core.studies.compare import CompareJob
from ui.query import playground_params

POLL_SECONDS = 0.5  # live views poll their job this often while it runs

Job = EnsembleJob | Runner | CompareJob


def stop_job(holder: dict[str, Any]) -> None:
    """Stop the job a page keeps in its session holder, if any: cancel an EnsembleJob, stop a Runner
    (a CompareJob's cancel stops both of its threads)."""
    job = holder.get("job")
    if isinstance(job, Runner):
        job.stop(timeout=2.0)
    elif job is not None:
        job.cancel()


@st.cache_resource(scope="session", on_release=stop_job, show_spinner=False)
def session_job_holder(page: str) -> dict[str, Any]:
    """One dict per browser session and page for that page's background job, its inputs and result;
    the job is stopped when the session ends."""
    return {}


@dataclass(frozen=True)
class JobPage:
    """The background job of one page (``name`` keys its session holder)."""

    name: str
    poll_seconds: float = POLL_SECONDS

    @property
    def holder(self) -> dict[str, Any]:
        """This session's holder of the page's job (``"job"``, ``"live"`` and the page's own keys)."""
        return session_job_holder(self.name)

    @property
    def job(self) -> Any:
        """The page's current job, or None before the first start."""
        return self.holder.get("job")

    def start(self, job: Job, **state: Any) -> None:
        """Replace the page's job by ``job`` (the old one is stopped), keep ``state`` beside it, start it
        and poll it."""
        holder = self.holder
        stop_job(holder)
        holder.clear()
        holder.update(job=job, live=True, **state)
        if isinstance(job, Runner):
            job.play()
        else:
            job.start()

    def set_live(self, live: bool) -> None:
        """Poll the job (True) or stop polling it (False), from the next run of the page."""
        self.holder["live"] = live

    def cancel_button(self, col: Any, key: str) -> None:
        """A Cancel button in ``col`` (``st`` or a column), disabled without a running job."""
        job = self.job
        if col.button("Cancel", key=key, disabled=job is None or job.done):
            job.cancel()

    def live(self, view: Callable[[Any], bool], idle: str | Callable[[], None]) -> None:
        """The live view: ``view(job)`` draws the job's progress and partial results and returns whether
        the job has stopped; it runs in a fragment that reruns every :attr:`poll_seconds` while the job
        is live. When the job stops, polling ends and the whole page reruns once (to draw the results).
        Before the first start: ``idle``, a message (``st.info``) or a function that draws the view."""

        def fragment() -> None:
            holder = self.holder
            job = holder.get("job")
            if job is None:
                if isinstance(idle, str):
                    st.info(idle)
                else:
                    idle()
                return
            if view(job) and holder.get("live"):
                holder["live"] = False
                st.rerun()

        st.fragment(run_every=self.poll_seconds if self.holder.get("live") else None)(fragment)()


def job_progress(job: EnsembleJob, what: str, noun: str, *, eta: bool = True) -> None:
    """The job's progress bar, ``"running: {what} · 12 s · about 30 s left"`` (the status is running, done
    or cancelled; the time left only while ``eta`` and it can be estimated), and its failure, if any
    (``"The {noun} failed: …"``)."""
    status = "cancelled" if job.cancelled else ("done" if job.done else "running")
    left = job.eta if eta else None
    st.progress(
        job.fraction,
        text=f"{status}: {what} · {job.elapsed:.0f} s"
        + (f" · about {left:.0f} s left" if left is not None else ""),
    )
    if job.error is not None:
        st.error(f"The {noun} failed: {job.error}")


def number_table(frame: Any, formats: Mapping[str, str], **kwargs: Any) -> Any:
    """``frame`` as a full-width ``st.dataframe`` without its index, the columns named in ``formats``
    printed with their printf-style format (``{"t": "%.4g"}``); ``kwargs`` go to ``st.dataframe``
    (a key, a selection mode, …). Returns what ``st.dataframe`` returns (the selection event)."""
    config = {column: st.column_config.NumberColumn(format=f) for column, f in formats.items()}
    return st.dataframe(frame, hide_index=True, width="stretch", column_config=config, **kwargs)


def open_in_playground(config: FlowConfig, **data: Any) -> None:
    """Open a run in the playground: ``config`` and its data (``data``: the keywords of
    :func:`~ui.query.playground_params`: source, target, M, N, data_seed, dim) go in the query parameters
    (and in session state, read by the playground); where that page is not available, show the
    parameters instead."""
    params = playground_params(config, **data)
    st.session_state["playground_request"] = params
    try:
        st.switch_page("pages/playground.py", query_params=params)
    except StreamlitAPIException:
        query = "&".join(f"{a}={b}" for a, b in params.items())
        st.info(f"The playground page is not available here; its query parameters: `{query}`")
