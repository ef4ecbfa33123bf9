"""``python -m gpa_core integrate``: the latent page's pipeline from a shell, one JSON object per method."""

from __future__ import annotations

import json

import pytest
from test_pipeline import write_combined, write_pair

from gpa_core.cli import main
from gpa_core.genes.study import make_synthetic_studies

POOLED = {"silhouette by study (within labels)", "k-NN mixing (within labels)", "silhouette by study",
          "k-NN mixing", "silhouette by label", "label transfer accuracy"}  # fmt: skip


@pytest.fixture(scope="module")
def small():
    return make_synthetic_studies(
        n_genes=200, n_source=30, n_target=36, source_labels=(18, 12), target_labels=(10, 26), seed=4
    ).studies


def _objects(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_json_has_one_object_per_method(tmp_path, small, capsys):
    src, src_lab, tgt, tgt_lab = write_pair(tmp_path, *small)
    args = ["integrate", str(src), str(tgt), "--source-labels", str(src_lab), "--target-labels", str(tgt_lab)]
    assert (
        main([*args, "--method", "none,meanstd,combat,gpa", "--steps", "30", "--no-gene-scores", "--json"])
        == 0
    )
    objs = _objects(capsys)
    assert [o["method"] for o in objs] == ["none", "mean_std", "combat", "gpa"]
    for o in objs:
        assert o["source"]["samples"] == 30 and o["target"]["samples"] == 36 and o["genes"] == 200
        assert set(o["latent_W2"]) == {"ER+", "ER-"}
        for lab in ("ER+", "ER-"):
            w = o["latent_W2"][lab]
            assert w["before"] > 0 and w["floor"] > 0 and w["relative_%"] is not None
        assert set(o["pooled"]) == POOLED
        assert all({"before", "after", "floor"} == set(v) for v in o["pooled"].values())
        assert o["best"] == objs[0]["best"] and o["best"] in {"mean_std", "combat", "gpa", None}
        assert {r["space"] for r in o["scores"]} == {"latent"}  # --no-gene-scores
    none = objs[0]
    assert all(w["relative_%"] == pytest.approx(100.0) for w in none["latent_W2"].values())
    assert objs[3]["gpa"]["settings"]["steps"] == 30 and objs[3]["gpa"]["latent_scale"] > 0


def test_combined_table_with_a_batch_file_and_outputs(tmp_path, small, capsys):
    expr, meta = write_combined(tmp_path, *small)
    out = tmp_path / "out"
    combined = [
        "integrate",
        str(expr),
        "--batch-file",
        str(meta),
        "--source-batch",
        "A",
        "--target-batch",
        "B",
    ]
    assert main([*combined, "--method", "meanstd", "--out", str(out), "--json"]) == 0
    (obj,) = _objects(capsys)
    assert obj["method"] == "mean_std" and {r["space"] for r in obj["scores"]} == {"latent", "genes"}
    assert {p.name for p in out.iterdir()} == {
        "scores.csv",
        "summary.json",
        "latent.csv",
        "integrated_mean_std.csv.gz",
    }
    assert json.loads((out / "summary.json").read_text())[0]["method"] == "mean_std"
    assert main([*combined, "--method", "none"]) == 0
    text = capsys.readouterr().out
    assert "none (" in text and "latent W2²" in text and "batch effect left" in text


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, small, capsys):
    expr, meta = write_combined(tmp_path, *small)
    for argv, words in (
        (["integrate", str(expr)], "TARGET"),
        (["integrate", str(expr), "--batch-file", str(meta)], "--source-batch"),
        (
            ["integrate", str(expr), "--batch-file", str(meta), "--source-batch", "A", "--target-batch", "Z"],
            "'Z'",
        ),
        (["integrate", str(expr), str(tmp_path / "nope.csv")], "not found"),
        (["integrate", str(expr), str(expr), "--method", "harmony"], "methods are"),
        (["integrate", str(expr), str(expr), "--latent-scale", "-1"], "auto"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("error:") and words in err[-1], (argv, err)
