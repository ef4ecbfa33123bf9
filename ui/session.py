"""Shared Streamlit helpers for GPA Explorer pages: the session's runners, cached sampling, uploads.

* :func:`session_runners` — one :class:`RunnerSlots` per browser session (``st.cache_resource`` with
  ``scope="session"``): pages keep their :class:`~gpa_core.engine.runner.Runner` objects there under a name
  (the playground uses ``"playground"``). When the session ends, Streamlit calls ``on_release`` and
  every runner is stopped (thread joined, tensors freed). Each runner also pauses and ends its thread
  by itself when nobody polls it for ``idle_timeout`` seconds.
* :func:`sample_points` / :func:`read_upload` — cached data; :func:`read_upload` turns an uploaded
  table or image into a :class:`~gpa_core.data.points.PointTable` (points and notes for the user) and raises
  ``DataFileError`` with a user-facing message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitAPIException

from gpa_core.data.datasets import sample
from gpa_core.data.points import (
    MAX_UPLOAD_BYTES,
    DataFileError,
    Note,
    PointTable,
    image_to_points,
    read_points,
)
from gpa_core.engine.runner import Runner

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp")
TABLE_EXTENSIONS = ("csv", "tsv", "txt", "dat", "npy", "npz")
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES // 2**20
#: What an uploader lets the browser send: four times what the readers accept, and no filter on file
#: types. A file the browser itself refuses never reaches the page, so the page would go on showing the
#: previous file's message; a file that is too large or of the wrong type is sent instead, refused by
#: the reader with its own message naming it, and that message replaces the last one.
UPLOADER_LIMIT_MB = 4 * UPLOAD_LIMIT_MB
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


def cancel_job(holder: dict[str, Any]) -> None:
    """Cancel the background job a page keeps in its session holder, if any."""
    job = holder.get("job")
    if job is not None:
        job.cancel()


@st.cache_resource(scope="session", on_release=cancel_job, show_spinner=False)
def session_job_holder(page: str) -> dict[str, Any]:
    """One dict per browser session and page for that page's background job, its inputs and result;
    the job is cancelled when the session ends."""
    return {}


def open_in_playground(params: dict[str, str]) -> None:
    """Open a run in the playground: its settings go in the query parameters (and session state, read
    by the playground); where that page is not available, show the parameters instead."""
    st.session_state["playground_request"] = params
    try:
        st.switch_page("pages/playground.py", query_params=params)
    except StreamlitAPIException:
        query = "&".join(f"{a}={b}" for a, b in params.items())
        st.info(f"The playground page is not available here; its query parameters: `{query}`")


@st.cache_data(max_entries=64, show_spinner=False)
def sample_points(name: str, params_json: str, n: int, seed: int, dim: int) -> np.ndarray:
    """A seeded sample of a dataset (cached: the same settings give the same array)."""
    return sample(name, n, seed=seed, dim=dim, **json.loads(params_json))


def is_image(filename: str) -> bool:
    return Path(filename).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


@st.cache_data(max_entries=16, show_spinner=False)
def _read_upload(digest: str, _data: bytes, filename: str, n: int, seed: int) -> PointTable:
    if is_image(filename):
        points = image_to_points(_data, n=n, seed=seed, filename=filename)
        return PointTable(points, label=f"'{filename}'")
    table = read_points(_data, filename=filename)
    if len(table) > n:  # a seeded random subset of the rows
        idx = np.sort(np.random.default_rng(seed).choice(len(table), size=n, replace=False))
        subset = Note("info", f"Using a random {n:,} of its {len(table):,} rows (the data seed picks them).")
        table = dataclasses.replace(table, points=table.points[idx], notes=(*table.notes, subset))
    return table


def check_upload_size(data: bytes, filename: str, limit: int, advice: str) -> None:
    """An uploader's limit (``limit`` bytes), checked on the server before anything reads the file (the
    browser lets larger files through, see :data:`UPLOADER_LIMIT_MB`): ``DataFileError`` naming the
    file, its size, the limit and ``advice``."""
    if len(data) > limit:
        shown = f"{limit / 2**20:,.0f} MB" if limit >= 2**20 else f"{limit:,}-byte"
        raise DataFileError(
            f"'{filename}' is {len(data) / 2**20:,.1f} MB, larger than the {shown} upload limit; {advice}."
        )


def read_upload(data: bytes, filename: str, n: int, seed: int) -> PointTable:
    """Points from an uploaded table (CSV/TSV/TXT/NPY/NPZ; at most ``n`` rows, a seeded subset) or
    image (``n`` points on its dark pixels), with the reader's notes for the user (a dropped index
    column, constant columns, ...). Raises ``DataFileError`` with a message for the user."""
    advice = "upload a smaller file (for example a random subsample of the rows)"
    check_upload_size(data, filename, MAX_UPLOAD_BYTES, advice)
    digest = hashlib.sha1(data).hexdigest()
    return _read_upload(digest, data, filename, n, seed)


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def keep_widget_state(state: Any, defaults: Mapping[str, Any]) -> None:
    """For a Streamlit-like ``state`` mapping: set each key's default once, and re-assign every key that
    has a value (Streamlit forgets the values of widgets that a page did not draw, e.g. while another
    page was open; re-assigning them keeps them). A default of None means "keep only"."""
    for key, default in defaults.items():
        if key in state:
            state[key] = state[key]
        elif default is not None:
            state[key] = default
