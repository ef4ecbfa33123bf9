"""Reading what users upload into validated point clouds, with errors a user can act on.

Entry points (all importable from here):

* :func:`read_points` reads a table of points (one point per row, one coordinate per column) from CSV,
  TSV, whitespace- or semicolon-separated text, NumPy ``.npy`` or ``.npz`` files and returns a
  :class:`PointTable`: an ``(n, d)`` float64 array plus :class:`Note` s for the user (a dropped index
  column, constant columns, duplicated points). :func:`load_points` returns just the array.
* :func:`image_to_points` turns the dark pixels of an image into a 2-D point cloud.
* :func:`check_source` refuses a cloud whose points all coincide as the source of a flow, and
  :func:`check_precision` one with values beyond float32's range for a float32 run.

Every problem is reported as a :class:`DataFileError` (a ``ValueError``) whose message names the file and
says what is wrong, where (row and column numbers 1-based, as a spreadsheet shows them) and what to do
about it. Nothing is ever unpickled: ``.npy``/``.npz`` files are read with ``allow_pickle=False``.

The work is done in :mod:`gpa_core.data.sources` (limits, the error, the bytes of an upload),
:mod:`gpa_core.data.tables` (text and NumPy readers), :mod:`gpa_core.data.images` and
:mod:`gpa_core.data.checks` (notes and the checks before a run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpa_core.data.checks import FLOAT32_MAX, Note, check_precision, check_source
from gpa_core.data.images import IMAGE_FORMATS, image_to_points
from gpa_core.data.sources import (
    MAX_COLUMNS,
    MAX_IMAGE_PIXELS,
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    DataFileError,
    Source,
    read_source,
)
from gpa_core.data.tables import read_table

__all__ = [
    "FLOAT32_MAX",
    "IMAGE_FORMATS",
    "MAX_COLUMNS",
    "MAX_IMAGE_PIXELS",
    "MAX_ROWS",
    "MAX_UPLOAD_BYTES",
    "DataFileError",
    "Note",
    "PointTable",
    "check_precision",
    "check_source",
    "image_to_points",
    "load_points",
    "read_points",
]


@dataclass(frozen=True)
class PointTable:
    """What :func:`read_points` read: ``points`` ((n, d) float64, finite, n >= 2, d >= 1), ``notes`` for
    the user and ``label``, the file's name as the messages quote it."""

    points: np.ndarray
    notes: tuple[Note, ...] = ()
    label: str = "The uploaded data"

    def __len__(self) -> int:
        return len(self.points)


def read_points(
    source: Source,
    *,
    filename: str | None = None,
    expected_dim: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> PointTable:
    """Read a table of points (rows are points, columns coordinates) into a :class:`PointTable`.

    ``source`` is a path, the file's bytes, or a binary file object. The format comes from the extension
    of ``filename`` (or of the path): ``.csv``, ``.tsv``, ``.txt``, ``.dat`` (text; the delimiter --
    comma, tab, semicolon or whitespace -- is sniffed; UTF-8, Latin-1 and UTF-16 with or without a
    byte-order mark), ``.npy`` or ``.npz``. Bytes without a name are recognised by content. In text files
    a first row of column names is skipped, as are blank lines and lines starting with ``#``. A single
    column (or a 1-D array) gives ``n x 1`` points.

    A saved row index in a text table is dropped, with a note:

    * after a header, each leading column whose name is empty, ``index``, ``idx``, ``id`` or
      ``Unnamed: k`` (what pandas' ``DataFrame.to_csv`` and R's ``write.csv`` write) and whose values
      are distinct whole numbers, as long as one column remains;
    * without a header (conservatively) only column 1, and only if it is exactly 0, 1, ..., n-1 or
      1, 2, ..., n in file order, n >= 3, every cell of it is written as a bare integer (``3``, not
      ``3.0``), and the other columns hold a number that is not whole. An all-integer table (a lattice,
      a diagonal) keeps the column, with a warning; a header naming the column keeps it silently.

    Notes also report constant columns (by number and name), columns that are constant once rounded to
    float32, values beyond float32's range (+-3.4e38, see :func:`check_precision`), all rows being one
    point, and duplicated rows; such data are still returned.

    Raises :class:`DataFileError` for an empty or too large file, a non-numeric or empty cell, NaN/inf
    values (a number too large for float64 is named as such), rows of different lengths, fewer than 2
    points, more than ``MAX_COLUMNS`` columns or ``MAX_ROWS`` rows, a pickled/object array, an array with
    more than 2 dimensions, a file of another kind (a spreadsheet, an image, a pickle, ...; it is named),
    or a column count other than ``expected_dim`` when that is given.
    """
    if expected_dim is not None and (
        isinstance(expected_dim, bool) or not isinstance(expected_dim, int | np.integer) or expected_dim < 1
    ):
        raise ValueError(f"expected_dim must be a positive integer or None, got {expected_dim!r}")
    data, label, suffix = read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes). Upload a file with one point per row.")

    points, notes = read_table(data, label, suffix, max_bytes)
    d = points.shape[1]
    if expected_dim is not None and d != expected_dim:
        raise DataFileError(
            f"{label} has {d} column{'s' if d != 1 else ''} (dimension {d}), but {expected_dim} "
            f"{'are' if expected_dim != 1 else 'is'} needed here. Upload points with {expected_dim} "
            f"coordinate{'s' if expected_dim != 1 else ''} per row."
        )
    return PointTable(points, notes, label)


def load_points(
    source: Source,
    *,
    filename: str | None = None,
    expected_dim: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> np.ndarray:
    """Read a table of points into an ``(n, d)`` float64 array: :func:`read_points` without the notes."""
    return read_points(source, filename=filename, expected_dim=expected_dim, max_bytes=max_bytes).points
