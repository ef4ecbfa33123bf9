"""Low-level reading shared by the gene-data readers: bytes in (capped), gzip by magic bytes in a
bounded stream, text encodings, and line helpers. The table parser is :mod:`gpa_core.genes.table`.

Used by :mod:`gpa_core.genes.readers` (CSV/TSV, label files, dispatch) and :mod:`gpa_core.genes.geo`
(GEO series matrices). Errors are :class:`gpa_core.genes.study.GeneDataError` naming the file.

Memory: the text stays UTF-8 bytes (never a ``str`` of the whole file, which CPython may store at
4 bytes per character); gzip is inflated twice in 1 MB pieces, first only counting, so a gzip bomb
is refused without holding its output and a valid file is held once, at its exact size.
"""

from __future__ import annotations

import codecs
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO

from gpa_core.data.file_kinds import GZIP_MAGIC, OLE2_MAGIC, ZIP_MAGIC, utf16_without_bom, zip_kind
from gpa_core.genes.study import GeneDataError

__all__ = [
    "CAP_ENV",
    "MAX_BYTES",
    "MAX_IDS",
    "MAX_ID_CHARS",
    "MAX_LABEL_BYTES",
    "NA_VALUES",
    "Blob",
    "CapError",
    "Source",
    "cap_message",
    "decompress",
    "first_line",
    "read_raw",
    "read_utf8",
    "size_text",
    "sniff_container",
    "sniff_sep",
    "to_utf8",
    "unquote",
]

Source = str | os.PathLike[str] | bytes | bytearray | BinaryIO
#: text held as bytes: a bytearray where this module decompressed or re-encoded it
Blob = bytes | bytearray

#: Cells read as missing values (case as listed; an empty cell is missing too).
NA_VALUES = ["", "null", "Null", "NULL", "NA", "N/A", "na", "NaN", "nan", "-", "."]
#: Largest text (after decompression) of one study file: 512 MB fits a full GPL570 series matrix
#: (about 150 MB) three times over; reading any file within it took at most about 1.1 GB of memory
#: above idle in our measurements (the text, the float32 matrix and one 16 MB slice's parse).
MAX_BYTES = 512 * 2**20
#: Largest text of a label file (two short columns: hundreds of thousands of samples fit).
MAX_LABEL_BYTES = 8 * 2**20
#: The environment variable (in MB) the app reads to raise or lower :data:`MAX_BYTES`.
CAP_ENV = "GPA_MAX_STUDY_MB"
#: At most this many rows or columns (IDs) per table, and this many characters per ID.
MAX_IDS = 1_000_000
MAX_ID_CHARS = 200

_OUT_CHUNK = 1 << 20  # decompressed bytes per zlib call
_IN_CHUNK = 1 << 16  # compressed bytes handed to zlib at a time
_LONE_CR = re.compile(rb"\r(?!\n)")


def size_text(n: int) -> str:
    """A size for messages: '512 MB', or '120 bytes' below a megabyte."""
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n:,} bytes"


class CapError(GeneDataError):
    """Input over the size cap (``max_bytes``); a reader may reword it for its kind of file."""


def cap_message(label: str, what: str, max_bytes: int) -> str:
    """The message for input over the cap: what was found, the cap, and how to raise it."""
    return (
        f"{label} {what}; the cap is {size_text(max_bytes)} of text per study file. Raise it with "
        f"max_bytes=… (Python) or the environment variable {CAP_ENV} (in MB, read by the app), "
        "or use a smaller file."
    )


# ------------------------------------------------------------------------------------------ bytes in
def read_raw(src: Source, filename: str | None, max_bytes: int = MAX_BYTES) -> tuple[Blob, str, str | None]:
    """Raw bytes (not copied when given as bytes), a label for messages ('name.csv') and the file
    name if known; input larger than ``max_bytes`` is refused before it is read."""
    if isinstance(src, bytes | bytearray):
        data: Blob = src
    elif isinstance(src, memoryview):
        data = bytes(src)
    elif isinstance(src, str | os.PathLike):
        path = Path(os.fspath(src))
        if not path.is_file():
            raise GeneDataError(f"file not found: '{path}'.")
        filename = filename or path.name
        if path.stat().st_size > max_bytes:
            raise CapError(cap_message(f"'{filename}'", f"is {size_text(path.stat().st_size)}", max_bytes))
        data = path.read_bytes()
    elif hasattr(src, "read"):
        filename = filename or getattr(src, "name", None)
        raw = src.read(max_bytes + 1)
        if isinstance(raw, str):
            raise GeneDataError(
                f"'{filename or 'upload'}' was opened in text mode; open it in binary mode ('rb')."
            )
        data = bytes(raw)
    else:
        raise GeneDataError(f"expected a path, bytes or a binary file object, not {type(src).__name__}.")
    label = f"'{filename}'" if filename else "the uploaded file"
    if len(data) > max_bytes:
        raise CapError(cap_message(label, f"is more than {size_text(max_bytes)}", max_bytes))
    return data, label, filename


_WORKBOOKS = {"xlsx": "an Excel .xlsx workbook", "ods": "an OpenDocument .ods spreadsheet"}


def sniff_container(data: Blob, label: str) -> None:
    """Refuse spreadsheet workbooks (.xlsx/.ods/.xls) and zip archives, with what to do instead."""
    save_as = (
        "open it in a spreadsheet program and save the sheet with the data as CSV (or tab-separated text)"
    )
    if data[:8] == OLE2_MAGIC:
        raise GeneDataError(
            f"{label} is an old Excel .xls workbook (or another Microsoft Office file), not a text table; "
            f"{save_as}."
        )
    if data[:4] == ZIP_MAGIC:
        kind = _WORKBOOKS.get(zip_kind(data))
        if kind is not None:
            raise GeneDataError(f"{label} is {kind}, not a text table; {save_as}.")
        raise GeneDataError(f"{label} is a zip archive; unzip it and upload the .csv/.tsv/.txt file inside.")


def _gunzip(data: Blob, label: str, max_bytes: int, out: bytearray | None) -> int:
    """Decompress every gzip member of ``data`` in bounded chunks: into ``out`` if given, else only
    counting. Stops as soon as more than ``max_bytes`` come out."""
    view, n = memoryview(data), len(data)
    pos = total = 0
    while True:
        d = zlib.decompressobj(wbits=31)
        tail: bytes | memoryview = b""
        while not d.eof:
            if not tail and pos < n:
                tail, pos = view[pos : pos + _IN_CHUNK], min(n, pos + _IN_CHUNK)
            chunk = d.decompress(tail, _OUT_CHUNK)
            tail = d.unconsumed_tail
            if not chunk and not tail and pos >= n and not d.eof:
                raise GeneDataError(
                    f"{label} starts like a gzip file but cannot be decompressed (the compressed data "
                    "end early); the download may be incomplete."
                )
            if total + len(chunk) > max_bytes:
                raise CapError(
                    cap_message(label, f"decompresses to more than {size_text(max_bytes)} of text", max_bytes)
                )
            if out is not None:
                out[total : total + len(chunk)] = chunk
            total += len(chunk)
        pos -= len(d.unused_data)
        if view[pos : pos + 2] == GZIP_MAGIC:
            continue  # another member (concatenated gzip files)
        if bytes(view[pos:]).strip(b"\x00"):
            raise GeneDataError(
                f"{label} has data after the end of its gzip stream; the file may be damaged."
            )
        return total


def decompress(data: Blob, label: str, max_bytes: int = MAX_BYTES) -> Blob:
    """Gunzip when the bytes start with the gzip magic (whatever the extension), in a stream capped
    at ``max_bytes`` of output; refuse zip archives and spreadsheet workbooks."""
    sniff_container(data, label)
    if data[:2] != GZIP_MAGIC:
        if len(data) > max_bytes:
            raise CapError(cap_message(label, f"is more than {size_text(max_bytes)}", max_bytes))
        return data
    try:  # count first (a gzip bomb is refused without holding its output), then fill exactly
        out = bytearray(_gunzip(data, label, max_bytes, None))
        _gunzip(data, label, max_bytes, out)
    except zlib.error as exc:
        raise GeneDataError(
            f"{label} starts like a gzip file but cannot be decompressed ({exc}); "
            "the download may be incomplete."
        ) from exc
    sniff_container(out, label)  # a gzipped workbook or archive
    return out


def _is_utf8(data: Blob) -> bool:
    """Whether ``data`` is valid UTF-8, checked in 16 MB pieces (no str of the whole text)."""
    if data.isascii():
        return True
    dec = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for i in range(0, len(data), 1 << 24):
            dec.decode(view[i : i + (1 << 24)], final=i + (1 << 24) >= len(data))
    except UnicodeDecodeError:
        return False
    return True


def _transcode(data: Blob, enc: str, label: str, max_bytes: int) -> bytearray:
    """``data`` in encoding ``enc`` as UTF-8, converted in 16 MB pieces and capped at ``max_bytes``."""
    dec = codecs.getincrementaldecoder(enc)()
    out = bytearray()
    view = memoryview(data)
    try:
        for i in range(0, len(data), 1 << 24):
            out += dec.decode(view[i : i + (1 << 24)], final=i + (1 << 24) >= len(data)).encode("utf-8")
            if len(out) > max_bytes:
                raise CapError(cap_message(label, f"is more than {size_text(max_bytes)} as UTF-8", max_bytes))
    except UnicodeError:
        raise GeneDataError(
            f"{label} looks like UTF-16 text but cannot be decoded as such; save it as UTF-8 "
            "(e.g. 'CSV UTF-8' in a spreadsheet program)."
        ) from None
    if out.startswith("\ufeff".encode()):
        del out[:3]
    return out


def to_utf8(data: Blob, label: str, max_bytes: int = MAX_BYTES) -> Blob:
    """The text as UTF-8 bytes: UTF-8 as is (not copied), UTF-16 with or without a BOM and latin-1
    re-encoded (at most ``max_bytes``); binary data is refused. A UTF-8 BOM is left for
    :func:`first_line` to drop."""
    binary = (
        f"{label} is a binary file, not a text table (CSV/TSV or GEO series matrix); if it is text in "
        "another encoding (UTF-16 with non-Latin characters, UTF-32), save it as UTF-8."
    )
    head = bytes(data[:4096])
    enc = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else utf16_without_bom(head)
    if enc is not None:
        out = _transcode(data, enc, label, max_bytes)
        if b"\x00" in out[:4096]:
            raise GeneDataError(binary)
        return _lone_cr(out)
    if b"\x00" in head:
        raise GeneDataError(binary)
    return _lone_cr(data if _is_utf8(data) else _transcode(data, "latin-1", label, max_bytes))


def _lone_cr(data: Blob) -> Blob:
    """Old Mac line ends (a '\\r' alone) as '\\n', as the table parser reads them (copied only then)."""
    if b"\r" in data and _LONE_CR.search(data):
        return _LONE_CR.sub(b"\n", data)
    return data


def read_utf8(src: Source, filename: str | None, max_bytes: int = MAX_BYTES) -> tuple[Blob, str]:
    """(UTF-8 text as bytes, label for messages) of a path / bytes / file object, gunzipped if needed;
    not empty."""
    data, label, _ = read_raw(src, filename, max_bytes)
    text = to_utf8(decompress(data, label, max_bytes), label, max_bytes)
    if re.search(rb"\S", text) is None:
        raise GeneDataError(f"{label} is empty.")
    return text, label


# ------------------------------------------------------------------------------------------ lines
_NONBLANK = re.compile(rb"^[^\S\n]*\S[^\n]*", re.MULTILINE)


def first_line(data: Blob, start: int = 0, end: int | None = None) -> tuple[int, int, str] | None:
    """(start, end, text) of the first non-blank line in ``data[start:end]`` (BOM and '\\r' dropped)."""
    m = _NONBLANK.search(data, start, len(data) if end is None else end)
    if m is None:
        return None
    line = bytes(data[m.start() : m.end()]).decode("utf-8", errors="replace")
    return m.start(), m.end(), line.lstrip("\ufeff").rstrip("\r")


def sniff_sep(line: str, label: str) -> str:
    """The column separator of a header line: tab (preferred on ties with comma), comma or semicolon."""
    counts = {sep: line.count(sep) for sep in ("\t", ",", ";")}
    sep = max(counts, key=lambda s: counts[s])
    if counts[sep] == 0:
        raise GeneDataError(
            f"{label}: no column separator (tab, comma or semicolon) in the first line; "
            "expected a table with an ID column and one column per sample or gene."
        )
    if counts["\t"] and counts["\t"] >= counts[","]:
        return "\t"
    return sep


def unquote(cell: str) -> str:
    """A cell without surrounding whitespace and double quotes."""
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1]
    return cell.strip()
