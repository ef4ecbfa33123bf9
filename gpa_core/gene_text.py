"""Low-level reading shared by the gene-data readers: bytes in, gzip by magic bytes, text tables.

Used by :mod:`gpa_core.gene_io` (CSV/TSV, label files, dispatch) and :mod:`gpa_core.geo_series`
(GEO series matrices). Errors are :class:`gpa_core.genes.GeneDataError`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from gpa_core.genes import GeneDataError

__all__ = [
    "HDF5_MAGIC",
    "MAX_BYTES",
    "NA_VALUES",
    "Source",
    "decode",
    "decompress",
    "dedupe_ids",
    "parse_table",
    "read_raw",
    "read_text",
    "sniff_sep",
    "unquote",
]

Source = str | os.PathLike[str] | bytes | bytearray | BinaryIO

#: Cells read as missing values (case as listed; an empty cell is missing too).
NA_VALUES = ["", "null", "Null", "NULL", "NA", "N/A", "na", "NaN", "nan", "-", "."]
#: Largest decompressed input accepted (a full GPL570 series matrix is about 150 MB of text).
MAX_BYTES = 1_500_000_000

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ bytes in
def read_raw(src: Source, filename: str | None) -> tuple[bytes, str, str | None]:
    """Raw bytes, a label for messages ('name.csv'), and the file name if known."""
    if isinstance(src, bytes | bytearray | memoryview):
        data = bytes(src)
    elif isinstance(src, str | os.PathLike):
        path = Path(os.fspath(src))
        if not path.is_file():
            raise GeneDataError(f"file not found: '{path}'.")
        filename = filename or path.name
        data = path.read_bytes()
    elif hasattr(src, "read"):
        filename = filename or getattr(src, "name", None)
        data = src.read()
        if isinstance(data, str):
            raise GeneDataError(
                f"'{filename or 'upload'}' was opened in text mode; open it in binary mode ('rb')."
            )
        data = bytes(data)
    else:
        raise TypeError(f"expected a path, bytes or a binary file object, not {type(src).__name__}")
    label = f"'{filename}'" if filename else "the uploaded file"
    return data, label, filename


def decompress(data: bytes, label: str) -> bytes:
    """Gunzip when the bytes start with the gzip magic (whatever the extension); refuse zip archives."""
    if data[:4] == _ZIP_MAGIC:
        raise GeneDataError(f"{label} is a zip archive; unzip it and upload the .csv/.tsv/.txt file inside.")
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            out = fh.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise GeneDataError(
            f"{label} starts like a gzip file but cannot be decompressed ({exc}); "
            "the download may be incomplete."
        ) from exc
    if len(out) > MAX_BYTES:
        raise GeneDataError(
            f"{label} decompresses to more than {MAX_BYTES / 1e9:.1f} GB, which is too large."
        )
    return out


def decode(data: bytes, label: str) -> str:
    """Text from bytes: UTF-8 (latin-1 as a fallback), BOM removed; refuses binary data."""
    if b"\x00" in data[:4096]:
        raise GeneDataError(f"{label} is a binary file, not a text table (CSV/TSV or GEO series matrix).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.lstrip("\ufeff")


def read_text(src: Source, filename: str | None) -> tuple[str, str]:
    """(text, label for messages) of a path / bytes / file object, gunzipped if needed; not empty."""
    data, label, _ = read_raw(src, filename)
    text = decode(decompress(data, label), label)
    if not text.strip():
        raise GeneDataError(f"{label} is empty.")
    return text, label


# ------------------------------------------------------------------------------------------ tables
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


def parse_table(
    text: str, sep: str, label: str, *, first_line: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, list[str]]]:
    """Parse a table with an ID column and a header row.

    Returns (row IDs, column IDs, float64 values rows × columns with NaN for missing,
    {name: cells} of the wholly non-numeric columns, which are left out of the values).
    """
    # the first non-blank line is the header; the rest goes to pandas without splitting the text
    pos, start = 0, 0
    while True:
        nl = text.find("\n", pos)
        line = text[pos:] if nl < 0 else text[pos:nl]
        if line.strip():
            break
        if nl < 0:
            raise GeneDataError(f"{label} is empty.")
        pos, start = nl + 1, start + 1
    header = [unquote(c) for c in next(csv.reader([line.rstrip("\r")], delimiter=sep))]
    body = "" if nl < 0 else text[nl + 1 :]
    if re.search(r"\S", body) is None:  # (no .strip(): that would copy a large text)
        raise GeneDataError(f"{label} has a header line but no data rows.")
    try:
        df = pd.read_csv(
            io.StringIO(body),
            sep=sep,
            header=None,
            dtype={0: str},
            na_values=NA_VALUES,
            keep_default_na=False,
            skip_blank_lines=True,
            quotechar='"',
            low_memory=False,
        )
    except pd.errors.ParserError as exc:
        msg = str(exc)
        m = re.search(r"line (\d+)", msg)
        where = f" (file line {int(m.group(1)) + start + first_line})" if m else ""
        raise GeneDataError(
            f"{label}: rows have different numbers of cells{where}: {msg.splitlines()[-1]}. "
            "Every row needs one ID and one value per column."
        ) from exc
    n_fields = df.shape[1]
    if n_fields == len(header) + 1:  # R's write.table: the header has no cell above the ID column
        header = ["", *header]
    if n_fields != len(header):
        raise GeneDataError(
            f"{label}: the header has {len(header)} cells but the data rows have {n_fields}; "
            "they must match (one ID column plus one column per sample or gene)."
        )
    if n_fields < 2:
        raise GeneDataError(
            f"{label}: need an ID column and at least one data column, found {n_fields} column(s)."
        )
    row_ids = df.iloc[:, 0].fillna("").astype(str).str.strip().str.strip('"').to_numpy()
    if np.any(row_ids == ""):
        bad = int(np.flatnonzero(row_ids == "")[0])
        raise GeneDataError(f"{label}: data row {bad + 1} has an empty ID in the first column.")
    col_ids = np.array(header[1:], dtype=str)
    data = df.iloc[:, 1:]
    keep = np.ones(n_fields - 1, dtype=bool)
    dropped: dict[str, list[str]] = {}
    if all(dt.kind in "fiub" for dt in data.dtypes):  # the usual case: one vectorised conversion
        values = data.to_numpy(dtype=np.float64)
    else:
        values = np.empty((df.shape[0], n_fields - 1), dtype=np.float64)
        for j in range(1, n_fields):
            col = df.iloc[:, j]
            if col.dtype.kind in "fiub":
                values[:, j - 1] = col.to_numpy(dtype=np.float64)
                continue
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna().to_numpy() & col.notna().to_numpy()
            if bad.any():
                if bad.sum() == int(col.notna().sum()):  # a wholly non-numeric (annotation) column
                    keep[j - 1] = False
                    dropped[str(col_ids[j - 1])] = col.fillna("").astype(str).str.strip().tolist()
                    continue
                i = int(np.flatnonzero(bad)[0])
                raise GeneDataError(
                    f"{label}: row '{row_ids[i]}', column '{col_ids[j - 1]}' holds "
                    f"{str(col.iloc[i])[:40]!r}, which is not a number; use numbers, or one of "
                    f"{', '.join(repr(v) for v in NA_VALUES[1:5])} or an empty cell for a missing value."
                )
            values[:, j - 1] = num.to_numpy(dtype=np.float64)
    if not keep.all():
        values, col_ids = values[:, keep], col_ids[keep]
    if values.shape[1] == 0:
        raise GeneDataError(f"{label}: no numeric column found; the table must hold expression values.")
    if np.isinf(values).any():
        raise GeneDataError(
            f"{label}: the table contains infinite values; expression values must be finite or missing."
        )
    return row_ids, col_ids, values, dropped


def dedupe_ids(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices of each ID's first occurrence (in order) and how many repeats there were."""
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)
    return first, int(ids.shape[0] - first.shape[0])
