"""GEO series-matrix files (``GSExxxx_series_matrix.txt[.gz]``) and their sample characteristics.

Metadata lines start with '!'; the expression table (probes × samples, quoted IDs) lies between
``!series_matrix_table_begin`` and ``!series_matrix_table_end``. Labels come from
``!Sample_characteristics_ch1`` cells like ``"er status: P"``; the tag's line and spelling vary
between studies, so tags are gathered per sample and matched fuzzily.
"""

from __future__ import annotations

import difflib
import re

import numpy as np

from gpa_core.gene_text import NA_VALUES, Source, dedupe_ids, parse_table, read_text, unquote
from gpa_core.genes import GeneDataError, Study, normalise_er_labels

__all__ = [
    "NA_VALUES",
    "find_label_tags",
    "labels_from_characteristics",
    "normalise_tag",
    "read_series_matrix",
]


def _find_marker(text: str, marker: str, start: int = 0) -> int | None:
    """Offset of the line that is exactly ``marker`` (any case, surrounding blanks allowed), or None."""
    for m in re.compile(re.escape(marker), re.IGNORECASE).finditer(text, start):
        at = m.start()
        line_start = text.rfind("\n", 0, at) + 1
        line_end = text.find("\n", at)
        line = text[line_start : len(text) if line_end < 0 else line_end]
        if line.strip().lower() == marker:
            return line_start
    return None


def _cells(line: str) -> list[str]:
    return [unquote(c) for c in line.rstrip("\r\n").split("\t")]


def read_series_matrix(
    src: Source,
    *,
    label_tag: str | None = "auto",
    filename: str | None = None,
    name: str | None = None,
    dtype: type[np.floating] = np.float32,
) -> Study:
    """Read a GEO series-matrix file (``GSExxxx_series_matrix.txt`` or ``.txt.gz``).

    Metadata lines start with '!'; the expression table (probes × samples, quoted IDs) lies between
    ``!series_matrix_table_begin`` and ``!series_matrix_table_end``. Missing values: :data:`NA_VALUES`
    (null/Null/NA/empty …). Repeated probe IDs keep their first row and are counted.
    ``!Sample_characteristics_ch1`` lines are kept in ``study.characteristics``; labels come from
    the tag ``label_tag`` (fuzzy, case-insensitive; "auto" looks for an ER-status tag, None skips
    labels), normalised to "ER+"/"ER-" where recognisable.
    """
    text, label = read_text(src, filename)
    begin_at = _find_marker(text, "!series_matrix_table_begin")
    if begin_at is None:
        hint = (
            " (it looks like a plain table: use read_expression_table)"
            if not text.lstrip().startswith("!")
            else ""
        )
        raise GeneDataError(
            f"{label} has no '!series_matrix_table_begin' line, so it is not a GEO series matrix{hint}."
        )
    table_start = text.find("\n", begin_at) + 1 if text.find("\n", begin_at) >= 0 else len(text)
    end_at = _find_marker(text, "!series_matrix_table_end", table_start)
    if end_at is None:
        raise GeneDataError(
            f"{label} ends before '!series_matrix_table_end': "
            "the file is truncated (an incomplete download?)."
        )
    lines = text[:begin_at].splitlines()  # the metadata only; the table is never split into lines here
    begin = len(lines)
    meta: dict[str, str] = {}
    accessions: list[str] = []
    characteristics: list[list[str]] = []
    for ln in lines[:begin]:
        if not ln.startswith("!"):
            continue
        cells = _cells(ln)
        key = cells[0]
        if key == "!Sample_geo_accession":
            accessions = cells[1:]
        elif key == "!Sample_characteristics_ch1":
            characteristics.append(cells[1:])
        elif key.startswith("!Series_") and key not in meta and len(cells) > 1:
            meta[key[1:]] = cells[1]
    table = text[table_start:end_at]
    rows = re.compile(r"^[ \t]*\S", re.MULTILINE).finditer(table)  # a header and ≥ 1 data row?
    if next(rows, None) is None or next(rows, None) is None:
        raise GeneDataError(
            f"{label}: the series matrix table has no expression rows; "
            "GEO sometimes keeps a series' data only in supplementary files."
        )
    row_ids, sample_ids, values, dropped = parse_table(table, "\t", label, first_line=begin + 2)
    notes: list[str] = []
    if dropped:
        notes.append(f"dropped non-numeric column(s): {', '.join(list(dropped)[:5])}")
    keep, n_dup = dedupe_ids(row_ids)
    if n_dup:
        row_ids, values = row_ids[keep], values[keep]
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
        np.ascontiguousarray(values.T, dtype=dtype),
        row_ids,
        sample_ids,
        name=name or meta.get("Series_geo_accession") or label.strip("'"),
        characteristics=characteristics,
        metadata=meta,
        n_duplicate_ids_dropped=n_dup,
        notes=notes,
    )
    if label_tag is not None:
        labels = labels_from_characteristics(study, label_tag, required=label_tag != "auto")
        if labels is not None:
            study.labels = labels
    return study


def normalise_tag(tag: str) -> str:
    """A tag reduced to lower-case letters and digits ("ER_status" → "erstatus") for matching."""
    return re.sub(r"[^a-z0-9]", "", tag.lower())


def find_label_tags(study: Study) -> list[tuple[str, np.ndarray]]:
    """All ``tag: value`` characteristics of a study: [(tag, values per sample ("" where absent)), …].

    Tags are gathered per sample over every characteristics line, so a tag may sit on different
    lines for different samples. A cell without ':' is listed under the tag ``characteristics k``
    (its line number). Order: first appearance.
    """
    n = study.n_samples
    table: dict[str, list[str]] = {}
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
            values = table.setdefault(tag, [""] * n)
            if not values[i]:
                values[i] = value
    return [(tag, np.array(values, dtype=str)) for tag, values in table.items()]


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
