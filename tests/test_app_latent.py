"""AppTest runs of the latent-space (gene expression) page with tiny synthetic studies: the page loads,
the mean/std baseline and a short per-label GPA run end-to-end in the background job and fill the score
table, and unreadable uploads show one error each while the page keeps working."""

from __future__ import annotations

import time
from pathlib import Path

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
    keys = {b.key for b in at.download_button} if hasattr(at, "download_button") else set()
    assert {"lat_dl_matrix", "lat_dl_latent", "lat_dl_scores"} <= keys
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


def _upload_mode() -> AppTest:
    at = _app()
    at.radio(key="lat_data").set_value("upload")
    at.run()
    assert not at.exception, at.exception
    return at


def test_uploaders_are_capped_and_messages_name_real_controls() -> None:
    from gpa_core.genes.readers import PAGE_ORIENTATION

    at = _upload_mode()
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
    at = _upload_mode()
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
    at = _upload_mode()
    for role, name in (("source", "gse_a_series_matrix.txt"), ("target", "gse_b_series_matrix.txt.gz")):
        at.file_uploader(key=f"lat_up_{role}").set_value((name, (FIXTURES / name).read_bytes(), "text/plain"))
    at.run()
    assert not at.exception, at.exception
    assert any("Alignment:" in c.value and "2 genes kept of 7 shared" in c.value for c in at.caption)
    at.radio(key="lat_missing").set_value("impute")
    at.run()
    assert not at.exception, at.exception
    assert any("7 genes kept" in c.value and "imputed by the gene mean" in c.value for c in at.caption)
