"""The table parser of the gene-data readers: a header row, then rows of an ID and values.

The text (UTF-8 bytes, see :mod:`gpa_core.genes.text`) is cut into slices of whole lines (16 MB);
each slice is parsed to float32 by pyarrow and copied into one preallocated buffer laid out the
way the samples × genes matrix needs it. Reading therefore holds the text, the float32 values and
one slice's Arrow data: no ``str`` of the file and no float64 copy. Narrow tables go through
pyarrow's CSV reader (quoting as in CSV); tables with more than 2,048 columns, for which that
reader keeps about 9 kB per column, are split with pyarrow's string kernels instead.

Columns holding words in their first rows are read as text: wholly non-numeric ones (annotations,
a label column) are set aside, a stray word in a numeric column is an error naming the cell.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gpa_core.genes.study import FLOAT32_MAX, GeneDataError, float32_overflow_message
from gpa_core.genes.text import (
    MAX_BYTES,
    MAX_ID_CHARS,
    MAX_IDS,
    NA_VALUES,
    Blob,
    CapError,
    cap_message,
    first_line,
    size_text,
    unquote,
)

__all__ = ["Table", "call_columns", "gsm_fraction", "parse_table"]

_SLICE = 16 << 20  # bytes of text parsed at a time
_WIDE = 2048  # more columns than this: the split parser
_PRESCAN = 1 << 18  # bytes of the first rows whose cells decide which columns are text
_NA_SET = frozenset(NA_VALUES)
_NL = b"\n"
_GSM = re.compile(r"^GSM\d+$", re.IGNORECASE)
_CONVERSION = re.compile(
    r"column #(\d+): Row #(\d+): CSV conversion error to float: invalid value '(.*)'", re.S
)
_NOT_A_NUMBER = (
    "which is not a number; use numbers, or one of "
    f"{', '.join(repr(v) for v in NA_VALUES[1:5])} or an empty cell for a missing value."
)


#: the cells of a per-sample detection-call column (Affymetrix MAS4/MAS5: present, absent, marginal)
CALLS = frozenset({"p", "a", "m", "present", "absent", "marginal"})


def call_columns(dropped: dict[str, list[str]]) -> list[str]:
    """The names of the text columns that hold detection calls (P/A/M) and nothing else."""
    out = []
    for name, cells in dropped.items():
        values = {c.strip().lower() for c in cells} - {""}
        if values and values <= CALLS:
            out.append(name)
    return out


def gsm_fraction(ids: np.ndarray | list[str]) -> float:
    """The share of IDs that look like GEO sample accessions (GSM123)."""
    return float(np.mean([bool(_GSM.match(str(x))) for x in ids])) if len(ids) else 0.0


@dataclass
class Table:
    """A parsed table: row IDs, the numeric columns' IDs, the wholly non-numeric columns' cells, and
    the values in a flat float32 buffer of ``shape`` (fields, lines) when ``by_columns`` (the layout
    of a genes × samples table's matrix), else (lines, fields); ``slots`` are the numeric fields.
    ``id_name`` is the header cell above the row IDs; a repeated header name of a text column gets
    its column number (``'call (column 5)'``) in ``dropped``."""

    row_ids: np.ndarray
    col_ids: np.ndarray
    dropped: dict[str, list[str]]
    buf: np.ndarray
    by_columns: bool
    shape: tuple[int, int]
    slots: np.ndarray
    id_name: str = ""

    def matrix(
        self,
        rows_are_genes: bool,
        keep_rows: np.ndarray | None = None,
        keep_cols: np.ndarray | None = None,
    ) -> np.ndarray:
        """The samples × genes float32 matrix, limited to ``keep_rows`` / ``keep_cols`` (indices).

        Built in place in the buffer (call once); copied only when ``rows_are_genes`` does not
        match the layout the parser guessed."""
        rows = np.arange(self.row_ids.shape[0]) if keep_rows is None else np.asarray(keep_rows)
        fields = self.slots if keep_cols is None else self.slots[np.asarray(keep_cols)]
        if self.by_columns:
            M = _compact(self.buf, self.shape[1], fields, rows)  # fields × rows
            X = M if rows_are_genes else M.T
        else:
            M = _compact(self.buf, self.shape[1], rows, fields)  # rows × fields
            X = M.T if rows_are_genes else M
        return np.ascontiguousarray(X)

    def column(self, k: int) -> np.ndarray:
        """A copy of the values of the ``k``-th numeric column (``col_ids[k]``), one per row."""
        grid = self.buf[: self.shape[0] * self.shape[1]].reshape(self.shape)
        n = self.row_ids.shape[0]
        return np.array(grid[self.slots[k], :n] if self.by_columns else grid[:n, self.slots[k]])


def _compact(buf: np.ndarray, width: int, keep0: np.ndarray, keep1: np.ndarray) -> np.ndarray:
    """The (len(keep0), len(keep1)) matrix of ``buf`` seen as (·, width), moved to the front of
    ``buf`` in place (row i goes to where no row still to be moved lies)."""
    n0, n1 = keep0.shape[0], keep1.shape[0]
    prefix = bool(n1 == 0 or (keep1[0] == 0 and keep1[-1] == n1 - 1 and np.all(np.diff(keep1) == 1)))
    if prefix and n1 == width and np.array_equal(keep0, np.arange(n0)):
        return buf[: n0 * width].reshape(n0, width)
    for i, k in enumerate(keep0.tolist()):
        src = buf[k * width : k * width + width]
        buf[i * n1 : (i + 1) * n1] = src[:n1] if prefix else src[keep1]
    return buf[: n0 * n1].reshape(n0, n1)


def _cells(line: str, sep: str, label: str) -> list[str]:
    try:
        return [unquote(c) for c in next(csv.reader([line], delimiter=sep), [])]
    except csv.Error as exc:  # e.g. a cell over the csv module's 128 kB limit, or a NUL
        raise GeneDataError(f"{label}: a line cannot be split into cells ({exc}).") from None


def _is_number(cell: str) -> bool:
    if cell in _NA_SET:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _check_header(ids: list[str], label: str) -> None:
    if len(ids) > MAX_IDS:
        raise GeneDataError(
            f"{label} has {len(ids):,} columns, more than the {MAX_IDS:,} a study table may have."
        )
    long = next((i for i, x in enumerate(ids) if len(x) > MAX_ID_CHARS), None)
    if long is not None:
        raise GeneDataError(
            f"{label}: header cell {long + 2} is {len(ids[long]):,} characters long; "
            f"IDs may have at most {MAX_ID_CHARS}."
        )


def _trim_ids(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.utf8_trim_whitespace(pc.utf8_trim(pc.utf8_trim_whitespace(pc.fill_null(col, "")), '"'))


def _arrow_ids(col: pa.ChunkedArray, label: str) -> np.ndarray:
    """Row IDs without surrounding blanks and quotes, as a numpy str array; none may be empty."""
    ids = _trim_ids(col)
    if len(ids) > MAX_IDS:
        raise GeneDataError(
            f"{label} has {len(ids):,} rows, more than the {MAX_IDS:,} a study table may have."
        )
    lengths = pc.utf8_length(ids).to_numpy()
    if lengths.size and int(lengths.max()) > MAX_ID_CHARS:
        i = int(np.argmax(lengths > MAX_ID_CHARS))
        raise GeneDataError(
            f"{label}: data row {i + 1} has an ID of {int(lengths[i]):,} characters; "
            f"IDs may have at most {MAX_ID_CHARS}."
        )
    if lengths.size and int(lengths.min()) == 0:
        i = int(np.argmin(lengths))
        raise GeneDataError(f"{label}: data row {i + 1} has an empty ID in the first column.")
    return np.asarray(ids.to_numpy(zero_copy_only=False), dtype=str)


def _text_column(
    col: pa.ChunkedArray, row_ids: np.ndarray, col_id: str, label: str
) -> tuple[np.ndarray | None, list[str] | None]:
    """A column read as text: (float32 values, None) if numeric after all, (None, cells) if wholly
    non-numeric (an annotation); a number column with a stray word is an error naming the cell."""
    cells = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object).str.strip()
    missing = cells.isin(_NA_SET).to_numpy()
    num = pd.to_numeric(cells.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(num) & ~missing
    if bad.any() and bad.sum() == (~missing).sum():
        return None, cells.where(~missing, "").tolist()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        where = f"row '{row_ids[i]}', column '{col_id}'"
        raise GeneDataError(f"{label}: {where} holds {str(cells.iloc[i])[:40]!r}, {_NOT_A_NUMBER}")
    big = ~np.isnan(num) & ~(np.abs(num) <= FLOAT32_MAX)
    if big.any():
        i = int(np.flatnonzero(big)[0])
        _refuse_big(label, f"row '{row_ids[i]}', column '{col_id}'", str(cells.iloc[i]))
    return num.astype(np.float32), None


def _refuse_big(label: str, where: str, cell: str) -> None:
    """Refuse a cell that became infinite: written as infinity, or beyond float32's range."""
    if cell.strip().lower().lstrip("+-") in ("inf", "infinity"):
        raise GeneDataError(
            f"{label}: the table contains infinite values ({where}); "
            "expression values must be finite or missing."
        )
    raise GeneDataError(float32_overflow_message(label, where, cell))


class _Retry(Exception):
    """A column expected numeric holds a word: read it as text (field number in args[0])."""


def _guess_rows_are_genes(col_ids: list[str], first_ids: list[str], n_rows: int, n_cols: int) -> bool:
    """The orientation ``auto`` will likely find (see gene_io), so the buffer needs no transpose."""
    cols_gsm, rows_gsm = gsm_fraction(col_ids), gsm_fraction(first_ids)
    if cols_gsm >= 0.5 > rows_gsm:
        return True
    if rows_gsm >= 0.5 > cols_gsm:
        return False
    return n_rows >= n_cols


@dataclass
class _Slice:
    """One parsed slice: ``k`` rows, their IDs, the text columns' cells, and the numeric values,
    either per field (``columns``) or as a (k, fields) matrix with NaN at text fields (``grid``)."""

    k: int
    ids: pa.Array | pa.ChunkedArray
    texts: dict[int, pa.Array | pa.ChunkedArray]
    columns: dict[int, np.ndarray] | None
    grid: np.ndarray | None
    cell_at: Callable[[int, int], str]  # the text of row i, field j (for messages)


class _Parser:
    """Parses ``data[start:end]``; see :func:`parse_table`."""

    def __init__(
        self,
        data: Blob,
        sep: str,
        label: str,
        start: int,
        end: int,
        first_line_no: int,
        max_bytes: int,
        rows_are_genes: bool | None,
    ) -> None:
        self.data, self.sep, self.label, self.start, self.end = data, sep, label, start, end
        self.first_line_no = first_line_no
        head = first_line(data, start, end)
        if head is None:
            raise GeneDataError(f"{label} is empty.")
        h_start, self.body, h_line = head
        if data.count(sep.encode(), h_start, self.body) >= MAX_IDS:
            raise GeneDataError(
                f"{label}: the header has more than {MAX_IDS:,} columns, more than a table may have."
            )
        header = _cells(h_line, sep, label)
        row1 = first_line(data, self.body, end)
        if row1 is None:
            raise GeneDataError(f"{label} has a header line but no data rows.")
        first_cells = _cells(row1[2], sep, label)
        n = len(first_cells)
        if n == len(header) + 1:  # R's write.table: the header has no cell above the ID column
            header = ["", *header]
        if n != len(header):
            raise GeneDataError(
                f"{label}: the header has {len(header)} cells but the data rows have {n}; "
                "they must match (one ID column plus one column per sample or gene)."
            )
        if n < 2:
            raise GeneDataError(
                f"{label}: need an ID column and at least one data column, found {n} column(s)."
            )
        _check_header(header[1:], label)
        self.header, self.n = header, n
        lines = data.count(b"\n", self.body, end) - (1 if data[end - 1 : end] == b"\n" else 0)
        if lines > MAX_IDS:
            raise GeneDataError(
                f"{label} has {lines:,} lines, more than the {MAX_IDS:,} rows a table may have."
            )
        if lines * (n - 1) > max_bytes // 4:
            what = (
                f"holds up to {lines * (n - 1):,} values ({lines:,} rows × {n - 1:,} columns), "
                f"which as float32 would take {size_text(4 * lines * (n - 1))}"
            )
            raise CapError(cap_message(label, what, max_bytes))
        # columns with words in the first rows are read as text (annotation columns)
        self.text_cols = {j for j in range(1, n) if not _is_number(first_cells[j])}
        first_ids = [first_cells[0]]
        cut = data.rfind(b"\n", row1[1], min(end, row1[1] + _PRESCAN))
        if cut > row1[1]:
            text = bytes(data[row1[1] : cut]).decode("utf-8", errors="replace")
            with contextlib.suppress(csv.Error):  # the prescan is only a hint
                for row in csv.reader(io.StringIO(text), delimiter=sep):
                    first_ids += [unquote(row[0])] if row else []
                    self.text_cols |= {
                        j for j in range(1, min(len(row), n)) if not _is_number(unquote(row[j]))
                    }
        if rows_are_genes is None:
            rows_are_genes = _guess_rows_are_genes(header[1:], first_ids, lines, n - 1 - len(self.text_cols))
        self.by_columns = rows_are_genes
        self.shape = (n - 1, max(lines, 1)) if rows_are_genes else (max(lines, 1), n - 1)
        self.buf = np.empty(self.shape[0] * self.shape[1], dtype=np.float32)
        self.grid = self.buf.reshape(self.shape)

    # -- slices ------------------------------------------------------------------------------------
    def _csv_slice(self, lo: int, hi: int, numeric: list[int]) -> _Slice:
        """A slice through pyarrow's CSV reader, numeric fields as float32."""
        types = {j: pa.string() if j in self.text_cols else pa.float32() for j in range(1, self.n)}
        tab = self._read_csv(lo, hi, {0: pa.string(), **types})

        def cell_at(i: int, j: int) -> str:
            return str(self._read_csv(lo, hi, {0: pa.string(), j: pa.string()}, [j]).column(0)[i].as_py())

        return _Slice(
            tab.num_rows,
            tab.column(0),
            {j: tab.column(j) for j in self.text_cols},
            {j: tab.column(j).to_numpy() for j in numeric},
            None,
            cell_at,
        )

    def _read_csv(
        self, lo: int, hi: int, types: dict[int, pa.DataType], include: list[int] | None = None
    ) -> pa.Table:
        names = [f"c{j}" for j in range(self.n)]
        bad_rows: list[pacsv.InvalidRow] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            if not row.text.strip():
                return "skip"
            bad_rows.append(row)
            return "error"

        try:
            return pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(memoryview(self.data)[lo:hi])),
                read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=hi - lo + 1),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.sep, quote_char='"', double_quote=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={names[j]: t for j, t in types.items()},
                    include_columns=None if include is None else [names[j] for j in include],
                    null_values=NA_VALUES,
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as exc:
            if bad_rows:
                row = bad_rows[0]
                self._ragged(row.text, row.actual_columns, row.expected_columns)
            m = _CONVERSION.search(str(exc))
            if m is not None and 1 <= int(m.group(1)) < self.n:
                raise _Retry(int(m.group(1)), int(m.group(2)), m.group(3)) from None
            raise GeneDataError(f"{self.label} could not be read as a table: {exc}") from None
        except pa.ArrowException as exc:
            raise GeneDataError(f"{self.label} could not be read as a table: {exc}") from None

    def _wide_slice(self, lo: int, hi: int, numeric: list[int]) -> _Slice:
        """A slice of a wide table: rows split at the separator by pyarrow's string kernels (one
        Arrow array for all cells, not one per column); a quoted cell may not hold the separator."""
        raw = bytes(self.data[lo:hi]).replace(b"\r", b"")
        rows = [line for line in raw.split(b"\n") if line.strip()]
        del raw
        sep = self.sep.encode()
        for line in rows:
            if line.count(sep) != self.n - 1:
                self._wide_ragged(line)
        k = len(rows)
        if k == 0:  # only blank lines
            empty = pa.array([], pa.string())
            return _Slice(0, empty, dict.fromkeys(self.text_cols, empty), None, np.empty((0, self.n)), str)
        cells = pc.list_flatten(pc.split_pattern(pa.array([sep.join(rows)], pa.string()), self.sep))
        del rows
        if b'"' in self.data[lo:hi]:
            quoted = pc.or_(pc.starts_with(cells, '"'), pc.ends_with(cells, '"'))
            balanced = pc.and_(pc.starts_with(cells, '"'), pc.ends_with(cells, '"'))
            if pc.any(pc.and_(quoted, pc.invert(balanced))).as_py():
                raise GeneDataError(
                    f"{self.label}: a quoted cell holds the separator {self.sep!r}; in a table with more "
                    f"than {_WIDE:,} columns cells cannot contain it. Save the table without such cells."
                )
            cells = pc.utf8_trim(cells, '"')
        if any(ch in self.data[lo:hi] for ch in (b" ", b"\t") if ch != sep):
            cells = pc.utf8_trim_whitespace(cells)
        position = np.tile(np.isin(np.arange(self.n), numeric), k)
        skip = pc.or_(pc.is_in(cells, value_set=pa.array(NA_VALUES)), pa.array(~position))
        wanted = pc.if_else(skip, pa.scalar(None, pa.string()), cells)
        try:
            values = pc.cast(wanted, pa.float32())
        except pa.ArrowInvalid:
            self._wide_bad_cell(wanted)
        grid = values.to_numpy(zero_copy_only=False).reshape(k, self.n)
        ids = pc.take(cells, pa.array(np.arange(k) * self.n))
        texts = {j: pc.take(cells, pa.array(np.arange(k) * self.n + j)) for j in self.text_cols}
        return _Slice(k, ids, texts, None, grid, lambda i, j: str(cells[i * self.n + j].as_py()))

    def _wide_bad_cell(self, values: pa.Array) -> None:
        """The first cell pyarrow cannot read as a number (found by halving), as a :class:`_Retry`."""
        lo, hi = 0, len(values)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                pc.cast(values.slice(lo, mid - lo), pa.float32())
                lo = mid
            except pa.ArrowInvalid:
                hi = mid
        raise _Retry(lo % self.n, lo // self.n + 1, str(values[lo].as_py()))

    def _wide_ragged(self, line: bytes) -> None:
        text = line.decode("utf-8", errors="replace")
        why = (
            f" (or a quoted cell holds the separator {self.sep!r}, which a table with more than {_WIDE:,} "
            "columns may not have)"
            if '"' in text
            else ""
        )
        self._ragged(text, line.count(self.sep.encode()) + 1, self.n, why)

    def _ragged(self, text: str, actual: int, expected: int, why: str = "") -> None:
        """A row with too few or too many cells: its file line (when found), text and counts."""
        at = self.data.find(text.encode("utf-8"), self.body, self.end)
        where = (
            f"file line {self.first_line_no + self.data.count(_NL, self.start, at)}" if at >= 0 else "a row"
        )
        raise GeneDataError(
            f"{self.label}: rows have different numbers of cells: {where} ({text[:60]!r}) has {actual}, "
            f"the rows before it {expected}{why}. Every row needs one ID and one value per column."
        )

    # -- the whole table ---------------------------------------------------------------------------
    def _read_all(self) -> tuple[list[pa.Array], dict[int, list[pa.Array]], int]:
        numeric = [j for j in range(1, self.n) if j not in self.text_cols]
        fields = np.array(numeric, dtype=np.intp) - 1
        parse = self._wide_slice if self.n > _WIDE else self._csv_slice
        id_chunks: list[pa.Array] = []
        text_chunks: dict[int, list[pa.Array]] = {j: [] for j in self.text_cols}
        lo, r0 = self.body, 0
        while lo < self.end:
            hi = min(self.end, lo + _SLICE)
            if hi < self.end:
                nl = self.data.find(b"\n", hi, self.end)
                hi = self.end if nl < 0 else nl + 1
            try:
                part = parse(lo, hi, numeric)
            except _Retry as retry:
                raise _Retry(retry.args[0], r0 + retry.args[1], retry.args[2]) from None
            k = part.k
            if r0 + k > self.shape[1 if self.by_columns else 0]:  # cannot happen: a row takes a line
                raise GeneDataError(f"{self.label}: more rows than lines; the file may be damaged.")
            id_chunks.append(part.ids)
            for j in self.text_cols:
                text_chunks[j].append(part.texts[j])
            block = self.grid[:, r0 : r0 + k] if self.by_columns else self.grid[r0 : r0 + k].T  # fields × k
            if part.grid is not None:
                block[:] = part.grid[:, 1:].T
            else:
                for j, values in (part.columns or {}).items():
                    block[j - 1] = values
            check = block if not self.text_cols else block[fields]
            if numeric and np.isinf(check).any():
                f, i = (int(v[0]) for v in np.nonzero(np.isinf(check)))
                j = numeric[f]
                row_id = _trim_ids(part.ids[i : i + 1])[0].as_py()
                _refuse_big(self.label, f"row '{row_id}', column '{self.header[j]}'", part.cell_at(i, j))
            r0 += k
            lo = hi
        return id_chunks, text_chunks, r0

    def run(self) -> Table:
        for attempt in range(4):
            try:
                id_chunks, text_chunks, n_rows = self._read_all()
                break
            except _Retry as retry:
                j, row, value = retry.args
                if attempt == 3:
                    where = f"data row {row}, column '{self.header[j]}'"
                    raise GeneDataError(
                        f"{self.label}: {where} holds {value[:40]!r}, {_NOT_A_NUMBER}"
                    ) from None
                self.text_cols.add(j)
        if n_rows == 0:
            raise GeneDataError(f"{self.label} has a header line but no data rows.")
        row_ids = _arrow_ids(pa.chunked_array(id_chunks, pa.string()), self.label)
        dropped: dict[str, list[str]] = {}
        annotations: set[int] = set()
        for j in sorted(self.text_cols):
            chunks = pa.chunked_array(text_chunks.pop(j), pa.string())
            values, cells = _text_column(chunks, row_ids, self.header[j], self.label)
            if cells is not None:
                name = (
                    self.header[j] if self.header[j] not in dropped else f"{self.header[j]} (column {j + 1})"
                )
                dropped[name] = cells
                annotations.add(j)
            elif self.by_columns:
                self.grid[j - 1, :n_rows] = values
            else:
                self.grid[:n_rows, j - 1] = values
        slots = np.array([j - 1 for j in range(1, self.n) if j not in annotations], dtype=np.intp)
        if slots.size == 0:
            raise GeneDataError(
                f"{self.label}: no numeric column found; the table must hold expression values."
            )
        col_ids = np.array(self.header[1:], dtype=str)[slots]
        return Table(row_ids, col_ids, dropped, self.buf, self.by_columns, self.shape, slots, self.header[0])


def parse_table(
    data: Blob,
    sep: str,
    label: str,
    *,
    start: int = 0,
    end: int | None = None,
    first_line_no: int = 1,
    max_bytes: int = MAX_BYTES,
    rows_are_genes: bool | None = None,
) -> Table:
    """Parse the table in ``data[start:end]``: a header row, then rows of an ID and values.

    At most ``max_bytes // 4`` values (so the float32 matrix is no larger than the text cap) and
    :data:`MAX_IDS` rows and columns. ``rows_are_genes`` (None: guess) picks the buffer's layout,
    so that :meth:`Table.matrix` needs no transposed copy. ``first_line_no`` is the file line of
    ``data[start]`` (for messages).
    """
    end = len(data) if end is None else end
    return _Parser(data, sep, label, start, end, first_line_no, max_bytes, rows_are_genes).run()
