"""Reading a table of points from an upload's bytes: delimited text (CSV, TSV, semicolon- or
whitespace-separated; the delimiter and the encoding are sniffed) and NumPy ``.npy``/``.npz`` arrays,
never unpickling. :func:`read_table` picks the reader from the extension (or the content) and returns
the ``(n, d)`` float64 points with the :class:`~gpa_core.data.checks.Note` s for the user.

Also here, because the readers need them for their messages and :mod:`gpa_core.data.images` for its own:
:func:`identify` (what a file that is not a point table is, and what to do) and
:func:`looks_like_text_table`.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Sequence
from operator import methodcaller

import numpy as np

from gpa_core.data.checks import INDEX_NAME, Note, index_columns, table_notes
from gpa_core.data.file_kinds import (
    GZIP_MAGIC,
    HDF5_MAGIC,
    OLE2_MAGIC,
    ZIP_MAGIC,
    utf16_without_bom,
    zip_kind,
)
from gpa_core.data.sources import MAX_COLUMNS, MAX_ROWS, DataFileError, clip, count_is, size_text

__all__ = [
    "IMAGE_ADVICE",
    "TEXT_EXTENSIONS",
    "identify",
    "looks_like_text_table",
    "read_table",
]


TEXT_EXTENSIONS = (".csv", ".tsv", ".txt", ".dat")
"""File extensions read as delimited text."""
_NPY_MAGIC = b"\x93NUMPY"


def read_table(data: bytes, label: str, suffix: str, max_bytes: int) -> tuple[np.ndarray, tuple[Note, ...]]:
    """Read the non-empty bytes ``data`` of a file into an ``(n, d)`` float64 array of points (finite,
    n >= 2, d >= 1) and the notes for the user. ``label`` names the file in messages, ``suffix`` is its
    lower-case extension (``""`` if unknown: the content decides) and ``max_bytes`` bounds an ``.npz``
    member (4 x ``max_bytes`` uncompressed); see :func:`~gpa_core.data.points.read_points` for the
    formats and every refusal."""
    kind = _file_kind(data, label, suffix)
    if kind == "text":
        return _load_text(data, label)
    arr = _load_npy(data, label) if kind == "npy" else _load_npz(data, label, max_bytes)
    return arr, tuple(table_notes(arr, None, 0))


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

IMAGE_ADVICE = "upload it with its image extension (such as .png) to turn its dark pixels into points"
_SHEET_ADVICE = "save the sheet as CSV (File > Save as > CSV) and upload that"
_MAGICS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", IMAGE_ADVICE),
    (b"\xff\xd8\xff", "a JPEG image", IMAGE_ADVICE),
    (b"GIF87a", "a GIF image", IMAGE_ADVICE),
    (b"GIF89a", "a GIF image", IMAGE_ADVICE),
    (b"II*\x00", "a TIFF image", IMAGE_ADVICE),
    (b"MM\x00*", "a TIFF image", IMAGE_ADVICE),
    (b"%PDF-", "a PDF document", "export the table from it as CSV"),
    (OLE2_MAGIC, "an Office document (an old .xls workbook?)", _SHEET_ADVICE),
    (GZIP_MAGIC, "a gzip-compressed file", "decompress it first and upload the table inside"),
    (HDF5_MAGIC, "an HDF5 file", "save the array as .npy (numpy.save) or CSV"),
    (_NPY_MAGIC, "a NumPy .npy file", "give it the .npy extension"),
)


def identify(data: bytes, *, binary: bool = True) -> tuple[str, str] | None:
    """``(what it is, what to do)`` for a file that is recognisably not a point table, else ``None``.
    With ``binary=False`` (text without NUL bytes) only signatures no text table can start with count."""
    for magic, what, advice in _MAGICS:
        if data.startswith(magic):
            return what, advice
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image", IMAGE_ADVICE
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
        return "a BMP image", IMAGE_ADVICE
    return None


def looks_like_text_table(data: bytes) -> bool:
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
        found = identify(data, binary=binary)
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
        and INDEX_NAME.fullmatch(fields[0]) is not None
        and fields[1:] == [str(i) for i in range(len(fields) - 1)]
        and next_fields is not None
        and re.fullmatch(r"\d+", next_fields[0]) is not None
    )


def _load_text(data: bytes, label: str) -> tuple[np.ndarray, tuple[Note, ...]]:
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
        return f"row {keep[r] + 1}, column {c + 1} ('{clip(_split(lines[keep[r]], delim)[c])}')"

    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        r, c = np.argwhere(bad)[0]
        text_of = _split(lines[keep[r]], delim)[c]
        why = "Remove those rows or replace the missing values with numbers."
        if not re.fullmatch(r"[+-]?(nan|inf|infinity)", text_of, flags=re.IGNORECASE):
            why = (
                f"'{clip(text_of)}' is too large even for float64 (beyond ±1.8e308): rescale the data "
                "(divide every value by a power of ten) and upload it again."
            )
        raise DataFileError(
            f"{label} has {count_is(int(bad.sum()), 'cell')} NaN or infinite; the first is "
            f"{cell(r, c)}. {why}"
        )
    _check_count(arr, label)

    def first_cells_are_integers() -> bool:
        return all(re.fullmatch(r"\d+", _first_field(lines[i], delim)) for i in keep)

    names = first_fields if header else None
    drop, notes = index_columns(arr, names, first_cells_are_integers)
    arr = np.ascontiguousarray(arr[:, drop:]) if drop else arr
    return arr, (*notes, *table_notes(arr, names, drop))


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
                    f"{label}: row {i + 1}, column {j + 1} contains '{clip(field)}', which is not a number. "
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
        found = identify(data)
        if found is not None:
            hint = f"it is {found[0]}; {found[1]}."
        elif looks_like_text_table(data):
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
            f"{label} has a damaged .npy header ({clip(str(exc)) or type(exc).__name__}). "
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
            f"{label} could not be read as a .npy array ({clip(str(exc)) or type(exc).__name__})."
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
        found = identify(data)
        if found is not None and found[0] != "a zip archive":
            hint = f" It is {found[0]}; {found[1]}."
        elif looks_like_text_table(data):
            hint = " It looks like a text table: give it the .csv (or .txt) extension."
        else:
            hint = " Save it with numpy.savez."
        raise DataFileError(f"{label} is not a valid .npz (zip) archive.{hint}") from None
    with zf:
        names = [n for n in zf.namelist() if n.endswith(".npy")]
        if not names:
            found = identify(data)
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
                f"{label}: the array '{member[:-4]}' is {size_text(info.file_size)} uncompressed, more "
                f"than the {size_text(limit)} limit. Upload a smaller array."
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
            f"{label} has {count_is(int(bad.sum()), 'value')} NaN or infinite; "
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
