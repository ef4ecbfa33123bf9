"""Per-sample information: sample sheets (sample ID, batch, label, …), batch and label columns, and
one combined file split into the two studies.

A combined file holds both studies: its samples carry a batch column (in the expression table's own
text columns, an .h5ad file's ``obs`` or a separate sample sheet), kept in ``Study.annotations``.
:func:`split_by_batch` makes the source and the target from two values of that column, labelled from
another column. :func:`read_sample_sheet` reads the sheet: CSV/TSV, a header row optional (detected),
one row per sample with its ID first.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, replace

import numpy as np

from gpa_core.genes.study import GeneDataError, Study, normalise_er_labels
from gpa_core.genes.text import (
    MAX_LABEL_BYTES,
    CapError,
    Source,
    decompress,
    first_line,
    read_raw,
    sniff_sep,
    to_utf8,
    unquote,
)

__all__ = [
    "BATCH_NAMES",
    "LABEL_NAMES",
    "SampleSheet",
    "attach_sheet",
    "batch_columns",
    "batch_values",
    "guess_batch_column",
    "guess_label_column",
    "is_label_name",
    "label_columns",
    "name_key",
    "read_sample_sheet",
    "split_by_batch",
    "with_annotation_labels",
]

#: column names (see :func:`name_key`) taken for a label column: the biology to keep
LABEL_NAMES = frozenset(
    {"label", "labels", "class", "er", "erstatus", "group", "condition", "status", "celltype", "cellline",
     "cancer", "cancertype", "type", "subtype", "diagnosis", "disease", "phenotype", "tissue", "truth"}
)  # fmt: skip
#: column names taken for a batch column: the study, protocol, platform or site a sample comes from
BATCH_NAMES = frozenset(
    {"batch", "batches", "study", "studies", "dataset", "platform", "protocol", "technology", "tech",
     "series", "lab", "site", "center", "centre", "cohort", "plate", "run", "chemistry", "library",
     "source", "experiment", "gse"}
)  # fmt: skip
#: first-row cells that mark a header: names of an ID, label or batch column that are unlikely to be a
#: label itself (not 'cancer', 'tissue' or 'source', which a headerless file may hold as labels)
HEADER_NAMES = frozenset(
    {"sample", "samples", "id", "ids", "sampleid", "samplename", "name", "geoaccession", "accession",
     "patient", "patientid", "barcode", "cell", "cellid", "cellbarcode", "obs", "obsnames", "title",
     "label", "labels", "class", "er", "erstatus", "group", "condition", "status", "celltype", "cellline",
     "subtype", "diagnosis", "phenotype", "batch", "study", "dataset", "platform", "protocol", "cohort",
     "plate"}
)  # fmt: skip
_ER_NAMES = frozenset({"er", "erstatus", "esr1", "esr1status"})
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def name_key(name: str) -> str:
    """A column name reduced to lower-case letters and digits for matching ("Cell_Type" → "celltype").
    Column names are matched whole or by a known word of 4+ letters they start with
    ("cell_line_demuxlet" is a label column)."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _named(name: str, names: frozenset[str]) -> bool:
    key = name_key(name)
    return key in names or any(key.startswith(n) and len(n) >= 4 for n in names)


def is_label_name(name: str) -> bool:
    """Whether a column name reads like a label column (label, class, cell type, cell_line_x, …)."""
    return _named(name, LABEL_NAMES)


# ------------------------------------------------------------------------------------------ sheets
@dataclass(frozen=True)
class SampleSheet:
    """A sample sheet: the sample IDs (first column), the other columns by name (``column 2``, … when
    there is no header) with one str per row, whether a header row was read, and a label for messages."""

    ids: np.ndarray
    columns: dict[str, np.ndarray]
    header: bool
    label: str

    def lookup(self, column: str) -> dict[str, str]:
        """Sample ID → value of ``column``."""
        return dict(zip(self.ids.tolist(), self.columns[column].tolist(), strict=True))


def _has_header(rows: list[list[str]]) -> bool:
    """A header row: a cell is a header word, or the first cell is a word above IDs that are all
    numbers (a Golub-style 'patient, cancer' over '1, ALL')."""
    first = rows[0]
    if any(name_key(c) in HEADER_NAMES for c in first):
        return True
    rest = [r[0] for r in rows[1:] if r]
    return bool(rest) and not _NUMBER.match(first[0]) and all(_NUMBER.match(c) for c in rest)


def _column_names(cells: list[str], width: int) -> list[str]:
    names: list[str] = []
    for j in range(1, width):
        name = cells[j] if j < len(cells) and cells[j] else f"column {j + 1}"
        names.append(name if name not in names else f"{name} (column {j + 1})")
    return names


def read_sample_sheet(
    src: Source,
    *,
    has_header: bool | None = None,
    filename: str | None = None,
    max_bytes: int = MAX_LABEL_BYTES,
) -> SampleSheet:
    """Read a sample sheet (CSV/TSV, plain or gzipped): the sample ID first, then any columns.

    ``has_header=None`` detects a header (:func:`_has_header`). Rows shorter than the header get
    empty cells, longer ones are cut; a sample listed twice must have the same values. ``max_bytes``
    caps the text (:data:`MAX_LABEL_BYTES`)."""
    label = f"'{filename}'" if filename else "the label file"
    try:
        data, label, _ = read_raw(src, filename, max_bytes)
        data = to_utf8(decompress(data, label, max_bytes), label, max_bytes)
    except CapError:
        raise GeneDataError(
            f"{label} is more than {max_bytes / 2**20:,.0f} MB of text, too large for a label file "
            "(two short columns: sample ID, label); is it the expression file? "
            "(read_label_file(max_bytes=…) raises the limit in Python.)"
        ) from None
    head = first_line(data)
    if head is None:
        raise GeneDataError(f"{label} is empty; expected two columns: sample ID, label.")
    sep = sniff_sep(head[2], label)
    reader = csv.reader(io.StringIO(bytes(data).decode("utf-8").lstrip("\ufeff")), delimiter=sep)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for cells in reader:
            row = [unquote(c) for c in cells]
            if any(row):
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise GeneDataError(f"{label}, line {reader.line_num}: cannot be split into cells ({exc}).") from None
    if not rows:
        raise GeneDataError(f"{label} has no cells; expected two columns: sample ID, label.")
    if has_header is None:
        has_header = _has_header(rows)
    width = max(2, len(rows[0])) if has_header else max(len(r) for r in rows)
    names = _column_names(rows[0] if has_header else [], width)
    body = list(zip(rows[1:], lines[1:], strict=True)) if has_header else list(zip(rows, lines, strict=True))
    if not body:
        raise GeneDataError(f"{label} has a header but no rows.")
    seen: dict[str, list[str]] = {}
    for row, line in body:
        if len(row) < 2 or not row[0]:
            raise GeneDataError(
                f"{label}, line {line}: expected two cells (sample ID, label), got {row[:4]!r}."
            )
        values = (row[1:width] + [""] * width)[: width - 1]
        old = seen.get(row[0])
        if old is not None and old != values:
            j = next(k for k in range(width - 1) if old[k] != values[k])
            what = "labels" if j == 0 else f"values in column {names[j]!r}"
            raise GeneDataError(
                f"{label}, line {line}: sample {row[0][:60]!r} is listed twice with different {what}."
            )
        seen[row[0]] = values
    ids = np.array(list(seen), dtype=str)
    table = np.array(list(seen.values()), dtype=str).reshape(len(seen), width - 1)
    columns = {name: table[:, j].copy() for j, name in enumerate(names)}
    return SampleSheet(ids, columns, bool(has_header), label)


def attach_sheet(study: Study, sheet: SampleSheet) -> Study:
    """A copy of ``study`` with the sheet's columns in its ``annotations``, matched by sample ID.
    Samples the sheet does not list get empty values (noted); a sheet listing none of them is an error."""
    lookup = {sid: i for i, sid in enumerate(sheet.ids.tolist())}
    rows = np.array([lookup.get(s, -1) for s in study.sample_ids.tolist()], dtype=np.intp)
    found = rows >= 0
    if not found.any():
        raise GeneDataError(
            f"{sheet.label}: none of the {study.n_samples} samples of {study.name} is listed "
            f"(the sheet's IDs look like {_examples(sheet.ids)}, the study's like "
            f"{_examples(study.sample_ids)}); its first column must hold the sample IDs."
        )
    annotations = dict(study.annotations)
    for name, values in sheet.columns.items():
        column = np.where(found, values[np.where(found, rows, 0)], "")
        annotations[name] = column.astype(str)
    note = f"sample information from {sheet.label}: {_names(list(sheet.columns))}"
    if not found.all():
        missing = study.sample_ids[~found]
        note += (
            f"; {int((~found).sum())} of {study.n_samples} samples are not listed there (e.g. "
            + ", ".join(repr(m) for m in missing[:3].tolist())
            + ")"
        )
    return replace(study, annotations=annotations, notes=[*study.notes, note])


def _examples(ids: np.ndarray, k: int = 3) -> str:
    return ", ".join(repr(s) for s in ids[:k].tolist())


def _names(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (" …" if len(names) > k else "")


# ------------------------------------------------------------------------------------------ columns
def _distinct(values: np.ndarray) -> list[str]:
    """The non-empty values in order of first appearance."""
    uniq, first = np.unique(values, return_index=True)
    return [str(uniq[i]) for i in np.argsort(first) if str(uniq[i])]


def batch_values(study: Study, column: str) -> dict[str, int]:
    """Samples per value of ``column`` (non-empty values, in order of first appearance)."""
    values = study.annotations[column]
    return {v: int(np.sum(values == v)) for v in _distinct(values)}


def batch_columns(study: Study) -> list[str]:
    """The columns that can split the study into batches: 2 to 50 distinct values, each value held by
    fewer samples than all (batch-named columns first)."""
    out = []
    for name, values in study.annotations.items():
        distinct = _distinct(values)
        if 2 <= len(distinct) <= min(50, study.n_samples - 1):
            out.append(name)
    return sorted(out, key=lambda c: not _named(c, BATCH_NAMES))


def label_columns(study: Study, exclude: str | None = None) -> list[str]:
    """The columns that can label the samples: at least one value, not all distinct (not an ID),
    label-named columns first."""
    out = []
    for name, values in study.annotations.items():
        if name == exclude:
            continue
        distinct = _distinct(values)
        if distinct and len(distinct) < max(2, study.n_samples):
            out.append(name)
    return sorted(out, key=lambda c: not _named(c, LABEL_NAMES))


def guess_batch_column(study: Study) -> str | None:
    """A batch-named column, else the first non-label-named one, else the first (or None)."""
    cols = batch_columns(study)
    return next(
        (c for c in cols if _named(c, BATCH_NAMES)),
        next((c for c in cols if not _named(c, LABEL_NAMES)), None),
    ) or (cols[0] if cols else None)


def guess_label_column(study: Study, exclude: str | None = None) -> str | None:
    """A label-named column (not ``exclude``), or None."""
    return next((c for c in label_columns(study, exclude) if _named(c, LABEL_NAMES)), None)


def _labels_of(study: Study, column: str, where: str) -> np.ndarray:
    values = study.annotations[column]
    empty = np.char.str_len(values) == 0
    if empty.any():
        raise GeneDataError(
            f"{where}: {int(empty.sum())} of {values.shape[0]} samples have no value in column {column!r} "
            f"(e.g. {', '.join(repr(s) for s in study.sample_ids[empty][:3].tolist())}); choose another "
            "label column or complete the sample sheet."
        )
    return normalise_er_labels(values) if name_key(column) in _ER_NAMES else values.copy()


def with_annotation_labels(study: Study, column: str | None) -> Study:
    """The study labelled from its sample-information column ``column`` (None: no labels)."""
    if column is None:
        return study.with_labels(None)
    if column not in study.annotations:
        raise GeneDataError(f"{study.name}: no sample information column {column!r}.")
    return study.with_labels(_labels_of(study, column, study.name))


def split_by_batch(
    study: Study, column: str, source: str, target: str, label_column: str | None = None
) -> tuple[Study, Study]:
    """The source and the target of a combined study: its samples whose ``column`` is ``source`` and
    ``target``, labelled from ``label_column`` (None: unlabelled). Samples of other batches are left
    out (noted); each side needs at least 2 samples."""
    if column not in study.annotations:
        raise GeneDataError(f"{study.name}: no sample information column {column!r}.")
    if label_column == column:
        raise GeneDataError(
            f"the label column cannot be the batch column {column!r}: each label would lie in one study only."
        )
    if source == target:
        raise GeneDataError(
            f"choose two different batches for the source and the target (both are {source!r})."
        )
    values = study.annotations[column]
    counts = batch_values(study, column)
    others = {v: k for v, k in counts.items() if v not in (source, target)}
    blank = int(np.sum(np.char.str_len(values) == 0))
    out = []
    for role, value in (("source", source), ("target", target)):
        idx = np.flatnonzero(values == value)
        if idx.shape[0] < 2:
            raise GeneDataError(
                f"{study.name}: the {role} batch {column} = {value!r} has {idx.shape[0]} sample(s); "
                f"a study needs at least 2 (batches: {', '.join(f'{v}: {k}' for v, k in counts.items())})."
            )
        notes = [*study.notes, f"{role}: {column} = {value!r}, {idx.shape[0]} of {study.n_samples} samples"]
        if others:
            notes.append(
                f"left out: {sum(others.values())} samples of other batches ("
                + ", ".join(f"{v}: {k}" for v, k in list(others.items())[:5])
                + (" …" if len(others) > 5 else "")
                + ")"
            )
        if blank:
            notes.append(f"left out: {blank} samples without a value in {column!r}")
        part = replace(
            study,
            expression=np.ascontiguousarray(study.expression[idx]),
            sample_ids=study.sample_ids[idx],
            labels=None,
            characteristics=[],
            annotations={k: v[idx] for k, v in study.annotations.items()},
            name=f"{role} ({column} = {value})",
            notes=notes,
        )
        if label_column is not None:
            if label_column not in study.annotations:
                raise GeneDataError(f"{study.name}: no sample information column {label_column!r}.")
            part = part.with_labels(_labels_of(part, label_column, part.name))
        out.append(part)
    return out[0], out[1]
