"""The paper's linear autoencoder for §9: per-gene standardization + PCA, fitted on both studies.

``encode`` maps samples × genes to the d′-dimensional latent space, ``decode`` maps back; the
decoder is 1-Lipschitz in the standardized space because the PCA axes are orthonormal (§9).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np

from gpa_core.ot import median_pairwise_distance, one_blas_thread

__all__ = ["AUTO_MEDIAN_DISTANCE", "LatentError", "PCAEncoder", "as_matrix"]

_CHUNK = 2048  # genes per block in the encoder's passes over the data (a few MB: cache-friendly)
#: ``latent_scale="auto"`` divides the latent coordinates so that the median distance between two of
#: the fitted samples is this (README, "Latent integration, measured": with the paper's L = 1 and
#: Δt = 0.2 a particle step is then at most 4 % of the typical distance)
AUTO_MEDIAN_DISTANCE = 5.0


class LatentError(ValueError):
    """Bad input to the latent-space pipeline (shapes, missing values, labels)."""


def as_matrix(X: object, name: str) -> np.ndarray:
    """X as a 2-D floating array (samples × genes), or LatentError."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise LatentError(f"{name} must be a 2-D array (samples × genes), got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


class PCAEncoder:
    """The paper's linear autoencoder: per-gene standardization, then PCA to ``n_components`` (d′).

    ``fit(X_source, X_target)`` fits the gene means/stds and the principal axes on both studies
    stacked (without copying them into one array). ``encode(X) = ((X − μ)/σ) Vᵀ / latent_scale``
    and ``decode(Z) = (latent_scale · Z V) σ + μ``; the rows of V are orthonormal, so decoding is
    1-Lipschitz in the standardized space (×latent_scale from the scaled latent space).

    Method: the Gram matrix of the n standardized samples (n × n, float64, accumulated over gene
    chunks) is diagonalised, and the axes are V = Uᵀ Xs / s, re-orthonormalised in float64. This is
    exact and deterministic (no random_state needed; signs fixed so each axis's largest-magnitude
    gene loading is positive, like scikit-learn's ``svd_flip``). Peak memory is about the input
    plus one gene chunk; genes with zero variance get σ = 1.
    ``latent_scale`` divides the latent coordinates (the authors' code divides by 10 before
    transport; 1 = the paper). ``"auto"``: chosen at :meth:`fit` from the data, the median distance
    between two fitted samples in PCA units over :data:`AUTO_MEDIAN_DISTANCE` (then
    ``latent_scale`` holds the number, ``latent_scale_auto`` is True). ``max_components`` keeps
    extra axes for :meth:`reconstruction_error` on new data.
    """

    def __init__(
        self,
        n_components: int = 50,
        *,
        standardize: bool = True,
        latent_scale: float | str = 1.0,
        max_components: int | None = None,
    ) -> None:
        if (
            isinstance(n_components, bool)
            or not isinstance(n_components, int | np.integer)
            or n_components < 1
        ):
            raise LatentError(f"n_components (d′) must be a positive integer, got {n_components!r}.")
        self.latent_scale_auto = isinstance(latent_scale, str) and latent_scale == "auto"
        if not self.latent_scale_auto and not (
            isinstance(latent_scale, int | float)
            and not isinstance(latent_scale, bool)
            and math.isfinite(latent_scale)
            and latent_scale > 0
        ):
            raise LatentError(f"latent_scale must be a positive number or 'auto', got {latent_scale!r}.")
        if max_components is not None and (
            not isinstance(max_components, int | np.integer) or max_components < 1
        ):
            raise LatentError(f"max_components must be a positive integer or None, got {max_components!r}.")
        self.n_components = int(n_components)
        self.standardize = bool(standardize)
        self.latent_scale = 1.0 if self.latent_scale_auto else float(latent_scale)  # type: ignore[arg-type]
        self.max_components = None if max_components is None else int(max_components)
        self._fitted = False

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, *matrices: np.ndarray) -> PCAEncoder:
        """Fit on one or more matrices (samples × genes) stacked row-wise, e.g. ``fit(Xs, Xt)``."""
        if not matrices:
            raise LatentError("fit needs at least one matrix (samples × genes).")
        mats = [as_matrix(X, f"matrix {i + 1}") for i, X in enumerate(matrices)]
        g = mats[0].shape[1]
        for i, X in enumerate(mats):
            if X.shape[1] != g:
                raise LatentError(
                    f"all matrices must have the same genes: matrix 1 has {g} columns, matrix {i + 1} has "
                    f"{X.shape[1]}; align the studies first (align_studies)."
                )
        n = sum(X.shape[0] for X in mats)
        if n < 2:
            raise LatentError(f"PCA needs at least 2 samples, got {n}.")
        dtype = np.result_type(*[X.dtype for X in mats])
        if dtype not in (np.float32, np.float64):
            dtype = np.dtype(np.float64)
        self.dtype_ = np.dtype(dtype)
        self.n_features_ = g
        self.n_samples_ = n
        self.mean_ = np.empty(g, dtype=np.float64)
        self.scale_ = np.ones(g, dtype=np.float64)
        G = np.zeros((n, n), dtype=np.float64)
        for start in range(0, g, _CHUNK):
            cols = slice(start, min(start + _CHUNK, g))
            # one gene chunk of all samples, in the working dtype; sums accumulate in float64
            B = np.concatenate([X[:, cols] for X in mats], axis=0).astype(self.dtype_, copy=False)
            if not np.isfinite(B).all():
                bad = start + int(np.flatnonzero(~np.isfinite(B).all(axis=0))[0])
                raise LatentError(
                    f"gene column {bad} has missing or infinite values; drop or impute them first "
                    "(align_studies(..., missing='drop' or 'impute'))."
                )
            mu = B.mean(axis=0, dtype=np.float64)
            B -= mu.astype(self.dtype_)
            self.mean_[cols] = mu
            if self.standardize:
                sd = np.sqrt(np.square(B).mean(axis=0, dtype=np.float64))
                sd[sd <= 1e-8 * np.maximum(1.0, np.abs(mu))] = 1.0  # constant genes
                B /= sd.astype(self.dtype_)
                self.scale_[cols] = sd
            G += B @ B.T  # the Gram matrix of the standardized samples
        with one_blas_thread():  # small dense problem: one thread is faster
            lam, U = np.linalg.eigh(G)
        lam, U = lam[::-1], U[:, ::-1]
        lam = np.maximum(lam, 0.0)
        total = float(lam.sum())
        if total <= 0:
            raise LatentError("all genes are constant across the samples; there is nothing to encode.")
        rank = int((lam > lam[0] * 1e-10).sum())
        self.spectrum_ratio_ = lam[:rank] / total  # all nonzero components (for the scree plot)
        self.n_components_ = min(self.n_components, rank)
        k_store = min(max(self.n_components_, self.max_components or 0), rank)
        s = np.sqrt(lam[:k_store])
        Uk = (U[:, :k_store] / s).astype(self.dtype_)
        V = np.empty((k_store, g), dtype=np.float64)
        for start in range(0, g, _CHUNK):
            cols = slice(start, min(start + _CHUNK, g))
            B = self._standardized_block(mats, cols)
            V[:, cols] = Uk.T @ B
        # symmetric (Löwdin) re-orthonormalisation in float64, V ← (V Vᵀ)^(-1/2) V: removes the
        # ~1e-6 drift of float32 products while moving each axis as little as possible
        with one_blas_thread():
            w, E = np.linalg.eigh(V @ V.T)
        V = (E / np.sqrt(w)) @ E.T @ V
        flip = np.sign(V[np.arange(k_store), np.abs(V).argmax(axis=1)])
        V *= flip[:, None]
        self.components_ = V.astype(self.dtype_)
        self.explained_variance_ = lam[:k_store] / (n - 1)
        self.explained_variance_ratio_ = self.spectrum_ratio_[: self.n_components_].copy()
        # the fitted samples' PCA coordinates are U·√λ (no second pass over the genes)
        k = self.n_components_
        self.median_distance_ = median_pairwise_distance(U[:, :k] * np.sqrt(lam[:k]))
        if self.latent_scale_auto:  # (duplicated samples only: keep 1)
            med = self.median_distance_
            self.latent_scale = med / AUTO_MEDIAN_DISTANCE if med > 0 else 1.0
        self._fitted = True
        return self

    def with_latent_scale(self, latent_scale: float | str) -> PCAEncoder:
        """A copy of this fitted encoder (sharing its arrays) that divides by another latent scale
        ("auto": the fitted samples' median distance / :data:`AUTO_MEDIAN_DISTANCE`); no refit."""
        if not self._fitted:
            raise LatentError("the encoder is not fitted yet; call fit(X_source, X_target) first.")
        other = copy.copy(self)
        if isinstance(latent_scale, str) and latent_scale == "auto":
            med = self.median_distance_
            other.latent_scale = med / AUTO_MEDIAN_DISTANCE if med > 0 else 1.0
            other.latent_scale_auto = True
            return other
        probe = PCAEncoder(1, latent_scale=latent_scale)  # validates the number
        other.latent_scale, other.latent_scale_auto = probe.latent_scale, False
        return other

    def _standardized_block(self, mats: Sequence[np.ndarray], cols: slice) -> np.ndarray:
        B = np.concatenate([X[:, cols] for X in mats], axis=0).astype(self.dtype_)
        B -= self.mean_[cols].astype(self.dtype_)
        B /= self.scale_[cols].astype(self.dtype_)
        return B

    def _check(self, X: np.ndarray, name: str = "X") -> np.ndarray:
        if not self._fitted:
            raise LatentError("the encoder is not fitted yet; call fit(X_source, X_target) first.")
        X = as_matrix(X, name)
        if X.shape[1] != self.n_features_:
            raise LatentError(f"{name} has {X.shape[1]} genes, the encoder was fitted on {self.n_features_}.")
        return X

    def _project(self, X: np.ndarray, k: int) -> np.ndarray:
        """Standardized X times the first k axes, float64 (n, k)."""
        Z = np.zeros((X.shape[0], k), dtype=np.float64)
        for start in range(0, self.n_features_, _CHUNK):
            cols = slice(start, min(start + _CHUNK, self.n_features_))
            B = self._standardized_block([X], cols)
            if not np.isfinite(B).all():
                raise LatentError("X has missing or infinite values; drop or impute them first.")
            Z += (B @ self.components_[:k, cols].T).astype(np.float64, copy=False)
        return Z

    # -- encode / decode ---------------------------------------------------------------------------
    def encode(self, X: np.ndarray) -> np.ndarray:
        """Latent coordinates Z (n, d′), float64: projection on the first d′ axes / latent_scale."""
        X = self._check(X)
        return self._project(X, self.n_components_) / self.latent_scale

    def decode_standardized(self, Z: np.ndarray) -> np.ndarray:
        """Z ↦ latent_scale · Z V in the standardized gene space (1-Lipschitz for latent_scale 1)."""
        Z = self._check_latent(Z)
        return (Z * self.latent_scale) @ self.components_[: self.n_components_].astype(np.float64)

    def decode(self, Z: np.ndarray) -> np.ndarray:
        """Back to gene space: undoes the PCA and the standardization; (n, genes) in the fit's dtype."""
        Z = self._check_latent(Z) * self.latent_scale
        out = np.empty((Z.shape[0], self.n_features_), dtype=self.dtype_)
        Zd = Z.astype(self.dtype_)
        for start in range(0, self.n_features_, _CHUNK):
            cols = slice(start, min(start + _CHUNK, self.n_features_))
            block = Zd @ self.components_[: self.n_components_, cols]
            block *= self.scale_[cols].astype(self.dtype_)
            block += self.mean_[cols].astype(self.dtype_)
            out[:, cols] = block
        return out

    def _check_latent(self, Z: np.ndarray) -> np.ndarray:
        if not self._fitted:
            raise LatentError("the encoder is not fitted yet; call fit(X_source, X_target) first.")
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim == 1:
            Z = Z[None, :]
        if Z.ndim != 2 or Z.shape[1] != self.n_components_:
            raise LatentError(f"latent data must have shape (n, {self.n_components_}), got {Z.shape}.")
        return Z

    # -- diagnostics -------------------------------------------------------------------------------
    def scree(self) -> dict[str, np.ndarray]:
        """Scree-plot data over every nonzero component of the fit: component number (1-based),
        explained-variance ratio and its cumulative sum."""
        if not self._fitted:
            raise LatentError("the encoder is not fitted yet.")
        r = self.spectrum_ratio_
        return {"component": np.arange(1, r.shape[0] + 1), "ratio": r.copy(), "cumulative": np.cumsum(r)}

    def reconstruction_error(
        self, X: np.ndarray | None = None, ds: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Relative Frobenius error ‖Xs − P_d Xs‖_F / ‖Xs‖_F of keeping d′ = d axes, for each d in ``ds``.

        Xs is the standardized, centred data (the space PCA works in). ``X=None``: the fitted data,
        exact from the spectrum for any d up to its rank. Otherwise d may go up to the stored axes
        (``max(n_components, max_components)``). Uses ‖Xs − P_d Xs‖² = ‖Xs‖² − ‖Xs V_dᵀ‖².
        """
        if not self._fitted:
            raise LatentError("the encoder is not fitted yet.")
        limit = self.spectrum_ratio_.shape[0] if X is None else self.components_.shape[0]
        d_arr = np.arange(1, limit + 1) if ds is None else np.asarray(ds, dtype=np.int64).ravel()
        if d_arr.size == 0 or d_arr.min() < 1 or d_arr.max() > limit:
            raise LatentError(
                f"d′ values must be between 1 and {limit} here"
                + ("" if X is None else " (pass max_components to the encoder to store more axes)")
                + "."
            )
        if X is None:
            cum = np.concatenate([[0.0], np.cumsum(self.spectrum_ratio_)])
            return d_arr, np.sqrt(np.clip(1.0 - cum[d_arr], 0.0, None))
        X = self._check(X)
        Z = self._project(X, int(d_arr.max()))
        total = 0.0
        for start in range(0, self.n_features_, _CHUNK):
            cols = slice(start, min(start + _CHUNK, self.n_features_))
            B = self._standardized_block([X], cols).astype(np.float64)
            total += float((B * B).sum())
        if total <= 0:
            return d_arr, np.zeros(d_arr.shape[0])
        kept = np.concatenate([[0.0], np.cumsum((Z * Z).sum(axis=0))])
        return d_arr, np.sqrt(np.clip(total - kept[d_arr], 0.0, None) / total)
