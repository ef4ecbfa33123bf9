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

import io
import re
from typing import Literal

import numpy as np

from gpa_core.data.file_kinds import HDF5_MAGIC
from gpa_core.genes.batches import (
    SampleSheet,
    attach_sheet,
    is_label_name,
    read_sample_sheet,
    split_by_batch,
)
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
from gpa_core.genes.table import Table, call_columns, gsm_fraction, parse_table
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
)

__all__ = [
    "CAP_ENV",
    "MAX_BYTES",
    "MAX_LABEL_BYTES",
    "NA_VALUES",
    "attach_labels",
    "attach_sheet",
    "find_label_tags",
    "labels_from_characteristics",
    "load_study",
    "read_expression_table",
    "read_h5ad",
    "read_label_file",
    "read_sample_sheet",
    "read_series_matrix",
    "sheet_label_column",
    "split_by_batch",
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
    :data:`NA_VALUES`. In a genes × samples table, wholly non-numeric columns (a "Gene Symbol"
    annotation; per-sample detection calls P/A/M beside each sample's values, Affymetrix-style) are
    dropped and named in ``study.notes``; when the first column holds descriptions ('Gene
    Description') and an ID-named text column follows ('Gene Accession Number'), the gene IDs are
    taken from that column. In a samples × genes table such columns (and numeric ones named batch,
    study, label, class, …, holding a few whole numbers) are kept as ``study.annotations`` (batch and
    label choices); one called label/class/ER/status becomes the labels. Repeated gene IDs keep their
    first row (counted in
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
    row_ids, col_ids, dropped = table.row_ids, table.col_ids, dict(table.dropped)
    if orientation == "auto" and min(row_ids.shape[0], col_ids.shape[0]) < 2:
        raise GeneDataError(
            f"{label}: a study needs at least 2 samples and 2 genes; the table has "
            f"{row_ids.shape[0]:,} data row(s) × {col_ids.shape[0]:,} numeric column(s)."
        )
    if orientation == "auto":
        orientation = _detect_orientation(row_ids, col_ids, label)  # type: ignore[assignment]
    notes: list[str] = [f"read as {orientation.replace('_', ' ')}"]
    labels = None
    annotations: dict[str, np.ndarray] = {}
    rows_are_genes = orientation == "genes_by_samples"
    skip: set[int] = set()  # numeric columns that are sample information, not genes
    if rows_are_genes:
        id_col = _id_column(table.id_name, row_ids, dropped)
        if id_col is not None:
            first = table.id_name or "column 1"
            ids = np.array(dropped.pop(id_col), dtype=str)
            dropped = {first: row_ids.tolist(), **dropped}
            row_ids = ids
            notes.append(
                f"gene IDs taken from column '{id_col}' (the first column, '{first}', holds descriptions)"
            )
        calls = call_columns(dropped)
        if calls:
            notes.append(
                f"dropped {len(calls)} per-sample detection-call column(s) (P/A/M; the values beside "
                f"them are kept): {_names(calls)}"
            )
            dropped = {k: v for k, v in dropped.items() if k not in calls}
        if dropped:
            notes.append(f"dropped non-numeric column(s): {_names(list(dropped))}")
    else:
        skip = _numeric_info_columns(table, col_ids)
        for k in sorted(skip):
            annotations[str(col_ids[k])] = _as_text(table.column(k))
        annotations.update({k: np.array(v, dtype=str) for k, v in dropped.items()})
        if annotations:
            notes.append(f"kept as sample information (batch and label choices): {_names(list(annotations))}")
        label_col = next((c for c in annotations if re.sub(r"[^a-z]", "", c.lower()) in _LABEL_COLUMNS), None)
        if label_col is not None:
            labels = normalise_er_labels(annotations[label_col])
            notes.append(f"labels taken from column '{label_col}'")
    gene_ids, sample_ids = (row_ids, col_ids) if rows_are_genes else (col_ids, row_ids)
    keep, n_dup = dedupe_ids(gene_ids)
    if skip:
        keep = keep[~np.isin(keep, sorted(skip))]
    if not n_dup and not skip:
        X = table.matrix(rows_are_genes)
    elif rows_are_genes:
        X = table.matrix(rows_are_genes, keep_rows=keep)
    else:
        X = table.matrix(rows_are_genes, keep_cols=keep)
    if n_dup or skip:
        gene_ids = gene_ids[keep]
    if n_dup:
        notes.append(f"{n_dup} repeated gene ID(s) dropped (first kept)")
    study_name = name or (label.strip("'") if label != "the uploaded file" else "uploaded study")
    study = Study(
        X, gene_ids, sample_ids, labels=labels, name=study_name, n_duplicate_ids_dropped=n_dup, notes=notes,
        annotations=annotations,
    )  # fmt: skip
    return check_study(study, label, f" (read as {PAGE_ORIENTATION[orientation]})")


def _names(names: list[str], k: int = 5) -> str:
    return ", ".join(names[:k]) + (" …" if len(names) > k else "")


#: first-column names of a description column (the gene IDs are then in another column)
_DESCRIPTION_NAMES = {"description", "genedescription", "genetitle", "title", "definition", "genename",
                      "annotation", "name", "descriptions"}  # fmt: skip
#: names of a gene-ID column, best first: words found inside the header cell's letters and digits,
#: then whole names
_ID_WORDS = ("accession", "probe", "idref", "geneid", "ensembl", "entrez", "refseq")
_ID_NAMES = ("id", "ids", "gene", "genes", "symbol", "genesymbol")


def _id_rank(name: str) -> int | None:
    key = normalise_tag(name)
    if any(w in key for w in ("description", "title", "name")):
        return None
    rank = next((r for r, w in enumerate(_ID_WORDS) if w in key), None)
    if rank is None and key in _ID_NAMES:
        rank = len(_ID_WORDS) + _ID_NAMES.index(key)
    return rank


def _id_column(id_name: str, row_ids: np.ndarray, dropped: dict[str, list[str]]) -> str | None:
    """The text column that holds the gene IDs when the first column holds descriptions (Golub-style
    'Gene Description', 'Gene Accession Number'): an ID-named column without empty or overlong
    cells, taken when the first column is description-named or repeats more."""
    described = normalise_tag(id_name) in _DESCRIPTION_NAMES
    ranked = sorted((r, c) for c in dropped if (r := _id_rank(c)) is not None)
    n_first = np.unique(row_ids).shape[0]
    for _, col in ranked:
        cells = dropped[col]
        if not all(cells) or max(len(c) for c in cells) > MAX_ID_CHARS:
            continue
        if described or len(set(cells)) > n_first:
            return col
    return None


#: numeric columns of a samples × genes table with these names are sample information, not genes
_INFO_NAMES = _LABEL_COLUMNS | {"batch", "study", "dataset", "cohort", "plate"}


def _numeric_info_columns(table: Table, col_ids: np.ndarray) -> set[int]:
    """Numeric columns named like a batch or label column holding a few whole numbers (a 'batch'
    column of 1 and 2): sample information, not genes."""
    out = set()
    for k, name in enumerate(col_ids.tolist()):
        if re.sub(r"[^a-z]", "", name.lower()) not in _INFO_NAMES:
            continue
        v = table.column(k)
        v = v[~np.isnan(v)]
        if v.size and np.all(v == np.round(v)) and np.unique(v).shape[0] <= min(20, max(2, v.size // 2)):
            out.add(k)
    return out


def _as_text(values: np.ndarray) -> np.ndarray:
    """Whole numbers as text ('1', not '1.0'); missing as ''."""
    return np.array(["" if np.isnan(x) else f"{x:.0f}" for x in values.tolist()], dtype=str)


# ------------------------------------------------------------------------------------------ labels
def read_label_file(
    src: Source,
    *,
    has_header: bool | None = None,
    filename: str | None = None,
    max_bytes: int = MAX_LABEL_BYTES,
    column: str | None = None,
) -> dict[str, str]:
    """Read a label file (sample ID, label), CSV or TSV, header optional: sample ID → label.

    ``has_header=None`` detects a header: the first row is one if a cell is a header-like word
    (sample, id, label, class, status, group, ER, patient, cell type, batch, …) or if its first cell
    is a word above sample IDs that are all numbers ('patient, cancer' over '1, ALL'). The label is
    ``column`` (a header name, or 'column 3' without a header), else a label-named column of the
    header (label, class, cell type, …), else the second column; other columns are ignored.
    ``max_bytes`` caps the text (:data:`MAX_LABEL_BYTES`: far more than any label file needs).
    A file of several columns (sample ID, batch, label, …) is a sample sheet: :func:`read_sample_sheet`.
    """
    sheet = read_sample_sheet(src, has_header=has_header, filename=filename, max_bytes=max_bytes)
    return sheet.lookup(sheet_label_column(sheet, column))


def sheet_label_column(sheet: SampleSheet, column: str | None = None) -> str:
    """The label column of a sample sheet: ``column`` (checked), else a label-named header column,
    else the second column."""
    names = list(sheet.columns)
    if column is not None:
        if column not in sheet.columns:
            raise GeneDataError(
                f"{sheet.label} has no column {column!r}; its columns: "
                + ", ".join(repr(c) for c in names[:10])
                + "."
            )
        return column
    if sheet.header:
        named = next((c for c in names if is_label_name(c)), None)
        if named is not None:
            return named
    return names[0]


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
    """Read an AnnData ``.h5ad`` file (observations = samples, ``X`` the values); needs the optional
    package anndata. The ``obs`` columns are kept as ``study.annotations`` (batch and label choices);
    one called label/class/ER/status becomes the labels."""
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
        annotations = _obs_columns(getattr(adata, "obs", None), n)
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
    notes = []
    labels = None
    if annotations:
        notes.append(
            f"obs columns kept as sample information (batch and label choices): {_names(list(annotations))}"
        )
        label_col = next((c for c in annotations if re.sub(r"[^a-z]", "", c.lower()) in _LABEL_COLUMNS), None)
        if label_col is not None:
            labels = normalise_er_labels(annotations[label_col])
            notes.append(f"labels taken from obs column '{label_col}'")
    try:
        study = Study(
            to_float32(X, label), gene_ids, sample_ids, labels=labels,
            name=name or (filename or "h5ad study"), notes=notes, annotations=annotations,
        )  # fmt: skip
    except GeneDataError as exc:
        raise GeneDataError(f"{label}: {exc}") from None
    return check_study(study, label)


_MAX_OBS_COLUMNS = 200


def _obs_columns(obs: object, n: int) -> dict[str, np.ndarray]:
    """An AnnData ``obs`` frame's columns as text, one value per sample (missing as ''): every
    non-float column and float columns of at most 50 distinct values (not a QC metric)."""
    out: dict[str, np.ndarray] = {}
    columns = getattr(obs, "columns", None)
    if columns is None or len(obs) != n:  # type: ignore[arg-type]
        return out
    for name in list(columns)[:_MAX_OBS_COLUMNS]:
        col = obs[name]  # type: ignore[index]
        values = np.asarray(col, dtype=object)
        if getattr(col.dtype, "kind", "O") == "f" and np.unique(values.astype(float)).shape[0] > 50:
            continue
        missing = np.asarray(col.isna()) if hasattr(col, "isna") else np.zeros(n, dtype=bool)
        whole = getattr(col.dtype, "kind", "O") == "f" and all(
            float(v).is_integer() for v in values[~missing]
        )
        text = np.array(
            [
                "" if m else (f"{v:.0f}" if whole else str(v))
                for v, m in zip(values.tolist(), missing.tolist(), strict=True)
            ]
        )
        out[str(name)[:MAX_ID_CHARS]] = text.astype(str)
    return out


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
