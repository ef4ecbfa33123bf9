"""An upload before any reader parses it: the size limits every point reader enforces, the
:class:`DataFileError` they all raise, :func:`read_source` (the bytes of a path, a bytes object or a binary
file object, with a name for messages) and the wording helpers their messages share.

Used by :mod:`gpa_core.data.tables`, :mod:`gpa_core.data.images` and :mod:`gpa_core.data.checks`; the entry
point for users is :mod:`gpa_core.data.points`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import numpy as np

__all__ = [
    "MAX_COLUMNS",
    "MAX_IMAGE_PIXELS",
    "MAX_ROWS",
    "MAX_UPLOAD_BYTES",
    "DataFileError",
    "Source",
    "clip",
    "count_is",
    "read_source",
    "size_text",
]


MAX_UPLOAD_BYTES: int = 50 * 2**20
"""Largest accepted upload, in bytes (50 MB)."""
MAX_COLUMNS: int = 4096
"""Largest accepted number of columns (dimensions) of a point table."""
MAX_ROWS: int = 1_000_000
"""Largest accepted number of rows (points) of a point table."""
MAX_IMAGE_PIXELS: int = 20_000_000
"""Largest accepted image, in pixels (20 megapixels); larger ones are refused before decoding."""


_SNIPPET = 40  # characters of offending text quoted in messages

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class DataFileError(ValueError):
    """An uploaded file cannot be used; the message says what is wrong, where, and what to do."""


def size_text(n_bytes: float) -> str:
    """Format a byte count the way a user reads it (MB = 2**20 bytes, kB = 2**10 bytes)."""
    if n_bytes < 2**20:
        return f"{n_bytes / 2**10:.0f} kB" if n_bytes >= 2**10 else f"{int(n_bytes)} bytes"
    mb = n_bytes / 2**20
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


def read_source(source: Source, filename: str | None, max_bytes: int) -> tuple[bytes, str, str]:
    """Return ``(data, label, suffix)``: the raw bytes, a name for messages and the lower-case extension."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    too_big = (
        "{label} is {size}, larger than the {limit} upload limit; upload a smaller file "
        "(for example a random subsample of the rows)."
    )
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = f"'{filename}'" if filename else "The uploaded data"
        if len(data) > max_bytes:
            raise DataFileError(
                too_big.format(label=label, size=size_text(len(data)), limit=size_text(max_bytes))
            )
    elif isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        label = f"'{filename or path.name}'"
        if not path.exists():
            raise DataFileError(f"File not found: '{path}'. Check the path and try again.")
        if not path.is_file():
            raise DataFileError(f"'{path}' is not a regular file (it is a folder or a device).")
        size = path.stat().st_size
        if size > max_bytes:
            raise DataFileError(too_big.format(label=label, size=size_text(size), limit=size_text(max_bytes)))
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:  # the file grew while we looked at it
            raise DataFileError(
                too_big.format(label=label, size=f"over {size_text(max_bytes)}", limit=size_text(max_bytes))
            )
        filename = filename or path.name
    elif hasattr(source, "read"):  # a binary file-like object, e.g. Streamlit's UploadedFile
        filename = filename or getattr(source, "name", None)
        if filename is not None and not isinstance(filename, str):
            filename = None
        label = f"'{filename}'" if filename else "The uploaded data"
        data = source.read(max_bytes + 1)
        if isinstance(data, str):
            raise DataFileError(f"{label} was opened in text mode; open it in binary mode ('rb').")
        data = bytes(data)
        if len(data) > max_bytes:
            raise DataFileError(
                too_big.format(label=label, size=f"over {size_text(max_bytes)}", limit=size_text(max_bytes))
            )
    else:
        raise TypeError(f"source must be a path, bytes or a binary file object, not {type(source).__name__}")
    suffix = Path(filename).suffix.lower() if filename else ""
    return data, label, suffix


def count_is(count: int, noun: str) -> str:
    """``"1 cell that is"`` / ``"3 cells that are"``."""
    return f"1 {noun} that is" if count == 1 else f"{count:,} {noun}s that are"


def clip(text: str) -> str:
    """Shorten offending text for a message."""
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"
