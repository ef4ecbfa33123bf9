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


def _floor_genes(seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """_shifted data where 2 % of the genes are nearly constant in the reference (a detection floor)."""
    X, batch, label = _shifted(seed)
    rng = np.random.default_rng(seed)
    floor = rng.choice(X.shape[1], 4, replace=False)
    ref = batch == "ref"
    X[np.ix_(ref, floor)] = 1.0 + 1e-3 * rng.standard_normal((ref.sum(), floor.size))
    return X, batch, label, floor


def test_genes_constant_in_the_reference_do_not_collapse_the_other_batch() -> None:
    """sva's and scanpy's moment priors follow those genes' huge variance ratios and inflate every
    ordinary gene's δ*²: the other batch's residuals shrink by √δ*² (a spread far below the
    reference's). With the priors fitted on the typical genes its spread stays the reference's."""
    X, batch, label, floor = _floor_genes()
    ordinary = np.setdiff1d(np.arange(X.shape[1]), floor)
    ref, other = batch == "ref", batch == "other"

    def spread(out: np.ndarray) -> float:  # within-label sd of the other batch over the reference's
        ratios = [out[other & (label == v)][:, ordinary].std(0) / X[ref & (label == v)][:, ordinary].std(0)
                  for v in ("x", "y")]  # fmt: skip
        return float(np.median(np.concatenate(ratios)))

    # without the label as covariate: the floor genes' residual variance in the reference is then
    # their (tiny) spread, not the label effect the other batch has in them
    unguarded = combat(X, batch, reference="ref", prior_range=None)
    guarded = combat(X, batch, reference="ref")
    assert spread(unguarded) < 0.5
    assert 0.7 < spread(guarded) < 1.3
    assert np.array_equal(guarded[ref], X[ref]) and np.isfinite(guarded).all()


def test_the_prior_guard_changes_nothing_without_outlying_genes() -> None:
    X, batch, label = _shifted(3)
    np.testing.assert_array_equal(
        combat(X, batch, label, reference="ref"), combat(X, batch, label, reference="ref", prior_range=None)
    )
    out = combat(REFERENCE["X"], REFERENCE["batch"], prior_range=None)
    np.testing.assert_allclose(out, REFERENCE["plain"], rtol=0, atol=1e-10)
