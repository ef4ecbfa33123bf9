"""The scripted pipeline (gpa_core.genes.pipeline): reading a combined table with a sample sheet, running
the methods in one latent space, the JSON-able summary and the files written; on the real CellBench set
(when ../shared/data/real_batches is there; about 2 s) the issue's acceptance check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpa_core.genes.latent import GPA_DEFAULTS, REACHED_FLOOR
from gpa_core.genes.pipeline import load_combined, load_pair, run_methods, summary, write_outputs
from gpa_core.genes.study import GeneDataError, make_synthetic_studies

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real_batches"


@pytest.fixture(scope="module")
def small():
    return make_synthetic_studies(
        n_genes=300, n_source=40, n_target=44, source_labels=(24, 16), target_labels=(10, 34), seed=1
    ).studies


def write_combined(folder: Path, source, target) -> tuple[Path, Path]:
    """Both studies in one samples × genes table (first column sample_id) and a sample sheet."""
    X = np.vstack([source.expression, target.expression])
    ids = np.concatenate([source.sample_ids, target.sample_ids])
    table = pd.DataFrame(X, index=pd.Index(ids, name="sample_id"), columns=source.gene_ids)
    expr = folder / "expression.csv"
    table.to_csv(expr, float_format="%.5g")
    meta = folder / "meta.csv"
    pd.DataFrame(
        {
            "sample_id": ids,
            "batch": ["A"] * source.n_samples + ["B"] * target.n_samples,
            "label": np.concatenate([source.labels, target.labels]),
        }
    ).to_csv(meta, index=False)
    return expr, meta


def write_pair(folder: Path, source, target) -> list[Path]:
    """Each study as its own table plus a label file."""
    paths = []
    for st, name in ((source, "src"), (target, "tgt")):
        p = folder / f"{name}.csv"
        pd.DataFrame(st.expression, index=pd.Index(st.sample_ids, name="sample"), columns=st.gene_ids).to_csv(
            p, float_format="%.5g"
        )
        lab = folder / f"{name}_labels.csv"
        pd.DataFrame({"sample": st.sample_ids, "label": st.labels}).to_csv(lab, index=False)
        paths += [p, lab]
    return paths


def test_load_combined_splits_by_batch_and_labels(tmp_path, small):
    s, t = small
    expr, meta = write_combined(tmp_path, s, t)
    a, b = load_combined(expr, meta, source_batch="A", target_batch="B")
    assert (a.n_samples, b.n_samples, a.n_genes) == (40, 44, 300)
    np.testing.assert_array_equal(a.sample_ids, s.sample_ids)
    np.testing.assert_array_equal(b.labels, t.labels)
    np.testing.assert_allclose(a.expression, s.expression, rtol=1e-4)
    unlabelled, _ = load_combined(expr, meta, source_batch="A", target_batch="B", label_column=None)
    assert unlabelled.labels is None
    with pytest.raises(GeneDataError, match="'C'"):
        load_combined(expr, meta, source_batch="A", target_batch="C")
    with pytest.raises(GeneDataError, match="no column 'tissue'"):
        load_combined(expr, meta, source_batch="A", target_batch="B", label_column="tissue")


def test_load_pair_reads_label_files(tmp_path, small):
    s, t = small
    src, src_lab, tgt, tgt_lab = write_pair(tmp_path, s, t)
    a, b = load_pair(src, tgt, src_lab, tgt_lab)
    np.testing.assert_array_equal(a.labels, s.labels)
    np.testing.assert_array_equal(b.labels, t.labels)


def test_run_methods_share_one_latent_space_and_summarise(tmp_path, small):
    s, t = small
    res = run_methods(s, t, ["none", "meanstd", "gpa"], {"steps": 40}, gene_scores=False)
    assert list(res) == ["none", "mean_std", "gpa"]
    np.testing.assert_allclose(res["none"].Z_target, res["gpa"].Z_target, rtol=1e-12)  # one encoder
    assert res["gpa"].encoder.latent_scale_auto and res["none"].encoder.latent_scale == 1.0
    out = summary(res["gpa"], s, t, {"steps": 40}, best="gpa")
    json.dumps(out, allow_nan=False)  # JSON-able, no NaN
    assert (
        out["method"] == "gpa"
        and out["best"] == "gpa"
        and out["n_components"] == GPA_DEFAULTS["n_components"]
    )
    assert set(out["latent_W2"]) == {"ER+", "ER-"}
    assert {"before", "after", "relative_%", "floor", "floor_%", "excess_%", "spread ratio"} <= set(
        out["latent_W2"]["ER+"]
    )
    assert "k-NN mixing (within labels)" in out["pooled"] and "label transfer accuracy" in out["pooled"]
    assert out["gpa"]["settings"]["steps"] == 40 and set(out["gpa"]["steps_done"]) == {"ER+", "ER-"}
    assert all(v <= 40 for v in out["gpa"]["steps_done"].values())
    assert set(out["assessment"]) >= {"excess_%", "mixing_deficit_%", "remaining_%", "flags"}
    files = write_outputs(tmp_path / "out", s, t, res, [out])
    names = {Path(f).name for f in files}
    assert names == {
        "scores.csv", "summary.json", "latent.csv", "integrated_none.csv.gz", "integrated_mean_std.csv.gz",
        "integrated_gpa.csv.gz",
    }  # fmt: skip
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    assert set(scores["method"]) == {"none", "mean_std", "gpa"}
    back = pd.read_csv(tmp_path / "out" / "integrated_gpa.csv.gz", index_col=0)
    assert back.shape == (40, 300)


@pytest.mark.skipif(not (REAL / "expression.csv.gz").exists(), reason="the real two-batch set is not here")
def test_real_set_gpa_defaults_match_combat_on_w2_and_mixing():
    """The issue's acceptance check on the CellBench CEL-seq2/Drop-seq set: latent GPA with the
    defaults is at least ComBat's equal on relative latent W₂² (every label) and on k-NN mixing."""
    s, t = load_combined(
        REAL / "expression.csv.gz", REAL / "meta.csv", source_batch="Dropseq", target_batch="CELseq2"
    )
    res = run_methods(s, t, ["combat", "gpa"], gene_scores=False)
    gpa, combat = res["gpa"], res["combat"]
    for lab in gpa.labels:
        assert gpa.score("W2²", lab)["relative_%"] <= combat.score("W2²", lab)["relative_%"]
        assert gpa.transport.status[lab] == REACHED_FLOOR
    for metric in ("k-NN mixing (within labels)", "k-NN mixing"):
        assert gpa.score(metric)["after"] >= combat.score(metric)["after"]
    assert gpa.seconds < 30
