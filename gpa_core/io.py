"""Reading what users upload into validated point clouds, with errors a user can act on.

Two entry points:

* :func:`load_points` reads a table of points (one point per row, one coordinate per column) from CSV,
  TSV, whitespace- or semicolon-separated text, NumPy ``.npy`` or ``.npz`` files and returns an
  ``(n, d)`` float64 array.
* :func:`image_to_points` turns the dark pixels of an image into a 2-D point cloud.

Every problem is reported as a :class:`DataFileError` (a ``ValueError``) whose message says what is wrong,
where (row and column numbers 1-based, as a spreadsheet shows them) and what to do about it. Nothing is
ever unpickled: ``.npy``/``.npz`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
import zipfile
from collections.abc import Sequence
from operator import methodcaller
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "MAX_COLUMNS",
    "MAX_IMAGE_PIXELS",
    "MAX_ROWS",
    "MAX_UPLOAD_BYTES",
    "DataFileError",
    "image_to_points",
    "load_points",
]

MAX_UPLOAD_BYTES: int = 50 * 2**20
"""Largest accepted upload, in bytes (50 MB)."""
MAX_COLUMNS: int = 4096
"""Largest accepted number of columns (dimensions) of a point table."""
MAX_ROWS: int = 1_000_000
"""Largest accepted number of rows (points) of a point table."""
MAX_IMAGE_PIXELS: int = 20_000_000
"""Largest accepted image, in pixels (20 megapixels); larger ones are refused before decoding."""

TEXT_EXTENSIONS = (".csv", ".tsv", ".txt", ".dat")
"""File extensions read as delimited text."""
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_SNIPPET = 40  # characters of offending text quoted in messages

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]


class DataFileError(ValueError):
    """An uploaded file cannot be used; the message says what is wrong, where, and what to do."""


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
# load_points
# --------------------------------------------------------------------------------------------------------


def load_points(
    source: Source,
    *,
    filename: str | None = None,
    expected_dim: int | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> np.ndarray:
    """Read a table of points into an ``(n, d)`` float64 array (rows are points, columns coordinates).

    ``source`` is a path, the file's bytes, or a binary file object. The format comes from the extension
    of ``filename`` (or of the path): ``.csv``, ``.tsv``, ``.txt``, ``.dat`` (text; the delimiter --
    comma, tab, semicolon or whitespace -- is sniffed), ``.npy`` or ``.npz``. Bytes without a name are
    recognised by content. In text files a first row of non-numeric column names is skipped, as are
    blank lines and lines starting with ``#``. A single column (or a 1-D array) gives ``n x 1`` points.

    Raises :class:`DataFileError` for an empty or too large file, a non-numeric or empty cell, NaN/inf
    values, rows of different lengths, fewer than 2 points, more than ``MAX_COLUMNS`` columns or
    ``MAX_ROWS`` rows, a pickled/object array, an array with more than 2 dimensions, or a column count
    other than ``expected_dim`` when that is given.
    """
    if expected_dim is not None and (
        isinstance(expected_dim, bool) or not isinstance(expected_dim, int | np.integer) or expected_dim < 1
    ):
        raise ValueError(f"expected_dim must be a positive integer or None, got {expected_dim!r}")
    data, label, suffix = _read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes). Upload a file with one point per row.")

    kind = _file_kind(data, label, suffix)
    if kind == "npy":
        arr = _load_npy(data, label)
    elif kind == "npz":
        arr = _load_npz(data, label, max_bytes)
    else:
        arr = _load_text(data, label)
    if expected_dim is not None and arr.shape[1] != expected_dim:
        raise DataFileError(
            f"{label} has {arr.shape[1]} column{'s' if arr.shape[1] != 1 else ''} (dimension "
            f"{arr.shape[1]}), but {expected_dim} {'are' if expected_dim != 1 else 'is'} needed here. "
            f"Upload points with {expected_dim} coordinate{'s' if expected_dim != 1 else ''} per row."
        )
    return arr


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
    if data.startswith(_ZIP_MAGIC):
        return "npz"
    return "text"


# ---- text tables -----------------------------------------------------------------------------------------


def _decode(data: bytes, label: str) -> str:
    """Decode text bytes (UTF-8 with or without BOM, UTF-16 with BOM, else Latin-1)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataFileError(f"{label} looks like UTF-16 text but cannot be decoded: {exc}.") from None
    if b"\x00" in data[:65536]:
        hint = ""
        if data.startswith(_NPY_MAGIC):
            hint = " It looks like a NumPy .npy file: give it the .npy extension."
        elif data.startswith(_ZIP_MAGIC):
            hint = " It looks like a zip archive (an Excel workbook or .npz?); save the data as CSV."
        raise DataFileError(f"{label} is not a text table (it contains binary data).{hint}")
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


def _load_text(data: bytes, label: str) -> np.ndarray:
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
    # A header is a first row of names: no field is a number and some field has a letter or '_'.
    header = all(not _is_number(f) for f in first_fields) and any(
        re.search(r"[^\W\d]", f) for f in first_fields
    )
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
    if arr.shape[0] != len(keep):  # loadtxt skipped or merged something unexpectedly: be safe
        raise DataFileError(
            f"{label} could not be read consistently: expected {len(keep)} rows, read {arr.shape[0]}."
        )
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        r, c = np.argwhere(bad)[0]
        cell = _split(lines[keep[r]], delim)[c]
        raise DataFileError(
            f"{label} has {_count_is(int(bad.sum()), 'cell')} NaN or infinite; "
            f"the first is row {keep[r] + 1}, column {c + 1} ('{_clip(cell)}'). Remove those rows or "
            "replace the missing values with numbers."
        )
    _check_count(arr, label)
    return arr


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
        raise DataFileError(
            f"{label} is not a NumPy .npy file (it does not start with the .npy signature). "
            "Save it with numpy.save, or upload a CSV file."
        )
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:  # 2.0 and 3.0 share the header layout; numeric dtypes are plain ASCII
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            raise DataFileError(_PICKLE_MSG.format(label=label)) from None
        raise DataFileError(f"{label} has a damaged .npy header ({exc}). Save the array again.") from None
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
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DataFileError(_PICKLE_MSG.format(label=label)) from None
        raise DataFileError(f"{label} could not be read as a .npy array ({exc}).") from None
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
    except zipfile.BadZipFile:
        raise DataFileError(f"{label} is not a valid .npz (zip) archive. Save it with numpy.savez.") from None
    with zf:
        names = [n for n in zf.namelist() if n.endswith(".npy")]
        if not names:
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
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
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
) -> np.ndarray:
    """Turn the dark pixels of an image into an ``(n, 2)`` float64 point cloud.

    The image (any format PIL reads; transparent parts count as white) is converted to grayscale in
    [0, 1]; pixels darker than ``threshold`` are "dark". With ``n=None`` there is one point per dark
    pixel; otherwise ``n`` dark pixels are drawn uniformly (without replacement while ``n`` does not
    exceed the number of dark pixels, with replacement beyond). Each point lies uniformly inside its
    pixel (seeded jitter). The y axis points up, so a scatter plot shows the image upright, and the longer
    side of the image spans [0, ``size``].
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

    data, label, _suffix = _read_source(source, None, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes); upload an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise DataFileError(
                f"{label} is {w}×{h} = {w * h / 1e6:.1f} megapixels, more than the "
                f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the image and upload it again."
            )
        img.load()
    except DataFileError:
        raise
    except Image.DecompressionBombError:
        raise DataFileError(
            f"{label} is far larger than the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the "
            "image and upload it again."
        ) from None
    except UnidentifiedImageError:
        raise DataFileError(
            f"{label} is not an image PIL can read. Upload a PNG, JPEG, GIF, BMP or TIFF file."
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt image data
        raise DataFileError(f"{label} is a damaged or truncated image ({exc}).") from None

    gray = _grayscale(img)
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
