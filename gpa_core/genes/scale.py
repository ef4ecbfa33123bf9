"""The scale of expression values: linear (intensities, counts) or log, and the log2 transforms offered.

The integration (standardization + PCA, then GPA) expects log-scale values, as in the paper (log2 RMA
intensities, 2–16). A table of linear values (MAS5/MAS4 intensities up to tens of thousands, TPM, raw
counts) is dominated by its few brightest genes; :func:`detect_linear` recognises it and
:func:`log2_transform` applies one of the :data:`TRANSFORMS`, with a floor for the non-positive values
(log2 of 0 or of a negative number is undefined) and, Affymetrix-style, a ceiling.

The rule (:func:`detect_linear`): the 99.9th percentile of the finite values is above
:data:`LINEAR_MIN` (100: no log2, ln or log10 scale reaches it; log2 intensities end near 16), the
median is not negative, at most :data:`MAX_NEGATIVE` of the values are negative, and the dynamic range
is large (99.9th percentile ≥ 10 × (|median| + 1)). ln(CP10k + 1) values (max ≈ 7) are not linear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gpa_core.genes.study import Study

__all__ = [
    "LINEAR_MIN",
    "MAX_NEGATIVE",
    "TRANSFORMS",
    "LinearScale",
    "Transform",
    "detect_linear",
    "linear_note",
    "log2_transform",
]

#: the 99.9th percentile above which values are taken as linear (no log scale gets there)
LINEAR_MIN = 100.0
#: the largest share of negative values a linear table may have (MAS4 "average difference" has some)
MAX_NEGATIVE = 0.4
_SAMPLE = 1_000_000  # values used for the percentiles (a regular stride through the matrix)


@dataclass(frozen=True)
class LinearScale:
    """Why a matrix looks linear: its maximum, median and 99.9th percentile, and the shares of
    values that are negative and that are at most 0 (all over the finite values); ``suggested`` is
    the key of the :data:`TRANSFORMS` entry that fits: the Affymetrix thresholding when there are
    negative values (MAS4 average differences), log2(x + 1) for whole numbers with zeros (counts),
    else log2(max(x, 1))."""

    max: float
    median: float
    q999: float
    negative: float
    nonpositive: float
    suggested: str = "log2_floor1"

    def describe(self) -> str:
        neg = f", {100 * self.nonpositive:.1f} % ≤ 0" if self.nonpositive else ""
        return f"max {_number(self.max)}, median {_number(self.median)}{neg}"


def _number(x: float) -> str:
    """A value for the notes: whole above 1,000 ('32,905'), else 4 significant digits."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


@dataclass(frozen=True)
class Transform:
    """log2(clip(x, floor, ceiling) + offset), named for the page and the notes."""

    label: str  # how the page and the notes name it
    floor: float
    ceiling: float | None = None
    offset: float = 0.0


#: the transforms the page offers for linear values (key: ``log2_transform(study, key)``)
TRANSFORMS: dict[str, Transform] = {
    "log2_floor1": Transform("log2(max(x, 1)): values below 1 (also 0 and negative ones) set to 1", 1.0),
    "log2_plus1": Transform("log2(max(x, 0) + 1): for counts; negative values set to 0", 0.0, None, 1.0),
    "log2_affy": Transform(
        "log2 of x clipped to [20, 16000] (Affymetrix MAS4/MAS5 thresholding)", 20.0, 16000.0
    ),
}


def _sample(X: np.ndarray) -> np.ndarray:
    """Finite values of ``X``: all of them, or :data:`_SAMPLE` drawn at seeded random positions (a
    regular stride could keep hitting the same genes), as float64."""
    flat = X.reshape(-1)
    if flat.shape[0] > _SAMPLE:
        flat = flat[np.sort(np.random.default_rng(0).integers(0, flat.shape[0], _SAMPLE))]
    v = np.asarray(flat, dtype=np.float64)
    return v[np.isfinite(v)]


def detect_linear(X: np.ndarray) -> LinearScale | None:
    """The evidence that ``X`` (samples × genes) holds linear, not log, values; None when it does
    not look linear (see the module's rule)."""
    if X.size == 0:
        return None
    v = _sample(np.asarray(X))
    if v.size == 0:
        return None
    q999, median = (float(q) for q in np.percentile(v, [99.9, 50]))
    negative = float(np.mean(v < 0))
    if not (q999 > LINEAR_MIN and median >= 0 and negative <= MAX_NEGATIVE and q999 >= 10 * (median + 1)):
        return None
    nonpositive = float(np.mean(v <= 0))
    if negative > 0.01:
        suggested = "log2_affy"
    elif nonpositive > 0 and bool(np.all(v == np.round(v))):
        suggested = "log2_plus1"
    else:
        suggested = "log2_floor1"
    return LinearScale(
        max=float(np.nanmax(X)),
        median=median,
        q999=q999,
        negative=negative,
        nonpositive=nonpositive,
        suggested=suggested,
    )


def linear_note(scale: LinearScale) -> str:
    """The note a reader adds for linear values (the page's 'scale' choice names the transforms)."""
    return (
        f"values look linear, not log-scale ({scale.describe()}); a log2 transform is offered "
        f"(the 'scale' choice on the page; log2_transform(study, {scale.suggested!r}) in Python)"
    )


def log2_transform(study: Study, transform: str | Transform = "log2_floor1") -> Study:
    """A copy of ``study`` with log2(clip(x, floor, ceiling) + offset) as float32; missing values
    stay missing. The note says what was applied and how many values the floor and ceiling moved."""
    from gpa_core.genes.study import GeneDataError  # study imports this module

    if isinstance(transform, str):
        if transform not in TRANSFORMS:
            raise GeneDataError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}.")
        transform = TRANSFORMS[transform]
    X = np.asarray(study.expression)
    out = np.empty(X.shape, dtype=np.float32)
    low = high = 0
    finite = 0
    for i0 in range(0, X.shape[0], 64):  # in row blocks: no float64 copy of the whole matrix
        block = np.asarray(X[i0 : i0 + 64], dtype=np.float64)
        ok = ~np.isnan(block)
        finite += int(ok.sum())
        low += int((block < transform.floor).sum())
        if transform.ceiling is not None:
            high += int((block > transform.ceiling).sum())
        clipped = np.clip(block, transform.floor, transform.ceiling)
        with np.errstate(divide="ignore"):
            out[i0 : i0 + 64] = np.log2(clipped + transform.offset)
    moved = []
    if low:
        moved.append(f"{_share(low, finite)} of the values raised to {transform.floor:g}")
    if high:
        moved.append(f"{_share(high, finite)} lowered to {transform.ceiling:g}")
    note = f"transformed: {transform.label}" + (f" ({'; '.join(moved)})" if moved else "")
    return replace(study, expression=out, notes=[*study.notes, note], linear=None)


def _share(k: int, n: int) -> str:
    pct = 100 * k / max(n, 1)
    return f"{k:,} ({pct:.1f} %)" if pct >= 0.1 else f"{k:,} (<0.1 %)"
