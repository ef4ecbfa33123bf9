"""Latent-space pipeline: PCA encoder/decoder, baselines, integration scores, 2-D views, transport."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tolerances import gamma

import gpa_core.genes.encoder as encoder_module
from gpa_core.genes.latent import (
    LatentError,
    PCAEncoder,
    integrate,
    mean_std_baseline,
    pca_2d,
    transport_per_label,
    umap_embedding,
    warm_up_umap,
)
from gpa_core.genes.scores import (
    ScoreInputError,
    knn_mixing_score,
    relative_to_raw,
    silhouette,
    sinkhorn_divergence,
    squared_distances,
    w2_squared,
)
from gpa_core.genes.study import GeneDataError, Study, make_synthetic_studies


@pytest.fixture(scope="module")
def studies():
    """Small synthetic integration problem: 500 genes, 56 → 64 samples."""
    return make_synthetic_studies(
        n_genes=500, n_source=56, n_target=64, source_labels=(34, 22), target_labels=(12, 52), seed=0
    )


@pytest.fixture(scope="module")
def encoder(studies):
    s, t = studies.studies
    return PCAEncoder(10).fit(s.expression, t.expression)


# ------------------------------------------------------------------------------------------ encoder
def test_full_rank_round_trip_is_exact():
    X = np.random.default_rng(0).normal(size=(20, 60)) * 3 + 5
    enc = PCAEncoder(100).fit(X[:8], X[8:])
    assert enc.n_components_ == 19  # n − 1: the rank of centred data
    np.testing.assert_allclose(enc.decode(enc.encode(X)), X, atol=1e-10)


def test_reconstruction_error_decreases_with_d_and_matches_the_spectrum(encoder, studies):
    """Bounds from the code, not from one CPU: (1) at full rank, the encoder keeps every eigenvalue above
    1e-10·λ_max, so what it leaves out is at most n·1e-10 of the total, plus the float64 rounding of the
    cumulative sum (n·u₆₄): err² ≤ n·(1e-10 + u₆₄). (2) Measured on data, ‖Xs‖² and ‖Z_d‖² are float32
    products over gene chunks of c ≤ 500 genes here (relative error ≤ γ_c each entry), and the
    spectrum's d eigenvalues move by at most ‖ΔG‖ ≤ γ_c·‖Xs‖² each (Weyl), so
    |err₂² − err²| ≤ (2 + 2d)·γ_c and
    |err₂ − err| ≤ (2 + 2d)·γ_c / (err₂ + err)."""
    _, err = encoder.reconstruction_error()
    n = encoder.n_samples_
    assert np.all(np.diff(err) <= 0) and err[0] < 1
    assert err[-1] ** 2 <= n * (1e-10 + 2.0**-53)
    s, t = studies.studies
    X = np.vstack([s.expression, t.expression])
    ds = np.array([1, 5, 10])
    _, err2 = encoder.reconstruction_error(X, ds=ds)
    g = gamma(min(encoder.n_features_, encoder_module._CHUNK), np.float32)
    bound = (2 + 2 * ds) * g / (err2 + err[ds - 1])
    assert np.all(np.abs(err2 - err[ds - 1]) <= bound), (err2, err[ds - 1], bound)
    with pytest.raises(LatentError, match="max_components"):
        encoder.reconstruction_error(X, ds=[11])
    big = PCAEncoder(5, max_components=20).fit(s.expression, t.expression)
    ds = np.array([5, 20])
    _, err3 = big.reconstruction_error(X, ds=ds)
    bound = (2 + 2 * ds) * g / (err3 + err[ds - 1])
    assert np.all(np.abs(err3 - err[ds - 1]) <= bound), (err3, err[ds - 1], bound)
    assert big.encode(X).shape == (X.shape[0], 5)


def test_matches_scikit_learn_pca():
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(1).normal(size=(30, 40)) @ np.diag(np.linspace(0.5, 3, 40)) + 2
    ref = PCA(6).fit(StandardScaler().fit_transform(X))
    enc = PCAEncoder(6).fit(X)
    np.testing.assert_allclose(enc.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-8)
    Zr = ref.transform(StandardScaler().fit_transform(X))
    np.testing.assert_allclose(np.abs(enc.encode(X)), np.abs(Zr), atol=1e-8)
    raw = PCAEncoder(6, standardize=False).fit(X)
    np.testing.assert_allclose(
        raw.explained_variance_ratio_, PCA(6).fit(X).explained_variance_ratio_, rtol=1e-8
    )
    scree = enc.scree()
    assert scree["component"][0] == 1 and scree["cumulative"][-1] == pytest.approx(1.0)


def test_chunking_float32_and_constant_genes(monkeypatch):
    rng = np.random.default_rng(2)
    X = (rng.normal(size=(25, 300)) + 6).astype(np.float32)
    X[:, 7] = 4.0  # a constant gene: σ = 0 → left unscaled, no NaN
    big = PCAEncoder(8).fit(X)
    monkeypatch.setattr(encoder_module, "_CHUNK", 37)
    small = PCAEncoder(8).fit(X)
    np.testing.assert_allclose(small.encode(X), big.encode(X), atol=1e-4)
    assert big.scale_[7] == 1.0
    out = big.decode(big.encode(X))
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 7], 4.0, atol=1e-5)
    V = big.components_.astype(np.float64)
    np.testing.assert_allclose(V @ V.T, np.eye(8), atol=1e-6)


def test_latent_scale_divides_and_decode_undoes_it(encoder, studies):
    s, t = studies.studies
    scaled = PCAEncoder(10, latent_scale=10.0).fit(s.expression, t.expression)
    np.testing.assert_allclose(scaled.encode(s.expression) * 10.0, encoder.encode(s.expression), rtol=1e-9)
    np.testing.assert_allclose(
        scaled.decode(scaled.encode(s.expression)), encoder.decode(encoder.encode(s.expression)), atol=1e-4
    )


def test_encoder_input_errors(encoder):
    with pytest.raises(LatentError, match="not fitted"):
        PCAEncoder(3).encode(np.zeros((2, 3)))
    with pytest.raises(LatentError, match="500"):
        encoder.encode(np.zeros((2, 3)))
    with pytest.raises(LatentError, match="shape"):
        encoder.decode(np.zeros((2, 3)))
    X = np.ones((4, 5))
    X[1, 2] = np.nan
    with pytest.raises(LatentError, match="gene column 2"):
        PCAEncoder(2).fit(X)
    with pytest.raises(LatentError, match="same genes"):
        PCAEncoder(2).fit(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(LatentError, match="n_components"):
        PCAEncoder(0)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, 10, elements=st.floats(-1e3, 1e3)),
    arrays(np.float64, 10, elements=st.floats(-1e3, 1e3)),
)
def test_decode_is_an_isometry_in_standardized_space(z1, z2):
    """The paper's 1-Lipschitz decoder: ‖D(z) − D(z′)‖ = ‖z − z′‖ (orthonormal axes)."""
    enc = _hyp_encoder()
    d = np.linalg.norm(enc.decode_standardized(z1) - enc.decode_standardized(z2))
    assert d <= np.linalg.norm(z1 - z2) * (1 + 1e-6) + 1e-9
    assert d == pytest.approx(np.linalg.norm(z1 - z2), rel=1e-6, abs=1e-9)


_HYP: dict[str, PCAEncoder] = {}


def _hyp_encoder() -> PCAEncoder:
    if "enc" not in _HYP:
        X = np.random.default_rng(5).normal(size=(40, 300)).astype(np.float32)
        _HYP["enc"] = PCAEncoder(10).fit(X)
    return _HYP["enc"]


# ------------------------------------------------------------------------------------------ baseline
def test_mean_std_baseline_matches_target_moments_per_label():
    rng = np.random.default_rng(3)
    Xs = rng.normal(2.0, 3.0, size=(30, 6))
    Xt = rng.normal(-1.0, 0.5, size=(40, 6))
    ls = np.array(["a"] * 12 + ["b"] * 18)
    lt = np.array(["b"] * 25 + ["a"] * 15)
    Xt[lt == "b"] += 4.0
    Xs[:, 3] = 1.0  # no spread in the source: maps to the target mean
    out = mean_std_baseline(Xs, ls, Xt, lt)
    for lab in ("a", "b"):
        np.testing.assert_allclose(out[ls == lab].mean(0), Xt[lt == lab].mean(0), atol=1e-10)
        sd = out[ls == lab].std(0)
        np.testing.assert_allclose(np.delete(sd, 3), np.delete(Xt[lt == lab].std(0), 3), rtol=1e-10)
    with pytest.raises(LatentError, match="'c'"):
        mean_std_baseline(Xs, np.array(["c"] * 30), Xt, lt)
    one = mean_std_baseline(Xs, None, Xt, None)
    np.testing.assert_allclose(one.mean(0), Xt.mean(0), atol=1e-10)


# ------------------------------------------------------------------------------------------ scores
def test_sinkhorn_divergence_zero_for_identical_positive_for_shifted():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(40, 5)) * 3
    assert sinkhorn_divergence(X, X.copy()) == pytest.approx(0.0, abs=1e-6)
    v = np.array([3.0, -2.0, 0.0, 1.0, 0.5])
    s = sinkhorn_divergence(X, X + v)
    assert s > 0
    assert s == pytest.approx(0.5 * float(v @ v), rel=0.01)  # a translation: ½W₂² = ½|v|²


def test_sinkhorn_converges_on_paper_scales():
    """Costs ~10³ against ε = 0.0025 (C/ε ~ 10⁶), unequal sizes, as for the ER+/ER− clouds."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 20)) * 5
    Y = rng.normal(size=(25, 20)) * 5 + 3
    s = sinkhorn_divergence(X, Y, blur=0.05)
    w = w2_squared(X, Y)
    assert 0.5 * w * 0.99 < s <= 0.5 * w * 1.001


def test_w2_exact_for_translation_and_high_dimensional_path():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(15, 4))
    v = np.array([1.0, 2.0, -1.0, 0.5])
    assert w2_squared(X, X + v) == pytest.approx(float(v @ v), rel=1e-9)
    # the Gram path (d > n + m) gives the same distances as cdist
    Y = rng.normal(size=(12, 4)) + 1
    pad = np.zeros((1, 200))
    Xh, Yh = np.hstack([X, pad.repeat(15, 0)]) + 7.0, np.hstack([Y, pad.repeat(12, 0)]) + 7.0
    for a, b in zip(
        squared_distances(X, Y), squared_distances(Xh.astype(np.float32), Yh.astype(np.float32)), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert w2_squared(Xh, Yh) == pytest.approx(w2_squared(X, Y), rel=1e-9)


def test_score_input_errors():
    with pytest.raises(ScoreInputError, match="NaN"):
        w2_squared(np.array([[np.nan]]), np.array([[1.0]]))
    with pytest.raises(ScoreInputError, match="same number of columns"):
        w2_squared(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ScoreInputError, match="blur"):
        sinkhorn_divergence(np.zeros((2, 2)), np.zeros((2, 2)), blur=0)
    with pytest.raises(ScoreInputError, match="distinct labels"):
        silhouette(np.zeros((4, 2)), ["a"] * 4)
    assert relative_to_raw(5.0, 200.0) == pytest.approx(2.5)
    with pytest.raises(ScoreInputError, match="raw score"):
        relative_to_raw(1.0, 0.0)


def test_knn_mixing_mixed_vs_separated():
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(300, 3))
    study = rng.permutation(np.array(["s"] * 100 + ["t"] * 200))
    assert knn_mixing_score(Z, study, k=15) == pytest.approx(1.0, abs=0.15)
    Z2 = np.vstack([rng.normal(size=(100, 3)), rng.normal(size=(200, 3)) + 50])
    assert knn_mixing_score(Z2, np.array(["s"] * 100 + ["t"] * 200), k=15) == 0.0
    with pytest.raises(ScoreInputError, match="two studies"):
        knn_mixing_score(Z, ["s"] * 300)


def test_silhouette_by_study():
    rng = np.random.default_rng(8)
    Z = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 20])
    assert silhouette(Z, ["a"] * 30 + ["b"] * 30) > 0.9


# ------------------------------------------------------------------------------------------ 2-D views
def test_umap_is_seeded_and_reproducible():
    warm_up_umap()
    Z = np.random.default_rng(9).normal(size=(40, 6))
    a = umap_embedding(Z, random_state=100)
    b = umap_embedding(Z, random_state=100)
    assert a.shape == (40, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, umap_embedding(Z, random_state=1))
    assert warm_up_umap() == 0.0  # already warm
    with pytest.raises(LatentError, match="at least 4"):
        umap_embedding(np.zeros((3, 2)))


def test_pca_2d_matches_svd_up_to_sign():
    Z = np.random.default_rng(10).normal(size=(50, 5)) @ np.diag([5, 3, 1, 0.5, 0.1])
    P = pca_2d(Z)
    Zc = Z - Z.mean(0)
    U, S, _ = np.linalg.svd(Zc, full_matrices=False)
    np.testing.assert_allclose(np.abs(P), np.abs(U[:, :2] * S[:2]), atol=1e-10)
    np.testing.assert_array_equal(P, pca_2d(Z))


# ------------------------------------------------------------------------------------------ transport
class _FakeFlow:
    """Moves the source halfway to the target mean each step (enough to check the bookkeeping)."""

    made: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, source, target, config):
        self.Y = np.array(source, dtype=np.float64)
        self.mu = np.asarray(target).mean(0)
        self.n = 0
        self.history = {"steps": []}
        _FakeFlow.made.append((source.shape[0], target.shape[0]))

    def step(self, n):
        for _ in range(n):
            self.Y += 0.5 * (self.mu - self.Y)
            self.n += 1
            self.history["steps"].append(self.n)
        return n

    def particles(self):
        return self.Y[None].copy()  # (K=1, M, d) like GPAFlow


def test_transport_per_label_keeps_row_order_and_reports_progress():
    rng = np.random.default_rng(11)
    Zs = rng.normal(size=(9, 3))
    ls = np.array(["a", "b", "a", "c", "b", "a", "b", "a", "c"])
    Zt = rng.normal(size=(6, 3)) + 10
    lt = np.array(["b", "a", "a", "b", "a", "b"])
    calls = []
    _FakeFlow.made.clear()
    res = transport_per_label(
        Zs, ls, Zt, lt, config=None, steps=30, progress=lambda *a: calls.append(a), chunk=20,
        flow_factory=_FakeFlow,
    )  # fmt: skip
    assert res.transported_labels == ["a", "b"] and res.untouched_labels == ["c"]
    assert _FakeFlow.made == [(4, 3), (3, 3)]
    for lab in ("a", "b"):
        np.testing.assert_allclose(
            res.transported[ls == lab], np.tile(Zt[lt == lab].mean(0), ((ls == lab).sum(), 1))
        )
    np.testing.assert_array_equal(res.transported[ls == "c"], Zs[ls == "c"])
    assert calls == [("a", 20, 30), ("a", 30, 30), ("b", 20, 30), ("b", 30, 30)]
    assert res.steps_done == {"a": 30, "b": 30} and len(res.histories["a"]["steps"]) == 30
    stop = transport_per_label(Zs, ls, Zt, lt, None, 30, should_stop=lambda: True, flow_factory=_FakeFlow)
    assert stop.stopped and stop.steps_done == {"a": 0}
    with pytest.raises(LatentError, match="same d"):
        transport_per_label(Zs, ls, Zt[:, :2], lt, None, 5, flow_factory=_FakeFlow)


# ------------------------------------------------------------------------------------------ integrate
def _score(result, space, label, metric):
    row = next(r for r in result.scores if (r["space"], r["label"], r["metric"]) == (space, label, metric))
    return row["before"], row["after"]


def test_integrate_mean_std_baseline_brings_studies_together(studies, encoder):
    s, t = studies.studies
    res = integrate(s, t, method="mean_std", encoder=encoder, sinkhorn=True)
    for lab in ("ER+", "ER-"):
        for space in ("latent", "genes"):
            before, after = _score(res, space, lab, "W2²")
            assert after < 0.5 * before
        b_sk, a_sk = _score(res, "latent", lab, "Sinkhorn (blur 0.05)")
        assert a_sk < b_sk
    lab_before, lab_after = _score(res, "latent", "all", "silhouette by label")
    assert lab_after >= 0.8 * lab_before
    st_before, st_after = _score(res, "latent", "all", "silhouette by study")
    assert st_after < st_before
    mix_before, mix_after = _score(res, "latent", "all", "k-NN mixing")
    assert mix_before < 0.1 < 0.5 < mix_after
    assert res.source_integrated.shape == s.expression.shape
    assert set(res.score_table().columns) >= {"space", "label", "metric", "before", "after", "relative_%"}


def test_integrate_none_changes_nothing_and_checks_inputs(studies, encoder):
    s, t = studies.studies
    res = integrate(s, t, method="none", encoder=encoder, gene_scores=False)
    for r in res.scores:
        assert r["after"] == pytest.approx(r["before"])
    other = Study(t.expression[:, ::-1], t.gene_ids[::-1], t.sample_ids, labels=t.labels)
    with pytest.raises(GeneDataError, match="align_studies"):
        integrate(s, other, method="none")
    with pytest.raises(LatentError, match="FlowConfig"):
        integrate(s, t, method="gpa", encoder=encoder)
    with pytest.raises(LatentError, match="method"):
        integrate(s, t, method="harmony", encoder=encoder)  # type: ignore[arg-type]


def test_integrate_with_gpa_moves_each_label_towards_its_target(studies):
    pytest.importorskip("gpa_core.engine.flow")
    from gpa_core.config import FlowConfig

    s, t = studies.studies
    cfg = FlowConfig(f="kl", kl_form="dv", L=1.0, dt=0.5, inner_steps=3, steps=25, seed=0, device="cpu")
    res = integrate(
        s, t, method="gpa", n_components=10, latent_scale=10.0, config=cfg, steps=25, gene_scores=False
    )
    assert res.transport is not None
    assert set(res.transport.transported_labels) == {"ER+", "ER-"}
    for lab in ("ER+", "ER-"):
        before, after = _score(res, "latent", lab, "W2²")
        assert after < before
    assert res.source_integrated.shape == s.expression.shape


def test_integrate_combat_baseline_keeps_the_target_and_brings_studies_together(studies, encoder):
    s, t = studies.studies
    res = integrate(s, t, method="combat", encoder=encoder)
    for lab in ("ER+", "ER-"):
        before, after = _score(res, "genes", lab, "W2²")
        assert after < 0.5 * before
    lab_before, lab_after = _score(res, "latent", "all", "silhouette by label")
    assert lab_after >= 0.8 * lab_before
    mix_before, mix_after = _score(res, "latent", "all", "k-NN mixing")
    assert mix_after > 0.5 > mix_before
    np.testing.assert_array_equal(res.Z_target, encoder.encode(t.expression) * encoder.latent_scale)
