"""What an uploaded file's bytes are, before a reader parses them: the signatures both readers
(:mod:`gpa_core.data.tables` for points, :mod:`gpa_core.genes.text` for gene studies) check, the
contents of a zip archive (a spreadsheet is a zip), and UTF-16 text without a byte-order mark. Each
reader words its own message from these answers."""

from __future__ import annotations

import io
import zipfile
from typing import Literal

import numpy as np

__all__ = ["GZIP_MAGIC", "HDF5_MAGIC", "OLE2_MAGIC", "ZIP_MAGIC", "ZipKind", "utf16_without_bom", "zip_kind"]

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
#: an OLE2 compound file: an old Excel .xls workbook (or another Office 97–2003 document)
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

ZipKind = Literal["xlsx", "ods", "docx", "npz", "zip", "bad"]


def zip_kind(data: bytes | bytearray) -> ZipKind:
    """What a zip archive holds: an Excel workbook (``xl/`` members), an OpenDocument spreadsheet
    (its ``mimetype``), another Office document, a NumPy ``.npz`` (only ``.npy`` members), another
    archive, or ``"bad"`` when it cannot be read — unless the names in its first local headers
    still show a workbook."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            mimetype = b""
            if "mimetype" in names:
                with zf.open("mimetype") as fh:
                    mimetype = fh.read(100)  # never more: a member can be a zip bomb
    except Exception:  # any damage (zipfile raises many kinds): look at the local headers
        head = bytes(data[:65536])
        if b"xl/workbook" in head:
            return "xlsx"
        return "ods" if b"opendocument.spreadsheet" in head else "bad"
    if any(n.startswith("xl/") for n in names):
        return "xlsx"
    if b"spreadsheet" in mimetype:
        return "ods"
    if any(n.startswith(("word/", "ppt/")) for n in names) or mimetype:
        return "docx"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def utf16_without_bom(data: bytes | bytearray) -> str | None:
    """``"utf-16-le"``/``"utf-16-be"`` for UTF-16 text without a byte-order mark (ASCII text then has a
    NUL byte in every other position of its first 4 kB), else ``None``."""
    pairs = np.frombuffer(bytes(data[: min(len(data), 4096) // 2 * 2]), dtype=np.uint8).reshape(-1, 2)
    if len(pairs) < 2:
        return None
    for order, (zero, other) in (("utf-16-le", (1, 0)), ("utf-16-be", (0, 1))):
        if np.mean((pairs[:, zero] == 0) & (pairs[:, other] != 0)) >= 0.9:
            return order
    return None
