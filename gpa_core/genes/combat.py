"""ComBat batch-effect correction (Johnson, Li & Rabinovic, Biostatistics 2007), parametric empirical Bayes.

A baseline beside latent GPA on the gene-expression page. Per gene g and sample i of batch b,
    X_ig = α_g + C_i β_g + γ_bg + δ_bg ε_ig,
the batch's location γ and scale δ are estimated per gene, shrunk toward their across-gene priors
(normal for γ, inverse gamma for δ²), and removed. Biological covariates (the clinical label) are in
the design, so what they explain is kept. With a ``reference`` batch (sva's ``ref.batch``), the other
batches are mapped onto it and it is left unchanged — the setting of the paper's §9, where one study
is carried onto the other.

No well-kept ComBat installs beside pandas 3 on Python 3.11 here (scanpy 1.11 needs anndata 0.12,
which needs pandas < 3; pyComBat fails under pandas 3; inmoose downgrades pandas), so this is our own,
and tests/test_combat.py checks it against scanpy 1.11.5's ``pp.combat`` on a stored example.
Arrays are samples × genes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Default of :func:`combat`'s ``prior_range``: genes whose δ̂² is over 100× (or under 1/100 of) the
#: batch's median are left out of the priors' moments.
PRIOR_RANGE = 100.0


class CombatError(ValueError):
    """Input ComBat cannot correct, with the reason."""


def _one_hot(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels, index = np.unique(values, return_inverse=True)
    return levels, np.eye(len(levels))[index]


def combat(
    X: np.ndarray,
    batch: Sequence[Any] | np.ndarray,
    covariates: Sequence[Any] | np.ndarray | None = None,
    *,
    reference: Any | None = None,
    tol: float = 1e-4,
    max_iter: int = 1000,
    prior_range: float | None = PRIOR_RANGE,
) -> np.ndarray:
    """ComBat-adjusted copy of X (samples × genes, float64).

    ``batch``: one label per sample; ``covariates``: an optional categorical label per sample to
    preserve (dummy-coded, first level dropped); ``reference``: a batch left as it is, onto which the
    others are mapped. Genes constant within a batch are left unadjusted (their scale is undefined).

    ``prior_range``: the empirical-Bayes priors of a batch are fitted (by moments, across genes) on
    the genes whose variance ratio δ̂² lies within a factor ``prior_range`` of the batch's median
    δ̂²; every usable gene is still adjusted with them. Without this guard (``None``, sva's and
    scanpy's formulas), a few genes nearly constant in the reference (a detection floor, all but
    zero counts) have a huge δ̂² in the other batch, the inverse-gamma prior's mean follows them,
    and the posterior scale δ*² of every ordinary gene is inflated: ComBat then divides the other
    batch's residuals by √δ*² ≫ 1 and collapses it onto its fitted (label) means — a W₂² below
    what two samples of one distribution reach, a higher study silhouette and less k-NN mixing
    (README, "Latent integration, measured"). On data without such genes the guard changes nothing."""
    X = np.array(X, dtype=np.float64)
    if X.ndim != 2:
        raise CombatError(f"X must be samples × genes, got shape {X.shape}")
    n, _ = X.shape
    batch = np.asarray(batch)
    if batch.shape != (n,):
        raise CombatError(f"need one batch label per sample: {n} samples, {batch.shape[0]} labels")
    levels, B = _one_hot(batch)
    nb = len(levels)
    if nb < 2:
        raise CombatError("ComBat needs at least two batches")
    counts = B.sum(0)
    if (counts < 2).any():
        sizes = dict(zip(levels.tolist(), counts.astype(int).tolist(), strict=True))
        raise CombatError(f"every batch needs at least two samples; sizes {sizes}")
    design = B
    if covariates is not None:
        cov = np.asarray(covariates)
        if cov.shape != (n,):
            raise CombatError(f"need one covariate label per sample: {n} samples, {cov.shape[0]} labels")
        design = np.hstack([B, _one_hot(cov)[1][:, 1:]])
    ref = None
    if reference is not None:
        hits = np.flatnonzero(levels == reference)
        if hits.size == 0:
            raise CombatError(f"reference batch {reference!r} is not among the batches {list(levels)}")
        ref = int(hits[0])
        design = design.copy()
        design[:, ref] = 1.0  # sva: the reference batch's column becomes the intercept
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise CombatError(
            "the covariates are confounded with the batches (a label occurs in only one study), so "
            "the batch effect cannot be told apart from the biology"
        )

    # standardize: remove the fitted mean (batch + covariates), scale by the pooled residual sd
    B_hat = np.linalg.solve(design.T @ design, design.T @ X)  # (batches + covariates) × genes
    grand_mean = B_hat[ref] if ref is not None else (counts / n) @ B_hat[:nb]
    rows = B[:, ref] > 0 if ref is not None else slice(None)  # the samples the pooled variance uses
    var_pooled = np.mean((X[rows] - design[rows] @ B_hat) ** 2, axis=0)
    stand_mean = grand_mean[None, :]  # (1, genes), or (samples, genes) with covariates
    if design.shape[1] > nb:
        stand_mean = stand_mean + design[:, nb:] @ B_hat[nb:]
    sd = np.sqrt(var_pooled)
    constant = ~(sd > 0)
    sd[constant] = 1.0
    S = (X - stand_mean) / sd

    out = X.copy()
    for b in range(nb):
        if b == ref:
            continue  # the reference keeps its values
        members = B[:, b] > 0
        Sb = S[members]
        nbatch = Sb.shape[0]
        gamma_hat = Sb.mean(0)
        delta_hat = Sb.var(0, ddof=1)
        usable = (delta_hat > 1e-10) & ~constant  # S is standardized: its variances are O(1)
        gamma_star, delta_star = _posterior(
            Sb[:, usable], gamma_hat[usable], delta_hat[usable], nbatch, tol, max_iter, prior_range
        )
        adjusted = (Sb[:, usable] - gamma_star) / np.sqrt(delta_star)
        mean = np.broadcast_to(stand_mean, X.shape)[np.ix_(members, usable)]
        out[np.ix_(members, usable)] = adjusted * sd[usable] + mean
    return out


def _posterior(
    S: np.ndarray,
    gamma_hat: np.ndarray,
    delta_hat: np.ndarray,
    n: int,
    tol: float,
    max_iter: int,
    prior_range: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical Bayes estimates (γ*, δ*²) for one batch: priors γ ~ N(γ̄, τ²) and δ² ~ InvGamma(a, b)
    fitted across genes by moments (on the genes with δ̂² within ``prior_range`` of the median, see
    :func:`combat`), then the fixed point of the two conditional posterior means."""
    fit = slice(None)
    if prior_range is not None and delta_hat.size > 2:
        med = float(np.median(delta_hat))
        typical = (delta_hat <= med * prior_range) & (delta_hat >= med / prior_range)
        if typical.sum() >= 2 and not typical.all():
            fit = typical
    gamma_bar = gamma_hat[fit].mean()
    tau2 = gamma_hat[fit].var()  # as scanpy; sva's sample variance differs by G/(G-1), nil for many genes
    m, s2 = delta_hat[fit].mean(), delta_hat[fit].var(ddof=1)
    a_prior = (2 * s2 + m**2) / s2
    b_prior = (m * s2 + m**3) / s2
    sum_s, sum_s2 = S.sum(0), (S**2).sum(0)
    g_old, d_old = gamma_hat, delta_hat
    for _ in range(max_iter):
        g_new = (tau2 * n * gamma_hat + d_old * gamma_bar) / (tau2 * n + d_old)
        sum2 = sum_s2 - 2 * g_new * sum_s + n * g_new**2  # Σ_i (s_i - γ)²
        d_new = (0.5 * sum2 + b_prior) / (n / 2 + a_prior - 1)
        change = max(np.max(np.abs(g_new - g_old) / np.abs(g_old)), np.max(np.abs(d_new - d_old) / d_old))
        g_old, d_old = g_new, d_new
        if change < tol:
            break
    return g_old, d_old
