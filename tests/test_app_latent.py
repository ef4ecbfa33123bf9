"""AppTest runs of the latent-space (gene expression) page with tiny synthetic studies: the page loads,
the mean/std baseline and a short per-label GPA run end-to-end in the background job and fill the score
table, and unreadable uploads show one error each while the page keeps working."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "pages" / "latent_space.py"
FIXTURES = ROOT / "tests" / "fixtures" / "genes"
SMALL = {"genes": 500, "n_source": 30, "n_target": 32, "umap": False, "steps": 10}


def _app() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["lat_defaults"] = dict(SMALL)
    at.run()
    assert not at.exception, at.exception
    return at


def _poll(at: AppTest, done: callable, timeout: float = 60.0) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        if done(at):
            return
        time.sleep(0.3)
    raise AssertionError("the integration did not finish in time")


def _has_scores(at: AppTest) -> bool:
    return any(h.value == "Scores" for h in at.subheader) and len(at.dataframe) == 1


def test_page_loads_with_small_synthetic_data() -> None:
    at = _app()
    assert at.selectbox(key="lat_genes").value == 500
    assert at.number_input(key="lat_d").value == 50
    assert not at.error
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # scree and reconstruction error
    assert any("Alignment:" in c.value and "500 genes kept" in c.value for c in at.caption)
    assert not _has_scores(at)


def test_small_integration_end_to_end() -> None:
    at = _app()
    at.number_input(key="lat_d").set_value(5)
    at.run()
    at.multiselect(key="lat_methods").set_value(["mean_std", "combat", "gpa"])
    at.run()
    at.button(key="lat_run").click()
    at.run()
    assert not at.exception, at.exception
    _poll(at, _has_scores)
    table = at.dataframe[0].value
    assert set(table["method"]) == {"mean/std baseline", "ComBat (target as reference)", "GPA"}
    w2 = table[table["metric"] == "W2²"]
    assert set(w2["label"]) == {"ER+", "ER-"}
    assert set(w2["space"]) == {"latent", "genes"}
    assert (w2["before"] > 0).all() and w2["after"].notna().all()
    # the baseline matches each label's mean and std per gene: the gene-space distance must shrink
    for baseline in ("mean/std baseline", "ComBat (target as reference)"):
        base = w2[(w2["method"] == baseline) & (w2["space"] == "genes")]
        assert (base["after"] < base["before"]).all()
    assert {"silhouette by study", "k-NN mixing", "silhouette by label"} <= set(table["metric"])
    assert any("GPA per label:" in c.value and "10 steps, all steps done" in c.value for c in at.caption)
    # the latent scale is chosen from the data, and the page says which method integrated best and why
    assert any("chosen from the data" in c.value for c in at.caption)
    said = " ".join(m.value for m in at.markdown)
    for title in ("mean/std", "ComBat", "GPA"):
        assert f"{title}" in said and "of the batch effect left" in said
    keys = {b.key for b in at.download_button} if hasattr(at, "download_button") else set()
    matrices = {f"lat_dl_matrix_{m}" for m in ("mean_std", "combat", "gpa")}
    assert matrices | {"lat_dl_latent", "lat_dl_scores"} <= keys
    assert at.radio(key="lat_view").options == ["PCA of the latent data"]  # UMAP off in the test
    # 2 encoder charts + final KE/divergence + 4 views × (by study, by label)
    assert len(at.get("plotly_chart")) == 2 + 2 + 8


def test_bad_uploads_show_errors_and_page_keeps_working() -> None:
    at = _app()
    at.radio(key="lat_data").set_value("upload")
    at.run()
    assert not at.exception
    at.file_uploader(key="lat_up_source").set_value(
        ("bad_cell.csv", (FIXTURES / "bad_cell.csv").read_bytes(), "text/csv")
    )
    at.file_uploader(key="lat_up_target").set_value(("junk.csv", b"\x00\x01 not a table", "text/csv"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2, errors
    assert errors[0].startswith("'bad_cell.csv'") and "high" in errors[0]
    assert errors[1].startswith("'junk.csv'")
    # a good series matrix with several characteristics tags: a tag chooser appears, labels come from it
    at.file_uploader(key="lat_up_source").set_value(
        ("gse_a_series_matrix.txt", (FIXTURES / "gse_a_series_matrix.txt").read_bytes(), "text/plain")
    )
    at.run()
    assert not at.exception, at.exception
    tag = at.selectbox(key="lat_tag_source")
    assert "er status" in tag.options and tag.value == "er status"
    assert len(at.error) == 1  # only the bad target remains
    # a label file that does not cover the samples is reported next to its study
    at.file_uploader(key="lat_lab_source").set_value(("labels.csv", b"sample,label\nX1,ER+\n", "text/csv"))
    at.run()
    assert not at.exception
    assert any(e.value.startswith("'labels.csv'") and "no label" in e.value for e in at.error)
    # back to the synthetic data: everything works again
    at.radio(key="lat_data").set_value("synthetic")
    at.run()
    assert not at.exception and not at.error


def _data_mode(mode: str) -> AppTest:
    """The page with its data choice ("upload" two files, "combined" one file) made."""
    at = _app()
    at.radio(key="lat_data").set_value(mode)
    at.run()
    assert not at.exception, at.exception
    return at


def test_uploaders_are_capped_and_messages_name_real_controls() -> None:
    from gpa_core.genes.readers import PAGE_ORIENTATION

    at = _data_mode("upload")
    for role in ("source", "target"):
        # the browser may send more than the readers take (200 MB, 5 MB), so that a file too large is
        # refused by the page with a message that replaces the last one
        assert at.file_uploader(key=f"lat_up_{role}").proto.max_upload_size_mb == 2 * 200
        assert at.file_uploader(key=f"lat_lab_{role}").proto.max_upload_size_mb == 4 * 5
        # the readers' messages name these choices: they must be the page's own labels
        assert set(PAGE_ORIENTATION.values()) <= set(at.selectbox(key=f"lat_orient_{role}").options)
    assert at.radio(key="lat_missing").options == ["drop genes with missing values", "impute the gene mean"]


def test_study_cap_comes_from_the_environment(monkeypatch) -> None:
    import gzip

    monkeypatch.setenv("GPA_MAX_STUDY_MB", "1")
    at = _data_mode("upload")
    assert at.file_uploader(key="lat_up_source").proto.max_upload_size_mb == 2 * 1
    big = b"id,S1,S2\n" + b"".join(b"g%d,1.25,2.5\n" % i for i in range(120_000))  # ~1.7 MB of text
    at.file_uploader(key="lat_up_source").set_value(("big.csv.gz", gzip.compress(big), "application/gzip"))
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "the cap is 1 MB" in errors[0] and "GPA_MAX_STUDY_MB" in errors[0], errors
    monkeypatch.setenv("GPA_MAX_STUDY_MB", "lots")
    at.run()
    assert any("GPA_MAX_STUDY_MB='lots'" in w.value for w in at.warning)


def test_missing_values_choice_reaches_the_alignment() -> None:
    at = _data_mode("upload")
    for role, name in (("source", "gse_a_series_matrix.txt"), ("target", "gse_b_series_matrix.txt.gz")):
        at.file_uploader(key=f"lat_up_{role}").set_value((name, (FIXTURES / name).read_bytes(), "text/plain"))
    at.run()
    assert not at.exception, at.exception
    assert any("Alignment:" in c.value and "2 genes kept of 7 shared" in c.value for c in at.caption)
    at.radio(key="lat_missing").set_value("impute")
    at.run()
    assert not at.exception, at.exception
    assert any("7 genes kept" in c.value and "imputed by the gene mean" in c.value for c in at.caption)


# ------------------------------------------------------------------------------------- files as they come
def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_combined_file_and_sample_sheet_give_two_labelled_studies() -> None:
    from upload_corpus import combined_files

    expression, sheet = combined_files(per_batch=(14, 12), genes=60)
    at = _data_mode("combined")
    assert at.radio(key="lat_data").value == "combined"
    at.file_uploader(key="lat_up_combined").set_value(("expression.csv.gz", expression, "application/gzip"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("expression.csv.gz has no column that tells the batches apart" in i.value for i in at.info)
    at.file_uploader(key="lat_sheet_combined").set_value(("meta.csv", sheet, "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caps = _captions(at)
    assert any(
        c.startswith("expression.csv.gz: 26 samples × 60 genes") and "from 'meta.csv': batch, label" in c
        for c in caps
    )
    assert at.selectbox(key="lat_batch").value == "batch"
    assert at.selectbox(key="lat_batch_source").options == ["A (14 samples)", "B (12 samples)"]
    assert at.selectbox(key="lat_batch_source").value == "A"
    assert at.selectbox(key="lat_batch_target").value == "B"
    assert at.selectbox(key="lat_label_column").value == "label"
    assert any(
        c.startswith("**source (batch = A)**: 14 samples · H1975: 5, H2228: 5, HCC827: 4") for c in caps
    )
    assert any(c.startswith("**target (batch = B)**: 12 samples") for c in caps)
    assert any(
        "Alignment:" in c and "60 genes kept" in c and "Source: 14 samples (H1975: 5" in c for c in caps
    )
    assert {"lat_scree", "lat_recon"} <= {c.key for c in at.get("plotly_chart")}  # the encoder is fitted
    # the other way round, and without labels
    at.selectbox(key="lat_batch_source").set_value("B")
    at.selectbox(key="lat_batch_target").set_value("A")
    at.selectbox(key="lat_label_column").set_value("")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Source: 12 samples (unlabelled); target: 14 (unlabelled)" in c for c in _captions(at))
    # the same batch twice, or the batch column as labels: one error, the page keeps working
    at.selectbox(key="lat_batch_target").set_value("B")
    at.run()
    assert not at.exception and [e.value for e in at.error] == [
        "'expression.csv.gz': choose two different batches for the source and the target (both are 'B')."
    ]
    at.selectbox(key="lat_batch_target").set_value("A")
    at.selectbox(key="lat_label_column").set_value("batch")
    at.run()
    assert len(at.error) == 1 and "cannot be the batch column" in at.error[0].value
    at.selectbox(key="lat_label_column").set_value("label")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.multiselect(key="lat_methods").set_value(["mean_std"])
    at.number_input(key="lat_d").set_value(5)
    at.run()
    at.button(key="lat_run").click()
    at.run()
    _poll(at, _has_scores)
    w2 = at.dataframe[0].value
    assert set(w2[w2["metric"] == "W2²"]["label"]) == {"H1975", "H2228", "HCC827"}


REAL = Path("/work/shared/data/real_batches")


@pytest.mark.skipif(not (REAL / "meta.csv").is_file(), reason="the shared real data are not here")
def test_real_combined_files_as_downloaded() -> None:
    """The shared CellBench files (CEL-seq2 vs Drop-seq), uploaded as they are."""
    at = _data_mode("combined")
    at.file_uploader(key="lat_up_combined").set_value(
        ("expression.csv.gz", (REAL / "expression.csv.gz").read_bytes(), "application/gzip")
    )
    at.file_uploader(key="lat_sheet_combined").set_value(
        ("meta.csv", (REAL / "meta.csv").read_bytes(), "text/csv")
    )
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="lat_batch_source").value == "CELseq2"
    assert at.selectbox(key="lat_batch_target").value == "Dropseq"
    assert at.selectbox(key="lat_label_column").value == "label"
    assert "lat_scale_combined" not in {s.key for s in at.selectbox}
    caps = _captions(at)
    assert any(
        c.startswith("expression.csv.gz: 450 samples × 2,000 genes · read as samples by genes;") for c in caps
    )
    assert not any("linear" in c for c in caps)  # ln(CP10k + 1): not offered a log2 transform
    assert any(
        "2,000 genes kept of 2,000 shared" in c
        and "Source: 240 samples (H1975: 103, H2228: 67, HCC827: 70); "
        "target: 210 (H1975: 79, HCC827: 66, H2228: 65)"
        in c
        for c in caps
    )


def test_linear_values_are_offered_a_log2_transform() -> None:
    from upload_corpus import latent_cases

    case = next(c for c in latent_cases() if c.name.startswith("linear values"))
    at = _data_mode("upload")
    at.file_uploader(key="lat_up_source").set_value((case.filename, case.data, "text/plain"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    scale = at.selectbox(key="lat_scale_source")
    assert scale.value == "log2_floor1" and "keep the values as they are" in scale.options
    cap = next(c for c in _captions(at) if c.startswith("linear.tsv:"))
    assert "values look linear, not log-scale (max " in cap and "transformed: log2(max(x, 1))" in cap
    scale.set_value("log2_affy")
    at.run()
    cap = next(c for c in _captions(at) if c.startswith("linear.tsv:"))
    assert "transformed: log2 of x clipped to [20, 16000]" in cap
    at.selectbox(key="lat_scale_source").set_value("none")
    at.run()
    cap = next(c for c in _captions(at) if c.startswith("linear.tsv:"))
    assert "values look linear" in cap and "transformed" not in cap
    # a table on a log scale gets no such choice
    at.file_uploader(key="lat_up_target").set_value(
        ("gse_a_series_matrix.txt", (FIXTURES / "gse_a_series_matrix.txt").read_bytes(), "text/plain")
    )
    at.run()
    assert "lat_scale_target" not in {s.key for s in at.selectbox}


def test_golub_style_tables_and_label_files_upload_as_they_are() -> None:
    from upload_corpus import golub_table

    train = golub_table(genes=50, samples=[str(j) for j in range(1, 13)], seed=1)
    test = golub_table(
        genes=50, samples=[str(j) for j in range(13, 23)], seed=2, sep="\t", numbered_calls=False
    )
    actual = b"patient,cancer\n" + b"".join(
        b"%d,%s\n" % (j, b"AML" if j % 3 == 0 else b"ALL") for j in range(1, 23)
    )
    at = _data_mode("upload")
    at.file_uploader(key="lat_up_source").set_value(("data_set_ALL_AML_train.csv", train, "text/csv"))
    at.file_uploader(key="lat_up_target").set_value(("data_set_ALL_AML_independent.tsv", test, "text/plain"))
    for role in ("source", "target"):
        at.file_uploader(key=f"lat_lab_{role}").set_value(("actual.csv", actual, "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caps = _captions(at)
    src = next(c for c in caps if c.startswith("data_set_ALL_AML_train.csv:"))
    assert "12 samples × 50 genes · labels from actual.csv: ALL: 8, AML: 4" in src
    assert "gene IDs taken from column 'Gene Accession Number'" in src
    assert "dropped 12 per-sample detection-call column(s) (P/A/M" in src
    assert "dropped non-numeric column(s): Gene Description" in src and "values look linear" in src
    assert "transformed: log2 of x clipped to [20, 16000]" in src  # negative values: MAS4-style
    assert at.selectbox(key="lat_scale_source").value == "log2_affy"
    assert any("Alignment:" in c and "50 genes kept of 50 shared" in c for c in caps)
    assert "lat_labcol_source" not in {s.key for s in at.selectbox}  # two columns: nothing to choose


def test_a_sample_sheet_as_label_file_offers_its_columns() -> None:
    from upload_corpus import latent_cases

    cases = {c.name: c for c in latent_cases()}
    at = _data_mode("upload")
    at.file_uploader(key="lat_up_source").set_value(("study.tsv", cases["good table"].data, "text/plain"))
    sheet = cases["sample sheet (sample ID, batch, label)"]
    at.file_uploader(key="lat_lab_source").set_value((sheet.filename, sheet.data, "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    column = at.selectbox(key="lat_labcol_source")
    assert column.options == ["batch", "label"] and column.value == "label"
    assert any(
        c.startswith("study.tsv: 12 samples × 300 genes · labels from meta.csv: A: ") for c in _captions(at)
    )
    column.set_value("batch")
    at.run()
    assert any("labels from meta.csv: b0: 6, b1: 6" in c for c in _captions(at))


def test_h5ad_upload_says_anndata_is_needed_when_it_is_missing(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "anndata", None)
    at = _data_mode("combined")
    at.file_uploader(key="lat_up_combined").set_value(
        ("cells.h5ad", b"\x89HDF\r\n\x1a\n" + bytes(512), "application/x-hdf5")
    )
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert (
        len(errors) == 1
        and errors[0].startswith("'cells.h5ad'")
        and "optional package 'anndata'" in errors[0]
    )


def test_h5ad_obs_columns_choose_batch_and_label(tmp_path) -> None:
    pytest.importorskip("anndata")
    import numpy as np
    from test_gene_io import write_h5ad

    rng = np.random.default_rng(0)
    cells = [f"c{i}" for i in range(24)]
    obs = {"protocol": ["celseq"] * 12 + ["dropseq"] * 12, "cell_line": ["H1975", "H2228", "HCC827"] * 8}
    path = tmp_path / "cells.h5ad"
    write_h5ad(path, rng.gamma(2.0, 1.0, (24, 40)), obs, [f"g{j}" for j in range(40)], cells)
    at = _data_mode("combined")
    at.file_uploader(key="lat_up_combined").set_value(("cells.h5ad", path.read_bytes(), "application/x-hdf5"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="lat_batch").value == "protocol"
    assert at.selectbox(key="lat_label_column").value == "cell_line"
    assert any("Source: 12 samples (H1975: 4, H2228: 4, HCC827: 4)" in c for c in _captions(at))


def test_every_corpus_case_is_used_or_refused_on_the_page() -> None:
    """Each gene file of the upload corpus, as the source study (label files beside a good table):
    used (its caption) or refused (one error naming it), never an exception."""
    from upload_corpus import latent_cases

    cases = latent_cases()
    good = next(c for c in cases if c.name == "good table")
    at = _data_mode("upload")
    for case in cases:
        if case.slot == "labels":
            at.file_uploader(key="lat_up_source").set_value((good.filename, good.data, "text/plain"))
            at.file_uploader(key="lat_lab_source").set_value((case.filename, case.data, "text/plain"))
        else:
            at.file_uploader(key="lat_up_source").set_value((case.filename, case.data, "text/plain"))
            at.file_uploader(key="lat_lab_source").set_value(None)
        at.run()
        assert not at.exception, (case.name, at.exception)
        errors = [e.value for e in at.error]
        used = any(
            c.startswith(f"{case.filename}:") or f"labels from {case.filename}" in c for c in _captions(at)
        )
        if case.expect == "ok":
            assert used and not errors, (case.name, errors)
        else:
            assert len(errors) == 1 and errors[0].startswith(f"'{case.filename}'"), (case.name, errors)
