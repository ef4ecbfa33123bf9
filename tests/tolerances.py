"""Tolerances derived from floating-point rounding, for tests that compare two computations which the
code does not force into the same order of arithmetic (another CPU's vector width, another BLAS kernel,
another batch shape).

Where the code does fix the order (the compiled kernel computes each member alone, its lanes are merged
in lane order), tests assert bit-for-bit equality instead. Everywhere else they assert

    |a − b| ≤ growth · γ_n · scale,    γ_n = n·u / (1 − n·u)                     (Higham, Thm 3.1)

where u is the unit roundoff of the dtype, n the longest sum in the computation (a dot product or a
mean over n terms has relative error at most γ_n in any order), ``scale`` the magnitude of the values
compared, and ``growth`` a factor the test states: how many such operations are chained and how much a
step of the flow may amplify an earlier difference.
"""

from __future__ import annotations

import numpy as np

UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


def gamma(n: int, dtype: type | np.dtype) -> float:
    """γ_n = n·u/(1 − n·u): the relative error bound of a sum or dot product of n terms."""
    u = UNIT_ROUNDOFF[np.dtype(dtype)]
    if n * u >= 1:
        raise ValueError(f"γ_n is unbounded for n = {n} in {np.dtype(dtype)}")
    return n * u / (1 - n * u)


def rounding_tolerance(n: int, dtype: type | np.dtype, growth: float) -> float:
    """growth · γ_n: the relative tolerance of a chain of ``growth`` (stated) n-term sums."""
    return growth * gamma(n, dtype)


def assert_close_by_rounding(
    actual: np.ndarray, expected: np.ndarray, *, n: int, dtype: type | np.dtype, growth: float, what: str = ""
) -> None:
    """|actual − expected| ≤ growth·γ_n·max(|expected|, 1) elementwise, NaN where both are NaN."""
    tol = rounding_tolerance(n, dtype, growth)
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = max(float(np.nanmax(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0.0, atol=tol * scale, equal_nan=True, err_msg=what)
