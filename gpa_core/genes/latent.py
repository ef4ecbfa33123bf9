"""Latent-space GPA for dataset integration (paper §9): baselines, per-label transport, integrate.

Pipeline: two studies on the same genes → :class:`~gpa_core.genes.encoder.PCAEncoder` (per-gene
standardization and PCA fitted on both studies together, the paper's linear autoencoder) →
transport each label's source samples to the same label's target samples with its own GPA flow
(:func:`transport_per_label`), or the baseline (:func:`mean_std_baseline`) → decode → scores
(:mod:`gpa_core.genes.scores`); 2-D views in :mod:`gpa_core.genes.views`.
:func:`integrate` runs the whole thing. The encoder and the views are re-exported here.

ComBat is not offered: the PyPI package ``combat`` (pyComBat 0.3.3, 2022, superseded by
``inmoose``) crashes in its reference-batch mode under pandas 3 (it writes into a read-only array),
and with that patched its reference-batch output does not reach the reference's mean/std; inmoose
itself requires pandas < 3 and anndata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from gpa_core.genes.encoder import LatentError, PCAEncoder, as_matrix
from gpa_core.genes.scores import knn_mixing_score, silhouette, sinkhorn_divergence, w2_squared
from gpa_core.genes.study import GeneDataError, Study
from gpa_core.genes.views import pca_2d, umap_embedding, warm_up_umap

__all__ = [
    "IntegrationResult",
    "LatentError",
    "PCAEncoder",
    "TransportResult",
    "integrate",
    "mean_std_baseline",
    "pca_2d",
    "transport_per_label",
    "umap_embedding",
    "warm_up_umap",
]


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
) -> TransportResult:
    """Transport each label's source points to the same label's target points with its own GPA flow
    (its own discriminator, as in the paper's maps T^{n,+} and T^{n,−}).

    ``config`` is a :class:`gpa_core.config.FlowConfig`; ``steps`` (default ``config.steps``) is the
    number of particle steps per label, run in chunks of ``chunk`` with ``progress(label, done,
    total)`` after each; ``should_stop()`` returning True ends early (``stopped=True``, partial
    result). ``flow_factory(source, target, config)`` replaces GPAFlow (tests, other engines).
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
        flow = factory(Zs[rows].astype(dtype), Zt[lt == lab].astype(dtype), config)
        done = 0
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
        P = np.asarray(flow.particles(), dtype=np.float64)
        if P.ndim == 3:
            P = P[0]
        result.transported[rows] = P
        result.transported_labels.append(lab)
        result.steps_done[lab] = done
        hist = getattr(flow, "history", None)
        result.histories[lab] = hist.member(0) if hasattr(hist, "member") else hist
        status = getattr(flow, "status", None)
        result.status[lab] = str(status(0) if callable(status) else (status or "done"))
        if result.stopped:
            break
    return result


def combat_baseline(
    Xs: np.ndarray, ls: np.ndarray, Xt: np.ndarray, lt: np.ndarray, *, labelled: bool = True
) -> np.ndarray:
    """The source study after ComBat with the target as the reference batch (the target stays as it
    is) and, when the studies are labelled, the label as a covariate to keep."""
    from gpa_core.genes.study.combat import CombatError, combat

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


@dataclass
class IntegrationResult:
    """Everything :func:`integrate` computed.

    ``source_integrated``: the source samples after integration, in gene space (samples × genes);
    ``Z_*``: latent coordinates (unscaled PCA coordinates, i.e. × latent_scale);
    ``scores``: rows {space, label, metric, before, after, relative_%} (see :func:`integrate`)."""

    method: str
    encoder: PCAEncoder
    source_integrated: np.ndarray
    Z_source_before: np.ndarray
    Z_source_after: np.ndarray
    Z_target: np.ndarray
    scores: list[dict[str, Any]]
    transport: TransportResult | None = None
    labels: list[str] = field(default_factory=list)

    def score_table(self) -> Any:
        """The scores as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.scores)


def _pair_scores(
    rows: list[dict[str, Any]],
    space: str,
    label: str,
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray],
    sinkhorn: bool,
    blur: float,
) -> None:
    metrics: list[tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = [("W2²", w2_squared)]
    if sinkhorn:
        metrics.append((f"Sinkhorn (blur {blur:g})", lambda a, b: sinkhorn_divergence(a, b, blur=blur)))
    for name, fn in metrics:
        v0, v1 = fn(*before), fn(*after)
        rel = 100.0 * v1 / v0 if v0 > 0 else math.nan
        rows.append(
            {"space": space, "label": label, "metric": name, "before": v0, "after": v1, "relative_%": rel}
        )


def integrate(
    source: Study,
    target: Study,
    *,
    method: Method = "gpa",
    n_components: int = 50,
    standardize: bool = True,
    latent_scale: float = 1.0,
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
) -> IntegrationResult:
    """Encode → transport (``method="gpa"``) or baseline → decode, with scores before and after.

    - "gpa": per-label GPA flows in the latent space (needs ``config``, a FlowConfig), then decode.
    - "mean_std": the paper's baseline in gene space, then encode for the latent scores.
    - "combat": ComBat (``gpa_core.genes.combat``) in gene space with the target study as the reference
      batch and the label as a covariate (kept), then encode.
    - "none": nothing moves (the raw concatenation).

    Scores, each before and after: per label present in both studies, W₂² (exact) and optionally
    the Sinkhorn divergence of Table SM2, in latent space and (``gene_scores``) in gene space
    (integrated source vs the *raw* target: for GPA this includes the decoder's projection error);
    over all samples in latent space, silhouette by study (lower = better mixed), silhouette by
    label (biology kept) and k-NN mixing (1 = perfectly mixed). Labels None = one group "all".
    """
    if method not in ("gpa", "mean_std", "combat", "none"):
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
    transport = None
    if method == "gpa":
        if config is None:
            raise LatentError("method 'gpa' needs a FlowConfig (config=...).")
        transport = transport_per_label(
            Zs, ls, Zt, lt, config, steps, progress, should_stop=should_stop, flow_factory=flow_factory
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
    Zs_u, Za_u, Zt_u = Zs * s, Z_after * s, Zt * s  # scores in plain PCA coordinates
    labels = _shared_labels(ls, lt)
    rows: list[dict[str, Any]] = []
    for lab in labels:
        ms, mt = ls == lab, lt == lab
        _pair_scores(rows, "latent", lab, (Zs_u[ms], Zt_u[mt]), (Za_u[ms], Zt_u[mt]), sinkhorn, blur)
    if gene_scores:
        for lab in labels:
            ms, mt = ls == lab, lt == lab
            _pair_scores(rows, "genes", lab, (Xs[ms], Xt[mt]), (X_after[ms], Xt[mt]), sinkhorn, blur)
    study = np.array(["source"] * Zs.shape[0] + ["target"] * Zt.shape[0])
    both_labels = np.concatenate([ls, lt])
    for when, Zsrc in (("before", Zs_u), ("after", Za_u)):
        joint = np.concatenate([Zsrc, Zt_u], axis=0)
        vals = {
            "silhouette by study": silhouette(joint, study),
            "k-NN mixing": knn_mixing_score(joint, study, k=knn_k),
        }
        if np.unique(both_labels).shape[0] > 1:
            vals["silhouette by label"] = silhouette(joint, both_labels)
        for name, v in vals.items():
            row = next((r for r in rows if r["metric"] == name and r["label"] == "all"), None)
            if row is None:
                row = {
                    "space": "latent",
                    "label": "all",
                    "metric": name,
                    "before": math.nan,
                    "after": math.nan,
                }
                rows.append(row)
            row[when] = v
    for r in rows:
        if r["label"] == "all":
            r["relative_%"] = math.nan
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
    )
