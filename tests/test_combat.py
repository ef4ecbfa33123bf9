"""ComBat (gpa_core.genes.combat): against scanpy's pp.combat on a stored example, the reference-batch mode,
and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpa_core.genes.combat import CombatError, combat

REFERENCE = np.load(Path(__file__).parent / "fixtures" / "combat_scanpy.npz")


def test_matches_scanpy_without_covariates() -> None:
    out = combat(REFERENCE["X"], REFERENCE["batch"])
    np.testing.assert_allclose(out, REFERENCE["plain"], rtol=0, atol=1e-10)


def test_matches_scanpy_with_the_label_as_covariate() -> None:
    out = combat(REFERENCE["X"], REFERENCE["batch"], REFERENCE["label"])
    np.testing.assert_allclose(out, REFERENCE["with_label"], rtol=0, atol=1e-10)
    assert not np.allclose(out, REFERENCE["plain"])  # the covariate changes the fit


def _shifted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    genes = 200
    label = np.array(["x", "y"] * 30)
    batch = np.array(["ref"] * 26 + ["other"] * 34)
    effect = rng.normal(0, 1, genes)
    X = rng.normal(5, 1, genes) + (label == "y")[:, None] * effect + rng.normal(0, 0.3, (60, genes))
    X[batch == "other"] = X[batch == "other"] * rng.uniform(0.5, 2.0, genes) + rng.normal(2, 1, genes)
    return X, batch, label


def test_reference_batch_stays_and_the_other_moves_onto_it() -> None:
    X, batch, label = _shifted()
    out = combat(X, batch, label, reference="ref")
    ref, other = batch == "ref", batch == "other"
    assert np.array_equal(out[ref], X[ref])
    gap_before = np.abs(X[other].mean(0) - X[ref].mean(0)).mean()
    gap_after = np.abs(out[other].mean(0) - X[ref].mean(0)).mean()
    assert gap_after < 0.1 * gap_before, (gap_before, gap_after)
    sd_ratio = out[other].std(0) / X[ref].std(0)
    assert 0.7 < np.median(sd_ratio) < 1.3
    # the label's effect survives: within the corrected batch, y - x still follows the true effect
    kept = out[other & (label == "y")].mean(0) - out[other & (label == "x")].mean(0)
    ref_effect = X[ref & (label == "y")].mean(0) - X[ref & (label == "x")].mean(0)
    assert np.corrcoef(kept, ref_effect)[0, 1] > 0.9


def test_constant_genes_are_left_alone_and_nothing_becomes_nan() -> None:
    X, batch, _ = _shifted(1)
    X[:, 3] = 7.0
    X[batch == "other", 5] = 2.0  # constant within one batch only
    out = combat(X, batch, reference="ref")
    assert np.isfinite(out).all()
    assert np.array_equal(out[:, 3], X[:, 3]) and np.array_equal(out[:, 5], X[:, 5])


def test_bad_inputs_are_refused_clearly() -> None:
    X, batch, _ = _shifted()
    with pytest.raises(CombatError, match="two batches"):
        combat(X, np.array(["a"] * 60))
    with pytest.raises(CombatError, match="one batch label per sample"):
        combat(X, batch[:10])
    with pytest.raises(CombatError, match="confounded"):
        combat(X, batch, batch)  # the "biology" is the study itself
    with pytest.raises(CombatError, match="not among the batches"):
        combat(X, batch, reference="nope")
    with pytest.raises(CombatError, match="at least two samples"):
        combat(X[:27], np.array(["ref"] * 26 + ["other"]))
