"""Scores for dataset integration (§9, Table SM2): silhouettes, k-NN mixing, relative scores.

The distances between the studies' point clouds (exact W₂², the debiased Sinkhorn divergence of
Table SM2) live in :mod:`gpa_core.ot`; this module holds the scores that look at labels:

- :func:`relative_to_raw`: a score as a percentage of the raw (before integration) score;
  :func:`excess_over_floor`: the part of the raw distance that is above the floor, left after.
- :func:`silhouette` and :func:`knn_mixing_score`: is the study effect gone, is biology kept?
  :func:`within_labels` computes a study score inside each label and averages it: pooled over all
  labels, the study scores also see the studies' different label proportions (a source of 60 % ER+
  against a target of 20 % ER+ stays "separated" however well each label is integrated).
- :func:`label_transfer_accuracy`: a k-NN classifier trained on the target, tested on the corrected
  source: does each source sample land among target samples of its own label?
- :func:`spread_ratio` (did a method collapse the source?) and :func:`nearest_target_ratio` (did it
  copy the target's points?): the two ways a distance can fall below the floor.
- :func:`half_splits`: label-stratified random halves of a sample, for the floors — the value each
  score takes between two finite samples of one distribution (two halves of the target);
  :func:`distance_floor`: a distance's floor at the sizes actually compared (halves and quarters of
  the target, extrapolated in the sample size).

``Z`` is an array (n, d) of points (samples), labels have one entry per point. Unusable input raises
:class:`gpa_core.ot.MetricInputError` (a ``ValueError``), the one input error of the distances too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from gpa_core.ot import MetricInputError

__all__ = [
    "distance_floor",
    "excess_over_floor",
    "half_splits",
    "knn_mixing_score",
    "label_transfer_accuracy",
    "nearest_target_ratio",
    "relative_to_raw",
    "silhouette",
    "spread_ratio",
    "within_labels",
]


def relative_to_raw(value: float, raw: float) -> float:
    """``value`` as a percentage of ``raw`` (Table SM2: "GPA leaves 1.47 % of the raw distance")."""
    if not (math.isfinite(raw) and raw > 0):
        raise MetricInputError(f"the raw score must be a positive number to compare against, got {raw!r}.")
    return 100.0 * float(value) / float(raw)


def excess_over_floor(value: float, raw: float, floor: float) -> float:
    """The share (%) of the raw distance's excess over the floor that is left: 100·(value − floor) /
    (raw − floor). 0 = as close as two samples of the target's distribution are to each other,
    100 = nothing gained; below 0 = closer than that (the source collapsed or copies the target's
    points, see :func:`spread_ratio`, :func:`nearest_target_ratio`). NaN when raw ≤ floor (there
    was no batch effect to measure) or the floor is unknown."""
    if not (math.isfinite(raw) and math.isfinite(floor) and math.isfinite(value)) or raw <= floor:
        return math.nan
    return 100.0 * (float(value) - float(floor)) / (float(raw) - float(floor))


# ------------------------------------------------------------------------------------------ mixing
def _labels(labels: Sequence[object] | np.ndarray, n: int, name: str) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise MetricInputError(f"{name} must have one entry per point ({n}), got shape {arr.shape}.")
    return arr


def silhouette(Z: np.ndarray, labels: Sequence[object] | np.ndarray) -> float:
    """Mean silhouette of ``labels`` in ``Z`` (Euclidean, scikit-learn), in [−1, 1].

    By study: near 0 (or below) means the studies are mixed; by ER label: high means the biology is kept.
    """
    from sklearn.metrics import silhouette_score

    Z = np.asarray(Z)
    lab = _labels(labels, Z.shape[0], "labels")
    k = np.unique(lab).shape[0]
    if not 2 <= k <= Z.shape[0] - 1:
        raise MetricInputError(
            f"silhouette needs between 2 and n − 1 distinct labels, got {k} for {Z.shape[0]} points."
        )
    return float(silhouette_score(np.asarray(Z, dtype=np.float64), lab))


def knn_mixing_score(Z: np.ndarray, study_labels: Sequence[object] | np.ndarray, k: int = 15) -> float:
    """k-NN mixing: how often a point's neighbours come from another study, relative to perfect mixing.

    For point i from study s_i, with its k nearest neighbours N_i (itself excluded):
    f_i = |{j ∈ N_i : s_j ≠ s_i}| / k, and e_i = (n − n_{s_i}) / (n − 1) is the fraction of all other
    points that lie in another study (what f_i would be on average if study membership were random).
    Score = mean_i f_i / e_i: ≈ 1 for well-mixed studies, 0 for separated ones (can exceed 1 slightly).
    ``k`` is capped at n − 1.
    """
    from sklearn.neighbors import NearestNeighbors

    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0]
    lab = _labels(study_labels, n, "study_labels")
    values, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    if values.shape[0] < 2:
        raise MetricInputError("knn_mixing_score needs points from at least two studies.")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MetricInputError(f"k must be a positive integer, got {k!r}.")
    k = int(min(k, n - 1))
    idx = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z, return_distance=False)
    # drop the point itself (normally column 0; with duplicate points it may sit elsewhere)
    is_self = idx == np.arange(n)[:, None]
    has_self = is_self.any(axis=1)
    is_self[~has_self, -1] = True
    neighbours = idx[~is_self].reshape(n, k)
    other = (inverse[neighbours] != inverse[:, None]).mean(axis=1)
    expected = (n - counts[inverse]) / (n - 1)
    return float(np.mean(other / expected))


# ------------------------------------------------------------------------------------------ per label
def within_labels(
    score: Callable[[np.ndarray, np.ndarray], float],
    Z: np.ndarray,
    study_labels: Sequence[object] | np.ndarray,
    labels: Sequence[object] | np.ndarray,
) -> float:
    """``score(Z_l, study_l)`` inside each label l that has points of at least two studies (and at
    least 3 points), averaged with weights = the label's number of points. NaN if no label qualifies.

    Use it for the study scores (:func:`silhouette` of the study, :func:`knn_mixing_score`): pooled
    over all labels they also measure the difference of the studies' label proportions."""
    Z = np.asarray(Z)
    st = _labels(study_labels, Z.shape[0], "study_labels")
    lab = _labels(labels, Z.shape[0], "labels")
    total, weight = 0.0, 0
    for value in dict.fromkeys(lab.tolist()):
        m = lab == value
        if m.sum() < 3 or np.unique(st[m]).shape[0] < 2:
            continue
        total += float(score(Z[m], st[m])) * int(m.sum())
        weight += int(m.sum())
    return total / weight if weight else math.nan


def label_transfer_accuracy(
    Z_train: np.ndarray,
    y_train: Sequence[object] | np.ndarray,
    Z_test: np.ndarray,
    y_test: Sequence[object] | np.ndarray,
    k: int = 15,
) -> float:
    """Fraction of test points whose label a k-NN classifier (Euclidean, majority of the k nearest
    training points, ties to the nearer class as scikit-learn breaks them) trained on
    (``Z_train``, ``y_train``) predicts correctly. In integration: train on the target, test on the
    corrected source. ``k`` is capped at the number of training points; a test label absent from
    the training labels counts as wrong."""
    from sklearn.neighbors import KNeighborsClassifier

    A = np.asarray(Z_train, dtype=np.float64)
    B = np.asarray(Z_test, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1] or A.shape[0] < 1 or B.shape[0] < 1:
        raise MetricInputError(
            "Z_train and Z_test must be (n, d) arrays with the same d and n ≥ 1, "
            f"got {A.shape} and {B.shape}."
        )
    ya = _labels(y_train, A.shape[0], "y_train").astype(str)
    yb = _labels(y_test, B.shape[0], "y_test").astype(str)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MetricInputError(f"k must be a positive integer, got {k!r}.")
    clf = KNeighborsClassifier(n_neighbors=int(min(k, A.shape[0]))).fit(A, ya)
    return float(np.mean(clf.predict(B) == yb))


def spread_ratio(A: np.ndarray, T: np.ndarray) -> float:
    """tr Cov(A) / tr Cov(T): the spread of the (corrected) source ``A`` against the target ``T``'s,
    both about their own means. ≈ 1: the source keeps the target's spread; ≪ 1: it collapsed onto
    its mean, which lowers W₂² below the floor (W₂² of a point mass at T's mean is tr Cov(T))."""
    A = np.asarray(A, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if A.ndim != 2 or T.ndim != 2 or A.shape[1] != T.shape[1] or A.shape[0] < 2 or T.shape[0] < 2:
        raise MetricInputError(
            f"spread_ratio needs two (n ≥ 2, d) arrays with the same d, got {A.shape} and {T.shape}."
        )
    vt = float(T.var(axis=0).sum())
    return float(A.var(axis=0).sum()) / vt if vt > 0 else math.nan


def nearest_target_ratio(A: np.ndarray, T: np.ndarray) -> float:
    """Median distance from each point of ``A`` to its nearest point of ``T``, over the median
    distance from each point of ``T`` to its nearest *other* point of ``T``.

    ≈ 1 for a sample of T's distribution independent of T; ≪ 1 when A copies T's points (a particle
    flow run long enough converges to the target's empirical measure: its W₂² to T falls below the
    floor without coming closer to T's distribution, as a held-out half of T shows)."""
    from sklearn.neighbors import NearestNeighbors

    A = np.asarray(A, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if A.ndim != 2 or T.ndim != 2 or A.shape[1] != T.shape[1] or A.shape[0] < 1 or T.shape[0] < 2:
        raise MetricInputError(
            f"nearest_target_ratio needs A (n ≥ 1, d) and T (m ≥ 2, d), got {A.shape}, {T.shape}."
        )
    nn = NearestNeighbors(n_neighbors=2).fit(T)
    d_at = nn.kneighbors(A, n_neighbors=1)[0][:, 0]
    d_tt = nn.kneighbors(T, n_neighbors=2)[0][:, 1]
    ref = float(np.median(d_tt))
    return float(np.median(d_at)) / ref if ref > 0 else math.nan


def half_splits(labels: Sequence[object] | np.ndarray, n_splits: int = 5, seed: int = 0) -> list[np.ndarray]:
    """``n_splits`` random label-stratified halves of a sample: boolean masks, True = the first half
    (⌊n_l/2⌋ of each label's n_l points). Seeded and deterministic."""
    lab = np.asarray(labels).astype(str)
    if lab.ndim != 1:
        raise MetricInputError(f"labels must be 1-D, got shape {lab.shape}.")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 1:
        raise MetricInputError(f"n_splits must be a positive integer, got {n_splits!r}.")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(lab == v) for v in dict.fromkeys(lab.tolist())]
    masks = []
    for _ in range(int(n_splits)):
        m = np.zeros(lab.shape[0], dtype=bool)
        for idx in groups:
            m[rng.permutation(idx)[: idx.shape[0] // 2]] = True
        masks.append(m)
    return masks


def distance_floor(
    distance: Callable[[np.ndarray, np.ndarray], float],
    T: np.ndarray,
    n_source: int,
    n_splits: int = 5,
    seed: int = 0,
) -> float:
    """The floor of ``distance`` between a sample of ``n_source`` points and ``T``: its expected
    value if those points were a fresh sample of ``T``'s distribution (what a perfect integration
    would score). NaN for fewer than 4 points in ``T``.

    Estimated from ``T`` alone, per random split (mean over ``n_splits``, seeded): the distance
    between two disjoint halves of h = ⌊m/2⌋ points, v_h, and between quarters (q = ⌊h/2⌋, the
    mean over the two halves), v_q. An empirical distance between two samples of one distribution
    shrinks with their size like m^(−α) (W₂² at rate m^(−2/d) in d dimensions for large m), so
    α = log(v_q/v_h)/log(h/q), clipped to [0, 1], and the floor is v_h·(m*/h)^(−α) with
    m* = min(n_source, len(T)) (the smaller sample dominates). The halves alone read up to 25 %
    high (a larger source than half the target) or 25 % low (a small source) in 50 dimensions and
    2× high in 4; extrapolated, the floor is within about 10 % in 10–50 dimensions for 20–200
    points (README, "Latent integration, measured")."""
    T = np.asarray(T)
    m = T.shape[0]
    if m < 4:
        return math.nan
    if isinstance(n_source, bool) or not isinstance(n_source, int | np.integer) or n_source < 1:
        raise MetricInputError(f"n_source must be a positive integer, got {n_source!r}.")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer) or n_splits < 1:
        raise MetricInputError(f"n_splits must be a positive integer, got {n_splits!r}.")
    rng = np.random.default_rng(seed)
    h = m // 2
    q = h // 2
    target_size = min(int(n_source), m)
    values = []
    for _ in range(int(n_splits)):
        p = rng.permutation(m)
        A, B = T[p[:h]], T[p[h : 2 * h]]
        v_h = float(distance(A, B))
        alpha = 0.0
        if q >= 2 and v_h > 0:
            v_q = 0.5 * (float(distance(A[:q], A[q : 2 * q])) + float(distance(B[:q], B[q : 2 * q])))
            if v_q > 0:
                alpha = min(max(math.log(v_q / v_h) / math.log(h / q), 0.0), 1.0)
        values.append(v_h * (target_size / h) ** (-alpha))
    return float(np.mean(values))
