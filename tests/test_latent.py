"""Latent-space pipeline: PCA encoder/decoder, baselines, integration scores, 2-D views, transport."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tolerances import gamma

import gpa_core.genes.encoder as encoder_module
from gpa_core.genes.encoder import AUTO_MEDIAN_DISTANCE
from gpa_core.genes.latent import (
    REACHED_FLOOR,
    LatentError,
    PCAEncoder,
    assessment,
    default_settings,
    flow_config,
    integrate,
    label_floors,
    mean_std_baseline,
    pca_2d,
    transport_per_label,
    umap_embedding,
    verdict,
    warm_up_umap,
)
from gpa_core.genes.scores import (
    distance_floor,
    excess_over_floor,
    half_splits,
    knn_mixing_score,
    label_transfer_accuracy,
    nearest_target_ratio,
    relative_to_raw,
    silhouette,
    spread_ratio,
    within_labels,
)
from gpa_core.genes.study import GeneDataError, Study, make_synthetic_studies
from gpa_core.ot import MetricInputError, median_pairwise_distance
from gpa_core.ot import wasserstein2_squared as w2


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
# (the distances themselves, W₂² and the Sinkhorn divergence, are tested in test_ot.py)
def test_score_input_errors():
    # the one input error of gpa_core.ot, a ValueError
    with pytest.raises(MetricInputError, match="distinct labels"):
        silhouette(np.zeros((4, 2)), ["a"] * 4)
    assert relative_to_raw(5.0, 200.0) == pytest.approx(2.5)
    with pytest.raises(MetricInputError, match="raw score"):
        relative_to_raw(1.0, 0.0)


def test_knn_mixing_mixed_vs_separated():
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(300, 3))
    study = rng.permutation(np.array(["s"] * 100 + ["t"] * 200))
    assert knn_mixing_score(Z, study, k=15) == pytest.approx(1.0, abs=0.15)
    Z2 = np.vstack([rng.normal(size=(100, 3)), rng.normal(size=(200, 3)) + 50])
    assert knn_mixing_score(Z2, np.array(["s"] * 100 + ["t"] * 200), k=15) == 0.0
    with pytest.raises(MetricInputError, match="two studies"):
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


def test_umap_warm_up_in_background_runs_once_per_process():
    from gpa_core.genes.views import warm_up_umap_in_background

    # app.py may already have started it in this process (an AppTest of app.py): then that thread counts
    thread = warm_up_umap_in_background(wait_for=lambda: True)
    assert warm_up_umap_in_background() is thread  # once per process
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert warm_up_umap() == 0.0  # the first UMAP on a page finds it compiled


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


# ------------------------------------------------------------------------------------------ floors
def _two_samples_of_one_distribution(seed=0, n_s=(50, 10), n_t=(10, 50)):
    """Two studies drawn from one distribution per label (no batch effect), label proportions differing."""
    rng = np.random.default_rng(seed)
    centres = {"a": np.zeros(4), "b": np.full(4, 6.0)}

    def study(counts, prefix):
        labels = np.array(["a"] * counts[0] + ["b"] * counts[1])
        X = np.vstack([rng.normal(size=(c, 4)) + centres[lab] for lab, c in zip("ab", counts, strict=True)])
        return Study(
            X, [f"g{i}" for i in range(4)], [f"{prefix}{i}" for i in range(len(labels))], labels=labels
        )

    return study(n_s, "s"), study(n_t, "t")


def test_label_transfer_accuracy_known_answers():
    rng = np.random.default_rng(20)
    train = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 10])
    y = np.array(["a"] * 30 + ["b"] * 30)
    test = np.vstack([rng.normal(size=(10, 2)), rng.normal(size=(10, 2)) + 10])
    right = np.array(["a"] * 10 + ["b"] * 10)
    assert label_transfer_accuracy(train, y, test, right, k=5) == 1.0
    assert label_transfer_accuracy(train, y, test, right[::-1], k=5) == 0.0
    half = np.array(["a"] * 5 + ["b"] * 5 + ["b"] * 10)  # 5 of the 10 "a" points carry the wrong label
    assert label_transfer_accuracy(train, y, test, half, k=5) == 0.75
    assert (
        label_transfer_accuracy(train, y, test, np.array(["c"] * 20), k=500) == 0.0
    )  # k capped, unknown label
    with pytest.raises(MetricInputError, match="same d"):
        label_transfer_accuracy(train, y, test[:, :1], right)


def test_half_splits_are_stratified_and_seeded():
    labels = np.array(["a"] * 7 + ["b"] * 10 + ["c"])
    masks = half_splits(labels, 4, seed=3)
    assert len(masks) == 4
    for m in masks:
        assert (m[labels == "a"].sum(), m[labels == "b"].sum(), m[labels == "c"].sum()) == (3, 5, 0)
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])
    assert all(np.array_equal(a, b) for a, b in zip(masks, half_splits(labels, 4, seed=3), strict=True))


def test_floor_matches_two_independent_samples_of_one_distribution():
    """The floor of W₂² between n_s points and T, estimated from T alone, is the mean W₂² between a
    fresh sample of n_s points of T's distribution and T: within 20 % (its measured error is ~10 %
    in 10–50 dimensions), where the plain halves of T read low for a small source."""
    rng = np.random.default_rng(21)
    d, n_t = 10, 100
    T = rng.normal(size=(n_t, d))
    for n_s in (20, 60, 100):
        fresh = np.mean([w2(rng.normal(size=(n_s, d)), T, max_points=None) for _ in range(20)])
        fl = label_floors(T, None, {"all": n_s}, n_splits=10, seed=0)["all"]
        assert fl == pytest.approx(fresh, rel=0.2), (n_s, fl, fresh)
        assert distance_floor(lambda a, b: w2(a, b, max_points=None), T, n_s, 10) == pytest.approx(fl)
    halves = np.mean([w2(T[h], T[~h], max_points=None) for h in half_splits(np.zeros(n_t), 10)])
    small = np.mean([w2(rng.normal(size=(20, d)), T, max_points=None) for _ in range(20)])
    assert halves < 0.9 * small  # why the halves alone are not the floor
    assert np.isnan(label_floors(T[:3], None)["all"])  # too few points for two halves


def test_integrate_on_two_samples_of_one_distribution_scores_at_the_floor():
    """No batch effect: every score 'before' sits at its floor, and the pooled study scores see only
    the different label proportions (50/10 against 10/50), which the within-label ones do not."""
    s, t = _two_samples_of_one_distribution()
    res = integrate(s, t, method="none", n_components=4, gene_scores=False, floor_splits=10)
    for lab in ("a", "b"):
        row = res.score("W2²", lab)
        assert 0.6 < row["before"] / row["floor"] < 1.6
        assert -60 < row["excess_%"] < 60 or math.isnan(row["excess_%"])
        for metric in ("spread ratio", "nearest-target ratio"):
            assert 0.6 < res.score(metric, lab)["before"] < 1.6
    within = res.score("k-NN mixing (within labels)")
    assert within["before"] == pytest.approx(within["floor"], abs=0.2)
    assert abs(res.score("silhouette by study (within labels)")["before"]) < 0.05
    assert res.score("k-NN mixing")["before"] < within["before"] - 0.3  # the label-proportion artefact
    assert res.score("silhouette by study")["before"] > 0.05
    assert res.score("label transfer accuracy")["before"] == 1.0
    assert set(res.score_table().columns) >= {"floor", "floor_%", "excess_%"}


def test_within_labels_averages_by_label_size_and_skips_one_study_labels():
    Z = np.arange(12, dtype=float)[:, None]
    study = np.array(["s", "t"] * 6)
    labels = np.array(["a"] * 4 + ["b"] * 6 + ["c"] * 2)
    labels[10:] = "c"
    study[10:] = "s"  # label c: one study only, skipped
    seen = []

    def score(z, st):
        seen.append(z.shape[0])
        return float(z.shape[0])

    assert within_labels(score, Z, study, labels) == pytest.approx((4 * 4 + 6 * 6) / 10)
    assert seen == [4, 6]
    assert math.isnan(within_labels(score, Z, np.array(["s"] * 12), labels))


def test_excess_spread_and_nearest_target_ratios():
    assert excess_over_floor(30.0, 100.0, 20.0) == pytest.approx(12.5)
    assert excess_over_floor(20.0, 100.0, 20.0) == 0.0
    assert excess_over_floor(10.0, 100.0, 20.0) < 0
    assert math.isnan(excess_over_floor(10.0, 20.0, 20.0)) and math.isnan(
        excess_over_floor(1.0, 5.0, math.nan)
    )
    rng = np.random.default_rng(22)
    T = rng.normal(size=(200, 3))
    fresh = rng.normal(size=(200, 3))
    assert spread_ratio(fresh, T) == pytest.approx(1.0, abs=0.2)
    assert spread_ratio(np.tile(T.mean(0), (50, 1)), T) < 1e-12  # collapsed onto the mean
    assert nearest_target_ratio(fresh, T) == pytest.approx(1.0, abs=0.3)
    assert nearest_target_ratio(T[:50] + 1e-9, T) < 1e-6  # copies of the target's points


def test_transport_stops_each_label_at_its_floor():
    rng = np.random.default_rng(23)
    Zs = rng.normal(size=(20, 2)) + 30
    ls = np.array(["a", "b"] * 10)
    Zt = rng.normal(size=(20, 2))
    lt = np.array(["a", "b"] * 10)
    # the fake flow halves the distance to the target mean per step; stop "a" once W₂² ≤ 5
    res = transport_per_label(Zs, ls, Zt, lt, None, 40, chunk=1, flow_factory=_FakeFlow, stop_at={"a": 5.0})
    assert res.status["a"] == REACHED_FLOOR and res.steps_done["a"] < 10
    assert w2(res.transported[ls == "a"], Zt[lt == "a"], max_points=None) <= 5.0
    assert res.steps_done["b"] == 40 and res.status["b"] != REACHED_FLOOR


def test_integrate_stop_at_floor_and_the_verdict_flags_collapse(studies, encoder):
    """The fake flow collapses each label onto its target mean: below the floor, spread ratio ~0;
    with stop_at_floor it stops as soon as it is down to the floor instead."""
    s, t = studies.studies
    kw = {"method": "gpa", "encoder": encoder, "config": object(), "steps": 30, "flow_factory": _FakeFlow}
    full = integrate(s, t, gene_scores=False, **kw)
    a = assessment(full)
    assert "collapsed" in a["flags"] and a["excess_%"] < 0
    stopped = integrate(s, t, gene_scores=False, stop_at_floor=True, **kw)
    t_ = stopped.transport
    assert REACHED_FLOOR in t_.status.values()
    for lab in stopped.labels:  # stopped at the floor, or never reached it (a point mass is above it)
        w, floor = stopped.score("W2²", lab)["after"], stopped.score("W2²", lab)["floor"]
        reached = t_.status[lab] == REACHED_FLOOR
        assert (reached and w <= floor) or (not reached and w > floor)
    base = integrate(s, t, method="mean_std", encoder=encoder, gene_scores=False)
    none = integrate(s, t, method="none", encoder=encoder, gene_scores=False)
    v = verdict({"none": none, "mean_std": base, "gpa": full})
    assert v["best"] == "mean_std"  # GPA's collapse is flagged, "none" is never chosen
    assert len(v["lines"]) == 3 and "collapsed" in v["lines"][2]
    assert v["methods"]["none"]["remaining_%"] == pytest.approx(100.0)


def test_latent_scale_auto_and_with_latent_scale(studies):
    s, t = studies.studies
    enc = PCAEncoder(10, latent_scale="auto").fit(s.expression, t.expression)
    assert enc.latent_scale_auto and enc.latent_scale > 1
    Z = np.vstack([enc.encode(s.expression), enc.encode(t.expression)])
    assert median_pairwise_distance(Z) == pytest.approx(AUTO_MEDIAN_DISTANCE, rel=1e-4)
    plain = enc.with_latent_scale(1.0)
    np.testing.assert_allclose(plain.encode(s.expression), enc.encode(s.expression) * enc.latent_scale)
    assert plain.components_ is enc.components_  # no refit
    np.testing.assert_allclose(plain.with_latent_scale("auto").encode(s.expression), enc.encode(s.expression))
    with pytest.raises(LatentError, match="auto"):
        PCAEncoder(3, latent_scale="big")
    with pytest.raises(LatentError, match="positive"):
        plain.with_latent_scale(-1.0)


def test_default_settings_from_the_data(encoder, studies):
    s, t = studies.studies
    Zs, Zt = encoder.encode(s.expression), encoder.encode(t.expression)
    d = default_settings(Zs, Zt, s.labels, t.labels, n_genes=s.n_genes)
    assert d["latent_scale"] == pytest.approx(median_pairwise_distance(np.vstack([Zs, Zt])) / 5)
    assert d["steps"] == 5000 and d["stop_at_floor"] and (d["L"], d["dt"]) == (1.0, 0.2)
    assert d["n_components"] == 50
    assert len(d["notes"]) == 2 and "12 target samples in d′ = 50" in d["notes"][0]  # ER+: 34 → 12
    tiny = default_settings(Zs[:10], Zt[:3], s.labels[:10], t.labels[:3])
    assert tiny["n_components"] == 12 and any("too few for a floor" in n for n in tiny["notes"])
    cfg = flow_config(d)
    assert (cfg.f, cfg.kl_form, cfg.L, cfg.dt, cfg.inner_steps, cfg.steps) == ("kl", "dv", 1.0, 0.2, 5, 5000)
