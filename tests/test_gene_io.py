"""Gene-expression data: synthetic studies, parsers (each pitfall has a fixture), alignment."""

from __future__ import annotations

import gzip
import io
import zipfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from upload_corpus import combined_files, golub_table, zip_bytes

from gpa_core.genes.batches import (
    attach_sheet,
    batch_columns,
    batch_values,
    guess_batch_column,
    guess_label_column,
    label_columns,
    read_sample_sheet,
    split_by_batch,
    with_annotation_labels,
)
from gpa_core.genes.readers import (
    attach_labels,
    find_label_tags,
    labels_from_characteristics,
    load_study,
    read_expression_table,
    read_h5ad,
    read_label_file,
    read_series_matrix,
)
from gpa_core.genes.scale import TRANSFORMS, detect_linear, log2_transform
from gpa_core.genes.study import (
    GeneDataError,
    Study,
    align_studies,
    make_synthetic_studies,
    normalise_er_label,
)

FIX = Path(__file__).parent / "fixtures" / "genes"


# ------------------------------------------------------------------------------------------ synthetic
@pytest.fixture(scope="module")
def small_studies():
    return make_synthetic_studies(
        n_genes=600, n_source=40, n_target=50, source_labels=(25, 15), target_labels=(10, 40), seed=3
    )


def test_synthetic_shapes_labels_and_ids(small_studies):
    s, t = small_studies.studies
    assert s.expression.shape == (40, 600) and t.expression.shape == (50, 600)
    assert s.expression.dtype == np.float32
    assert s.label_counts() == {"ER+": 25, "ER-": 15} or s.label_counts() == {"ER-": 15, "ER+": 25}
    assert sorted(t.label_counts().items()) == [("ER+", 10), ("ER-", 40)]
    assert np.unique(s.gene_ids).shape[0] == 600
    assert all(g.endswith("_at") for g in s.gene_ids)
    assert np.array_equal(s.gene_ids, t.gene_ids)
    assert len(set(s.sample_ids) | set(t.sample_ids)) == 90


def test_synthetic_is_log2_scale_with_a_study_effect(small_studies):
    s, t = small_studies.studies
    lo, hi = np.percentile(np.concatenate([s.expression.ravel(), t.expression.ravel()]), [1, 99])
    assert 1.0 <= lo < 4.0 and 10.0 < hi <= 15.5
    # a study effect that is more than a shift: gene means and gene spreads both differ
    dm = np.abs(s.expression.mean(0) - t.expression.mean(0))
    ratio = s.expression.std(0) / t.expression.std(0)
    assert np.median(dm) > 0.3
    assert np.std(np.log(ratio)) > 0.1


def test_synthetic_is_seeded():
    a = make_synthetic_studies(
        n_genes=50, n_source=6, n_target=8, source_labels=(3, 3), target_labels=(4, 4), seed=1
    )
    b = make_synthetic_studies(
        n_genes=50, n_source=6, n_target=8, source_labels=(3, 3), target_labels=(4, 4), seed=1
    )
    c = make_synthetic_studies(
        n_genes=50, n_source=6, n_target=8, source_labels=(3, 3), target_labels=(4, 4), seed=2
    )
    assert np.array_equal(a.source.expression, b.source.expression)
    assert np.array_equal(a.target.labels, b.target.labels)
    assert not np.array_equal(a.source.expression, c.source.expression)


def test_synthetic_float64_and_bad_arguments():
    gs = make_synthetic_studies(
        n_genes=30, n_source=4, n_target=4, source_labels=(2, 2), target_labels=(1, 3), dtype=np.float64
    )
    assert gs.source.expression.dtype == np.float64
    with pytest.raises(GeneDataError, match="add up to n_source"):
        make_synthetic_studies(n_genes=30, n_source=5, source_labels=(2, 2))
    with pytest.raises(GeneDataError, match="rank"):
        make_synthetic_studies(
            n_genes=30, n_source=4, n_target=4, source_labels=(2, 2), target_labels=(2, 2), rank=0
        )


def test_study_validates_shapes():
    with pytest.raises(GeneDataError, match="gene IDs"):
        Study(np.zeros((2, 3)), ["a", "b"], ["s1", "s2"])
    with pytest.raises(GeneDataError, match="labels"):
        Study(np.zeros((2, 3)), ["a", "b", "c"], ["s1", "s2"], labels=["ER+"])


# ------------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("P", "ER+"), ("Pos", "ER+"), ("positive", "ER+"), ("1", "ER+"), ("ER+", "ER+"),
        (" er positive ", "ER+"),
        ("N", "ER-"), ("neg", "ER-"), ("Negative", "ER-"), ("0", "ER-"), ("ER-", "ER-"), ("ER−", "ER-"),
        ("unknown", "unknown"), ("", ""), ("equivocal", "equivocal"),
    ],
)  # fmt: skip
def test_normalise_er_label(raw, expected):
    assert normalise_er_label(raw) == expected


@given(st.text(max_size=12))
def test_normalise_er_label_is_idempotent(text):
    once = normalise_er_label(text)
    assert normalise_er_label(once) == once


# ------------------------------------------------------------------------------------------ series matrix
def test_series_matrix_quotes_missing_values_and_duplicates():
    s = read_series_matrix(FIX / "gse_a_series_matrix.txt")
    assert s.expression.shape == (6, 9)
    assert s.gene_ids[0] == "1007_s_at" and '"' not in "".join(s.gene_ids)
    assert list(s.sample_ids) == ["GSM1001", "GSM1002", "GSM1003", "GSM1004", "GSM1005", "GSM1006"]
    assert s.n_duplicate_ids_dropped == 1
    assert s.expression[0, 0] == pytest.approx(7.1)  # the first 1007_s_at row, not the repeat of 1.0
    col = {g: i for i, g in enumerate(s.gene_ids)}
    assert np.isnan(s.expression[1, col["1053_at"]])  # null
    assert np.isnan(s.expression[2, col["117_at"]])  # Null
    assert np.isnan(s.expression[3, col["121_at"]])  # NA
    assert np.isnan(s.expression[4, col["1255_g_at"]])  # empty
    assert int(np.isnan(s.expression).sum()) == 4
    assert s.metadata["Series_geo_accession"] == "GSE900001"
    assert s.name == "GSE900001"


def test_series_matrix_labels_from_tags_on_different_lines():
    s = read_series_matrix(FIX / "gse_a_series_matrix.txt")
    assert list(s.labels) == ["ER+", "ER-", "ER-", "ER+", "ER-", "ER+"]
    tags = dict(find_label_tags(s))
    assert list(tags) == ["tissue", "er status", "grade"]
    assert list(tags["grade"]) == ["2", "1", "3", "2", "3", "1"]


def test_series_matrix_gzipped_other_spelling():
    s = read_series_matrix(FIX / "gse_b_series_matrix.txt.gz")
    assert s.expression.shape == (5, 9)
    assert list(s.labels) == ["ER+", "ER-", "ER-", "ER+", "ER-"]
    col = list(s.gene_ids).index("1316_at")
    assert np.isnan(s.expression[3, col])  # NULL


def test_series_matrix_auto_tag_skips_her2_and_pgr():
    s = read_series_matrix(FIX / "gse_c_series_matrix.txt")
    assert list(s.labels) == ["ER+", "ER-", "unknown", "ER+"]
    pgr = labels_from_characteristics(s, "PGR_Status")  # fuzzy, case-insensitive
    assert list(pgr) == ["ER-", "ER+", "ER-", "ER-"]  # P/N normalised the same way
    raw = labels_from_characteristics(s, "her2", normalise=False)
    assert list(raw) == ["positive", "negative", "negative", "positive"]
    with pytest.raises(GeneDataError, match="tags found: 'her2 status'"):
        labels_from_characteristics(s, "tumour grade")
    with pytest.raises(GeneDataError, match="tags found"):
        read_series_matrix(FIX / "gse_c_series_matrix.txt", label_tag="tumour grade")
    assert read_series_matrix(FIX / "gse_c_series_matrix.txt", label_tag=None).labels is None


def test_series_matrix_errors():
    with pytest.raises(GeneDataError, match="truncated"):
        read_series_matrix(FIX / "truncated_series_matrix.txt")
    with pytest.raises(GeneDataError, match="not a GEO series matrix"):
        read_series_matrix(FIX / "genes_by_samples.csv")
    empty = b'!Series_title\t"x"\n!series_matrix_table_begin\n"ID_REF"\t"GSM1"\n!series_matrix_table_end\n'
    with pytest.raises(GeneDataError, match="no expression rows"):
        read_series_matrix(empty)


# ------------------------------------------------------------------------------------------ tables
EXPECTED = np.array(
    [[7.1, 5.2, 8.0, 9.5, 3.1], [6.9, np.nan, 8.1, 9.4, 3.0], [7.3, 5.4, np.nan, 9.6, 3.2]], dtype=np.float32
)
GENES = ["1007_s_at", "1053_at", "117_at", "121_at", "1255_g_at"]


@pytest.mark.parametrize(
    "name",
    [
        "genes_by_samples.csv",
        "genes_by_samples.tsv",
        "samples_by_genes.csv",
        "gzipped_but_named.csv",
        "r_style.csv",
    ],
)
def test_tables_in_every_layout_read_the_same(name):
    s = read_expression_table(FIX / name)
    assert list(s.gene_ids) == GENES
    assert list(s.sample_ids) == ["S1", "S2", "S3"]
    np.testing.assert_array_equal(s.expression, EXPECTED)


def test_table_annotation_column_and_label_column():
    s = read_expression_table(FIX / "genes_by_samples.csv")
    assert any("Gene Symbol" in note for note in s.notes)
    t = read_expression_table(FIX / "samples_by_genes.csv")
    assert list(t.labels) == ["ER+", "ER-", "ER+"]


def test_table_orientation_override():
    s = read_expression_table(FIX / "genes_by_samples.tsv", orientation="samples_by_genes")
    assert s.expression.shape == (5, 3)
    assert list(s.sample_ids) == GENES
    with pytest.raises(GeneDataError, match="orientation must be"):
        read_expression_table(FIX / "genes_by_samples.tsv", orientation="rows")  # type: ignore[arg-type]


def test_table_orientation_from_gsm_ids_and_square_tables():
    square = b"id,GSM1,GSM2\ng1,1,2\ng2,3,4\n"
    s = read_expression_table(square)
    assert list(s.sample_ids) == ["GSM1", "GSM2"]
    with pytest.raises(GeneDataError, match="square"):
        read_expression_table(b"id,a,b\ng1,1,2\ng2,3,4\n")
    assert read_expression_table(b"id,a,b\ng1,1,2\ng2,3,4\n", orientation="genes_by_samples").n_samples == 2


def test_table_from_bytes_and_file_objects():
    raw = (FIX / "gzipped_but_named.csv").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    a = read_expression_table(raw)
    buf = io.BytesIO(gzip.decompress(raw))
    buf.name = "upload.txt"
    b = read_expression_table(buf)
    np.testing.assert_array_equal(a.expression, b.expression)
    assert b.name == "upload.txt"


def test_table_errors_name_the_problem():
    with pytest.raises(GeneDataError, match=r"row '1053_at', column 'S2' holds 'high'"):
        read_expression_table(FIX / "bad_cell.csv")
    with pytest.raises(GeneDataError, match="sample ID 'S1' appears more than once"):
        read_expression_table(b"id,S1,S1\ng1,1,2\ng2,3,4\ng3,5,6\n")
    with pytest.raises(GeneDataError, match="no column separator"):
        read_expression_table(b"just some words\nmore words\n")
    with pytest.raises(GeneDataError, match="empty"):
        read_expression_table(b"\n\n")
    with pytest.raises(GeneDataError, match="binary"):
        read_expression_table(b"\x00\x01\x02binary")
    with pytest.raises(GeneDataError, match="cannot be decompressed"):
        read_expression_table(b"\x1f\x8b\x08\x00garbage")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("a.csv", "id,S1\ng,1\n")
    with pytest.raises(GeneDataError, match="zip archive"):
        read_expression_table(zbuf.getvalue())
    with pytest.raises(GeneDataError, match="file not found"):
        read_expression_table(FIX / "no_such_file.csv")
    with pytest.raises(GeneDataError, match="header has 2 cells"):
        read_expression_table(b"id,S1\ng1,1,2,3\ng2,1,2,3\n")
    with pytest.raises(GeneDataError, match="series matrix"):
        read_expression_table(FIX / "gse_a_series_matrix.txt")


def test_table_duplicate_genes_keep_first():
    s = read_expression_table(b"id,S1,S2\ng1,1,2\ng2,3,4\ng1,9,9\ng3,5,6\n")
    assert list(s.gene_ids) == ["g1", "g2", "g3"]
    assert s.n_duplicate_ids_dropped == 1
    assert s.expression[:, 0].tolist() == [1.0, 2.0]


def test_h5ad_needs_anndata(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "anndata", None)  # as if not installed (import raises ImportError)
    with pytest.raises(GeneDataError, match="optional package 'anndata'"):
        read_h5ad(b"\x89HDF\r\n\x1a\n rest")
    with pytest.raises(GeneDataError, match=r"'x\.h5ad': reading \.h5ad files needs .*anndata"):
        load_study(b"\x89HDF\r\n\x1a\n rest", filename="x.h5ad")


# ------------------------------------------------------------------------------------------ label files
def test_label_files_with_and_without_header():
    with_header = read_label_file(FIX / "labels.csv")
    assert with_header == {"GSM2001": "P", "GSM2002": "N", "GSM2003": "N", "GSM2004": "P", "GSM2005": "N"}
    without = read_label_file(FIX / "labels_noheader.tsv")
    assert len(without) == 6 and without["GSM1001"] == "1"
    forced = read_label_file(FIX / "labels_noheader.tsv", has_header=True)
    assert "GSM1001" not in forced and len(forced) == 5


def test_attach_labels_from_file():
    s = read_series_matrix(FIX / "gse_a_series_matrix.txt", label_tag=None)
    s2 = attach_labels(s, read_label_file(FIX / "labels_noheader.tsv"))
    assert list(s2.labels) == ["ER+", "ER-", "ER-", "ER+", "ER-", "ER+"]
    assert s2.expression is s.expression  # no copy of the matrix
    with pytest.raises(GeneDataError, match="6 of 6 samples have no label"):
        attach_labels(s, read_label_file(FIX / "labels.csv"))
    with pytest.raises(GeneDataError, match="listed twice"):
        read_label_file(b"a,P\na,N\n")
    with pytest.raises(GeneDataError, match="two cells"):
        read_label_file(b"a,P\nb\n")


# ------------------------------------------------------------------------------------------ dispatch
@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("gse_a_series_matrix.txt", (6, 9)),
        ("gse_b_series_matrix.txt.gz", (5, 9)),
        ("genes_by_samples.csv", (3, 5)),
        ("gzipped_but_named.csv", (3, 5)),
    ],
)
def test_load_study_picks_the_reader(name, shape):
    assert load_study(FIX / name).expression.shape == shape


# ------------------------------------------------------------------------------------------ alignment
def test_align_fixture_studies_counts_everything():
    a = read_series_matrix(FIX / "gse_a_series_matrix.txt")
    b = read_series_matrix(FIX / "gse_b_series_matrix.txt.gz")
    a2, b2, rep = align_studies(a, b)
    assert (rep.shared, rep.only_in_source, rep.only_in_target) == (7, 2, 2)
    assert (rep.dropped_missing, rep.imputed, rep.kept) == (5, 0, 2)
    assert (rep.duplicates_source, rep.duplicates_target) == (1, 0)
    assert list(a2.gene_ids) == ["1007_s_at", "1294_at"] == list(b2.gene_ids)
    assert a2.expression.shape == (6, 2) and b2.expression.shape == (5, 2)
    assert "2 genes kept of 7 shared" in rep.summary()
    assert all(isinstance(v, int) for v in rep.__dict__.values())

    a3, b3, rep2 = align_studies(a, b, missing="impute")
    assert (rep2.kept, rep2.imputed, rep2.dropped_missing) == (7, 5, 0)
    assert not np.isnan(a3.expression).any() and not np.isnan(b3.expression).any()
    col = list(a3.gene_ids).index("1053_at")
    assert a3.expression[1, col] == pytest.approx(np.mean([5.2, 5.4, 5.1, 5.0, 5.3]))


def test_align_reorders_target_genes_and_rejects_disjoint_ids():
    a = Study(np.arange(6, dtype=float).reshape(2, 3), ["g1", "g2", "g3"], ["a1", "a2"], name="A")
    b = Study(np.arange(8, dtype=float).reshape(2, 4), ["g3", "gX", "g1", "g1"], ["b1", "b2"], name="B")
    a2, b2, rep = align_studies(a, b)
    assert list(a2.gene_ids) == ["g1", "g3"]
    assert b2.expression.tolist() == [[2.0, 0.0], [6.0, 4.0]]
    assert (rep.shared, rep.only_in_source, rep.only_in_target, rep.duplicates_target) == (2, 1, 1, 1)
    c = Study(np.zeros((2, 2)), ["ENSG1", "ENSG2"], ["c1", "c2"], name="C")
    with pytest.raises(GeneDataError, match="share no gene IDs"):
        align_studies(a, c)
    with pytest.raises(GeneDataError, match="missing must be"):
        align_studies(a, b, missing="zero")  # type: ignore[arg-type]


def test_align_all_missing_gives_clear_error():
    a = Study(np.array([[np.nan, 1.0]]), ["g1", "g2"], ["a"], name="A")
    b = Study(np.array([[1.0, np.nan]]), ["g1", "g2"], ["b"], name="B")
    with pytest.raises(GeneDataError, match="missing='impute'"):
        align_studies(a, b)


# ------------------------------------------------------------------------------------------ caps
def _gzip(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def test_gzip_is_decompressed_in_a_stream_up_to_the_cap():
    table = b"id,S1,S2\n" + b"".join(b"g%d,1.5,2.5\n" % i for i in range(20_000))  # ~260 kB
    assert read_expression_table(_gzip(table), max_bytes=len(table)).n_genes == 20_000
    with pytest.raises(GeneDataError, match=r"'big\.csv\.gz' decompresses to more than") as info:
        read_expression_table(_gzip(table), filename="big.csv.gz", max_bytes=len(table) - 1)
    msg = str(info.value)
    assert "max_bytes=" in msg and "GPA_MAX_STUDY_MB" in msg and "the cap is" in msg
    # concatenated gzip members are one file; a truncated or padded stream is reported
    halves = _gzip(table[:100_000].rsplit(b"\n", 1)[0] + b"\n") + _gzip(table[100_000:].split(b"\n", 1)[1])
    assert load_study(halves).n_genes == 20_000 - 1
    with pytest.raises(GeneDataError, match="end early"):
        read_expression_table(_gzip(table)[:-100], filename="cut.csv.gz")
    with pytest.raises(GeneDataError, match="data after the end of its gzip stream"):
        read_expression_table(_gzip(table) + b"trailing junk", filename="junk.csv.gz")
    assert read_expression_table(_gzip(table) + b"\x00" * 64).n_genes == 20_000  # zero padding is fine


def test_plain_files_and_value_counts_are_capped_too():
    table = b"id,S1,S2\ng1,1,2\ng2,3,4\ng3,5,6\n"
    with pytest.raises(GeneDataError, match=r"'t\.csv' is more than"):
        read_expression_table(table, filename="t.csv", max_bytes=10)
    # 2 bytes of text per value ("1,"), 4 bytes per float32: the text fits the cap, the matrix not
    short = b"id,a,b,c,d\n" + b"g,1,1,1,1\n" * 10
    with pytest.raises(GeneDataError, match=r"'s\.csv' holds up to 40 values .* float32"):
        read_expression_table(short, filename="s.csv", max_bytes=len(short))
    with pytest.raises(GeneDataError, match="too large for a label file"):
        read_label_file(b"a,P\n" * 100, filename="labels.csv", max_bytes=100)


# ------------------------------------------------------------------------------------------ plausibility
def test_tiny_studies_are_refused_at_read_time():
    with pytest.raises(GeneDataError, match=r"'one\.csv': a study needs at least 2 samples and 2 genes"):
        read_expression_table(b"id,S1\ng1,1\n", filename="one.csv")
    with pytest.raises(GeneDataError, match=r"found 1 sample × 3 genes \(read as rows = genes\)"):
        read_expression_table(
            b"id,S1\ng1,1\ng2,2\ng3,3\n", filename="col.csv", orientation="genes_by_samples"
        )
    one_sample = (
        b'!Sample_geo_accession\t"GSM1"\n!series_matrix_table_begin\n"ID_REF"\t"GSM1"\n'
        b'"a"\t1\n"b"\t2\n!series_matrix_table_end\n'
    )
    with pytest.raises(GeneDataError, match=r"'gse\.txt': a study needs .* found 1 sample × 2 genes"):
        read_series_matrix(one_sample, filename="gse.txt")


def test_samples_without_values_are_dropped_and_named():
    s = read_expression_table(b"id,S1,S2,S3\ng1,1,NA,2\ng2,3,,4\ng3,5,null,6\ng4,1,-,1\n", filename="m.csv")
    assert list(s.sample_ids) == ["S1", "S3"]
    assert any("dropped 1 sample without any value: S2" in n for n in s.notes)
    header = "id," + ",".join(f"S{i}" for i in range(9)) + "\n"
    rows = "".join(
        f"g{g}," + ",".join("7" if i in (0, 8) else "NA" for i in range(9)) + "\n" for g in range(3)
    )
    s = read_expression_table((header + rows).encode(), filename="wide.csv", orientation="genes_by_samples")
    assert s.n_samples == 2
    assert any(n.startswith("dropped 7 samples without any value: S1, S2, S3, S4, S5 …") for n in s.notes)
    # a series matrix: the characteristics and labels follow the samples that are kept
    gse = (FIX / "gse_a_series_matrix.txt").read_text()
    lines = gse.splitlines()
    table_at = lines.index("!series_matrix_table_begin") + 2
    for k in range(table_at, len(lines) - 1):  # GSM1002 (the second sample) loses every value
        cells = lines[k].split("\t")
        lines[k] = "\t".join([*cells[:2], "null", *cells[3:]])
    s = read_series_matrix("\n".join(lines).encode(), filename="gse_a.txt")
    assert list(s.sample_ids) == ["GSM1001", "GSM1003", "GSM1004", "GSM1005", "GSM1006"]
    assert list(s.labels) == ["ER+", "ER-", "ER+", "ER-", "ER+"]
    assert any("GSM1002" in n for n in s.notes)


def test_no_usable_values_is_refused_but_empty_genes_are_kept():
    with pytest.raises(GeneDataError, match=r"'m\.csv' has no usable values: all 6 values"):
        read_expression_table(b"id,S1,S2\ng1,NA,NA\ng2,,NA\ng3,NA,\n", filename="m.csv")
    s = read_expression_table(b"id,S1,S2\ng1,NA,NA\ng2,1,2\ng3,3,4\n")
    assert s.n_genes == 3 and np.isnan(s.expression[:, 0]).all()  # left for align_studies


class _FakeAnnData:
    def __init__(self, X, var, obs):
        self.X, self.var_names, self.obs_names = X, var, obs
        self.shape = np.asarray(X).shape


@pytest.fixture
def fake_anndata(monkeypatch):
    """A stand-in for the optional package anndata: read_h5ad returns ``module.next``."""
    import sys
    import types

    module = types.ModuleType("anndata")
    module.next = None

    def read_h5ad(fh):
        if isinstance(module.next, Exception):
            raise module.next
        return module.next

    module.read_h5ad = read_h5ad
    monkeypatch.setitem(sys.modules, "anndata", module)
    return module


def test_h5ad_is_checked_like_the_tables(fake_anndata):
    h5 = b"\x89HDF\r\n\x1a\n rest"
    fake_anndata.next = _FakeAnnData(
        np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]]), ["g1", "g2"], ["a", "b", "c"]
    )
    s = load_study(h5, filename="x.h5ad")
    assert s.expression.dtype == np.float32 and list(s.sample_ids) == ["a", "c"]
    assert any("dropped 1 sample" in n for n in s.notes)
    fake_anndata.next = _FakeAnnData(np.array([[1.0, 2.0]]), ["g1", "g2"], ["a"])
    with pytest.raises(GeneDataError, match=r"'x\.h5ad': a study needs at least 2 samples"):
        read_h5ad(h5, filename="x.h5ad")
    fake_anndata.next = _FakeAnnData(np.array([[1.0, 1e300], [2.0, 3.0]]), ["g1", "g2"], ["a", "b"])
    with pytest.raises(GeneDataError, match="float32"):
        read_h5ad(h5, filename="x.h5ad")
    fake_anndata.next = KeyError("X")
    with pytest.raises(GeneDataError, match=r"'x\.h5ad' could not be read as \.h5ad"):
        read_h5ad(h5, filename="x.h5ad")


# ------------------------------------------------------------------------------------------ page hints
def test_messages_name_the_page_control_and_the_python_argument():
    with pytest.raises(GeneDataError, match="square") as info:
        read_expression_table(b"id,a,b\ng1,1,2\ng2,3,4\n")
    assert "'rows = genes'" in str(info.value) and "orientation='genes_by_samples'" in str(info.value)
    a = Study(np.array([[np.nan, 1.0]]), ["g1", "g2"], ["a"], name="A")
    b = Study(np.array([[1.0, np.nan]]), ["g1", "g2"], ["b"], name="B")
    with pytest.raises(GeneDataError, match="missing='impute'") as info:
        align_studies(a, b)
    assert "'impute the gene mean'" in str(info.value)
    c = Study(np.array([[np.nan, np.nan]]), ["g1", "g2"], ["c"], name="C")
    with pytest.raises(GeneDataError, match="nothing to impute") as info:
        align_studies(c, b, missing="impute")
    assert "missing=" not in str(info.value)


# ------------------------------------------------------------------------------------------ GEO tags
def test_characteristics_tags_match_across_case_and_blanks():
    gse = (
        '!Sample_geo_accession\t"GSM1"\t"GSM2"\t"GSM3"\t"GSM4"\t"GSM5"\n'
        '!Sample_characteristics_ch1\t"er: +"\t"ER: -"\t"ER :+"\t"er  status: P"\t"ER status: N"\n'
        '!series_matrix_table_begin\n"ID_REF"\t"GSM1"\t"GSM2"\t"GSM3"\t"GSM4"\t"GSM5"\n'
        '"a"\t1\t2\t3\t4\t5\n"b"\t2\t3\t4\t5\t6\n!series_matrix_table_end\n'
    )
    s = read_series_matrix(gse.encode(), label_tag=None)
    tags = dict(find_label_tags(s))
    assert list(tags) == ["er", "er  status"]  # the first spelling of each
    assert list(tags["er"]) == ["+", "-", "+", "", ""]
    assert list(tags["er  status"]) == ["", "", "", "P", "N"]
    assert list(labels_from_characteristics(s, "ER status")) == ["", "", "", "ER+", "ER-"]


# ------------------------------------------------------------------------------------------ encodings, range
TSV = "id\tS1\tS2\ng1\t1.5\t2\ng2\t3\t4\ng3\t5\t6\n"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-16", "utf-8-sig", "latin-1"])
def test_utf16_with_or_without_bom_and_other_encodings(encoding):
    s = read_expression_table(TSV.replace("g3", "gé").encode(encoding), filename="u.tsv")
    assert list(s.gene_ids) == ["g1", "g2", "gé"] and s.expression[0, 0] == pytest.approx(1.5)
    assert load_study(TSV.encode(encoding)).n_genes == 3


def test_damaged_utf16_says_to_save_as_utf8():
    with pytest.raises(GeneDataError, match=r"UTF-16 .* save it as UTF-8"):
        read_expression_table(TSV.encode("utf-16-le") + b"\x00", filename="u.tsv")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (zip_bytes({"[Content_Types].xml": "<x/>", "xl/workbook.xml": "<x/>"}), "Excel .xlsx workbook"),
        (zip_bytes({"xl/worksheets/sheet1.xml": "<x/>"}), "Excel .xlsx workbook"),
        (zip_bytes({"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "x.xml": "<x/>"}), ".ods"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), "old Excel .xls workbook"),
    ],
)
def test_spreadsheets_are_told_to_save_as_csv(data, kind):
    for reader in (read_expression_table, load_study, read_series_matrix, read_label_file):
        with pytest.raises(GeneDataError, match="save the sheet") as info:
            reader(data, filename="data.csv")
        assert kind in str(info.value) and "unzip" not in str(info.value) and "'data.csv'" in str(info.value)
    with pytest.raises(GeneDataError, match=r"spreadsheet|workbook"):
        read_expression_table(_gzip(data), filename="data.csv.gz")


def test_values_beyond_float32_are_refused_not_made_infinite():
    for cell in ("1e300", "-1e39", "1" + "0" * 400):
        with pytest.raises(GeneDataError, match=r"'r\.csv': row 'g2', column 'S1' holds .* float32") as info:
            read_expression_table(f"id,S1,S2\ng1,1,2\ng2,{cell},4\ng3,5,6\n".encode(), filename="r.csv")
        assert "log2" in str(info.value)
    with pytest.raises(GeneDataError, match="infinite values"):
        read_expression_table(b"id,S1,S2\ng1,1,2\ng2,-inf,4\ng3,5,6\n", filename="r.csv")
    # in a column read as text (here because of a padded ' NA '), too
    with pytest.raises(GeneDataError, match="float32"):
        read_expression_table(b"id,S1,S2\ng1, NA ,2\ng2,1e300,4\ng3,5,6\n", filename="r.csv")
    s = read_expression_table(b"id,S1,S2\ng1,3.4e38,2\ng2,-1e-50,4\ng3,5,6\n")
    assert np.isfinite(s.expression).all()


def test_wide_tables_read_like_narrow_ones(monkeypatch):
    """Tables with more columns than gene_table._WIDE go through the split parser: same results."""
    from gpa_core.genes import table as gene_table

    cases = [FIX / "samples_by_genes.csv", FIX / "genes_by_samples.csv", FIX / "r_style.csv"]
    narrow = [read_expression_table(p) for p in cases]
    monkeypatch.setattr(gene_table, "_WIDE", 1)
    for p, a in zip(cases, narrow, strict=True):
        b = read_expression_table(p)
        np.testing.assert_array_equal(a.expression, b.expression)
        assert list(a.gene_ids) == list(b.gene_ids) and a.notes == b.notes
    with pytest.raises(GeneDataError, match="row '1053_at', column 'S2' holds 'high'"):
        read_expression_table(FIX / "bad_cell.csv")
    with pytest.raises(GeneDataError, match="file line 3"):
        read_expression_table(b"id,S1,S2\ng1,1,2\ng2,1,2,3\n", filename="r.csv")
    with pytest.raises(GeneDataError, match="quoted cell holds the separator"):
        read_expression_table(b'id,S1,S2\ng1,1,2\n"g,2",1,2\n', filename="q.csv")


def test_old_mac_line_ends_and_overlong_cells():
    s = read_expression_table(b"id,S1,S2\rg1,1,2\rg2,3,4\rg3,5,6\r", filename="mac.csv")
    assert s.expression.shape == (2, 3)
    with pytest.raises(GeneDataError, match=r"'long\.csv'"):
        read_expression_table(b"id,S1," + b"x" * 200_000 + b"\ng1,1,2\ng2,3,4\n", filename="long.csv")
    with pytest.raises(GeneDataError, match=r"'labels\.csv', line 2"):
        read_label_file(b"a,P\nb," + b"x" * 200_000 + b"\n", filename="labels.csv")


# ------------------------------------------------------------------------------------- files as they come
def test_golub_layout_description_accession_and_call_columns():
    """The Golub ALL/AML layout: description, accession, then a value and a P/A/M call per sample."""
    samples = ["1", "2", "3", "4", "5", "6", "7", "8"]
    data = golub_table(genes=40, samples=samples)
    s = read_expression_table(data, filename="data_set_ALL_AML_train.csv")
    assert s.expression.shape == (8, 40)
    assert list(s.sample_ids) == samples
    assert s.gene_ids[0] == "M10000_at" and np.unique(s.gene_ids).size == 40  # accessions, not descriptions
    assert s.n_duplicate_ids_dropped == 0
    notes = " | ".join(s.notes)
    assert "gene IDs taken from column 'Gene Accession Number'" in notes
    assert "dropped 8 per-sample detection-call column(s) (P/A/M" in notes and "call, call.1" in notes
    assert "dropped non-numeric column(s): Gene Description" in notes
    # the values are the sample columns' own, in order (the calls beside them are skipped)
    lines = data.decode().splitlines()
    first = next(csv_row for csv_row in __import__("csv").reader([lines[1]]))
    assert s.expression[:, 0].tolist() == [float(first[2 + 2 * j]) for j in range(8)]
    # the original files' TSV: every call column is called 'call'
    t = read_expression_table(golub_table(genes=40, samples=samples, sep="\t", numbered_calls=False))
    np.testing.assert_array_equal(t.expression, s.expression)
    assert any("dropped 8 per-sample detection-call" in n and "call (column 6)" in n for n in t.notes)
    # with a label file in Golub's own layout ('patient, cancer' above numbered patients)
    labels = read_label_file(
        b"patient,cancer\n" + b"".join(b"%d,%s\n" % (j, b"AML" if j % 3 else b"ALL") for j in range(1, 73))
    )
    assert len(labels) == 72 and labels["1"] == "AML"
    assert attach_labels(s, labels).label_counts() == {"AML": 6, "ALL": 2}


def test_text_columns_that_are_not_calls_or_ids_stay_annotations():
    data = b"ID_REF,Gene Symbol,S1,S2,S3,flag\n1007_s_at,DDR1,7.1,7.2,7.3,P\n1053_at,RFC2,5.1,5.2,5.3,A\n"
    s = read_expression_table(data, orientation="genes_by_samples")
    assert list(s.gene_ids) == ["1007_s_at", "1053_at"]  # the first column stays the IDs: it is unique
    assert any("dropped 1 per-sample detection-call column(s)" in n and "flag" in n for n in s.notes)
    assert any(n == "dropped non-numeric column(s): Gene Symbol" for n in s.notes)
    # a description-named first column with an ID-named column: the IDs come from that column
    d = read_expression_table(
        b"Description,Probe Set ID,S1,S2\nkinase,a_at,1,2\nkinase,b_at,3,4\nx,c_at,5,6\n"
    )
    assert list(d.gene_ids) == ["a_at", "b_at", "c_at"]


def test_samples_by_genes_text_and_batch_columns_are_sample_information():
    genes = [f"g{j}" for j in range(12)]
    header = "sample,batch,label,note," + ",".join(genes) + "\n"
    rows = "".join(
        f"s{i},{1 + i % 2},{'PN'[i % 3 % 2]},n{i % 2}," + ",".join(f"{i + j}.5" for j in range(12)) + "\n"
        for i in range(8)
    )
    s = read_expression_table((header + rows).encode(), filename="combined.csv")
    assert list(s.gene_ids) == genes  # the numeric 'batch' column is not a gene
    assert s.expression[1, :2].tolist() == [1.5, 2.5]
    assert set(s.annotations) == {"batch", "label", "note"}
    assert s.annotations["batch"].tolist()[:3] == ["1", "2", "1"]
    assert list(s.labels[:3]) == ["ER+", "ER-", "ER+"]  # the label column, as before
    assert any(n.startswith("kept as sample information (batch and label choices): ") for n in s.notes)
    assert guess_batch_column(s) == "batch" and batch_columns(s)[0] == "batch"
    assert batch_values(s, "batch") == {"1": 4, "2": 4}
    assert guess_label_column(s, exclude="batch") == "label"
    # a numeric column named like a gene stays a gene, even with few values
    t = read_expression_table(
        b"sample,CD4,g2,g3\ns1,1,2,3\ns2,1,2,3\ns3,2,5,6\n", orientation="samples_by_genes"
    )
    assert list(t.gene_ids) == ["CD4", "g2", "g3"] and not t.annotations


def test_combined_file_and_sample_sheet_split_into_two_studies():
    expression, sheet = combined_files(per_batch=(14, 12), genes=60)
    study = read_expression_table(expression, filename="expression.csv.gz")
    assert study.expression.shape == (26, 60) and not study.annotations and study.linear is None
    meta = read_sample_sheet(sheet, filename="meta.csv")
    assert meta.header and list(meta.columns) == ["batch", "label"]
    full = attach_sheet(study, meta)
    assert full.notes[-1] == "sample information from 'meta.csv': batch, label"
    assert batch_columns(full) == ["batch", "label"] and guess_batch_column(full) == "batch"
    assert label_columns(full, exclude="batch") == ["label"]
    source, target = split_by_batch(full, "batch", "A", "B", "label")
    assert (source.n_samples, target.n_samples) == (14, 12)
    assert source.name == "source (batch = A)" and target.name == "target (batch = B)"
    assert source.label_counts() == {"H1975": 5, "H2228": 5, "HCC827": 4}
    assert all(x.startswith("A_") for x in source.sample_ids) and source.n_genes == target.n_genes == 60
    assert source.notes[-1] == "source: batch = 'A', 14 of 26 samples"
    assert (
        set(source.annotations) == {"batch", "label"} and source.annotations["batch"].tolist() == ["A"] * 14
    )
    swapped = split_by_batch(full, "batch", "B", "A")
    assert swapped[0].n_samples == 12 and swapped[0].labels is None
    # errors name what to change
    with pytest.raises(GeneDataError, match="two different batches"):
        split_by_batch(full, "batch", "A", "A")
    with pytest.raises(GeneDataError, match="label column cannot be the batch column"):
        split_by_batch(full, "batch", "A", "B", "batch")
    with pytest.raises(GeneDataError, match="no sample information column 'cohort'"):
        split_by_batch(full, "cohort", "A", "B")
    with pytest.raises(GeneDataError, match=r"the target batch batch = 'C' has 0 sample\(s\)"):
        split_by_batch(full, "batch", "A", "C")


def test_combined_split_leaves_out_other_batches_and_needs_labels_everywhere():
    expression, _ = combined_files(per_batch=(6, 6), genes=20)
    study = read_expression_table(expression)
    ids = study.sample_ids.tolist()
    rows = [f"{sid},{'C' if k == 0 else sid[0]},{'' if k == 1 else 'x'}" for k, sid in enumerate(ids[:-1])]
    sheet = read_sample_sheet(("id,batch,type\n" + "\n".join(rows) + "\n").encode(), filename="s.csv")
    full = attach_sheet(study, sheet)
    assert "1 of 12 samples are not listed there" in full.notes[-1]
    assert batch_values(full, "batch") == {"C": 1, "A": 5, "B": 5}
    source, target = split_by_batch(full, "batch", "A", "B")
    assert (source.n_samples, target.n_samples) == (5, 5)
    assert "left out: 1 samples of other batches (C: 1)" in source.notes
    assert "left out: 1 samples without a value in 'batch'" in source.notes
    with pytest.raises(GeneDataError, match=r"1 of 5 samples have no value in column 'type'"):
        split_by_batch(full, "batch", "A", "B", "type")
    with pytest.raises(GeneDataError, match=r"none of the 12 samples .* is listed"):
        attach_sheet(study, read_sample_sheet(b"sample,batch\nX1,A\nX2,B\n", filename="other.csv"))


def test_sample_sheets_with_or_without_a_header():
    with_header = read_sample_sheet(b"Sample_ID\tBatch\tCell type\nc1\tp1\tT\nc2\tp2\tB\n")
    assert with_header.header and list(with_header.columns) == ["Batch", "Cell type"]
    assert with_header.lookup("Cell type") == {"c1": "T", "c2": "B"}
    without = read_sample_sheet(b"c1,p1,T\nc2,p2,B\nc3,p1\n")
    assert not without.header and list(without.columns) == ["column 2", "column 3"]
    assert without.lookup("column 3") == {"c1": "T", "c2": "B", "c3": ""}  # short rows: empty cells
    golub = read_sample_sheet(b"patient,cancer\n1,ALL\n2,AML\n")  # a word above numbered IDs
    assert golub.header and golub.lookup("cancer") == {"1": "ALL", "2": "AML"}
    assert not read_sample_sheet(b"1,ALL\n2,AML\n").header
    assert read_sample_sheet(b"a,P\na,P\nb,N\n").ids.tolist() == ["a", "b"]  # a repeated identical row
    with pytest.raises(GeneDataError, match="listed twice with different values in column 'type'"):
        read_sample_sheet(b"id,label,type\na,P,x\na,P,y\n")
    # read_label_file takes the label-named column of a sheet, or the one asked for
    meta = b"sample_id,batch,label\nc1,A,H1975\nc2,B,H2228\n"
    assert read_label_file(meta) == {"c1": "H1975", "c2": "H2228"}
    assert read_label_file(meta, column="batch") == {"c1": "A", "c2": "B"}
    assert read_label_file(b"c1,A,x\nc2,B,y\n", column="column 3") == {"c1": "x", "c2": "y"}
    with pytest.raises(GeneDataError, match="has no column 'cell'"):
        read_label_file(meta, filename="meta.csv", column="cell")


def test_annotation_labels_follow_the_label_rules():
    study = Study(
        np.ones((3, 2)),
        ["g1", "g2"],
        ["a", "b", "c"],
        annotations={"er": ["1", "0", "pos"], "t": ["x", "", "y"]},
    )
    assert list(with_annotation_labels(study, "er").labels) == ["ER+", "ER-", "ER+"]
    assert with_annotation_labels(study, None).labels is None
    with pytest.raises(GeneDataError, match="1 of 3 samples have no value in column 't'"):
        with_annotation_labels(study, "t")
    with pytest.raises(GeneDataError, match="sample information 'x' has 1 values for 3 samples"):
        Study(np.ones((3, 2)), ["g1", "g2"], ["a", "b", "c"], annotations={"x": ["1"]})


# ------------------------------------------------------------------------------------------ scale
def test_linear_values_are_detected_and_log_values_are_not():
    rng = np.random.default_rng(0)
    log2 = rng.normal(8, 2, (20, 500)).astype(np.float32)
    assert detect_linear(log2) is None
    assert detect_linear(np.log1p(rng.gamma(0.5, 40, (20, 500)))) is None  # ln(CP10k + 1): max ≈ 7
    assert detect_linear(rng.normal(0, 30, (20, 500))) is None  # centred data: half negative
    assert detect_linear(np.full((4, 4), 1000.0)) is None  # no dynamic range
    lin = detect_linear(2.0**log2)
    assert lin is not None and lin.max > 1e4 and lin.negative == 0 and lin.suggested == "log2_floor1"
    counts = rng.poisson(rng.gamma(0.3, 30, (20, 500))).astype(np.float32)
    lin = detect_linear(counts)  # raw counts: many zeros, max in the hundreds
    assert lin is not None and lin.suggested == "log2_plus1"
    mas4 = read_expression_table(golub_table(genes=100)).linear  # some negative values
    assert mas4 is not None and 0.1 < mas4.negative < 0.4 and mas4.suggested == "log2_affy"
    big = (2.0 ** rng.normal(8, 2, (20, 100_000))).astype(np.float32)  # sampled, not read whole
    assert detect_linear(big) is not None
    header = "id," + ",".join(f"S{j}" for j in range(20)) + "\n"
    body = "".join(f"g{i}," + ",".join(f"{v:.1f}" for v in 2.0 ** log2[:, i]) + "\n" for i in range(500))
    s = read_expression_table((header + body).encode(), filename="mas5.csv")
    assert s.linear is not None
    assert any(
        n.startswith("values look linear, not log-scale (max ") and "log2 transform is offered" in n
        for n in s.notes
    )
    plain = read_expression_table(FIX / "genes_by_samples.csv")
    assert plain.linear is None and not any("linear" in n for n in plain.notes)


def test_log2_transforms_floor_and_ceiling_and_say_so():
    X = np.array([[-5.0, 0.0, 0.5, 1.0], [8.0, np.nan, 20000.0, 1024.0]], dtype=np.float32)
    s = Study(X, ["a", "b", "c", "d"], ["s1", "s2"], notes=["read as genes by samples"])
    f1 = log2_transform(s)
    np.testing.assert_allclose(f1.expression, [[0, 0, 0, 0], [3, np.nan, np.log2(20000), 10]], rtol=1e-6)
    assert f1.expression.dtype == np.float32 and f1.linear is None
    assert (
        f1.notes[-1]
        == f"transformed: {TRANSFORMS['log2_floor1'].label} (3 (42.9 %) of the values raised to 1)"
    )
    assert f1.notes[0] == "read as genes by samples" and s.expression[0, 0] == -5.0  # a copy
    p1 = log2_transform(s, "log2_plus1")
    np.testing.assert_allclose(p1.expression[0], [0, 0, np.log2(1.5), 1], rtol=1e-6)
    affy = log2_transform(s, "log2_affy")
    np.testing.assert_allclose(affy.expression[1, [0, 2, 3]], np.log2([20, 16000, 1024]), rtol=1e-6)
    assert "of the values raised to 20; 1 (14.3 %) lowered to 16000" in affy.notes[-1]
    with pytest.raises(GeneDataError, match="transform must be one of"):
        log2_transform(s, "ln")


# ------------------------------------------------------------------------------------------ h5ad with obs
class _Obs:
    """A stand-in for an AnnData obs frame (pandas), as read_h5ad uses it."""

    def __init__(self, columns: dict[str, list[object]]):
        import pandas as pd

        self.frame = pd.DataFrame(columns)
        self.columns = self.frame.columns

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, name: str):
        return self.frame[name]


def test_h5ad_obs_columns_become_sample_information(fake_anndata):
    X = np.arange(12, dtype=np.float64).reshape(4, 3) / 4
    ad = _FakeAnnData(X, ["g1", "g2", "g3"], ["c1", "c2", "c3", "c4"])
    ad.obs = _Obs(
        {
            "batch": ["p1", "p1", "p2", "p2"],
            "cell_type": ["T", "B", "T", None],
            "n_counts": [1.5, 2.25, 3.0, 4.75],
            "plate": [1.0, 1.0, 2.0, 2.0],
        }
    )
    fake_anndata.next = ad
    s = read_h5ad(b"\x89HDF\r\n\x1a\n rest", filename="cells.h5ad")
    assert set(s.annotations) == {
        "batch",
        "cell_type",
        "n_counts",
        "plate",
    }  # a float column of ≤ 50 values too
    assert s.annotations["cell_type"].tolist() == ["T", "B", "T", ""]
    assert s.annotations["plate"].tolist() == ["1", "1", "2", "2"]
    assert s.labels is None and any("obs columns kept as sample information" in n for n in s.notes)
    assert guess_batch_column(s) in ("batch", "plate") and guess_label_column(s) == "cell_type"
    source, target = split_by_batch(s, "batch", "p1", "p2")
    assert source.sample_ids.tolist() == ["c1", "c2"] and target.n_samples == 2
    ad.obs = _Obs({"label": ["P", "N", "P", "N"]})
    assert list(read_h5ad(b"\x89HDF\r\n\x1a\n rest").labels) == ["ER+", "ER-", "ER+", "ER-"]


def write_h5ad(
    path: Path, X: np.ndarray, obs: dict[str, list[str]], genes: list[str], cells: list[str]
) -> None:
    """An .h5ad file written by anndata (with pandas 3, anndata 0.12 writes only object-dtype strings)."""
    import warnings

    import anndata
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = pd.option_context("future.infer_string", False) if pd.__version__ >= "3" else nullcontext()
        with ctx:
            frame = pd.DataFrame(
                {k: np.array(v, dtype=object) for k, v in obs.items()}, index=pd.Index(cells, dtype=object)
            )
            var = pd.DataFrame(index=pd.Index(genes, dtype=object))
            anndata.AnnData(X=X.astype(np.float32), obs=frame, var=var).write_h5ad(path)


def test_real_h5ad_file_with_obs_batch_and_label(tmp_path):
    pytest.importorskip("anndata")
    rng = np.random.default_rng(1)
    cells = [f"c{i}" for i in range(10)]
    path = tmp_path / "cells.h5ad"
    write_h5ad(
        path,
        rng.normal(3, 1, (10, 6)),
        {"protocol": ["x"] * 6 + ["y"] * 4, "cell_line": ["a", "b"] * 5},
        [f"g{j}" for j in range(6)],
        cells,
    )
    s = load_study(path)
    assert s.expression.shape == (10, 6) and s.sample_ids.tolist() == cells
    assert set(s.annotations) == {"protocol", "cell_line"}
    assert guess_batch_column(s) == "protocol" and guess_label_column(s, exclude="protocol") == "cell_line"
    source, target = split_by_batch(s, "protocol", "x", "y", "cell_line")
    assert source.label_counts() == {"a": 3, "b": 3} and target.label_counts() == {"a": 2, "b": 2}


# ----------------------------------------------------------------------------------- the shared real data
REAL = Path("/work/shared/data/real_batches")


@pytest.mark.skipif(not (REAL / "expression.csv.gz").is_file(), reason="the shared real data are not here")
def test_real_two_batch_files_as_downloaded():
    """CellBench (CEL-seq2 vs Drop-seq, 3 cell lines): one combined table + a sample sheet."""
    study = load_study(REAL / "expression.csv.gz")
    assert study.expression.shape == (450, 2000) and study.linear is None  # ln(CP10k + 1), max 6.7
    assert study.notes == ["read as samples by genes"]
    full = attach_sheet(study, read_sample_sheet(REAL / "meta.csv"))
    assert guess_batch_column(full) == "batch" and guess_label_column(full, exclude="batch") == "label"
    assert batch_values(full, "batch") == {"CELseq2": 240, "Dropseq": 210}
    source, target = split_by_batch(full, "batch", "CELseq2", "Dropseq", "label")
    assert source.label_counts() == {"H1975": 103, "H2228": 67, "HCC827": 70}
    assert dict(sorted(target.label_counts().items())) == {"H1975": 79, "H2228": 65, "HCC827": 66}
    counts = load_study(REAL / "counts.csv.gz")
    assert counts.linear is not None and any("values look linear" in n for n in counts.notes)


def test_series_matrix_characteristics_are_sample_information():
    """A GEO series holding two batches ('batch: …' characteristics) splits like a combined table."""
    from upload_corpus import series_matrix_head

    samples = [f"GSM{100 + j}" for j in range(6)]
    lines = series_matrix_head(samples, [f"batch: {'ab'[j % 2]}" for j in range(6)])
    lines.insert(3, "!Sample_characteristics_ch1\t" + "\t".join(f'"er: {"PN"[j // 3]}"' for j in range(6)))
    lines += [f'"{i}_at"\t' + "\t".join(f"{i + j / 10:.1f}" for j in range(6)) for i in range(8)]
    s = read_series_matrix(("\n".join([*lines, "!series_matrix_table_end"]) + "\n").encode())
    assert list(s.annotations) == ["batch", "er"]
    assert s.annotations["batch"].tolist() == ["a", "b"] * 3 and list(s.labels) == ["ER+"] * 3 + ["ER-"] * 3
    assert guess_batch_column(s) == "batch" and guess_label_column(s, exclude="batch") == "er"
    source, target = split_by_batch(s, "batch", "a", "b", "er")
    assert source.sample_ids.tolist() == ["GSM100", "GSM102", "GSM104"]
    assert list(source.labels) == ["ER+", "ER+", "ER-"] and list(target.labels) == ["ER+", "ER-", "ER-"]
