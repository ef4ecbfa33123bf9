"""Readers for gene-expression files: CSV/TSV tables, GEO series matrices, label files, .h5ad.

Every reader accepts a path, raw bytes or a binary file object (e.g. Streamlit's UploadedFile),
detects gzip by its magic bytes (not by the extension), and raises :class:`GeneDataError` (a
``ValueError``) with a message naming the file, line/row/column and what is allowed.

Orientation of a CSV/TSV table (``orientation="auto"``): the first column holds IDs, the first row
holds the other axis's IDs. If most IDs along one axis look like GEO sample accessions
(``GSM123``), that axis is the samples; otherwise the longer axis is taken as genes (a study has
far more genes than samples: 54,675 probes vs a few hundred patients). A square table is
ambiguous and needs ``orientation="genes_by_samples"`` or ``"samples_by_genes"`` (on the page: the
orientation control's "rows = genes" / "rows = samples", :data:`PAGE_ORIENTATION`).

Every reader takes ``max_bytes`` (default :data:`MAX_BYTES`, 512 MB of text after decompression;
label files :data:`MAX_LABEL_BYTES`) and checks what it read: at least 2 samples and 2 genes,
samples without any value dropped (noted), values finite or missing and within float32's range.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

import numpy as np

from gpa_core.data.file_kinds import HDF5_MAGIC
from gpa_core.genes.geo import (
    find_label_tags,
    labels_from_characteristics,
    normalise_tag,
    read_series_matrix,
)
from gpa_core.genes.study import (
    GeneDataError,
    Study,
    check_study,
    dedupe_ids,
    normalise_er_labels,
    to_float32,
)
from gpa_core.genes.table import gsm_fraction, parse_table
from gpa_core.genes.text import (
    CAP_ENV,
    MAX_BYTES,
    MAX_ID_CHARS,
    MAX_IDS,
    MAX_LABEL_BYTES,
    NA_VALUES,
    CapError,
    Source,
    cap_message,
    decompress,
    first_line,
    read_raw,
    read_utf8,
    size_text,
    sniff_sep,
    to_utf8,
    unquote,
)

__all__ = [
    "CAP_ENV",
    "MAX_BYTES",
    "MAX_LABEL_BYTES",
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
#: how the app's orientation control names each orientation (for messages)
PAGE_ORIENTATION = {"genes_by_samples": "rows = genes", "samples_by_genes": "rows = samples"}


# ------------------------------------------------------------------------------------------ tables
def _detect_orientation(row_ids: np.ndarray, col_ids: np.ndarray, label: str) -> str:
    rows_gsm, cols_gsm = gsm_fraction(row_ids), gsm_fraction(col_ids)
    if cols_gsm >= 0.5 > rows_gsm:
        return "genes_by_samples"
    if rows_gsm >= 0.5 > cols_gsm:
        return "samples_by_genes"
    if row_ids.shape[0] > col_ids.shape[0]:
        return "genes_by_samples"
    if col_ids.shape[0] > row_ids.shape[0]:
        return "samples_by_genes"
    raise GeneDataError(
        f"{label}: the table is square ({row_ids.shape[0]} × {col_ids.shape[0]}), so it is unclear whether "
        "rows are genes or samples; choose the orientation 'rows = genes' or 'rows = samples' on the page "
        "(orientation='genes_by_samples' or 'samples_by_genes' in Python)."
    )


_LABEL_COLUMNS = {"label", "labels", "class", "er", "erstatus", "group", "condition", "status"}


def read_expression_table(
    src: Source,
    *,
    orientation: Orientation = "auto",
    sep: str | None = None,
    filename: str | None = None,
    name: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Study:
    """Read a CSV/TSV (plain or gzipped) expression table into a float32 :class:`Study`.

    ``sep=None`` detects tab, comma or semicolon from the header line. Missing values:
    :data:`NA_VALUES`. Wholly non-numeric columns (e.g. a "Gene Symbol" annotation) are dropped and
    named in ``study.notes``; in a samples × genes table such a column called label/class/ER/status
    becomes the labels. Repeated gene IDs keep their first row (counted in
    ``n_duplicate_ids_dropped``); repeated sample IDs are an error; samples without any value are
    dropped (noted). ``max_bytes`` caps the text after decompression (:data:`MAX_BYTES`).
    """
    if orientation not in ("auto", "genes_by_samples", "samples_by_genes"):
        raise GeneDataError(
            f"orientation must be 'auto', 'genes_by_samples' or 'samples_by_genes', got {orientation!r}."
        )
    data, label = read_utf8(src, filename, max_bytes)
    head = first_line(data)
    first = "" if head is None else head[2].lstrip()
    if first.startswith("!"):
        raise GeneDataError(
            f"{label} looks like a GEO series matrix ('!' metadata lines); read it with read_series_matrix "
            "(load_study, which the app uses, does so by itself)."
        )
    if sep is None:
        sep = sniff_sep(first, label)
    hint = None if orientation == "auto" else orientation == "genes_by_samples"
    table = parse_table(data, sep, label, max_bytes=max_bytes, rows_are_genes=hint)
    del data
    row_ids, col_ids, dropped = table.row_ids, table.col_ids, table.dropped
    if orientation == "auto" and min(row_ids.shape[0], col_ids.shape[0]) < 2:
        raise GeneDataError(
            f"{label}: a study needs at least 2 samples and 2 genes; the table has "
            f"{row_ids.shape[0]:,} data row(s) × {col_ids.shape[0]:,} numeric column(s)."
        )
    if orientation == "auto":
        orientation = _detect_orientation(row_ids, col_ids, label)  # type: ignore[assignment]
    notes: list[str] = [f"read as {orientation.replace('_', ' ')}"]
    labels = None
    if dropped:
        names = list(dropped)
        notes.append(f"dropped non-numeric column(s): {', '.join(names[:5])}{' …' if len(names) > 5 else ''}")
    rows_are_genes = orientation == "genes_by_samples"
    gene_ids, sample_ids = (row_ids, col_ids) if rows_are_genes else (col_ids, row_ids)
    if not rows_are_genes:
        label_col = next((c for c in dropped if re.sub(r"[^a-z]", "", c.lower()) in _LABEL_COLUMNS), None)
        if label_col is not None:
            labels = normalise_er_labels(dropped[label_col])
            notes.append(f"labels taken from column '{label_col}'")
    keep, n_dup = dedupe_ids(gene_ids)
    if not n_dup:
        X = table.matrix(rows_are_genes)
    elif rows_are_genes:
        X = table.matrix(rows_are_genes, keep_rows=keep)
    else:
        X = table.matrix(rows_are_genes, keep_cols=keep)
    if n_dup:
        gene_ids = gene_ids[keep]
        notes.append(f"{n_dup} repeated gene ID(s) dropped (first kept)")
    study_name = name or (label.strip("'") if label != "the uploaded file" else "uploaded study")
    study = Study(
        X, gene_ids, sample_ids, labels=labels, name=study_name, n_duplicate_ids_dropped=n_dup, notes=notes
    )
    return check_study(study, label, f" (read as {PAGE_ORIENTATION[orientation]})")


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
    src: Source,
    *,
    has_header: bool | None = None,
    filename: str | None = None,
    max_bytes: int = MAX_LABEL_BYTES,
) -> dict[str, str]:
    """Read a two-column label file (sample ID, label), CSV or TSV, header optional.

    ``has_header=None`` detects a header: the first row is one if its cells are header-like words
    (sample, id, label, class, status, group, ER, …). Extra columns are ignored. ``max_bytes``
    caps the text (:data:`MAX_LABEL_BYTES`: far more than any label file needs).
    """
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
    out: dict[str, str] = {}
    first = True
    try:
        for cells in reader:
            row = [unquote(c) for c in cells]
            if not any(row):
                continue
            if first:
                first = False
                if has_header is None:
                    has_header = any(normalise_tag(c) in _HEADER_WORDS for c in row[:2])
                if has_header:
                    continue
            where = f"{label}, line {reader.line_num}"
            if len(row) < 2 or not row[0]:
                raise GeneDataError(f"{where}: expected two cells (sample ID, label), got {row[:4]!r}.")
            if row[0] in out and out[row[0]] != row[1]:
                raise GeneDataError(f"{where}: sample {row[0][:60]!r} is listed twice with different labels.")
            out[row[0]] = row[1]
    except csv.Error as exc:
        raise GeneDataError(f"{label}, line {reader.line_num}: cannot be split into cells ({exc}).") from None
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
def read_h5ad(
    src: Source, *, filename: str | None = None, name: str | None = None, max_bytes: int = MAX_BYTES
) -> Study:
    """Read an AnnData ``.h5ad`` file (observations = samples); needs the optional package anndata."""
    data, label, filename = read_raw(src, filename, max_bytes)
    try:
        import anndata  # type: ignore[import-not-found]
    except ImportError:
        raise GeneDataError(
            f"{label}: reading .h5ad files needs the optional package 'anndata', which is not installed; "
            "export the matrix as CSV/TSV (e.g. adata.to_df().to_csv(...)) and upload that."
        ) from None
    try:
        adata = anndata.read_h5ad(io.BytesIO(data))
        n, g = (int(v) for v in adata.shape)
        if n * g > max_bytes // 4:
            what = f"holds {n:,} × {g:,} values, which as float32 would take {size_text(4 * n * g)}"
            raise CapError(cap_message(label, what, max_bytes))
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        gene_ids = np.asarray(adata.var_names).astype(str)
        sample_ids = np.asarray(adata.obs_names).astype(str)
    except GeneDataError:
        raise
    except Exception as exc:  # anndata and h5py raise many kinds
        raise GeneDataError(f"{label} could not be read as .h5ad: {str(exc)[:200]}") from None
    for ids, what in ((gene_ids, "genes"), (sample_ids, "samples")):
        if ids.shape[0] > MAX_IDS:
            raise GeneDataError(
                f"{label} has {ids.shape[0]:,} {what}, more than the {MAX_IDS:,} a study may have."
            )
        if ids.size and int(np.char.str_len(ids).max()) > MAX_ID_CHARS:
            raise GeneDataError(f"{label}: a {what[:-1]} ID is longer than {MAX_ID_CHARS} characters.")
    try:
        study = Study(to_float32(X, label), gene_ids, sample_ids, name=name or (filename or "h5ad study"))
    except GeneDataError as exc:
        raise GeneDataError(f"{label}: {exc}") from None
    return check_study(study, label)


# ------------------------------------------------------------------------------------------ dispatch
_SERIES_BEGIN = re.compile(rb"^[^\S\n]*\"?!series_matrix_table_begin", re.IGNORECASE | re.MULTILINE)


def load_study(
    src: Source,
    *,
    filename: str | None = None,
    orientation: Orientation = "auto",
    label_tag: str | None = "auto",
    name: str | None = None,
    max_bytes: int = MAX_BYTES,
) -> Study:
    """Read any supported file, choosing the reader from the content: .h5ad (HDF5 magic), GEO series
    matrix ('!' lines), otherwise a CSV/TSV table. ``max_bytes`` caps the text after decompression."""
    data, label, filename = read_raw(src, filename, max_bytes)
    if data[:8] == HDF5_MAGIC:
        return read_h5ad(data, filename=filename, name=name, max_bytes=max_bytes)
    text = to_utf8(decompress(data, label, max_bytes), label, max_bytes)
    del data
    head = first_line(text)
    if head is None:
        raise GeneDataError(f"{label} is empty.")
    if head[2].lstrip().startswith("!") or _SERIES_BEGIN.search(text, 0, 65536):
        return read_series_matrix(
            text, label_tag=label_tag, filename=filename, name=name, max_bytes=max_bytes
        )
    return read_expression_table(
        text, orientation=orientation, filename=filename, name=name, max_bytes=max_bytes
    )
