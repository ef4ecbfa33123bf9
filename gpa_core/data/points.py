"""Reading what users upload into validated point clouds, with errors a user can act on.

Entry points:

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
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import methodcaller
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from gpa_core.data.file_kinds import (
    GZIP_MAGIC,
    HDF5_MAGIC,
    OLE2_MAGIC,
    ZIP_MAGIC,
    utf16_without_bom,
    zip_kind,
)

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

MAX_UPLOAD_BYTES: int = 50 * 2**20
"""Largest accepted upload, in bytes (50 MB)."""
MAX_COLUMNS: int = 4096
"""Largest accepted number of columns (dimensions) of a point table."""
MAX_ROWS: int = 1_000_000
"""Largest accepted number of rows (points) of a point table."""
MAX_IMAGE_PIXELS: int = 20_000_000
"""Largest accepted image, in pixels (20 megapixels); larger ones are refused before decoding."""

FLOAT32_MAX: float = float(np.finfo(np.float32).max)
"""Largest float32 (about 3.4e38): the flow computes in float32 by default, where larger values overflow."""
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
"""The image formats :func:`image_to_points` decodes (PIL's other plugins are never tried)."""

TEXT_EXTENSIONS = (".csv", ".tsv", ".txt", ".dat")
"""File extensions read as delimited text."""
_NPY_MAGIC = b"\x93NUMPY"
_SNIPPET = 40  # characters of offending text quoted in messages

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class DataFileError(ValueError):
    """An uploaded file cannot be used; the message says what is wrong, where, and what to do."""


NoteLevel = Literal["info", "warning"]


@dataclass(frozen=True)
class Note:
    """Something the reader did or noticed: ``info`` (e.g. it dropped an index column) or ``warning``
    (the data can be used but may not be what was meant, e.g. a constant column)."""

    level: NoteLevel
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PointTable:
    """What :func:`read_points` read: ``points`` ((n, d) float64, finite, n >= 2, d >= 1), ``notes`` for
    the user and ``label``, the file's name as the messages quote it."""

    points: np.ndarray
    notes: tuple[Note, ...] = ()
    label: str = "The uploaded data"

    def __len__(self) -> int:
        return len(self.points)


# --------------------------------------------------------------------------------------------------------
# Reading raw bytes
# --------------------------------------------------------------------------------------------------------


def _mb(n_bytes: float) -> str:
    """Format a byte count the way a user reads it (MB = 2**20 bytes, kB = 2**10 bytes)."""
    if n_bytes < 2**20:
        return f"{n_bytes / 2**10:.0f} kB" if n_bytes >= 2**10 else f"{int(n_bytes)} bytes"
    mb = n_bytes / 2**20
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


def _read_source(source: Source, filename: str | None, max_bytes: int) -> tuple[bytes, str, str]:
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
            raise DataFileError(too_big.format(label=label, size=_mb(len(data)), limit=_mb(max_bytes)))
    elif isinstance(source, str | os.PathLike):
        path = Path(os.fspath(source))
        label = f"'{filename or path.name}'"
        if not path.exists():
            raise DataFileError(f"File not found: '{path}'. Check the path and try again.")
        if not path.is_file():
            raise DataFileError(f"'{path}' is not a regular file (it is a folder or a device).")
        size = path.stat().st_size
        if size > max_bytes:
            raise DataFileError(too_big.format(label=label, size=_mb(size), limit=_mb(max_bytes)))
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:  # the file grew while we looked at it
            raise DataFileError(
                too_big.format(label=label, size=f"over {_mb(max_bytes)}", limit=_mb(max_bytes))
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
                too_big.format(label=label, size=f"over {_mb(max_bytes)}", limit=_mb(max_bytes))
            )
    else:
        raise TypeError(f"source must be a path, bytes or a binary file object, not {type(source).__name__}")
    suffix = Path(filename).suffix.lower() if filename else ""
    return data, label, suffix


# --------------------------------------------------------------------------------------------------------
# read_points / load_points
# --------------------------------------------------------------------------------------------------------


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
    data, label, suffix = _read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes). Upload a file with one point per row.")

    kind = _file_kind(data, label, suffix)
    if kind == "text":
        table = _load_text(data, label)
    else:
        arr = _load_npy(data, label) if kind == "npy" else _load_npz(data, label, max_bytes)
        table = PointTable(arr, _shape_notes(arr, None, 0), label)
    d = table.points.shape[1]
    if expected_dim is not None and d != expected_dim:
        raise DataFileError(
            f"{label} has {d} column{'s' if d != 1 else ''} (dimension {d}), but {expected_dim} "
            f"{'are' if expected_dim != 1 else 'is'} needed here. Upload points with {expected_dim} "
            f"coordinate{'s' if expected_dim != 1 else ''} per row."
        )
    return table


def load_points(
    source: Source,
    *,
    filename: str | None = None,
    expected_dim: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> np.ndarray:
    """Read a table of points into an ``(n, d)`` float64 array: :func:`read_points` without the notes."""
    return read_points(source, filename=filename, expected_dim=expected_dim, max_bytes=max_bytes).points


def check_source(points: np.ndarray, label: str = "The source") -> None:
    """Refuse points that all coincide as the source of a flow.

    Particles that start at one point get the same velocity at every step (the flow is a function of
    position), so they move as one and can never spread over a target: the run would be one particle.
    As a target a single point is fine (a point mass), so :func:`read_points` only warns about it."""
    x = np.asarray(points)
    if len(x) >= 2 and bool((x == x[0]).all()):
        raise DataFileError(
            f"{label} cannot be the source: every one of its {len(x):,} points is {_point(x[0])}. "
            "Particles that start at one point get the same velocity at every step, so they move as one "
            "and never spread over the target. Use points that differ (as the target, a single point "
            "is fine)."
        )


def _file_kind(data: bytes, label: str, suffix: str) -> str:
    """Decide between ``"text"``, ``"npy"`` and ``"npz"`` from the extension (or the content if none)."""
    if suffix in TEXT_EXTENSIONS:
        return "text"
    if suffix == ".npy":
        return "npy"
    if suffix == ".npz":
        return "npz"
    if suffix in (".xlsx", ".xls", ".ods", ".xlsm"):
        raise DataFileError(
            f"{label} is a spreadsheet workbook; spreadsheets cannot be read directly. "
            "Save the sheet as CSV (File > Save as > CSV) and upload that."
        )
    if suffix:
        raise DataFileError(
            f"{label} has the unsupported file type '{suffix}'. Upload a .csv, .tsv, .txt, .npy or .npz file."
        )
    if data.startswith(_NPY_MAGIC):
        return "npy"
    if data.startswith(ZIP_MAGIC) and zip_kind(data) in ("npz", "zip", "bad"):
        return "npz"  # spreadsheets and documents go on to the text reader, which names them
    return "text"


# ---- recognising files of other kinds --------------------------------------------------------------------

_IMAGE_ADVICE = "upload it with its image extension (such as .png) to turn its dark pixels into points"
_SHEET_ADVICE = "save the sheet as CSV (File > Save as > CSV) and upload that"
_MAGICS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", _IMAGE_ADVICE),
    (b"\xff\xd8\xff", "a JPEG image", _IMAGE_ADVICE),
    (b"GIF87a", "a GIF image", _IMAGE_ADVICE),
    (b"GIF89a", "a GIF image", _IMAGE_ADVICE),
    (b"II*\x00", "a TIFF image", _IMAGE_ADVICE),
    (b"MM\x00*", "a TIFF image", _IMAGE_ADVICE),
    (b"%PDF-", "a PDF document", "export the table from it as CSV"),
    (OLE2_MAGIC, "an Office document (an old .xls workbook?)", _SHEET_ADVICE),
    (GZIP_MAGIC, "a gzip-compressed file", "decompress it first and upload the table inside"),
    (HDF5_MAGIC, "an HDF5 file", "save the array as .npy (numpy.save) or CSV"),
    (_NPY_MAGIC, "a NumPy .npy file", "give it the .npy extension"),
)


def _identify(data: bytes, *, binary: bool = True) -> tuple[str, str] | None:
    """``(what it is, what to do)`` for a file that is recognisably not a point table, else ``None``.
    With ``binary=False`` (text without NUL bytes) only signatures no text table can start with count."""
    for magic, what, advice in _MAGICS:
        if data.startswith(magic):
            return what, advice
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image", _IMAGE_ADVICE
    if data.startswith((ZIP_MAGIC, b"PK\x05\x06")):
        return {
            "xlsx": ("an Excel workbook (.xlsx)", _SHEET_ADVICE),
            "ods": ("an OpenDocument spreadsheet (.ods)", _SHEET_ADVICE),
            "docx": ("an Office document", "export the table from it as CSV"),
            "npz": ("a NumPy .npz archive", "give it the .npz extension"),
        }.get(zip_kind(data), ("a zip archive", "unzip it and upload the table inside"))
    if not binary:
        return None
    if data.startswith(b"PAR1"):
        return "a Parquet file", "save it as CSV (e.g. DataFrame.to_csv(path, index=False))"
    if len(data) > 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return "a Python pickle", "save the array with numpy.save (a .npy file, no pickle) or as CSV"
    if data.startswith(b"BM") and b"\x00" in data[:26]:
        return "a BMP image", _IMAGE_ADVICE
    return None


def _looks_like_text_table(data: bytes) -> bool:
    """Whether the start of ``data`` reads as a delimited text table (for hints on misnamed files)."""
    head = data[:4096]
    if b"\x00" in head and utf16_without_bom(head) is None:
        return False
    try:
        text = _decode(head, "")
    except DataFileError:
        return False
    lines = [line for line in text.splitlines()[:-1] or text.splitlines() if line.strip()]
    return bool(lines) and any(re.fullmatch(r"[\s,;\t]*[-+.\d][-+.\deE\s,;\t]*", ln) for ln in lines[:20])


# ---- text tables -----------------------------------------------------------------------------------------


def _decode(data: bytes, label: str) -> str:
    """Decode text bytes: UTF-8 with or without BOM, UTF-16/32 with BOM, UTF-16 without BOM (told by its
    NUL bytes), else Latin-1. Binary data are refused, saying what the file is when it is recognised."""
    boms = (
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    )
    encoding = next((enc for bom, enc in boms if data.startswith(bom)), None)
    if encoding is None:
        binary = b"\x00" in data[:65536]
        found = _identify(data, binary=binary)
        if found is not None:
            raise DataFileError(f"{label} is not a text table: it is {found[0]}; {found[1]}.")
        if binary:
            encoding = utf16_without_bom(data)
            if encoding is None:
                raise DataFileError(
                    f"{label} is not a text table (it contains binary data). Upload a CSV or text file "
                    "with one point per row, or a NumPy .npy/.npz file."
                )
    if encoding is not None:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DataFileError(
                f"{label} looks like {encoding.upper()} text but cannot be decoded ({exc.reason} at byte "
                f"{exc.start}). Save it as UTF-8 text (in Excel: CSV UTF-8) and upload it again."
            ) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _data_lines(lines: list[str]) -> Sequence[int]:
    """Indices of the lines that hold data: not blank and not a ``#`` comment."""
    stripped = list(map(str.strip, lines))
    if all(stripped) and not any(map(methodcaller("startswith", "#"), stripped)):
        return range(len(lines))  # the common case, decided without a Python-level loop
    return [i for i, s in enumerate(stripped) if s and s[0] != "#"]


def _sniff_delimiter(sample: list[str]) -> str | None:
    """Pick the delimiter of a text table from its first data lines (``None`` means whitespace).

    Tab, then semicolon, then comma: a delimiter wins if every sampled line has the same, non-zero count
    of it (so ``1,5;2,5`` is read as semicolon-separated and its decimal commas are reported).
    """
    order = ["\t", ";", ","]
    first = _strip_comment(sample[0])
    consistent = [
        d
        for d in order
        if first.count(d) > 0 and all(_strip_comment(s).count(d) == first.count(d) for s in sample)
    ]
    if consistent:
        return consistent[0]
    present = [d for d in order if first.count(d) > 0]
    if present:  # inconsistent counts: the ragged-row check will name the bad row
        return max(present, key=first.count)
    return None


def _uses_decimal_comma(sample: list[str]) -> bool:
    """Whether semicolon-separated lines write decimals with a comma (``1,5;2,5``, as European Excel does)."""
    body = "".join(_strip_comment(s) for s in sample)
    return "." not in body and re.search(r"\d,\d", body) is not None


def _strip_comment(line: str) -> str:
    """Drop a trailing ``# comment``."""
    j = line.find("#")
    return line if j < 0 else line[:j]


def _split(line: str, delim: str | None) -> list[str]:
    """Split one line into stripped, unquoted fields (the way ``np.loadtxt`` sees them)."""
    line = _strip_comment(line)
    parts = line.split() if delim is None else line.split(delim)
    return [p.strip().strip('"').strip() for p in parts]


def _first_field(line: str, delim: str | None) -> str:
    """The first field of ``line`` as :func:`_split` gives it, without splitting the rest."""
    line = _strip_comment(line)
    part = (line.split(None, 1) or [""])[0] if delim is None else line.split(delim, 1)[0]
    return part.strip().strip('"').strip()


def _count_fields(line: str, delim: str | None) -> int:
    """Number of fields in ``line`` without building them (fast on a line with 10^6 fields)."""
    line = _strip_comment(line)
    if delim is None:  # count runs of non-space characters, vectorised (no list of fields is built)
        codes = np.frombuffer(line.encode("utf-8"), dtype=np.uint8)  # spaces are ASCII: never inside
        if codes.size == 0:  # a multi-byte UTF-8 character
            return 0
        word = (codes != 32) & ((codes < 9) | (codes > 13))
        return int(word[0]) + int(np.count_nonzero(word[1:] & ~word[:-1]))
    return line.count(delim) + 1


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float (``nan``/``inf`` count as numbers)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _delim_name(delim: str | None) -> str:
    return {None: "whitespace", "\t": "tab", ",": "comma ','", ";": "semicolon ';'"}[delim]


def _is_header(fields: list[str], next_fields: list[str] | None) -> bool:
    """Whether the first data row is a row of column names: no field is a number and some field has a
    letter or '_' -- or it is the header pandas writes for an array, ``,0,1,...`` (the index has no
    name, the columns are numbered), above a row that starts with a whole number."""
    if all(not _is_number(f) for f in fields) and any(re.search(r"[^\W\d]", f) for f in fields):
        return True
    return (
        len(fields) >= 2
        and _INDEX_NAME.fullmatch(fields[0]) is not None
        and fields[1:] == [str(i) for i in range(len(fields) - 1)]
        and next_fields is not None
        and re.fullmatch(r"\d+", next_fields[0]) is not None
    )


def _load_text(data: bytes, label: str) -> PointTable:
    """Parse a delimited text table with NumPy's C reader; locate problems only if that fails."""
    text = _decode(data, label)
    if "\r" in text:  # Windows and old Mac line ends
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")  # split exactly where np.loadtxt does (not at \f, \v, \x1c, ...)
    if lines[-1] == "":
        lines.pop()
    keep = _data_lines(lines)
    if not keep:
        raise DataFileError(
            f"{label} is empty (it has no data lines, only blanks or # comments). "
            "Upload a file with one point per row."
        )
    first = lines[keep[0]]
    delim = _sniff_delimiter([lines[i] for i in keep[:20]])
    n_fields = _count_fields(first, delim)
    if n_fields > MAX_COLUMNS:
        raise DataFileError(
            f"{label} has {n_fields:,} columns in row {keep[0] + 1}, more than the limit of "
            f"{MAX_COLUMNS:,} dimensions. Reduce the dimension first (e.g. with PCA) or transpose the "
            "table if points are stored as columns."
        )
    decimal_comma = delim == ";" and _uses_decimal_comma([lines[i] for i in keep[:20]])
    if decimal_comma:
        lines = [line.replace(",", ".") for line in lines]
        first = lines[keep[0]]
    first_fields = _split(first, delim)
    header = _is_header(first_fields, _split(lines[keep[1]], delim) if len(keep) > 1 else None)
    if header:
        keep = keep[1:]
        if not keep:
            raise DataFileError(
                f"{label} has a header row but no data rows. Add at least 2 rows of numbers below it."
            )
    if len(keep) > MAX_ROWS:
        raise DataFileError(
            f"{label} has {len(keep):,} data rows, more than the limit of {MAX_ROWS:,} points. "
            "Upload a random subsample."
        )
    if len(keep) == len(lines) and not decimal_comma:
        body = text
    elif isinstance(keep, range):  # no blank or comment lines: a slice, without a Python-level loop
        body = "\n".join(lines[keep.start : keep.stop])
    else:
        body = "\n".join([lines[i] for i in keep])
    try:
        arr = np.loadtxt(
            io.StringIO(body), delimiter=delim, comments="#", quotechar='"', ndmin=2, dtype=np.float64
        )
    except ValueError as exc:
        raise _locate_text_error(lines, keep, delim, label, exc) from None
    if arr.shape[0] != len(keep):  # np.loadtxt skipped or merged lines unexpectedly: be safe
        raise DataFileError(
            f"{label} could not be read consistently: expected {len(keep)} rows, read {arr.shape[0]}."
        )

    def cell(r: int, c: int) -> str:
        return f"row {keep[r] + 1}, column {c + 1} ('{_clip(_split(lines[keep[r]], delim)[c])}')"

    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        r, c = np.argwhere(bad)[0]
        text_of = _split(lines[keep[r]], delim)[c]
        why = "Remove those rows or replace the missing values with numbers."
        if not re.fullmatch(r"[+-]?(nan|inf|infinity)", text_of, flags=re.IGNORECASE):
            why = (
                f"'{_clip(text_of)}' is too large even for float64 (beyond ±1.8e308): rescale the data "
                "(divide every value by a power of ten) and upload it again."
            )
        raise DataFileError(
            f"{label} has {_count_is(int(bad.sum()), 'cell')} NaN or infinite; the first is "
            f"{cell(r, c)}. {why}"
        )
    _check_count(arr, label)

    def first_cells_are_integers() -> bool:
        return all(re.fullmatch(r"\d+", _first_field(lines[i], delim)) for i in keep)

    names = first_fields if header else None
    drop, notes = _index_columns(arr, names, first_cells_are_integers)
    arr = np.ascontiguousarray(arr[:, drop:]) if drop else arr
    return PointTable(arr, (*notes, *_shape_notes(arr, names, drop)), label)


def _count_is(count: int, noun: str) -> str:
    """``"1 cell that is"`` / ``"3 cells that are"``."""
    return f"1 {noun} that is" if count == 1 else f"{count:,} {noun}s that are"


def _clip(text: str) -> str:
    """Shorten offending text for a message."""
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def _locate_text_error(
    lines: list[str], keep: list[int], delim: str | None, label: str, exc: ValueError
) -> DataFileError:
    """Scan the data lines (slow path, only after the fast parse failed) for the first bad row or cell."""
    expected = None
    first_row = None
    for i in keep:
        fields = _split(lines[i], delim)
        if expected is None:
            expected, first_row = len(fields), i + 1
        elif len(fields) != expected:
            extra = ""
            if delim is not None and len(fields) > expected and fields[-1] == "":
                extra = f" (a trailing {_delim_name(delim)} at the end of the line?)"
            return DataFileError(
                f"{label}: row {i + 1} has {len(fields)} field{'s' if len(fields) != 1 else ''} but row "
                f"{first_row} has {expected}{extra}. Every row must have the same number of columns "
                f"(values separated by {_delim_name(delim)}); check that row for a missing value or an "
                "extra separator."
            )
        for j, field in enumerate(fields):
            if field == "":
                hint = ""
                if j == len(fields) - 1 and delim is not None:
                    hint = f" (a trailing {_delim_name(delim)} at the end of the line?)"
                return DataFileError(
                    f"{label}: row {i + 1}, column {j + 1} is empty{hint}. Fill in the missing value or "
                    "delete the row."
                )
            if not _is_number(field):
                hint = ""
                if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", field):
                    hint = " Remove the thousands separators (or, if ',' is a decimal comma, use a point)."
                elif delim != "," and re.fullmatch(r"[+-]?\d*,\d+(e[+-]?\d+)?", field, flags=re.I):
                    hint = (
                        " Decimal commas are read only in semicolon-separated files; use a point, as in 1.5."
                    )
                return DataFileError(
                    f"{label}: row {i + 1}, column {j + 1} contains '{_clip(field)}', which is not a number. "
                    f"Every cell must be a plain number such as 1.5 or -2e3.{hint}"
                )
    return DataFileError(f"{label} could not be read as a table of numbers: {exc}")


# ---- NumPy files -----------------------------------------------------------------------------------------

_PICKLE_MSG = (
    "{label} contains Python objects (pickle); only plain numeric arrays are accepted. "
    "Save a float array with numpy.save(path, np.asarray(points, dtype=float))."
)


def _load_npy(data: bytes, label: str) -> np.ndarray:
    """Read a ``.npy`` file without ever unpickling; check its header before loading the data."""
    if not data.startswith(_NPY_MAGIC):
        if data[:1] == b"\x80" or data[:1] in (b"(", b"]", b"}"):
            raise DataFileError(_PICKLE_MSG.format(label=label))
        found = _identify(data)
        if found is not None:
            hint = f"it is {found[0]}; {found[1]}."
        elif _looks_like_text_table(data):
            hint = "it looks like a text table: give it the .csv (or .txt) extension."
        else:
            hint = "save it with numpy.save, or upload a CSV file."
        raise DataFileError(
            f"{label} is not a NumPy .npy file (it does not start with the .npy signature): {hint}"
        )
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:  # 2.0 and 3.0 share the header layout; numeric dtypes are plain ASCII
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except Exception as exc:  # ValueError mostly; a mangled header can also fail as SyntaxError, TokenError
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise DataFileError(_PICKLE_MSG.format(label=label)) from None
        raise DataFileError(
            f"{label} has a damaged .npy header ({_clip(str(exc)) or type(exc).__name__}). "
            "Save the array again."
        ) from None
    if dtype.hasobject:
        raise DataFileError(_PICKLE_MSG.format(label=label))
    _check_dtype(dtype, label)
    if len(shape) == 0:
        raise DataFileError(f"{label} holds a single number, not a table of points.")
    if len(shape) > 2:
        raise DataFileError(
            f"{label} holds a {len(shape)}-dimensional array of shape {tuple(shape)}; a 2-D array is "
            "needed (rows = points, columns = coordinates). Reshape it, e.g. x.reshape(len(x), -1)."
        )
    if len(shape) == 2 and shape[1] > MAX_COLUMNS:
        raise DataFileError(
            f"{label} has {shape[1]:,} columns, more than the limit of {MAX_COLUMNS:,} dimensions. Reduce "
            "the dimension first (e.g. with PCA)."
        )
    if shape[0] > MAX_ROWS:
        raise DataFileError(
            f"{label} has {shape[0]:,} rows, more than the limit of {MAX_ROWS:,} points. Upload a subsample."
        )
    needed = math.prod(shape) * dtype.itemsize
    if len(data) - fp.tell() < needed:
        raise DataFileError(
            f"{label} is truncated: its header announces shape {tuple(shape)} ({needed:,} bytes of data) "
            f"but only {len(data) - fp.tell():,} bytes follow. Upload the complete file."
        )
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # the header was checked above: anything left is damage
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataFileError(_PICKLE_MSG.format(label=label)) from None
        raise DataFileError(
            f"{label} could not be read as a .npy array ({_clip(str(exc)) or type(exc).__name__})."
        ) from None
    return _finish_array(np.asarray(arr), label)


def _check_dtype(dtype: np.dtype, label: str) -> None:
    """Accept booleans, integers and floats only."""
    if dtype.names is not None:
        raise DataFileError(
            f"{label} holds a structured (record) array with fields {list(dtype.names)}; save a plain "
            "2-D float array instead, e.g. numpy.column_stack of the fields."
        )
    if dtype.kind == "c":
        raise DataFileError(f"{label} holds complex numbers; only real numbers are accepted.")
    if dtype.kind in "US":
        raise DataFileError(f"{label} holds text (dtype {dtype}), not numbers. Save a numeric array.")
    if dtype.kind not in "biuf":
        raise DataFileError(
            f"{label} has dtype {dtype}; only plain numeric (integer or float) arrays are accepted."
        )


def _load_npz(data: bytes, label: str, max_bytes: int) -> np.ndarray:
    """Read the one array of a ``.npz`` archive (or the one named points/X/x/data/arr_0)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception:  # BadZipFile, OSError, ValueError, ... for a damaged archive
        found = _identify(data)
        if found is not None and found[0] != "a zip archive":
            hint = f" It is {found[0]}; {found[1]}."
        elif _looks_like_text_table(data):
            hint = " It looks like a text table: give it the .csv (or .txt) extension."
        else:
            hint = " Save it with numpy.savez."
        raise DataFileError(f"{label} is not a valid .npz (zip) archive.{hint}") from None
    with zf:
        names = [n for n in zf.namelist() if n.endswith(".npy")]
        if not names:
            found = _identify(data)
            if found is not None and found[0] != "a zip archive":
                raise DataFileError(f"{label} is not a .npz archive: it is {found[0]}; {found[1]}.")
            raise DataFileError(f"{label} contains no arrays (.npy members). Save it with numpy.savez.")
        keys = [n[: -len(".npy")] for n in names]
        if len(names) == 1:
            member = names[0]
        else:
            preferred = [k for k in ("points", "X", "x", "data", "arr_0") if k in keys]
            if not preferred:
                raise DataFileError(
                    f"{label} contains several arrays ({', '.join(keys)}); keep only one, or name the "
                    "points array 'points'."
                )
            member = preferred[0] + ".npy"
        info = zf.getinfo(member)
        limit = 4 * max_bytes
        if info.file_size > limit:
            raise DataFileError(
                f"{label}: the array '{member[:-4]}' is {_mb(info.file_size)} uncompressed, more than the "
                f"{_mb(limit)} limit. Upload a smaller array."
            )
        try:
            raw = zf.read(member)
        except Exception as exc:  # a bad CRC, an unknown compression method, encryption, zlib.error, ...
            raise DataFileError(f"{label} is a damaged .npz archive ({exc}).") from None
    return _load_npy(raw, f"{label} (array '{member[:-4]}')")


def _finish_array(arr: np.ndarray, label: str) -> np.ndarray:
    """Shape, finiteness and size checks shared by the binary readers."""
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        bad = ~np.isfinite(out)
        r, c = np.argwhere(bad)[0]
        raise DataFileError(
            f"{label} has {_count_is(int(bad.sum()), 'value')} NaN or infinite; "
            f"the first is at row {r + 1}, column {c + 1} of the array ({out[r, c]}). Remove or replace "
            "them."
        )
    _check_count(out, label)
    return out


def _check_count(arr: np.ndarray, label: str) -> None:
    """At least two points (and at least one column) are needed."""
    if arr.shape[1] == 0:
        raise DataFileError(f"{label} has no columns. Upload points with at least one coordinate.")
    if arr.shape[0] < 2:
        raise DataFileError(
            f"{label} has {arr.shape[0]} data row{'s' if arr.shape[0] != 1 else ''}; at least 2 points "
            "(rows) are needed."
        )


# ---- what the reader notices about a table ---------------------------------------------------------------

_INDEX_NAME = re.compile(r"|index|idx|id|unnamed: ?\d+", flags=re.IGNORECASE)
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
    return f"column {j + 1} ('{_clip(name)}')" if name else f"column {j + 1}"


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


def _index_columns(
    arr: np.ndarray, names: list[str] | None, integer_text: Callable[[], bool]
) -> tuple[int, list[Note]]:
    """How many leading columns of a text table are a saved row index (see :func:`read_points` for the
    rule), and the notes saying so."""
    n, d = arr.shape
    notes: list[Note] = []
    if names is not None:
        k = 0
        while k < d - 1 and k < len(names) and _INDEX_NAME.fullmatch(names[k]):
            col = arr[:, k]
            if not (np.array_equal(col, np.floor(col)) and np.unique(col).size == n):
                break
            start = _row_numbers(col)
            held = (
                f"numbers the rows {_counting(start, n)}"
                if start is not None
                else f"holds row labels ({n:,} distinct whole numbers: {_num(col[0])}, {_num(col[1])}, …)"
            )
            named = f"named '{_clip(names[k])}'" if names[k] else "no name in the header"
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


def _rescale_advice(arr: np.ndarray) -> str:
    """How to bring values into float32's range: divide by the power of ten of the largest magnitude."""
    top = float(np.abs(arr).max())
    return (
        f"Rescale the data (e.g. divide every value by 1e{math.floor(math.log10(top))}, which brings the "
        f"largest, {top:.3g}, to about 1) or choose float64 precision."
    )


def check_precision(points: np.ndarray, dtype: str, label: str = "The data") -> None:
    """Refuse points a flow in ``dtype`` (``"float32"`` or ``"float64"``) cannot hold: in float32 values
    beyond ±3.4e38 turn into infinities (which the flow would report as "NaN or infinite")."""
    x = np.asarray(points, dtype=np.float64)
    if dtype != "float32" or x.size == 0 or not (np.abs(x) > FLOAT32_MAX).any():
        return
    big = np.abs(x) > FLOAT32_MAX
    col = int(np.argwhere(big)[0][1])
    raise DataFileError(
        f"{label} has {_count_is(int(big.sum()), 'value')} beyond float32's range (±3.4e38), the "
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


def _shape_notes(arr: np.ndarray, names: list[str] | None, offset: int) -> list[Note]:
    """Notes on degenerate data: constant columns (also once rounded to float32), a single point,
    duplicated rows. ``offset`` leading file columns were dropped (they count in column numbers)."""
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
                f"{_cap(_column(offset + int(j), names))} has {_count_is(int(big.sum()), 'value')} beyond "
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


# --------------------------------------------------------------------------------------------------------
# image_to_points
# --------------------------------------------------------------------------------------------------------


def image_to_points(
    source: Source,
    *,
    n: int | None = None,
    seed: int = 0,
    threshold: float = 0.5,
    size: float = 10.0,
    max_bytes: int = MAX_UPLOAD_BYTES,
    filename: str | None = None,
) -> np.ndarray:
    """Turn the dark pixels of an image into an ``(n, 2)`` float64 point cloud.

    The image (one of :data:`IMAGE_FORMATS`; transparent parts count as white) is converted to grayscale
    in [0, 1]; pixels darker than ``threshold`` are "dark". With ``n=None`` there is one point per dark
    pixel; otherwise ``n`` dark pixels are drawn uniformly (without replacement while ``n`` does not
    exceed the number of dark pixels, with replacement beyond). Each point lies uniformly inside its
    pixel (seeded jitter). The y axis points up, so a scatter plot shows the image upright, and the longer
    side of the image spans [0, ``size``]. ``filename`` names bytes in messages (a path names itself).
    An image larger than ``MAX_IMAGE_PIXELS`` is refused from its header, before any pixel is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"threshold must be a number between 0 and 1, got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if (
        isinstance(size, bool)
        or not isinstance(size, int | float | np.number)
        or not (math.isfinite(size) and size > 0)
    ):
        raise ValueError(f"size must be a positive finite number, got {size!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n is not None and n > MAX_ROWS:
        raise ValueError(f"n = {n:,} is more than the limit of {MAX_ROWS:,} points")

    data, label, _suffix = _read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes); upload an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:  # refused from the header: nothing is decoded
                raise DataFileError(
                    f"{label} is {w}×{h} = {w * h / 1e6:.1f} megapixels, more than the "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the image and upload it again."
                )
            img.load()
            gray = _grayscale(img)
    except DataFileError:
        raise
    except Image.DecompressionBombError:
        raise DataFileError(
            f"{label} is far larger than the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the "
            "image and upload it again."
        ) from None
    except UnidentifiedImageError:
        found = _identify(data)
        if found is not None and found[1] != _IMAGE_ADVICE:
            hint = f" It is {found[0]}; {found[1]}."
        elif found is None and _looks_like_text_table(data):
            hint = " It looks like a text table of points: upload it with the .csv (or .txt) extension."
        else:
            hint = ""
        raise DataFileError(
            f"{label} is not an image PIL can read. Upload a PNG, JPEG, GIF, BMP, TIFF or WebP file.{hint}"
        ) from None
    except MemoryError:
        raise DataFileError(f"{label} is too large to decode here. Downscale the image.") from None
    except Exception as exc:  # truncated or corrupt data: PIL's decoders raise many kinds of errors
        raise DataFileError(
            f"{label} is a damaged or truncated image ({_clip(str(exc)) or type(exc).__name__})."
        ) from None

    dark = gray < float(threshold)
    rows, cols = np.nonzero(dark)
    count = rows.size
    if count == 0:
        raise DataFileError(
            f"{label} has no pixels darker than the threshold {threshold:g} (the image is blank or too "
            "light). Raise the threshold or use an image with dark shapes on a light background."
        )
    rng = np.random.default_rng(seed)
    if n is None:
        if count < 2:
            raise DataFileError(
                f"{label} has only 1 pixel darker than the threshold {threshold:g}; at least 2 points are "
                "needed. Raise the threshold, use an image with larger dark shapes, or ask for n points."
            )
        if count > MAX_ROWS:
            raise DataFileError(
                f"{label} has {count:,} dark pixels, more than the limit of {MAX_ROWS:,} points; ask for "
                "fewer points (n) or lower the threshold."
            )
        idx = np.arange(count)
    elif n <= count:
        idx = np.sort(rng.choice(count, size=n, replace=False))
    else:
        idx = rng.integers(0, count, size=n)
    scale = float(size) / max(h, w)
    jitter = rng.random((idx.size, 2))
    x = (cols[idx] + jitter[:, 0]) * scale
    y = (h - 1 - rows[idx] + jitter[:, 1]) * scale
    return np.column_stack([x, y]).astype(np.float64, copy=False)


def _grayscale(img: Any) -> np.ndarray:
    """Grayscale in [0, 1] with transparent areas composited onto white."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return (arr - lo) / (hi - lo) if hi > lo else np.ones_like(arr)
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
