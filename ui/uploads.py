"""Files in and out of the pages: uploads checked and read (tables and images as points), and the bytes
of a .npy download.

* :func:`check_upload_size` — an uploader's limit, checked on the server before anything reads the file
  (the playground's and the latent page's uploaders both use it).
* :func:`read_upload` — an uploaded table or image as a :class:`~gpa_core.data.points.PointTable`
  (points and notes for the user), cached by content; raises ``DataFileError`` with a user-facing
  message.
* :data:`UPLOADER_LIMIT_MB` — what an uploader lets the browser send (see there why it is larger than
  what the readers accept).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import streamlit as st

from gpa_core.data.points import (
    MAX_UPLOAD_BYTES,
    DataFileError,
    Note,
    PointTable,
    image_to_points,
    read_points,
)

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp")
TABLE_EXTENSIONS = ("csv", "tsv", "txt", "dat", "npy", "npz")
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES // 2**20
#: What an uploader lets the browser send: four times what the readers accept, and no filter on file
#: types. A file the browser itself refuses never reaches the page, so the page would go on showing the
#: previous file's message; a file that is too large or of the wrong type is sent instead, refused by
#: the reader with its own message naming it, and that message replaces the last one.
UPLOADER_LIMIT_MB = 4 * UPLOAD_LIMIT_MB


def is_image(filename: str) -> bool:
    """Whether ``filename`` names an image (by its extension, :data:`IMAGE_EXTENSIONS`)."""
    return Path(filename).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


def check_upload_size(data: bytes, filename: str, limit: int, advice: str) -> None:
    """An uploader's limit (``limit`` bytes), checked on the server before anything reads the file (the
    browser lets larger files through, see :data:`UPLOADER_LIMIT_MB`): ``DataFileError`` naming the
    file, its size, the limit and ``advice``."""
    if len(data) > limit:
        shown = f"{limit / 2**20:,.0f} MB" if limit >= 2**20 else f"{limit:,}-byte"
        raise DataFileError(
            f"'{filename}' is {len(data) / 2**20:,.1f} MB, larger than the {shown} upload limit; {advice}."
        )


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


def read_upload(data: bytes, filename: str, n: int, seed: int) -> PointTable:
    """Points from an uploaded table (CSV/TSV/TXT/NPY/NPZ; at most ``n`` rows, a seeded subset) or
    image (``n`` points on its dark pixels), with the reader's notes for the user (a dropped index
    column, constant columns, ...). Raises ``DataFileError`` with a message for the user."""
    advice = "upload a smaller file (for example a random subsample of the rows)"
    check_upload_size(data, filename, MAX_UPLOAD_BYTES, advice)
    digest = hashlib.sha1(data).hexdigest()
    return _read_upload(digest, data, filename, n, seed)


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a .npy file (no pickle), for a download button."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()
