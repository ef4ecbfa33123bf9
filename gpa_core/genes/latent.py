"""Latent-space GPA for dataset integration (paper §9): baselines, per-label transport, integrate.

Pipeline: two studies on the same genes → :class:`~gpa_core.genes.encoder.PCAEncoder` (per-gene
standardization and PCA fitted on both studies together, the paper's linear autoencoder) →
transport each label's source samples to the same label's target samples with its own GPA flow
(:func:`transport_per_label`), or the baseline (:func:`mean_std_baseline`) → decode → scores
(:mod:`gpa_core.ot`, :mod:`gpa_core.genes.scores`); 2-D views in :mod:`gpa_core.genes.views`.
:func:`integrate` runs the whole thing. The encoder and the views are re-exported here. ComBat is
our own (:mod:`gpa_core.genes.combat`, checked against scanpy).

Every score comes with its floor: its value between two halves of the target study (two finite
samples of one distribution), so that "60 % of the raw distance" can be read as good or bad.
:data:`GPA_DEFAULTS` and :func:`default_settings` are the settings chosen from the data (README,
"Latent integration, measured"): the latent space scaled so the median distance between two samples
is 5, the paper's flow (KL, L = 1, Δt = 0.2, 5 inner steps) for at most the paper's 5000 steps, each
label's flow stopped once its W₂² to the target is down to the floor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gpa_core.genes.encoder import (
    AUTO_MEDIAN_DISTANCE,
    LatentError,
    PCAEncoder,
    as_matrix,
)
from gpa_core.genes.scores import (
    distance_floor,
    excess_over_floor,
    half_splits,
    knn_mixing_score,
    label_transfer_accuracy,
    nearest_target_ratio,
    silhouette,
    spread_ratio,
    within_labels,
)
from gpa_core.genes.study import GeneDataError, Study
from gpa_core.genes.views import pca_2d, umap_embedding, warm_up_umap
from gpa_core.ot import median_pairwise_distance, sinkhorn_divergence, wasserstein2_squared

__all__ = [
    "GPA_DEFAULTS",
    "METHODS",
    "PAPER_PAGE_SETTINGS",
    "POOLED_METRICS",
    "REACHED_FLOOR",
    "IntegrationResult",
    "LatentError",
    "PCAEncoder",
    "TransportResult",
    "assessment",
    "combat_baseline",
    "default_settings",
    "flow_config",
    "integrate",
    "label_floors",
    "mean_std_baseline",
    "pca_2d",
    "transport_per_label",
    "umap_embedding",
    "verdict",
    "warm_up_umap",
]


# ------------------------------------------------------------------------------------------ defaults
#: The settings chosen from the measurements (README, "Latent integration, measured"). The flow is
#: the paper's Fig. 8 flow (KL in Donsker–Varadhan form, L = 1, Δt = 0.2, 5 inner Adam steps at
#: lr 1e-3, 3×32 ReLU, Euler) for at most its 5000 steps; what changes is ``latent_scale="auto"``
#: (the latent data divided so that the median distance between two samples is 5: one step then
#: moves a particle at most L·Δt = 4 % of it, where in plain PCA units it moved 0.2 of a median
#: distance of 47–96, and the flows hardly moved in 300 steps) and ``stop_at_floor`` (a label's
#: flow stops once its W₂² to its target is down to the floor: below it, it only copies the
#: target's points).
GPA_DEFAULTS: dict[str, Any] = {
    "n_components": 50,
    "latent_scale": "auto",
    "f": "kl",
    "kl_form": "dv",
    "L": 1.0,
    "dt": 0.2,
    "inner_steps": 5,
    "lr": 1e-3,
    "hidden": (32, 32, 32),
    "solver": "euler",
    "steps": 5000,
    "stop_at_floor": True,
    "floor_splits": 5,
}
#: The page's settings before (the paper's flow for 300 steps in plain PCA units), for comparison.
PAPER_PAGE_SETTINGS: dict[str, Any] = {
    **GPA_DEFAULTS,
    "latent_scale": 1.0,
    "steps": 300,
    "stop_at_floor": False,
}
#: a label's flow status when it stopped at its floor (``stop_at_floor``)
REACHED_FLOOR = "reached the floor"
_FLOW_KEYS = ("f", "kl_form", "L", "dt", "inner_steps", "lr", "hidden", "solver", "steps")


def flow_config(settings: dict[str, Any] | None = None, **changes: Any) -> Any:
    """The :class:`gpa_core.config.FlowConfig` of ``settings`` (default :data:`GPA_DEFAULTS`) with
    ``changes``, on the CPU."""
    from gpa_core.config import FlowConfig

    merged = {**(settings or GPA_DEFAULTS), **changes}
    return FlowConfig(device="cpu", **{k: merged[k] for k in _FLOW_KEYS})


def default_settings(
    Z_source: np.ndarray,
    Z_target: np.ndarray,
    source_labels: Sequence[str] | np.ndarray | None = None,
    target_labels: Sequence[str] | np.ndarray | None = None,
    *,
    n_genes: int | None = None,
) -> dict[str, Any]:
    """The settings for these data: :data:`GPA_DEFAULTS` with numbers in place of "auto", and notes.

    ``Z_source``, ``Z_target``: the studies' latent coordinates in plain PCA units (an encoder fitted
    with ``latent_scale=1``, or ``encode(X) · latent_scale``). Returns the dict of
    :data:`GPA_DEFAULTS` with ``latent_scale`` = median distance between two samples /
    :data:`~gpa_core.genes.encoder.AUTO_MEDIAN_DISTANCE`, ``n_components`` capped at the samples − 1
    (and ``n_genes``), ``median_distance`` and ``notes`` (a list of sentences for the user: labels
    with too few samples for a flow or a floor, a latent dimension above the samples of a label).
    With an encoder built as ``PCAEncoder(d, latent_scale="auto")`` the same scale is chosen at fit.
    """
    Zs = np.asarray(Z_source, dtype=np.float64)
    Zt = np.asarray(Z_target, dtype=np.float64)
    if Zs.ndim != 2 or Zt.ndim != 2 or Zs.shape[1] != Zt.shape[1]:
        raise LatentError(
            f"Z_source and Z_target must be (n, d) with the same d, got {Zs.shape}, {Zt.shape}."
        )
    out = dict(GPA_DEFAULTS)
    med = median_pairwise_distance(np.vstack([Zs, Zt]))
    out["median_distance"] = med
    out["latent_scale"] = med / AUTO_MEDIAN_DISTANCE if med > 0 else 1.0
    n = Zs.shape[0] + Zt.shape[0]
    cap = n - 1 if n_genes is None else min(n - 1, int(n_genes))
    out["n_components"] = int(max(1, min(GPA_DEFAULTS["n_components"], cap)))
    notes: list[str] = []
    ls = _label_array(source_labels, Zs.shape[0], "source_labels")
    lt = _label_array(target_labels, Zt.shape[0], "target_labels")
    for lab in _shared_labels(ls, lt):
        n_s, n_t = int((ls == lab).sum()), int((lt == lab).sum())
        if n_t < MIN_FLOOR_POINTS:
            notes.append(
                f"{lab}: {n_t} target samples, too few for a floor (two halves of at least "
                f"{MIN_FLOOR_POINTS // 2}); its flow runs all its steps and ends on copies of those samples."
            )
        elif min(n_s, n_t) < out["n_components"]:
            notes.append(
                f"{lab}: {n_s} source and {n_t} target samples in d′ = {out['n_components']} dimensions: "
                "the floor is large against the raw distance (any method's W₂² reads high)."
            )
    out["notes"] = notes
    return out


# ------------------------------------------------------------------------------------------ baselines
def _label_array(labels: object, n: int, name: str) -> np.ndarray:
    if labels is None:
        return np.full(n, "all")
    arr = np.asarray(labels).astype(str)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise LatentError(f"{name} must have one label per sample ({n}), got shape {arr.shape}.")
    return arr


def _shared_labels(ls: np.ndarray, lt: np.ndarray) -> list[str]:
    """Labels present in both studies, in the source's order of first appearance."""
    seen: dict[str, None] = {}
    for lab in ls.tolist():
        seen.setdefault(lab, None)
    target = set(lt.tolist())
    return [lab for lab in seen if lab in target]


def mean_std_baseline(
    source: np.ndarray,
    source_labels: Sequence[str] | np.ndarray | None,
    target: np.ndarray,
    target_labels: Sequence[str] | np.ndarray | None,
    *,
    eps: float = 1e-8,
) -> np.ndarray:
    """The paper's baseline (Fig. 8b): per label, z-score each gene (column) in the source and
    rescale it with the target's mean and standard deviation of that label (population std, ddof 0).

    Works in any space (genes or latent). A gene with zero spread in the source maps to the
    target's mean. Every source label must occur in the target. Labels None = one group.
    """
    Xs = as_matrix(source, "source")
    Xt = as_matrix(target, "target")
    if Xs.shape[1] != Xt.shape[1]:
        raise LatentError(
            f"source and target must have the same columns, got {Xs.shape[1]} and {Xt.shape[1]}."
        )
    ls = _label_array(source_labels, Xs.shape[0], "source_labels")
    lt = _label_array(target_labels, Xt.shape[0], "target_labels")
    missing = sorted(set(ls.tolist()) - set(lt.tolist()))
    if missing:
        raise LatentError(
            f"source label(s) {', '.join(map(repr, missing))} do not occur in the target; "
            "the baseline maps each label onto the same label in the target."
        )
    out = np.empty_like(Xs)
    for lab in _shared_labels(ls, lt):
        rows_s = ls == lab
        A = Xs[rows_s].astype(np.float64)
        T = Xt[lt == lab].astype(np.float64)
        mu_s, sd_s = A.mean(axis=0), A.std(axis=0)
        mu_t, sd_t = T.mean(axis=0), T.std(axis=0)
        z = np.divide(A - mu_s, sd_s, out=np.zeros_like(A), where=sd_s > eps)
        out[rows_s] = (z * sd_t + mu_t).astype(out.dtype, copy=False)
    return out


# ------------------------------------------------------------------------------------------ transport
@dataclass
class TransportResult:
    """Per-label GPA transport in latent space.

    ``transported`` has the source rows in their original order; rows of labels absent from the
    target (``untouched_labels``) are left where they were. ``histories[label]`` is that label's
    flow history (one member's arrays), ``status[label]`` its final status."""

    transported: np.ndarray
    histories: dict[str, Any] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    transported_labels: list[str] = field(default_factory=list)
    untouched_labels: list[str] = field(default_factory=list)
    steps_done: dict[str, int] = field(default_factory=dict)
    stopped: bool = False


def _default_flow_factory(source: np.ndarray, target: np.ndarray, config: Any) -> Any:
    from gpa_core.engine.flow import GPAFlow

    return GPAFlow(source, target, config)


def transport_per_label(
    Z_source: np.ndarray,
    source_labels: Sequence[str] | np.ndarray | None,
    Z_target: np.ndarray,
    target_labels: Sequence[str] | np.ndarray | None,
    config: Any,
    steps: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    *,
    chunk: int = 50,
    should_stop: Callable[[], bool] | None = None,
    flow_factory: Callable[[np.ndarray, np.ndarray, Any], Any] | None = None,
    stop_at: dict[str, float] | None = None,
) -> TransportResult:
    """Transport each label's source points to the same label's target points with its own GPA flow
    (its own discriminator, as in the paper's maps T^{n,+} and T^{n,−}).

    ``config`` is a :class:`gpa_core.config.FlowConfig`; ``steps`` (default ``config.steps``) is the
    number of particle steps per label, run in chunks of ``chunk`` with ``progress(label, done,
    total)`` after each; ``should_stop()`` returning True ends early (``stopped=True``, partial
    result). ``flow_factory(source, target, config)`` replaces GPAFlow (tests, other engines).
    ``stop_at[label]``: a W₂² (in the coordinates given) at which that label's flow stops, checked
    after every chunk (exact W₂² of the particles to the label's target; status
    :data:`REACHED_FLOOR`): :func:`integrate` passes the floors.
    """
    Zs = np.asarray(Z_source, dtype=np.float64)
    Zt = np.asarray(Z_target, dtype=np.float64)
    if Zs.ndim != 2 or Zt.ndim != 2 or Zs.shape[1] != Zt.shape[1]:
        raise LatentError(
            f"Z_source and Z_target must be (n, d) with the same d, got {Zs.shape} and {Zt.shape}."
        )
    ls = _label_array(source_labels, Zs.shape[0], "source_labels")
    lt = _label_array(target_labels, Zt.shape[0], "target_labels")
    total = int(steps if steps is not None else getattr(config, "steps", 0))
    if total < 0:
        raise LatentError(f"steps must be ≥ 0, got {total}.")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise LatentError(f"chunk must be a positive integer, got {chunk!r}.")
    if (
        steps is not None
        and hasattr(config, "replace")
        and getattr(config, "steps", total) != total
        and total > 0
    ):
        config = config.replace(steps=total)  # GPAFlow stops at config.steps
    factory = flow_factory or _default_flow_factory
    dtype = np.float64 if getattr(config, "dtype", "float32") == "float64" else np.float32
    result = TransportResult(transported=Zs.copy())
    labels = _shared_labels(ls, lt)
    result.untouched_labels = [lab for lab in dict.fromkeys(ls.tolist()) if lab not in labels]
    for lab in labels:
        rows = np.flatnonzero(ls == lab)
        T = Zt[lt == lab]
        flow = factory(Zs[rows].astype(dtype), T.astype(dtype), config)
        goal = math.nan if stop_at is None else float(stop_at.get(lab, math.nan))
        done, at_floor = 0, False
        while done < total:
            if should_stop is not None and should_stop():
                result.stopped = True
                break
            taken = flow.step(min(chunk, total - done))
            taken = min(chunk, total - done) if taken is None else int(taken)
            if taken <= 0:
                break  # finished early (diverged or converged)
            done += taken
            if progress is not None:
                progress(lab, done, total)
            if math.isfinite(goal) and wasserstein2_squared(_particles(flow), T, max_points=None) <= goal:
                at_floor = True
                break
        P = _particles(flow)
        result.transported[rows] = P
        result.transported_labels.append(lab)
        result.steps_done[lab] = done
        hist = getattr(flow, "history", None)
        result.histories[lab] = hist.member(0) if hasattr(hist, "member") else hist
        status = getattr(flow, "status", None)
        result.status[lab] = (
            REACHED_FLOOR if at_floor else str(status(0) if callable(status) else (status or "done"))
        )
        if result.stopped:
            break
    return result


def _particles(flow: Any) -> np.ndarray:
    P = np.asarray(flow.particles(), dtype=np.float64)
    return P[0] if P.ndim == 3 else P


def combat_baseline(
    Xs: np.ndarray, ls: np.ndarray, Xt: np.ndarray, lt: np.ndarray, *, labelled: bool = True
) -> np.ndarray:
    """The source study after ComBat with the target as the reference batch (the target stays as it
    is) and, when the studies are labelled, the label as a covariate to keep."""
    from gpa_core.genes.combat import CombatError, combat

    ns = Xs.shape[0]
    batch = np.array(["source"] * ns + ["target"] * Xt.shape[0])
    covariates = (
        np.concatenate([ls, lt]) if labelled and np.unique(np.concatenate([ls, lt])).size > 1 else None
    )
    try:
        out = combat(np.vstack([Xs, Xt]), batch, covariates, reference="target")
    except CombatError as exc:
        raise LatentError(f"ComBat: {exc}") from None
    return out[:ns].astype(Xs.dtype, copy=False)


# ------------------------------------------------------------------------------------------ integrate
Method = Literal["gpa", "mean_std", "combat", "none"]
METHODS: tuple[str, ...] = ("none", "mean_std", "combat", "gpa")
#: fewest target samples of a label for its floor (two halves of at least 2)
MIN_FLOOR_POINTS = 4
#: the scores over all samples (label "all"), in the order of the table
POOLED_METRICS = (
    "silhouette by study (within labels)",
    "k-NN mixing (within labels)",
    "silhouette by study",
    "k-NN mixing",
    "silhouette by label",
    "label transfer accuracy",
)


@dataclass
class IntegrationResult:
    """Everything :func:`integrate` computed.

    ``source_integrated``: the source samples after integration, in gene space (samples × genes);
    ``Z_*``: latent coordinates (unscaled PCA coordinates, i.e. × latent_scale);
    ``scores``: rows {space, label, metric, before, after, relative_%, floor, floor_%, excess_%}
    (see :func:`integrate`); ``seconds``: the method's own time (baseline or flows, not the scores)."""

    method: str
    encoder: PCAEncoder
    source_integrated: np.ndarray
    Z_source_before: np.ndarray
    Z_source_after: np.ndarray
    Z_target: np.ndarray
    scores: list[dict[str, Any]]
    transport: TransportResult | None = None
    labels: list[str] = field(default_factory=list)
    seconds: float = math.nan

    def score_table(self) -> Any:
        """The scores as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.scores)

    def score(self, metric: str, label: str = "all", space: str = "latent") -> dict[str, Any]:
        """The row of one score (KeyError if absent)."""
        for r in self.scores:
            if (r["space"], r["label"], r["metric"]) == (space, label, metric):
                return r
        raise KeyError((space, label, metric))


def _row(space: str, label: str, metric: str, before: float, after: float, floor: float) -> dict[str, Any]:
    return {
        "space": space,
        "label": label,
        "metric": metric,
        "before": float(before),
        "after": float(after),
        "relative_%": math.nan,
        "floor": float(floor),
        "floor_%": math.nan,
        "excess_%": math.nan,
    }


def _distance_metrics(
    sinkhorn: bool, blur: float
) -> list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]]:
    # the whole clouds (no subsampling, at most MAX_SINKHORN_POINTS per cloud for Sinkhorn)
    metrics: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = [
        ("W2²", lambda a, b: wasserstein2_squared(a, b, max_points=None))
    ]
    if sinkhorn:
        metrics.append(
            (
                f"Sinkhorn (blur {blur:g})",
                lambda a, b: sinkhorn_divergence(a, b, blur=blur, scaling=0.5, tol=1e-7, max_points=None),
            )
        )
    return metrics


def _floor(fn: Callable[[np.ndarray, np.ndarray], float], T: np.ndarray, halves: list[np.ndarray]) -> float:
    """Mean of fn(first half, second half) of ``T`` over the splits; NaN without splits or points."""
    if not halves or T.shape[0] < MIN_FLOOR_POINTS:
        return math.nan
    return float(np.mean([fn(T[h], T[~h]) for h in halves]))


def label_floors(
    Z_target: np.ndarray,
    target_labels: Sequence[str] | np.ndarray | None,
    source_sizes: dict[str, int] | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Per label, the floor of :func:`integrate`'s W₂² score (and of its stopping rule): the exact
    W₂² between ``source_sizes[label]`` fresh points of the label's target distribution and its
    target points, estimated from the target alone (:func:`~gpa_core.genes.scores.distance_floor`;
    default size: the label's target size). NaN for a label with fewer than
    :data:`MIN_FLOOR_POINTS` target samples."""
    Zt = np.asarray(Z_target, dtype=np.float64)
    lt = _label_array(target_labels, Zt.shape[0], "target_labels")
    w2 = _distance_metrics(False, 0.05)[0][1]
    out = {}
    for lab in dict.fromkeys(lt.tolist()):
        T = Zt[lt == lab]
        n_s = int((source_sizes or {}).get(lab, T.shape[0]))
        out[lab] = distance_floor(w2, T, max(n_s, 1), n_splits, seed)
    return out


def _pooled(
    Zs: np.ndarray, ls: np.ndarray, Zt: np.ndarray, lt: np.ndarray, shared: np.ndarray, k: int
) -> dict[str, float]:
    """The scores over all samples of a source (Zs, ls) and a target (Zt, lt)."""
    joint = np.concatenate([Zs, Zt], axis=0)
    study = np.array(["source"] * Zs.shape[0] + ["target"] * Zt.shape[0])
    labels = np.concatenate([ls, lt])
    out = {
        "silhouette by study (within labels)": within_labels(silhouette, joint, study, labels),
        "k-NN mixing (within labels)": within_labels(
            lambda Z, st: knn_mixing_score(Z, st, k=k), joint, study, labels
        ),
        "silhouette by study": silhouette(joint, study),
        "k-NN mixing": knn_mixing_score(joint, study, k=k),
    }
    if np.unique(labels).shape[0] > 1:
        out["silhouette by label"] = silhouette(joint, labels)
        out["label transfer accuracy"] = (
            label_transfer_accuracy(Zt, lt, Zs[shared], ls[shared], k=k) if shared.any() else math.nan
        )
    return out


def integrate(
    source: Study,
    target: Study,
    *,
    method: Method = "gpa",
    n_components: int = 50,
    standardize: bool = True,
    latent_scale: float | str = 1.0,
    encoder: PCAEncoder | None = None,
    config: Any = None,
    steps: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    flow_factory: Callable[[np.ndarray, np.ndarray, Any], Any] | None = None,
    gene_scores: bool = True,
    sinkhorn: bool = False,
    blur: float = 0.05,
    knn_k: int = 15,
    floor_splits: int = 5,
    stop_at_floor: bool = False,
    seed: int = 0,
) -> IntegrationResult:
    """Encode → transport (``method="gpa"``) or baseline → decode, with scores before and after.

    - "gpa": per-label GPA flows in the latent space (needs ``config``, a FlowConfig), then decode;
      ``stop_at_floor``: each label's flow stops once its latent W₂² to its target is down to its
      floor (:data:`GPA_DEFAULTS` has it on).
    - "mean_std": the paper's baseline in gene space, then encode for the latent scores.
    - "combat": ComBat (``gpa_core.genes.combat``) in gene space with the target study as the reference
      batch and the label as a covariate (kept), then encode.
    - "none": nothing moves (the raw concatenation).

    Scores, each before and after, all with the target as it is (only the source moves):

    - per label present in both studies: W₂² (exact) and optionally the Sinkhorn divergence of
      Table SM2 between the label's source and the label's target, in latent space and
      (``gene_scores``) in gene space (integrated source vs the *raw* target: for GPA this includes
      the decoder's projection error); ``relative_%`` = after/before; the latent spread ratio and
      nearest-target ratio (:func:`~gpa_core.genes.scores.spread_ratio`,
      :func:`~gpa_core.genes.scores.nearest_target_ratio`: below-floor distances from collapse or
      from copying);
    - over all samples, in latent space (label "all"), :data:`POOLED_METRICS`: the silhouette by
      study and the k-NN mixing within each label (averaged) and pooled over all labels (these also
      measure different label proportions), the silhouette by label (biology kept) and the label
      transfer accuracy (k-NN, k = ``knn_k``, trained on the target, tested on the corrected
      source).

    ``floor``: what an integration that made the source a fresh sample of the target's distribution
    would score, estimated from the target alone (``floor_splits`` seeded random splits, 0 = no
    floors): for the distances, at the sizes compared (the label's source size against its target,
    :func:`~gpa_core.genes.scores.distance_floor`: halves and quarters of the label's target,
    extrapolated in the sample size); for the other scores, their value between two
    label-stratified halves of the target (the first half in the source's place). ``floor_%`` =
    floor/before and ``excess_%`` = (after − floor)/(before − floor), for the distances: 0 % = at
    the floor, below 0 = closer than two samples of one distribution are (collapse or copying).
    Labels None = one group "all".
    """
    if method not in METHODS:
        raise LatentError(f"method must be 'gpa', 'mean_std', 'combat' or 'none', got {method!r}.")
    if source.n_genes != target.n_genes or not np.array_equal(source.gene_ids, target.gene_ids):
        raise GeneDataError(
            "the two studies are not on the same genes in the same order; "
            "run align_studies(source, target) first."
        )
    Xs, Xt = source.expression, target.expression
    ls = _label_array(source.labels, source.n_samples, "source labels")
    lt = _label_array(target.labels, target.n_samples, "target labels")
    if (source.labels is None) != (target.labels is None):
        raise LatentError("label both studies or neither; per-label transport needs labels on both sides.")
    enc = encoder or PCAEncoder(n_components, standardize=standardize, latent_scale=latent_scale).fit(Xs, Xt)
    s = enc.latent_scale
    Zs = enc.encode(Xs)
    Zt = enc.encode(Xt)
    Zs_u, Zt_u = Zs * s, Zt * s  # scores in plain PCA coordinates
    labels = _shared_labels(ls, lt)
    halves = half_splits(lt, floor_splits, seed) if floor_splits else []
    lab_halves = {lab: [h[lt == lab] for h in halves] for lab in labels}
    sizes = {lab: int((ls == lab).sum()) for lab in labels}
    w2_floor = label_floors(Zt_u, lt, sizes, floor_splits, seed) if floor_splits else {}
    w2_floor = {lab: w2_floor.get(lab, math.nan) for lab in labels}
    transport = None
    t0 = time.perf_counter()
    if method == "gpa":
        if config is None:
            raise LatentError("method 'gpa' needs a FlowConfig (config=...).")
        stop_at = {lab: v / s**2 for lab, v in w2_floor.items()} if stop_at_floor else None
        transport = transport_per_label(
            Zs,
            ls,
            Zt,
            lt,
            config,
            steps,
            progress,
            should_stop=should_stop,
            flow_factory=flow_factory,
            stop_at=stop_at,
        )
        Z_after = transport.transported
        X_after = enc.decode(Z_after)
    elif method == "none":
        Z_after, X_after = Zs.copy(), Xs
    elif method == "combat":
        X_after = combat_baseline(Xs, ls, Xt, lt, labelled=source.labels is not None)
        Z_after = enc.encode(X_after)
    else:
        X_after = mean_std_baseline(Xs, ls, Xt, lt)
        Z_after = enc.encode(X_after)
    seconds = time.perf_counter() - t0
    Za_u = Z_after * s
    rows: list[dict[str, Any]] = []
    spaces = [("latent", Zs_u, Za_u, Zt_u)]
    if gene_scores:
        spaces.append(("genes", Xs, X_after, Xt))
    for space, before, after, T_all in spaces:
        for name, fn in _distance_metrics(sinkhorn, blur):
            for lab in labels:
                ms, mt = ls == lab, lt == lab
                T = T_all[mt]
                v0, v1 = fn(before[ms], T), fn(after[ms], T)
                if (space, name) == ("latent", "W2²"):
                    fl = w2_floor[lab]
                elif floor_splits:  # the Sinkhorn divergence costs more: two splits
                    splits = floor_splits if name == "W2²" else min(floor_splits, 2)
                    fl = distance_floor(fn, T, sizes[lab], splits, seed)
                else:
                    fl = math.nan
                row = _row(space, lab, name, v0, v1, fl)
                row["relative_%"] = 100.0 * v1 / v0 if v0 > 0 else math.nan
                row["floor_%"] = 100.0 * fl / v0 if v0 > 0 else math.nan
                row["excess_%"] = excess_over_floor(v1, v0, fl)
                rows.append(row)
    for name, fn in (("spread ratio", spread_ratio), ("nearest-target ratio", nearest_target_ratio)):
        for lab in labels:
            ms, mt = ls == lab, lt == lab
            if ms.sum() < 2 or mt.sum() < 2:
                continue
            T = Zt_u[mt]
            fl = _floor(fn, T, lab_halves[lab])
            rows.append(_row("latent", lab, name, fn(Zs_u[ms], T), fn(Za_u[ms], T), fl))
    shared = np.isin(ls, labels)
    k = int(knn_k)
    v0 = _pooled(Zs_u, ls, Zt_u, lt, shared, k)
    v1 = _pooled(Za_u, ls, Zt_u, lt, shared, k)
    floors: dict[str, list[float]] = {}
    for h in halves:
        for name, v in _pooled(Zt_u[h], lt[h], Zt_u[~h], lt[~h], np.isin(lt[h], labels), k).items():
            floors.setdefault(name, []).append(v)
    for name in POOLED_METRICS:
        if name in v0:
            fl = float(np.mean(floors[name])) if name in floors else math.nan
            if name == "silhouette by label":
                fl = silhouette(Zt_u, lt)  # the target's own: the same for every split
            rows.append(_row("latent", "all", name, v0[name], v1[name], fl))
    return IntegrationResult(
        method=method,
        encoder=enc,
        source_integrated=np.asarray(X_after),
        Z_source_before=Zs_u,
        Z_source_after=Za_u,
        Z_target=Zt_u,
        scores=rows,
        transport=transport,
        labels=labels,
        seconds=seconds,
    )


# ------------------------------------------------------------------------------------------ verdict
#: the floor is estimated within about ±10 % (:func:`~gpa_core.genes.scores.distance_floor`): an
#: excess above −15 % is "at the floor", below it the source is closer than two samples can be
BELOW_FLOOR_MARGIN = -15.0
#: a spread ratio or nearest-target ratio below this fraction of its floor flags collapse / copying
FLAG_FRACTION = 0.75
#: raw W₂² within this factor of its floor (every label): there was hardly a batch effect to remove
NO_EFFECT_FACTOR = 1.25
METHOD_TITLES = {"none": "none", "mean_std": "mean/std", "combat": "ComBat", "gpa": "GPA"}


def _mean_over_labels(result: IntegrationResult, metric: str, key: str) -> float:
    vals = [float(result.score(metric, lab)[key]) for lab in result.labels]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def assessment(result: IntegrationResult) -> dict[str, Any]:
    """One method's outcome in a few numbers, each read against its floor.

    ``excess_%``: the latent W₂² excess over the floor, mean over labels (0 = as close as two halves
    of the target; 100 = nothing gained); ``mixing_deficit_%``: 100·(1 − k-NN mixing within labels
    / its floor); ``remaining_%``: the larger of the two, clipped at 0 — the batch effect left by
    the stricter measure (neither alone suffices: noise added to the source mixes it, a collapsed
    source is close in W₂²). ``flags``: "collapsed" (a label's spread ratio below
    :data:`FLAG_FRACTION` of its floor), "copies target points" (nearest-target ratio likewise),
    "below the floor" (excess below :data:`BELOW_FLOOR_MARGIN`: closer than two samples of the
    target's distribution), "labels mixed up" (label transfer accuracy below 90 % of its floor)."""
    excess = _mean_over_labels(result, "W2²", "excess_%")
    try:
        mix = result.score("k-NN mixing (within labels)")
        deficit = 100.0 * (1.0 - mix["after"] / mix["floor"]) if mix["floor"] > 0 else math.nan
    except KeyError:
        deficit = math.nan
    finite = [v for v in (excess, deficit) if math.isfinite(v)]
    flags: list[str] = []
    for metric, flag in (("spread ratio", "collapsed"), ("nearest-target ratio", "copies target points")):
        for lab in result.labels:
            try:
                r = result.score(metric, lab)
            except KeyError:
                continue
            if math.isfinite(r["floor"]) and r["after"] < FLAG_FRACTION * r["floor"]:
                flags.append(flag)
                break
    if any(
        math.isfinite(result.score("W2²", lab)["excess_%"])
        and result.score("W2²", lab)["excess_%"] < BELOW_FLOOR_MARGIN
        for lab in result.labels
    ):
        flags.append("below the floor")
    try:
        acc = result.score("label transfer accuracy")
        if math.isfinite(acc["floor"]) and acc["after"] < 0.9 * acc["floor"]:
            flags.append("labels mixed up")
    except KeyError:
        pass
    no_effect = bool(result.labels) and all(
        math.isfinite(result.score("W2²", lab)["floor"])
        and result.score("W2²", lab)["before"] <= NO_EFFECT_FACTOR * result.score("W2²", lab)["floor"]
        for lab in result.labels
    )
    return {
        "excess_%": excess,
        "mixing_deficit_%": deficit,
        "remaining_%": max(0.0, max(finite)) if finite else math.nan,
        "flags": flags,
        "no_batch_effect": no_effect,
    }


def verdict(results: dict[str, IntegrationResult]) -> dict[str, Any]:
    """Which method integrates these data best, in sentences a page can show.

    ``best``: among the methods other than "none" without flags (:func:`assessment`), the one with
    the least ``remaining_%`` (None if every method is flagged); ``lines``: one sentence per method
    and, first, a warning when the studies hardly differed to begin with (every label's raw W₂²
    within :data:`NO_EFFECT_FACTOR` of its floor: then every score moves only by noise)."""
    assessed = {m: assessment(r) for m, r in results.items()}
    lines: list[str] = []
    if assessed and all(a["no_batch_effect"] for a in assessed.values()):
        lines.append(
            "The studies hardly differ: each label's raw W₂² is within "
            f"{NO_EFFECT_FACTOR:g}× of its floor (two halves of the target), so there is little batch "
            "effect to remove and the scores below differ mostly by noise."
        )
    candidates = {
        m: a
        for m, a in assessed.items()
        if m != "none" and not a["flags"] and math.isfinite(a["remaining_%"])
    }
    best = min(candidates, key=lambda m: candidates[m]["remaining_%"]) if candidates else None
    for m, a in assessed.items():
        title = METHOD_TITLES.get(m, m)
        text = (
            f"{title}: {a['remaining_%']:.0f} % of the batch effect left (W₂² excess over the floor "
            f"{a['excess_%']:.0f} %, k-NN mixing within labels {a['mixing_deficit_%']:.0f} % short of "
            "its floor)"
        )
        if a["flags"]:
            text += "; " + ", ".join(a["flags"])
        lines.append(text + ("  ← best" if m == best else "") + ".")
    return {"best": best, "lines": lines, "methods": assessed}
