"""What a browser session keeps: its runners, cached samples and the values of its widgets.

* :func:`session_runners` — one :class:`RunnerSlots` per browser session (``st.cache_resource`` with
  ``scope="session"``): pages keep their :class:`~gpa_core.engine.runner.Runner` objects there under a name
  (the playground uses ``"playground"``). When the session ends, Streamlit calls ``on_release`` and
  every runner is stopped (thread joined, tensors freed). Each runner also pauses and ends its thread
  by itself when nobody polls it for ``idle_timeout`` seconds.
* :func:`sample_points` — a seeded dataset sample, cached.
* :func:`keep_widget_state` — widget values that survive a visit to another page.

The job pages' background jobs live in :mod:`ui.jobs`; uploads in :mod:`ui.uploads`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import streamlit as st

from gpa_core.data.datasets import sample
from gpa_core.engine.runner import Runner

REFRESH_SECONDS = 0.2  # live views poll the runner this often while it plays


class RunnerSlots:
    """The runners of one browser session, by name. Putting a runner under a taken name stops the
    old one. Thread-safe (``on_release`` may run on another thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runners: dict[str, Runner] = {}

    def get(self, name: str) -> Runner | None:
        with self._lock:
            runner = self._runners.get(name)
        return None if runner is None or runner.closed else runner

    def put(self, name: str, runner: Runner) -> None:
        with self._lock:
            old = self._runners.get(name)
            self._runners[name] = runner
        if old is not None and old is not runner:
            old.stop()

    def close(self) -> None:
        """Stop every runner (the session ended)."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.stop()

    def __len__(self) -> int:
        return len(self._runners)


def _release(slots: RunnerSlots) -> None:
    slots.close()


@st.cache_resource(scope="session", on_release=_release, show_spinner=False)
def session_runners() -> RunnerSlots:
    """This browser session's runners (a new, empty set for every session)."""
    return RunnerSlots()


@st.cache_data(max_entries=64, show_spinner=False)
def sample_points(name: str, params_json: str, n: int, seed: int, dim: int) -> np.ndarray:
    """A seeded sample of a dataset (cached: the same settings give the same array)."""
    return sample(name, n, seed=seed, dim=dim, **json.loads(params_json))


def keep_widget_state(state: Any, defaults: Mapping[str, Any]) -> None:
    """For a Streamlit-like ``state`` mapping: set each key's default once, and re-assign every key that
    has a value (Streamlit forgets the values of widgets that a page did not draw, e.g. while another
    page was open; re-assigning them keeps them). A default of None means "keep only"."""
    for key, default in defaults.items():
        if key in state:
            state[key] = state[key]
        elif default is not None:
            state[key] = default


def inside_the_app() -> None:
    """Run this page inside app.py's navigation, also when its URL is the first a fresh server serves.

    Streamlit (1.67) starts every server in its old ``pages/``-directory mode
    (``PagesManager.uses_pages_directory``, set because ``pages/`` exists) and only ``st.navigation``
    in app.py turns it off. A page URL opened first (a shared link to ``/compare?preset=…``) would
    run the page alone: Streamlit's automatic list of the files in ``pages/`` in the sidebar, no page
    titles or icons, not the app's wide layout. Such a run turns that mode off and reruns, so app.py
    draws the page. Only a session's first run does it (a rerun drops that run's widget events, and
    there are none before the first); pages run on their own (AppTest of one page) have the mode off.
    """
    if FIRST_RUN_DONE in st.session_state:
        return
    st.session_state[FIRST_RUN_DONE] = True
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without it has no such mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


FIRST_RUN_DONE = "gpa:first_run_done"  # in session state once a page of the session has run
