"""GEO series-matrix files (``GSExxxx_series_matrix.txt[.gz]``) and their sample characteristics.

Metadata lines start with '!'; the expression table (probes × samples, quoted IDs) lies between
``!series_matrix_table_begin`` and ``!series_matrix_table_end``. Labels come from
``!Sample_characteristics_ch1`` cells like ``"er status: P"``; the tag's line and spelling vary
between studies, so tags are gathered per sample and matched fuzzily.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace

import numpy as np

from gpa_core.genes.study import GeneDataError, Study, check_study, dedupe_ids, normalise_er_labels
from gpa_core.genes.table import parse_table
from gpa_core.genes.text import (
    MAX_BYTES,
    NA_VALUES,
    Blob,
    Source,
    first_line,
    read_utf8,
    unquote,
)

__all__ = [
    "NA_VALUES",
    "find_label_tags",
    "labels_from_characteristics",
    "normalise_tag",
    "read_series_matrix",
]

#: At most this many ``!Sample_characteristics_ch1`` / accession cells are kept (a few per sample).
MAX_META_CELLS = 5_000_000
_META_LINE = re.compile(
    rb"^(!Sample_geo_accession|!Sample_characteristics_ch1|!Series_[A-Za-z0-9_]+)(?=[\t\r\n]|$)[^\n]*",
    re.MULTILINE,
)


def _find_marker(data: Blob, marker: bytes, start: int = 0) -> int | None:
    """Offset of the line that is exactly ``marker`` (any case, surrounding blanks allowed), or None.
    Searches for the marker's text (fast) and checks its line; a line is looked at once at most."""
    pattern = re.compile(re.escape(marker), re.IGNORECASE)
    pos = start
    while (m := pattern.search(data, pos)) is not None:
        line_start = data.rfind(b"\n", 0, m.start()) + 1
        line_end = data.find(b"\n", m.end())
        line_end = len(data) if line_end < 0 else line_end
        if bytes(data[line_start:line_end]).strip().lower() == marker:
            return line_start
        pos = line_end
    return None


def _cells(line: str) -> list[str]:
    return [unquote(c) for c in line.rstrip("\r\n").split("\t")]


def _metadata(data: Blob, end: int, label: str) -> tuple[dict[str, str], list[str], list[list[str]]]:
    """The '!Series_…' values, the sample accessions and the characteristics lines before ``end``."""
    meta: dict[str, str] = {}
    accessions: list[str] = []
    characteristics: list[list[str]] = []
    n_cells = 0
    for m in _META_LINE.finditer(data, 0, end):
        key = m.group(1).decode()
        if key.startswith("!Series_"):
            parts = m.group(0).split(b"\t", 2)
            if key[1:] not in meta and len(parts) > 1:
                meta[key[1:]] = unquote(parts[1].decode("utf-8", "replace").rstrip("\r"))
            continue
        n_cells += data.count(b"\t", m.start(), m.end())
        if n_cells > MAX_META_CELLS:
            raise GeneDataError(
                f"{label}: the sample metadata lines hold more than {MAX_META_CELLS:,} cells, "
                "far more than a GEO series matrix has."
            )
        cells = _cells(m.group(0).decode("utf-8", "replace"))[1:]
        if key == "!Sample_geo_accession":
            accessions = cells
        else:
            characteristics.append(cells)
    return meta, accessions, characteristics


def read_series_matrix(
    src: Source,
    *,
    label_tag: str | None = "auto",
    filename: str | None = None,
    name: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Study:
    """Read a GEO series-matrix file (``GSExxxx_series_matrix.txt`` or ``.txt.gz``).

    Metadata lines start with '!'; the expression table (probes × samples, quoted IDs) lies between
    ``!series_matrix_table_begin`` and ``!series_matrix_table_end``. Missing values: :data:`NA_VALUES`
    (null/Null/NA/empty …). Repeated probe IDs keep their first row and are counted; samples
    without any value are dropped (noted). ``!Sample_characteristics_ch1`` lines are kept in
    ``study.characteristics``; labels come from the tag ``label_tag`` (fuzzy, case-insensitive;
    "auto" looks for an ER-status tag, None skips labels), normalised to "ER+"/"ER-" where
    recognisable. ``max_bytes`` caps the text after decompression.
    """
    data, label = read_utf8(src, filename, max_bytes)
    begin_at = _find_marker(data, b"!series_matrix_table_begin")
    if begin_at is None:
        head = first_line(data)
        hint = (
            " (it looks like a plain table: read it with read_expression_table, or load_study, which "
            "the app uses)"
            if head is not None and not head[2].lstrip().startswith("!")
            else ""
        )
        raise GeneDataError(
            f"{label} has no '!series_matrix_table_begin' line, so it is not a GEO series matrix{hint}."
        )
    nl = data.find(b"\n", begin_at)
    table_start = len(data) if nl < 0 else nl + 1
    end_at = _find_marker(data, b"!series_matrix_table_end", table_start)
    if end_at is None:
        raise GeneDataError(
            f"{label} ends before '!series_matrix_table_end': "
            "the file is truncated (an incomplete download?)."
        )
    meta, accessions, characteristics = _metadata(data, begin_at, label)
    header = first_line(data, table_start, end_at)
    if header is None or first_line(data, header[1], end_at) is None:
        raise GeneDataError(
            f"{label}: the series matrix table has no expression rows; "
            "GEO sometimes keeps a series' data only in supplementary files."
        )
    begin_line = data.count(b"\n", 0, table_start) + 1
    table = parse_table(
        data,
        "\t",
        label,
        start=table_start,
        end=end_at,
        first_line_no=begin_line,
        max_bytes=max_bytes,
        rows_are_genes=True,
    )
    del data
    row_ids, sample_ids = table.row_ids, table.col_ids
    notes: list[str] = []
    if table.dropped:
        notes.append(f"dropped non-numeric column(s): {', '.join(list(table.dropped)[:5])}")
    keep, n_dup = dedupe_ids(row_ids)
    X = table.matrix(True, keep_rows=keep if n_dup else None)
    if n_dup:
        row_ids = row_ids[keep]
        notes.append(f"{n_dup} repeated probe ID(s) dropped (first kept)")
    # align characteristics (ordered like !Sample_geo_accession) with the table's columns
    if characteristics and accessions:
        pos = {acc: i for i, acc in enumerate(accessions)}
        if all(s in pos for s in sample_ids):
            idx = [pos[s] for s in sample_ids]
            characteristics = [[row[i] if i < len(row) else "" for i in idx] for row in characteristics]
        else:
            notes.append("sample characteristics ignored: their accessions do not match the table's columns")
            characteristics = []
    elif characteristics and any(len(row) != len(sample_ids) for row in characteristics):
        notes.append("sample characteristics ignored: their count does not match the table's columns")
        characteristics = []
    study = Study(
        X,
        row_ids,
        sample_ids,
        name=name or meta.get("Series_geo_accession") or label.strip("'"),
        characteristics=characteristics,
        metadata=meta,
        n_duplicate_ids_dropped=n_dup,
        notes=notes,
    )
    study = check_study(study, label)
    # every characteristic is sample information too: a combined series splits by a 'batch: …' tag
    study = replace(study, annotations={tag: values for tag, values in find_label_tags(study)})
    if label_tag is not None:
        labels = labels_from_characteristics(study, label_tag, required=label_tag != "auto")
        if labels is not None:
            study.labels = labels
    return study


def normalise_tag(tag: str) -> str:
    """A tag reduced to lower-case letters and digits ("ER_status" → "erstatus") for matching."""
    return re.sub(r"[^a-z0-9]", "", tag.lower())


def _tag_key(tag: str) -> str:
    """Tags that differ only in case or blanks are one tag ("ER :", "er  status" = "ER status")."""
    return "".join(tag.split()).casefold()


def find_label_tags(study: Study) -> list[tuple[str, np.ndarray]]:
    """All ``tag: value`` characteristics of a study: [(tag, values per sample ("" where absent)), …].

    Tags are gathered per sample over every characteristics line, so a tag may sit on different
    lines for different samples; tags that differ only in case or blanks (``ER: +``, ``er :+``)
    are one tag, shown with its first spelling. A cell without ':' is listed under the tag
    ``characteristics k`` (its line number). Order: first appearance.
    """
    n = study.n_samples
    table: dict[str, tuple[str, list[str]]] = {}
    for k, row in enumerate(study.characteristics):
        for i, cell in enumerate(row[:n]):
            cell = cell.strip()
            if not cell:
                continue
            if ":" in cell:
                tag, value = cell.split(":", 1)
                tag, value = tag.strip(), value.strip()
            else:
                tag, value = f"characteristics {k + 1}", cell
            _, values = table.setdefault(_tag_key(tag), (tag, [""] * n))
            if not values[i]:
                values[i] = value
    return [(tag, np.array(values, dtype=str)) for tag, values in table.values()]


_ER_TAG = re.compile(r"^(er|esr1|o?estrogenreceptor)(status)?(ihc|byihc)?$")


def _match_tag(tags: list[str], wanted: str) -> str | None:
    keys = {normalise_tag(t): t for t in reversed(tags)}  # first appearance wins
    if wanted == "auto":
        return next((t for t in tags if _ER_TAG.match(normalise_tag(t))), None)
    w = normalise_tag(wanted)
    if w in keys:
        return keys[w]
    contains = [
        t for t in tags if w and (w in normalise_tag(t) or normalise_tag(t) in w) and normalise_tag(t)
    ]
    if len(contains) == 1:
        return contains[0]
    close = difflib.get_close_matches(w, list(keys), n=1, cutoff=0.75)
    return keys[close[0]] if close else None


def labels_from_characteristics(
    study: Study, label_tag: str = "auto", *, normalise: bool = True, required: bool = True
) -> np.ndarray | None:
    """Labels from the characteristics tag matching ``label_tag`` (see :func:`read_series_matrix`).

    Returns None when ``label_tag="auto"`` finds no ER-like tag (or ``required=False`` and no match);
    otherwise a missing tag is a :class:`GeneDataError` listing the tags there are.
    """
    found = find_label_tags(study)
    tags = [t for t, _ in found]
    tag = _match_tag(tags, label_tag)
    if tag is None:
        if label_tag == "auto" or not required:
            return None
        listed = ", ".join(repr(t) for t in tags[:12]) or "none"
        raise GeneDataError(
            f"{study.name}: no sample characteristic matches {label_tag!r}; tags found: {listed}."
        )
    values = dict(found)[tag]
    return normalise_er_labels(values) if normalise else values
