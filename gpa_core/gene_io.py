"""Readers for gene-expression files: CSV/TSV tables, GEO series matrices, label files, .h5ad.

Every reader accepts a path, raw bytes or a binary file object (e.g. Streamlit's UploadedFile),
detects gzip by its magic bytes (not by the extension), and raises :class:`GeneDataError` (a
``ValueError``) with a message naming the file, line/row/column and what is allowed.

Orientation of a CSV/TSV table (``orientation="auto"``): the first column holds IDs, the first row
holds the other axis's IDs. If most IDs along one axis look like GEO sample accessions
(``GSM123``), that axis is the samples; otherwise the longer axis is taken as genes (a study has
far more genes than samples: 54,675 probes vs a few hundred patients). A square table is
ambiguous and needs ``orientation="genes_by_samples"`` or ``"samples_by_genes"``.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

import numpy as np

from gpa_core.gene_text import (
    HDF5_MAGIC,
    MAX_BYTES,
    NA_VALUES,
    Source,
    decompress,
    dedupe_ids,
    parse_table,
    read_raw,
    read_text,
    sniff_sep,
    unquote,
)
from gpa_core.genes import GeneDataError, Study, normalise_er_labels
from gpa_core.geo_series import (
    find_label_tags,
    labels_from_characteristics,
    normalise_tag,
    read_series_matrix,
)

__all__ = [
    "MAX_BYTES",
    "NA_VALUES",
    "attach_labels",
    "find_label_tags",
    "labels_from_characteristics",
    "load_study",
    "read_expression_table",
    "read_h5ad",
    "read_label_file",
    "read_series_matrix",
]

Orientation = Literal["auto", "genes_by_samples", "samples_by_genes"]
_GSM = re.compile(r"^GSM\d+$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------ tables
def _gsm_fraction(ids: np.ndarray) -> float:
    return float(np.mean([bool(_GSM.match(str(x))) for x in ids])) if ids.size else 0.0


def _detect_orientation(row_ids: np.ndarray, col_ids: np.ndarray, label: str) -> str:
    rows_gsm, cols_gsm = _gsm_fraction(row_ids), _gsm_fraction(col_ids)
    if cols_gsm >= 0.5 > rows_gsm:
        return "genes_by_samples"
    if rows_gsm >= 0.5 > cols_gsm:
        return "samples_by_genes"
    if row_ids.shape[0] > col_ids.shape[0]:
        return "genes_by_samples"
    if col_ids.shape[0] > row_ids.shape[0]:
        return "samples_by_genes"
    raise GeneDataError(
        f"{label}: the table is square ({row_ids.shape[0]} × {col_ids.shape[0]}), "
        "so it is unclear whether rows "
        "are genes or samples; pass orientation='genes_by_samples' or 'samples_by_genes'."
    )


_LABEL_COLUMNS = {"label", "labels", "class", "er", "erstatus", "group", "condition", "status"}


def read_expression_table(
    src: Source,
    *,
    orientation: Orientation = "auto",
    sep: str | None = None,
    filename: str | None = None,
    name: str | None = None,
    dtype: type[np.floating] = np.float32,
) -> Study:
    """Read a CSV/TSV (plain or gzipped) expression table into a :class:`Study`.

    ``sep=None`` detects tab, comma or semicolon from the header line. Missing values:
    :data:`NA_VALUES`. Wholly non-numeric columns (e.g. a "Gene Symbol" annotation) are dropped and
    named in ``study.notes``; in a samples × genes table such a column called label/class/ER/status
    becomes the labels. Repeated gene IDs keep their first row (counted in
    ``n_duplicate_ids_dropped``); repeated sample IDs are an error.
    """
    if orientation not in ("auto", "genes_by_samples", "samples_by_genes"):
        raise GeneDataError(
            f"orientation must be 'auto', 'genes_by_samples' or 'samples_by_genes', got {orientation!r}."
        )
    text, label = read_text(src, filename)
    m = re.search(r"^[ \t]*\S[^\r\n]*", text, re.MULTILINE)  # the first non-blank line, without splitting
    first = m.group(0) if m else ""
    if first.startswith("!"):
        raise GeneDataError(
            f"{label} looks like a GEO series matrix ('!' metadata lines); read it with read_series_matrix."
        )
    if sep is None:
        sep = sniff_sep(first, label)
    row_ids, col_ids, values, dropped = parse_table(text, sep, label)
    if orientation == "auto":
        orientation = _detect_orientation(row_ids, col_ids, label)  # type: ignore[assignment]
    notes: list[str] = [f"read as {orientation.replace('_', ' ')}"]
    labels = None
    if dropped:
        names = list(dropped)
        notes.append(f"dropped non-numeric column(s): {', '.join(names[:5])}{' …' if len(names) > 5 else ''}")
    if orientation == "genes_by_samples":
        gene_ids, sample_ids, X = row_ids, col_ids, values.T
    else:
        gene_ids, sample_ids, X = col_ids, row_ids, values
        label_col = next((c for c in dropped if re.sub(r"[^a-z]", "", c.lower()) in _LABEL_COLUMNS), None)
        if label_col is not None:
            labels = normalise_er_labels(dropped[label_col])
            notes.append(f"labels taken from column '{label_col}'")
    _, dup_samples = dedupe_ids(sample_ids)
    if dup_samples:
        vals, counts = np.unique(sample_ids, return_counts=True)
        raise GeneDataError(
            f"{label}: sample ID {str(vals[counts > 1][0])!r} appears more than once; "
            "sample IDs must be unique."
        )
    keep, n_dup = dedupe_ids(gene_ids)
    if n_dup:
        gene_ids, X = gene_ids[keep], X[:, keep]
        notes.append(f"{n_dup} repeated gene ID(s) dropped (first kept)")
    study_name = name or (label.strip("'") if label != "the uploaded file" else "uploaded study")
    return Study(
        np.ascontiguousarray(X, dtype=dtype),
        gene_ids,
        sample_ids,
        labels=labels,
        name=study_name,
        n_duplicate_ids_dropped=n_dup,
        notes=notes,
    )


# ------------------------------------------------------------------------------------------ labels
_HEADER_WORDS = {
    "sample",
    "samples",
    "id",
    "ids",
    "sampleid",
    "label",
    "labels",
    "class",
    "status",
    "group",
    "er",
    "erstatus",
    "geoaccession",
    "accession",
    "name",
}


def read_label_file(
    src: Source, *, has_header: bool | None = None, filename: str | None = None
) -> dict[str, str]:
    """Read a two-column label file (sample ID, label), CSV or TSV, header optional.

    ``has_header=None`` detects a header: the first row is one if its cells are header-like words
    (sample, id, label, class, status, group, ER, …). Extra columns are ignored.
    """
    text, label = read_text(src, filename)
    rows = [ln for ln in text.splitlines() if ln.strip()]
    if not rows:
        raise GeneDataError(f"{label} is empty; expected two columns: sample ID, label.")
    sep = sniff_sep(rows[0], label)
    parsed = [[unquote(c) for c in r] for r in csv.reader(rows, delimiter=sep)]
    if has_header is None:
        has_header = any(normalise_tag(c) in _HEADER_WORDS for c in parsed[0][:2])
    body = parsed[1:] if has_header else parsed
    out: dict[str, str] = {}
    for k, row in enumerate(body):
        line_no = k + (2 if has_header else 1)
        if len(row) < 2 or not row[0]:
            raise GeneDataError(
                f"{label}, line {line_no}: expected two cells (sample ID, label), got {row!r}."
            )
        if row[0] in out and out[row[0]] != row[1]:
            raise GeneDataError(
                f"{label}, line {line_no}: sample {row[0]!r} is listed twice with different labels."
            )
        out[row[0]] = row[1]
    if not out:
        raise GeneDataError(f"{label} has a header but no rows.")
    return out


def attach_labels(study: Study, labels: dict[str, str], *, normalise: bool = True) -> Study:
    """A copy of ``study`` with labels looked up by sample ID; every sample needs one."""
    missing = [s for s in study.sample_ids.tolist() if s not in labels]
    if missing:
        raise GeneDataError(
            f"{study.name}: {len(missing)} of {study.n_samples} samples have no label in the label file "
            f"(e.g. {', '.join(repr(m) for m in missing[:5])}); "
            "the label file's first column must hold the sample IDs."
        )
    values = [labels[s] for s in study.sample_ids.tolist()]
    return study.with_labels(normalise_er_labels(values) if normalise else np.array(values, dtype=str))


# ------------------------------------------------------------------------------------------ h5ad
def read_h5ad(src: Source, *, filename: str | None = None, name: str | None = None) -> Study:
    """Read an AnnData ``.h5ad`` file (observations = samples); needs the optional package anndata."""
    try:
        import anndata  # type: ignore[import-not-found]
    except ImportError:
        raise GeneDataError(
            "reading .h5ad files needs the optional package 'anndata', which is not installed; "
            "export the matrix as CSV/TSV (e.g. adata.to_df().to_csv(...)) and upload that."
        ) from None
    data, label, filename = read_raw(src, filename)
    try:
        adata = anndata.read_h5ad(io.BytesIO(data))
    except Exception as exc:  # anndata raises many kinds
        raise GeneDataError(f"{label} could not be read as .h5ad: {exc}") from exc
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    return Study(
        np.asarray(X, dtype=np.float32),
        np.asarray(adata.var_names),
        np.asarray(adata.obs_names),
        name=name or (filename or "h5ad study"),
    )


# ------------------------------------------------------------------------------------------ dispatch
def load_study(
    src: Source,
    *,
    filename: str | None = None,
    orientation: Orientation = "auto",
    label_tag: str | None = "auto",
    name: str | None = None,
) -> Study:
    """Read any supported file, choosing the reader from the content: GEO series matrix ('!' lines),
    .h5ad (HDF5 magic), otherwise a CSV/TSV table."""
    data, label, filename = read_raw(src, filename)
    if data[:8] == HDF5_MAGIC or (filename or "").lower().endswith(".h5ad"):
        return read_h5ad(data, filename=filename, name=name)
    raw = decompress(data, label)
    head = raw[:65536].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"!") or b"!series_matrix_table_begin" in head.lower():
        return read_series_matrix(raw, label_tag=label_tag, filename=filename, name=name)
    return read_expression_table(raw, orientation=orientation, filename=filename, name=name)
