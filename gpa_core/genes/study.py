"""Gene-expression studies: data classes, a seeded synthetic generator and gene alignment.

The paper's §9 integrates two GPL570 microarray studies (GSE26639 → GSE76275, 54,675 probes,
ER+/ER− labels). The app cannot download them, so :func:`make_synthetic_studies` builds two
studies of the same shape and character, and :mod:`gpa_core.genes.readers` reads real files a user
uploads. :func:`align_studies` puts two studies on the same genes before encoding.

Conventions: an expression matrix is *samples × genes* (rows are patients), log2 scale, float32 or
float64; missing values are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from gpa_core.data.checks import FLOAT32_MAX  # expression matrices are held as float32
from gpa_core.genes.scale import LinearScale, detect_linear, linear_note

__all__ = [
    "FLOAT32_MAX",
    "PAGE_MISSING",
    "AlignmentReport",
    "GeneDataError",
    "GeneStudies",
    "Study",
    "align_studies",
    "check_study",
    "dedupe_ids",
    "float32_overflow_message",
    "make_synthetic_studies",
    "normalise_er_label",
    "normalise_er_labels",
    "to_float32",
]


class GeneDataError(ValueError):
    """Gene-expression input that cannot be used; the message says what, where, and what is allowed."""


def _as_str_array(values: object, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise GeneDataError(f"{what} must be a 1-D list of identifiers, got shape {arr.shape}.")
    return arr.astype(str)


@dataclass
class Study:
    """One study: an expression matrix (samples × genes) with its identifiers.

    ``labels`` is an array of str (one per sample) or None. ``characteristics`` keeps the raw
    ``!Sample_characteristics_ch1`` cells of a GEO series matrix (one list per line, one cell per
    sample) so labels can be chosen later with :func:`gpa_core.genes.readers.find_label_tags`.
    ``n_duplicate_ids_dropped`` counts gene IDs a parser dropped because they repeated.
    ``annotations`` holds per-sample information by column name (one str per sample: a batch, a
    cell type, …), from a table's text columns, an .h5ad file's ``obs`` or a sample sheet; the page
    offers them as batch and label columns (:mod:`gpa_core.genes.batches`). ``linear`` is set by
    :func:`check_study` when the values look linear, not log (:mod:`gpa_core.genes.scale`).
    """

    expression: np.ndarray
    gene_ids: np.ndarray
    sample_ids: np.ndarray
    labels: np.ndarray | None = None
    name: str = "study"
    characteristics: list[list[str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    n_duplicate_ids_dropped: int = 0
    notes: list[str] = field(default_factory=list)
    annotations: dict[str, np.ndarray] = field(default_factory=dict)
    linear: LinearScale | None = None

    def __post_init__(self) -> None:
        X = np.asarray(self.expression)
        if X.ndim != 2:
            raise GeneDataError(
                f"{self.name}: the expression matrix must be 2-D (samples × genes), got {X.ndim}-D."
            )
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        self.expression = X
        self.gene_ids = _as_str_array(self.gene_ids, f"{self.name}: gene_ids")
        self.sample_ids = _as_str_array(self.sample_ids, f"{self.name}: sample_ids")
        n, g = X.shape
        if self.gene_ids.shape[0] != g:
            raise GeneDataError(
                f"{self.name}: {self.gene_ids.shape[0]} gene IDs for {g} expression columns (genes); "
                "they must match."
            )
        if self.sample_ids.shape[0] != n:
            raise GeneDataError(
                f"{self.name}: {self.sample_ids.shape[0]} sample IDs for {n} expression rows (samples); "
                "they must match."
            )
        if self.labels is not None:
            labels = _as_str_array(self.labels, f"{self.name}: labels")
            if labels.shape[0] != n:
                raise GeneDataError(
                    f"{self.name}: {labels.shape[0]} labels for {n} samples; give one label per sample."
                )
            self.labels = labels
        annotations = {}
        for key, values in self.annotations.items():
            column = _as_str_array(values, f"{self.name}: sample information {key!r}")
            if column.shape[0] != n:
                raise GeneDataError(
                    f"{self.name}: sample information {key!r} has {column.shape[0]} values for {n} samples; "
                    "give one value per sample."
                )
            annotations[str(key)] = column
        self.annotations = annotations

    @property
    def n_samples(self) -> int:
        return int(self.expression.shape[0])

    @property
    def n_genes(self) -> int:
        return int(self.expression.shape[1])

    def with_labels(self, labels: np.ndarray | list[str] | None) -> Study:
        """A copy (sharing the matrix) with new labels."""
        return replace(self, labels=None if labels is None else np.asarray(labels).astype(str))

    def label_counts(self) -> dict[str, int]:
        """Samples per label, in order of first appearance ({} when unlabelled)."""
        if self.labels is None:
            return {}
        values, first, counts = np.unique(self.labels, return_index=True, return_counts=True)
        order = np.argsort(first)
        return {str(values[i]): int(counts[i]) for i in order}


@dataclass
class GeneStudies:
    """A source and a target study (the paper transports source → target)."""

    source: Study
    target: Study

    @property
    def studies(self) -> tuple[Study, Study]:
        return (self.source, self.target)


# ------------------------------------------------------------------------------------------ read-time checks
def float32_overflow_message(label: str, where: str, value: float | str) -> str:
    """The message for a value beyond float32's range (it would silently become infinite)."""
    shown = f"{value:.4g}" if isinstance(value, float) else repr(value[:40])
    return (
        f"{label}: {where} holds {shown}, beyond the range of float32 (±3.4e38) in which expression "
        "values are held; rescale the values (e.g. a log2 transform) and read the file again."
    )


def to_float32(values: object, label: str) -> np.ndarray:
    """A numeric matrix as float32, refusing values that float32 cannot hold (they would become inf)."""
    X = np.asarray(values)
    if X.dtype.kind not in "fiub":
        raise GeneDataError(f"{label}: the expression matrix holds {X.dtype} values, not numbers.")
    if X.dtype.kind == "f" and X.dtype.itemsize > 4 and X.ndim == 2:
        for i0 in range(0, X.shape[0], 64):  # in row blocks: no full-size temporary
            block = X[i0 : i0 + 64]
            big = np.isfinite(block) & (np.abs(block) > FLOAT32_MAX)
            if big.any():
                i, j = (int(v[0]) for v in np.nonzero(big))
                where = f"sample {i0 + i + 1}, gene {j + 1}"
                raise GeneDataError(float32_overflow_message(label, where, float(block[i, j])))
    return np.ascontiguousarray(X, dtype=np.float32)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def check_study(study: Study, label: str, how: str = "") -> Study:
    """A study just read from ``label``, made plausible: samples without any value are dropped (and
    named in ``study.notes``); at least 2 samples and 2 genes must remain, sample IDs must be unique
    and no value may be infinite. ``how`` (e.g. " (read as rows = genes)") is added to size messages.
    Genes without any value are left for :func:`align_studies`. Values that look linear, not log
    (:func:`gpa_core.genes.scale.detect_linear`), get a note offering a log2 transform."""
    X = study.expression
    n, g = X.shape
    empty = np.ones(n, dtype=bool)
    for i0 in range(0, n, 64):  # in row blocks: no full-size temporary
        block = X[i0 : i0 + 64]
        if np.isinf(block).any():
            i, j = (int(v[0]) for v in np.nonzero(np.isinf(block)))
            raise GeneDataError(
                f"{label}: sample '{study.sample_ids[i0 + i]}', gene '{study.gene_ids[j]}' is infinite; "
                "expression values must be finite or missing."
            )
        empty[i0 : i0 + 64] = np.isnan(block).all(axis=1) if g else True
    if n and g and empty.all():
        raise GeneDataError(
            f"{label} has no usable values: all {n * g:,} values ({_plural(n, 'sample')} × "
            f"{_plural(g, 'gene')}) are missing."
        )
    dropped = study.sample_ids[empty]
    if n and g and dropped.size:
        idx = np.flatnonzero(~empty)
        study = replace(
            study,
            expression=np.ascontiguousarray(X[idx]),
            sample_ids=study.sample_ids[idx],
            labels=None if study.labels is None else study.labels[idx],
            annotations={k: v[idx] for k, v in study.annotations.items()},
            characteristics=[[row[i] for i in idx if i < len(row)] for row in study.characteristics],
            notes=[
                *study.notes,
                f"dropped {_plural(int(dropped.size), 'sample')} without any value: "
                + ", ".join(str(s) for s in dropped[:5])
                + (" …" if dropped.size > 5 else ""),
            ],
        )
    if study.n_samples < 2 or study.n_genes < 2:
        after = (
            f" after dropping {_plural(int(dropped.size), 'sample')} without any value"
            if dropped.size
            else ""
        )
        found = f"{_plural(study.n_samples, 'sample')} × {_plural(study.n_genes, 'gene')}"
        raise GeneDataError(
            f"{label}: a study needs at least 2 samples and 2 genes; found {found}{how}{after}."
        )
    ids, counts = np.unique(study.sample_ids, return_counts=True)
    if (counts > 1).any():
        raise GeneDataError(
            f"{label}: sample ID {str(ids[counts > 1][0])!r} appears more than once; "
            "sample IDs must be unique."
        )
    linear = detect_linear(study.expression)
    if linear is not None:
        study = replace(study, notes=[*study.notes, linear_note(linear)], linear=linear)
    return study


# ------------------------------------------------------------------------------------------ labels
_POSITIVE = {"p", "pos", "positive", "1", "er+", "+", "erpos", "erpositive", "yes"}
_NEGATIVE = {"n", "neg", "negative", "0", "er-", "-", "erneg", "ernegative", "no"}


def normalise_er_label(value: object) -> str:
    """Map common spellings of ER status to "ER+" / "ER-"; anything else is returned stripped.

    Positive: P, Pos, positive, 1, ER+, +, "ER positive"; negative: N, Neg, negative, 0, ER-, −,
    "ER negative" (case-insensitive, spaces/underscores/quotes ignored).
    """
    text = str(value).strip().strip('"').strip("'").strip()
    key = text.lower().replace("−", "-").replace(" ", "").replace("_", "").replace("status", "")
    if key.endswith(".0"):  # "1.0" / "0.0" from numeric columns
        key = key[:-2]
    if key in _POSITIVE:
        return "ER+"
    if key in _NEGATIVE:
        return "ER-"
    return text


def normalise_er_labels(values: np.ndarray | list[str]) -> np.ndarray:
    """Vectorised :func:`normalise_er_label` (array of str)."""
    return (
        np.array([normalise_er_label(v) for v in values], dtype=str)
        if len(values)
        else np.array([], dtype=str)
    )


# ------------------------------------------------------------------------------------------ synthetic
def _probe_ids(n_genes: int) -> np.ndarray:
    """GPL570-like probe IDs: "1000_at", "1001_s_at", "1003_x_at", … (unique)."""
    suffix = np.where(
        np.arange(n_genes) % 7 == 1, "_s_at", np.where(np.arange(n_genes) % 11 == 3, "_x_at", "_at")
    )
    return np.char.add(np.arange(1000, 1000 + n_genes).astype(str), suffix)


def _check_counts(n: int, labels: tuple[int, int], what: str) -> None:
    if len(labels) != 2 or any(int(c) < 0 for c in labels):
        raise GeneDataError(f"{what}_labels must be two non-negative counts (ER+, ER−), got {labels!r}.")
    if int(labels[0]) + int(labels[1]) != n:
        raise GeneDataError(
            f"{what}_labels {tuple(labels)} must add up to n_{what} = {n} (ER+ count + ER− count = samples)."
        )


def make_synthetic_studies(
    n_genes: int = 54675,
    n_source: int = 226,
    n_target: int = 265,
    source_labels: tuple[int, int] = (138, 88),
    target_labels: tuple[int, int] = (49, 216),
    rank: int = 10,
    seed: int = 0,
    dtype: type[np.floating] | np.dtype = np.float32,
) -> GeneStudies:
    """Two seeded microarray-like studies with the paper's sizes (GSE26639 → GSE76275 by default).

    Model (log2 intensities, typical range 2–14):
    biology  b = μ_g + σ_g·(s·W)_g ± ½·e_g  with gene baselines μ_g = 3 + 9·Beta(1.3, 2.2), gene
    spreads σ_g ≈ 0.1 + 0.35·Gamma(2, 0.5), a rank-``rank`` factor model s·W shared by both studies
    (ER− samples have 1.5× the spread on the first three factors) and an ER signature e (≈10 % of
    genes with effects ~ N(0, 3²), the rest ~ N(0, 0.1²)) added for ER+ and subtracted for ER−;
    study effect  x = a_g + c_g·h(b) + o_n + noise  per study, with a gene-wise monotone power warp
    h(b) = 16·(b/16)^{γ_g}, γ_g = exp(N(0, 0.12²)), location a_g ~ N(0, 0.6²), scale
    c_g = exp(N(0, 0.15²)), a per-sample offset o_n ~ N(0, 0.15²) and Gaussian noise (sd 0.35 in
    the source, 0.25 in the target). Values are clipped to [1, 15.5]. Labels are "ER+"/"ER-" in
    shuffled order. Everything is generated in ``dtype`` (float32 by default) gene-vectorised, with
    no genes × genes array: full size takes about 100 MB per float32 copy of the data.
    """
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise GeneDataError(f"dtype must be a floating type (float32 or float64), got {dt}.")
    for name, value, low in (("n_genes", n_genes, 2), ("n_source", n_source, 2), ("n_target", n_target, 2)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise GeneDataError(f"{name} must be an integer ≥ {low}, got {value!r}.")
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or not 1 <= rank <= 100:
        raise GeneDataError(f"rank must be an integer in [1, 100], got {rank!r}.")
    _check_counts(n_source, source_labels, "source")
    _check_counts(n_target, target_labels, "target")

    rng = np.random.default_rng(seed)
    g = int(n_genes)
    mu = (3.0 + 9.0 * rng.beta(1.3, 2.2, g)).astype(dt)
    sigma = np.clip(0.1 + 0.35 * rng.gamma(2.0, 0.5, g), 0.1, 1.5).astype(dt)
    W = rng.standard_normal((rank, g), dtype=np.float32).astype(dt, copy=False)
    W *= sigma / np.sqrt(rank)
    strong = rng.random(g) < 0.1
    er = np.where(strong, rng.normal(0.0, 3.0, g), rng.normal(0.0, 0.1, g)).astype(dt)
    gene_ids = _probe_ids(g)

    def one_study(n: int, counts: tuple[int, int], noise_sd: float, prefix: str) -> Study:
        labels = np.array(["ER+"] * int(counts[0]) + ["ER-"] * int(counts[1]))
        rng.shuffle(labels)
        sign = np.where(labels == "ER+", 0.5, -0.5).astype(dt)
        scores = rng.standard_normal((n, rank)).astype(dt)
        scores[labels == "ER-", : min(3, rank)] *= 1.5
        X = scores @ W  # (n, g) in dt
        X += mu
        X += sign[:, None] * er
        # study (batch) effect: monotone gene-wise power warp, then location/scale, offset, noise
        np.clip(X, 0.05, 16.0, out=X)
        X *= dt.type(1.0 / 16.0)
        gamma = np.exp(rng.normal(0.0, 0.12, g)).astype(dt)
        np.power(X, gamma, out=X)
        scale = (16.0 * np.exp(rng.normal(0.0, 0.15, g))).astype(dt)
        X *= scale
        X += rng.normal(0.0, 0.6, g).astype(dt)
        X += rng.normal(0.0, 0.15, (n, 1)).astype(dt)
        noise = np.empty((n, g), dtype=np.float32)
        rng.standard_normal(out=noise, dtype=np.float32)
        noise *= np.float32(noise_sd)
        X += noise
        del noise
        np.clip(X, 1.0, 15.5, out=X)
        sample_ids = np.array([f"{prefix}{i:04d}" for i in range(n)])
        return Study(X, gene_ids, sample_ids, labels=labels, name=f"synthetic {prefix.rstrip('_')}")

    source = one_study(int(n_source), source_labels, 0.35, "SRC_")
    target = one_study(int(n_target), target_labels, 0.25, "TGT_")
    source.name, target.name = "synthetic source", "synthetic target"
    return GeneStudies(source=source, target=target)


# ------------------------------------------------------------------------------------------ alignment
@dataclass(frozen=True)
class AlignmentReport:
    """What :func:`align_studies` kept and dropped (all plain ints)."""

    shared: int  # gene IDs present in both studies (after de-duplication)
    only_in_source: int
    only_in_target: int
    dropped_missing: int  # shared genes dropped for missing values
    imputed: int  # shared genes whose missing values were replaced by the gene mean
    duplicates_source: int  # repeated gene IDs dropped (keeping the first), by a parser or here
    duplicates_target: int
    kept: int  # genes in the aligned studies

    def summary(self) -> str:
        parts = [
            f"{self.kept:,} genes kept of {self.shared:,} shared",
            f"{self.only_in_source:,} only in source",
            f"{self.only_in_target:,} only in target",
        ]
        if self.dropped_missing:
            parts.append(f"{self.dropped_missing:,} dropped for missing values")
        if self.imputed:
            parts.append(f"{self.imputed:,} with missing values imputed by the gene mean")
        if self.duplicates_source or self.duplicates_target:
            parts.append(
                f"duplicated IDs dropped: {self.duplicates_source:,} in source, "
                f"{self.duplicates_target:,} in target"
            )
        return "; ".join(parts) + "."


def dedupe_ids(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Indices of each ID's first occurrence (in order) and how many repeats there were."""
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)
    return first, int(ids.shape[0] - first.shape[0])


def _example_ids(ids: np.ndarray, k: int = 3) -> str:
    return ", ".join(repr(str(x)) for x in ids[:k])


#: how the app's "missing values" control names each choice of :func:`align_studies` (for messages)
PAGE_MISSING = {"drop": "drop genes with missing values", "impute": "impute the gene mean"}


def align_studies(
    source: Study, target: Study, missing: Literal["drop", "impute"] = "drop"
) -> tuple[Study, Study, AlignmentReport]:
    """Restrict both studies to their shared gene IDs, in the source's gene order.

    ``missing="drop"`` drops every shared gene with a missing value (NaN) in either study;
    ``"impute"`` replaces missing values by that gene's mean within the same study (a gene with no
    value at all in a study is still dropped). Repeated gene IDs keep their first occurrence.
    """
    if missing not in ("drop", "impute"):
        raise GeneDataError(f"missing must be 'drop' or 'impute', got {missing!r}.")
    keep_s, dup_s = dedupe_ids(source.gene_ids)
    keep_t, dup_t = dedupe_ids(target.gene_ids)
    ids_s = source.gene_ids[keep_s]
    ids_t = target.gene_ids[keep_t]
    lookup = {gid: i for i, gid in enumerate(ids_t.tolist())}
    pos_t = np.fromiter((lookup.get(gid, -1) for gid in ids_s.tolist()), dtype=np.int64, count=ids_s.shape[0])
    in_both = pos_t >= 0
    shared = int(in_both.sum())
    if shared == 0:
        raise GeneDataError(
            f"{source.name} and {target.name} share no gene IDs (source IDs look like {_example_ids(ids_s)}, "
            f"target IDs like {_example_ids(ids_t)}); both studies must use the same platform / ID type."
        )
    cols_s = keep_s[in_both]
    cols_t = keep_t[pos_t[in_both]]
    Xs = np.take(source.expression, cols_s, axis=1)
    Xt = np.take(target.expression, cols_t, axis=1)
    nan_s = np.isnan(Xs)
    nan_t = np.isnan(Xt)
    any_nan = nan_s.any(axis=0) | nan_t.any(axis=0)
    imputed = 0
    if missing == "drop":
        keep = ~any_nan
    else:
        keep = ~(nan_s.all(axis=0) | nan_t.all(axis=0))
        for X, mask in ((Xs, nan_s), (Xt, nan_t)):
            cols = np.flatnonzero(mask.any(axis=0) & keep)
            if cols.size:
                block = X[:, cols]
                means = np.nanmean(block, axis=0)
                block = np.where(np.isnan(block), means[None, :], block)
                X[:, cols] = block
        imputed = int((any_nan & keep).sum())
    dropped = int((~keep).sum())
    if not keep.any():
        if missing == "drop":
            raise GeneDataError(
                f"all {shared:,} shared genes have missing values in {source.name} or {target.name}; "
                f"choose '{PAGE_MISSING['impute']}' under 'missing values' on the page (missing='impute' "
                "in Python), or check the files' missing-value markers."
            )
        raise GeneDataError(
            f"every one of the {shared:,} shared genes has no value at all in {source.name} or "
            f"{target.name}, so there is nothing to impute from; check the files' missing-value markers."
        )
    if dropped:
        Xs, Xt = Xs[:, keep], Xt[:, keep]
    gene_ids = source.gene_ids[cols_s[keep]]
    report = AlignmentReport(
        shared=shared,
        only_in_source=int(ids_s.shape[0] - shared),
        only_in_target=int(ids_t.shape[0] - shared),
        dropped_missing=dropped,
        imputed=imputed,
        duplicates_source=int(dup_s + source.n_duplicate_ids_dropped),
        duplicates_target=int(dup_t + target.n_duplicate_ids_dropped),
        kept=int(keep.sum()),
    )
    a2 = replace(source, expression=np.ascontiguousarray(Xs), gene_ids=gene_ids)
    b2 = replace(target, expression=np.ascontiguousarray(Xt), gene_ids=gene_ids.copy())
    return a2, b2, report
