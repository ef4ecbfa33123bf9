"""What the point readers notice about a table and what a run refuses: the :class:`Note` s a reader
returns (a dropped row index, constant columns, values beyond float32, one repeated point, duplicated
rows) and the checks a run makes before it starts (:func:`check_source`, :func:`check_precision`).

Every function takes points as an ``(n, d)`` array (n points, d coordinates); refusals raise
:class:`~gpa_core.data.sources.DataFileError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gpa_core.data.sources import DataFileError, clip, count_is

__all__ = [
    "FLOAT32_MAX",
    "INDEX_NAME",
    "Note",
    "NoteLevel",
    "check_precision",
    "check_source",
    "index_columns",
    "table_notes",
]


FLOAT32_MAX: float = float(np.finfo(np.float32).max)
"""Largest finite float32 (about 3.4e38): the flow computes in float32 by default (and expression matrices
are held in float32), where larger values overflow."""


NoteLevel = Literal["info", "warning"]


@dataclass(frozen=True)
class Note:
    """Something the reader did or noticed: ``info`` (e.g. it dropped an index column) or ``warning``
    (the data can be used but may not be what was meant, e.g. a constant column)."""

    level: NoteLevel
    text: str

    def __str__(self) -> str:
        return self.text


INDEX_NAME = re.compile(r"|index|idx|id|unnamed: ?\d+", flags=re.IGNORECASE)
_LIST_AT_MOST = 6  # columns named one by one in a note


def _num(x: float) -> str:
    """A number as a note shows it (up to 6 significant digits)."""
    return f"{x:.6g}"


def _cap(text: str) -> str:
    """``text`` with its first letter upper-case (the rest as it is, unlike ``str.capitalize``)."""
    return text[:1].upper() + text[1:]


def _point(row: np.ndarray) -> str:
    """``(5, 5)`` -- a point, with at most 4 coordinates shown."""
    shown = ", ".join(_num(float(v)) for v in row[:4])
    return f"({shown}{', …' if len(row) > 4 else ''})"


def _column(j: int, names: list[str] | None) -> str:
    """``column 3 ('z')``: a file's column by number (1-based) and, when it has one, by name."""
    name = names[j] if names is not None and j < len(names) else ""
    return f"column {j + 1} ('{clip(name)}')" if name else f"column {j + 1}"


def _counting(start: int, n: int) -> str:
    """``0, 1, 2`` or ``1, 2, …, 100``: the row numbers from ``start``."""
    if n <= 4:
        return ", ".join(str(start + i) for i in range(n))
    return f"{start}, {start + 1}, …, {start + n - 1:,}"


def _row_numbers(col: np.ndarray) -> int | None:
    """0 or 1 if ``col`` is exactly 0, 1, ..., n-1 or 1, 2, ..., n (row numbers), else ``None``."""
    start = col[0]
    if start not in (0.0, 1.0) or not np.array_equal(col, start + np.arange(len(col))):
        return None
    return int(start)


def index_columns(
    arr: np.ndarray, names: list[str] | None, integer_text: Callable[[], bool]
) -> tuple[int, list[Note]]:
    """How many leading columns of the ``(n, d)`` table ``arr`` read from text are a saved row index
    (see :func:`~gpa_core.data.points.read_points` for the rule), and the notes saying so. ``names`` are
    the header's column names (``None`` without a header); ``integer_text()`` tells whether every cell of
    column 1 is written as a bare integer (asked only when it matters: it scans the text)."""
    n, d = arr.shape
    notes: list[Note] = []
    if names is not None:
        k = 0
        while k < d - 1 and k < len(names) and INDEX_NAME.fullmatch(names[k]):
            col = arr[:, k]
            if not (np.array_equal(col, np.floor(col)) and np.unique(col).size == n):
                break
            start = _row_numbers(col)
            held = (
                f"numbers the rows {_counting(start, n)}"
                if start is not None
                else f"holds row labels ({n:,} distinct whole numbers: {_num(col[0])}, {_num(col[1])}, …)"
            )
            named = f"named '{clip(names[k])}'" if names[k] else "no name in the header"
            notes.append(
                Note(
                    "info",
                    f"Dropped column {k + 1} ({named}): it {held}, a saved row index such as pandas' "
                    "DataFrame.to_csv writes unless index=False, not a coordinate.",
                )
            )
            k += 1
        return k, notes
    if n < 3 or d < 2 or _row_numbers(arr[:, 0]) is None:
        return 0, notes
    start = _row_numbers(arr[:, 0])
    rows = _counting(start, n)
    rest = arr[:, 1:]
    if integer_text() and not np.array_equal(rest, np.floor(rest)):
        notes.append(
            Note(
                "info",
                f"Dropped column 1: it numbers the rows {rows}, a saved row index (pandas' to_csv writes "
                "one unless index=False), not a coordinate. If it is a coordinate, add a header row that "
                "names the columns.",
            )
        )
        return 1, notes
    notes.append(
        Note(
            "warning",
            f"Column 1 numbers the rows {rows}, like a saved row index; it is kept as a coordinate. If "
            "it is an index, delete it, or add a header row whose first name is empty (',x,y').",
        )
    )
    return 0, notes


def check_source(points: np.ndarray, label: str = "The source") -> None:
    """Refuse ``(n, d)`` points that all coincide as the source of a flow.

    Particles that start at one point get the same velocity at every step (the flow is a function of
    position), so they move as one and can never spread over a target: the run would be one particle.
    As a target a single point is fine (a point mass), so :func:`~gpa_core.data.points.read_points`
    only warns about it."""
    x = np.asarray(points)
    if len(x) >= 2 and bool((x == x[0]).all()):
        raise DataFileError(
            f"{label} cannot be the source: every one of its {len(x):,} points is {_point(x[0])}. "
            "Particles that start at one point get the same velocity at every step, so they move as one "
            "and never spread over the target. Use points that differ (as the target, a single point "
            "is fine)."
        )


def _rescale_advice(arr: np.ndarray) -> str:
    """How to bring values into float32's range: divide by the power of ten of the largest magnitude."""
    top = float(np.abs(arr).max())
    return (
        f"Rescale the data (e.g. divide every value by 1e{math.floor(math.log10(top))}, which brings the "
        f"largest, {top:.3g}, to about 1) or choose float64 precision."
    )


def check_precision(points: np.ndarray, dtype: str, label: str = "The data") -> None:
    """Refuse ``(n, d)`` points a flow in ``dtype`` (``"float32"`` or ``"float64"``) cannot hold: in
    float32 values beyond ±3.4e38 turn into infinities (which the flow would report as "NaN or
    infinite")."""
    x = np.asarray(points, dtype=np.float64)
    if dtype != "float32" or x.size == 0 or not (np.abs(x) > FLOAT32_MAX).any():
        return
    big = np.abs(x) > FLOAT32_MAX
    col = int(np.argwhere(big)[0][1])
    raise DataFileError(
        f"{label} has {count_is(int(big.sum()), 'value')} beyond float32's range (±3.4e38), the "
        f"precision this run computes in (the first in coordinate {col + 1}). {_rescale_advice(x)}"
    )


def _distinct_rows(arr: np.ndarray) -> int:
    """The number of distinct rows, counted by a 64-bit hash of each row (one column at a time, so the
    memory needed is one number per row; two different rows of a million share a hash with odds ~1e-8)."""
    h = np.full(len(arr), 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(arr.shape[1]):
            bits = np.ascontiguousarray(arr[:, j] + 0.0).view(np.uint64)  # + 0.0: -0.0 becomes 0.0
            h = (h ^ bits) * prime
            h ^= h >> np.uint64(29)
    h.sort()
    return 1 + int(np.count_nonzero(h[1:] != h[:-1]))


def table_notes(arr: np.ndarray, names: list[str] | None, offset: int) -> list[Note]:
    """Notes on degenerate data in the ``(n, d)`` table ``arr``: constant columns (also once rounded to
    float32), values beyond float32's range, a single point, duplicated rows. ``names`` are the header's
    column names (``None`` if none); ``offset`` leading file columns were dropped (they count in column
    numbers)."""
    n, d = arr.shape
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    constant = np.flatnonzero(lo == hi)
    notes: list[Note] = []
    if constant.size == d:
        notes.append(
            Note(
                "warning",
                f"Every row is the same point {_point(arr[0])}: as the target that is a single point "
                "mass; it cannot be the source (particles that start at one point move as one).",
            )
        )
        return notes
    cols = [_column(offset + int(j), names) for j in constant]
    if 0 < constant.size <= _LIST_AT_MOST:
        for j, col in zip(constant, cols, strict=True):
            notes.append(
                Note(
                    "warning",
                    f"{_cap(col)} is constant (every value is {_num(float(lo[j]))}): the "
                    f"points vary in only {d - constant.size} of their {d} coordinates.",
                )
            )
    elif constant.size:
        notes.append(
            Note(
                "warning",
                f"{constant.size} of the {d} columns are constant: {', '.join(cols[:_LIST_AT_MOST])}, … "
                f"(e.g. every value of {cols[0]} is {_num(float(lo[constant[0]]))}); the points vary in "
                f"only {d - constant.size} of their {d} coordinates.",
            )
        )
    for j in np.flatnonzero(np.maximum(-lo, hi) > FLOAT32_MAX)[:_LIST_AT_MOST]:
        big = np.abs(arr[:, j]) > FLOAT32_MAX
        notes.append(
            Note(
                "warning",
                f"{_cap(_column(offset + int(j), names))} has {count_is(int(big.sum()), 'value')} beyond "
                f"float32's range (±3.4e38), up to {_num(float(np.abs(arr[:, j]).max()))}: with float32 "
                f"precision (the default) the flow cannot hold values that large. {_rescale_advice(arr)}",
            )
        )
    with np.errstate(over="ignore"):
        lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)  # rounding is monotone: min/max decide
    collapsed = np.flatnonzero((lo32 == hi32) & (lo != hi))
    for j in collapsed[:_LIST_AT_MOST]:
        notes.append(
            Note(
                "warning",
                f"{_cap(_column(offset + int(j), names))} varies only in digits float32 cannot hold "
                f"({_num(float(lo[j]))} to {float(hi[j]):.10g}): in float32, the precision the flow "
                "computes in, it is constant. Subtract a constant from it (or rescale it), or choose "
                "float64 precision.",
            )
        )
    distinct = _distinct_rows(arr)
    if distinct < n:
        notes.append(
            Note(
                "info",
                f"{n - distinct:,} of the {n:,} rows repeat an earlier row ({distinct:,} distinct points); "
                "particles that start at the same point move together.",
            )
        )
    return notes
