"""A registry of seeded point-cloud samplers with typed parameters.

Each dataset is a :class:`DatasetSpec`: a name, a label and one-line description for people, typed
parameters (:class:`ParamSpec`, enough for a UI to build a widget), the dimensions it supports and a
sampler. The same ``(name, params, n, seed, dim)`` always gives the identical array: every sampler draws
from ``np.random.default_rng(seed)`` only.

>>> x = sample("gaussian", 200, seed=0, mean=10, std=0.5)      # (200, 2) float64
>>> y = sample_spec("sierpinski:level=4", 4096, seed=0)         # paper Fig. 7 target
>>> parse_spec("gaussian:mean=10,std=0.5")
('gaussian', {'mean': 10.0, 'std': 0.5})

Datasets: ``gaussian``, ``mixture`` (paper Fig. 2-3), ``student_t`` and ``ggm`` (heavy tails, Fig. 4 and
Table 1), ``uniform``, ``swiss_roll`` (Fig. 6), ``sierpinski`` (Fig. 7 and Fig. 1), ``digits`` (8x8
digits standing in for MNIST, Fig. 5), ``image`` (dark pixels of a picture) and ``file`` (an uploaded
table, read by :func:`gpa_core.data.points.load_points`; :func:`spec_notes` gives what the reader noticed).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gpa_core.data.checks import Note
from gpa_core.data.images import image_to_points
from gpa_core.data.points import load_points, read_points

__all__ = [
    "DEFAULT_IMAGE",
    "MAX_DIM",
    "MAX_N",
    "MAX_VALUES",
    "DatasetError",
    "DatasetSpec",
    "ParamSpec",
    "format_spec",
    "get_dataset",
    "list_datasets",
    "parse_spec",
    "sample",
    "sample_spec",
    "spec_notes",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "assets/images/gpa.png"
"""The image sampled by the ``image`` dataset unless a path is given (relative to the repository root)."""
MAX_N = 1_000_000
"""Most points one call may draw."""
MAX_DIM = 4096
"""Largest dimension for datasets that allow any dimension."""
MAX_VALUES = 50_000_000
"""Most numbers (n x dim) one call may produce (400 MB of float64)."""

ParamKind = Literal["float", "int", "choice", "str"]
Sampler = Callable[[np.random.Generator, int, int | None, dict[str, Any]], np.ndarray]


class DatasetError(ValueError):
    """A dataset name, parameter, size, seed or spec string is not valid; the message says what is allowed."""


def _fmt(x: float) -> str:
    """A number as a person writes it (``4`` rather than ``4.0``)."""
    return f"{x:g}"


# --------------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One typed parameter of a dataset, enough for a UI to build a widget and to validate a value.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``); ``choices`` lists the
    allowed strings of a ``"choice"``; ``log`` suggests a logarithmic slider; ``help`` is a tooltip.
    """

    name: str
    kind: ParamKind
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    log: bool = False
    help: str = ""
    low_open: bool = False
    high_open: bool = False

    def allowed(self) -> str:
        """What values are allowed, in words (used in error messages and tooltips)."""
        if self.kind == "choice":
            return "one of " + ", ".join(f"'{c}'" for c in self.choices)
        if self.kind == "str":
            return "a non-empty text"
        what = "an integer" if self.kind == "int" else "a number"
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            if not self.low_open and not self.high_open:
                return f"{what} from {_fmt(lo)} to {_fmt(hi)}"
            left = "<" if self.low_open else "≤"
            right = "<" if self.high_open else "≤"
            return f"{what} with {_fmt(lo)} {left} {self.name} {right} {_fmt(hi)}"
        if lo is not None:
            return f"{what} {'>' if self.low_open else '≥'} {_fmt(lo)}"
        if hi is not None:
            return f"{what} {'<' if self.high_open else '≤'} {_fmt(hi)}"
        return what if self.kind == "int" else "a finite number"

    def coerce(self, value: Any, dataset: str = "") -> Any:
        """Validate ``value`` (numbers may come as strings, e.g. from a spec) and return it typed.

        Raises :class:`DatasetError` naming the dataset, the parameter and the allowed values.
        """

        def fail(reason: str = "") -> DatasetError:
            where = f"{dataset}: parameter '{self.name}'" if dataset else f"parameter '{self.name}'"
            shown = repr(value) if not isinstance(value, str) else f"'{value[:60]}'"
            return DatasetError(f"{where} must be {self.allowed()}; got {shown}{reason}.")

        if self.kind == "float":
            number = _to_float(value)
            if number is None:
                raise fail(" (not a number)")
            if not math.isfinite(number):
                raise fail(" (not finite)")
            if not self._in_range(number):
                raise fail()
            return number
        if self.kind == "int":
            number = _to_float(value)
            if number is None or not math.isfinite(number) or number != int(number):
                raise fail(" (not an integer)")
            integer = int(number)
            if not self._in_range(integer):
                raise fail()
            return integer
        if self.kind == "choice":
            if isinstance(value, bool) or not isinstance(value, str | int | np.integer | np.str_):
                raise fail()
            text = str(value).strip()
            if text not in self.choices:
                raise fail()
            return text
        if self.kind == "str":
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if not isinstance(value, str) or not value.strip():
                raise fail(" (empty)" if isinstance(value, str) else "")
            return value.strip()
        raise AssertionError(f"unknown parameter kind {self.kind!r}")  # pragma: no cover

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))


def _to_float(value: Any) -> float | None:
    """A float from a number or numeric string; ``None`` if it is neither (booleans are refused)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """A named, seeded sampler with typed parameters.

    ``dims`` lists the allowed dimensions (``None``: any from 1 to ``MAX_DIM``); ``default_dim`` is used
    when ``dim`` is not given. When ``dim_from_data`` is set (the ``file`` dataset) the data fix the
    dimension: ``dim=None`` accepts whatever the file has and a given ``dim`` must match it.
    ``default_n`` is a suggested number of points for a UI; ``paper`` says where the paper uses it.
    """

    name: str
    label: str
    params: tuple[ParamSpec, ...]
    dims: tuple[int, ...] | None
    default_dim: int
    description: str
    sampler: Sampler = field(repr=False, compare=False)
    default_n: int = 200
    dim_from_data: bool = False
    paper: str = ""
    check: Callable[[dict[str, Any]], str | None] | None = field(default=None, repr=False, compare=False)

    def param(self, name: str) -> ParamSpec:
        """The parameter called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise DatasetError(f"{self.name}: unknown parameter '{name}'; {self._allowed_names()}.")

    def defaults(self) -> dict[str, Any]:
        """Default value of every parameter."""
        return {p.name: p.default for p in self.params}

    def _allowed_names(self) -> str:
        if not self.params:
            return "this dataset takes no parameters"
        return "allowed parameters: " + ", ".join(p.name for p in self.params)

    def validate_params(self, params: Mapping[str, Any], *, fill_defaults: bool = True) -> dict[str, Any]:
        """Coerce ``params`` by their :class:`ParamSpec`; unknown names are refused.

        With ``fill_defaults`` every parameter is present in the result (missing ones get their default)
        and cross-parameter checks (e.g. ``low < high``) run.
        """
        known = {p.name: p for p in self.params}
        for key in params:
            if key not in known:
                raise DatasetError(f"{self.name}: unknown parameter '{key}'; {self._allowed_names()}.")
        values = {key: known[key].coerce(value, self.name) for key, value in params.items()}
        if fill_defaults:
            for p in self.params:
                if p.name not in values:
                    values[p.name] = p.coerce(p.default, self.name)
            if self.check is not None:
                problem = self.check(values)
                if problem:
                    raise DatasetError(f"{self.name}: {problem}")
        return values

    def resolve_dim(self, dim: int | None) -> int | None:
        """The dimension to sample in (``None`` only for data-defined dimensions)."""
        if dim is None:
            return None if self.dim_from_data else self.default_dim
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise DatasetError(f"{self.name}: dim must be a positive integer; got {dim!r}.")
        dim = int(dim)
        if self.dims is not None and dim not in self.dims:
            allowed = " or ".join(str(d) for d in self.dims)
            raise DatasetError(f"{self.name}: dim must be {allowed}; got {dim}.")
        if self.dims is None and dim > MAX_DIM:
            raise DatasetError(f"{self.name}: dim must be at most {MAX_DIM}; got {dim}.")
        return dim

    def sample(self, n: int, *, seed: int = 0, dim: int | None = None, **params: Any) -> np.ndarray:
        """Draw ``n`` points as an ``(n, dim)`` float64 array; see :func:`sample`."""
        n = _check_n(n, self.name)
        seed = _check_seed(seed, self.name)
        d = self.resolve_dim(dim)
        if d is not None and n * d > MAX_VALUES:
            raise DatasetError(
                f"{self.name}: n × dim = {n:,} × {d} = {n * d:,} numbers, more than the limit of "
                f"{MAX_VALUES:,}; ask for fewer points or a lower dimension."
            )
        values = self.validate_params(params)
        rng = np.random.default_rng(seed)
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(self.sampler(rng, n, d, values), dtype=np.float64)
        if out.ndim != 2 or (d is not None and out.shape[1] != d):  # pragma: no cover - sampler bug
            raise AssertionError(f"{self.name} sampler returned shape {out.shape}, expected (n, {d})")
        if not np.isfinite(out).all():
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise DatasetError(
                f"{self.name}: with {shown} some samples are too large for float64 (overflow to infinity); "
                "choose a less extreme parameter (e.g. a larger ν or β)."
            )
        return out


def _check_n(n: Any, dataset: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise DatasetError(f"{dataset}: the number of points n must be a positive integer; got {n!r}.")
    if n > MAX_N:
        raise DatasetError(f"{dataset}: n = {n:,} is more than the limit of {MAX_N:,} points.")
    return int(n)


def _check_seed(seed: Any, dataset: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DatasetError(f"{dataset}: seed must be a non-negative integer; got {seed!r}.")
    return int(seed)


def _subsample_rows(rng: np.random.Generator, available: int, n: int) -> np.ndarray:
    """Indices of ``n`` rows out of ``available``: without replacement (in original order) while
    ``n <= available``, with replacement beyond."""
    if n == available:
        return np.arange(n)
    if n < available:
        return np.sort(rng.choice(available, size=n, replace=False))
    return rng.integers(0, available, size=n)


def _resolve_path(path: str) -> str:
    """A path as given if it exists (or is absolute), else relative to the repository root if it exists
    there (so the shipped ``assets/...`` paths work from any working directory)."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return str(p)
    candidate = REPO_ROOT / p
    return str(candidate) if candidate.exists() else str(p)


# ---- the registry ----------------------------------------------------------------------------------------

_POS = {"low": 0.0, "low_open": True}  # a strictly positive number
_LOC = ParamSpec("loc", "float", 0.0, help="Centre: added to every coordinate.")
_SCALE = ParamSpec("scale", "float", 1.0, log=True, help="Multiplies every coordinate.", **_POS)

_REGISTRY: dict[str, DatasetSpec] = {}


def _dataset(
    name: str,
    label: str,
    *params: ParamSpec,
    description: str,
    dims: tuple[int, ...] | None = None,
    default_dim: int = 2,
    **more: Any,
) -> Callable[[Sampler], Sampler]:
    """Register the decorated sampler as the dataset ``name`` (the arguments are the fields of
    :class:`DatasetSpec`: any dimension, 2 by default, unless ``dims`` and ``default_dim`` say otherwise).
    Datasets are listed in the order they are registered."""

    def register(sampler: Sampler) -> Sampler:
        _REGISTRY[name] = DatasetSpec(name, label, params, dims, default_dim, description, sampler, **more)
        return sampler

    return register


# ---- the datasets, in registry order: each sampler (rng, n, dim, params) -> (n, dim) under its spec ------


@_dataset(
    "gaussian",
    "Gaussian",
    ParamSpec("mean", "float", 0.0, help="Mean of every coordinate (10 gives the centre (10, 10))."),
    ParamSpec("std", "float", 1.0, log=True, help="Standard deviation of every coordinate.", **_POS),
    description="A round bell-shaped cloud: every coordinate independent normal with the given mean "
    "and standard deviation.",
    paper="source of most experiments, e.g. N((10, 10), 0.5²I) in Fig. 4 / Table 1",
)
def _gaussian(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    assert d is not None
    return p["mean"] + p["std"] * rng.standard_normal((n, d))


@_dataset(
    "mixture",
    "Four Gaussian wells",
    ParamSpec("std", "float", 0.5, log=True, help="Standard deviation of each well.", **_POS),
    ParamSpec("spacing", "float", 4.0, help="Side of the square the four centres sit on.", **_POS),
    dims=(2,),
    description="An equal mix of four round Gaussian blobs centred at the corners (0, 0), (4, 0), "
    "(0, 4), (4, 4) of a square.",
    paper="target of Fig. 2-3 (std 0.5, spacing 4)",
)
def _mixture(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    centres = p["spacing"] * np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    which = rng.integers(0, 4, size=n)
    return centres[which] + p["std"] * rng.standard_normal((n, 2))


@_dataset(
    "student_t",
    "Student-t (heavy tails)",
    ParamSpec(
        "nu",
        "float",
        3.0,
        log=True,
        help="Degrees of freedom ν: smaller means heavier tails (ν ≤ 2: infinite variance, ν ≤ 1: no mean).",
        **_POS,
    ),
    _LOC,
    _SCALE,
    description="Every coordinate an independent Student-t(ν): mostly near the centre but with rare, "
    "very distant outliers when ν is small.",
    paper="Fig. 4 and Table 1 (ν = 3, 1.5, 0.5)",
)
def _student_t(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    assert d is not None
    return p["loc"] + p["scale"] * rng.standard_t(p["nu"], size=(n, d))


@_dataset(
    "ggm",
    "Generalized Gaussian GGM(β)",
    ParamSpec(
        "beta",
        "float",
        0.5,
        log=True,
        help="Shape β: 2 is Gaussian-like, 1 is Laplace, β < 1 gives stretched-exponential tails.",
        **_POS,
    ),
    _LOC,
    _SCALE,
    description="Every coordinate independent with density ∝ exp(−|x|^β): "
    "heavy (but not polynomial) tails for β < 1, "
    "with all moments finite.",
    paper="Table 1 (β = 0.5)",
)
def _ggm(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    """Exact sampling of density ∝ exp(−|x|^β) per coordinate: |x| = G^{1/β}, G ~ Gamma(1/β, 1)."""
    assert d is not None
    beta = p["beta"]
    magnitude = rng.gamma(1.0 / beta, 1.0, size=(n, d)) ** (1.0 / beta)
    sign = 2.0 * rng.integers(0, 2, size=(n, d)) - 1.0
    return p["loc"] + p["scale"] * sign * magnitude


def _check_uniform(p: dict[str, Any]) -> str | None:
    if p["low"] >= p["high"]:
        return f"low ({_fmt(p['low'])}) must be smaller than high ({_fmt(p['high'])})."
    return None


@_dataset(
    "uniform",
    "Uniform box",
    ParamSpec("low", "float", 0.0, help="Lower end of every coordinate."),
    ParamSpec("high", "float", 1.0, help="Upper end of every coordinate (must exceed low)."),
    description="Points spread evenly over the box [low, high] in every coordinate.",
    check=_check_uniform,
    paper="MNIST source Unif[0, 1]^784 in Fig. 5",
)
def _uniform(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    assert d is not None
    return p["low"] + (p["high"] - p["low"]) * rng.random((n, d))


@_dataset(
    "swiss_roll",
    "Swiss roll",
    ParamSpec("noise", "float", 0.0, low=0.0, help="Standard deviation of Gaussian noise added."),
    ParamSpec("scale", "float", 1.0, log=True, help="Multiplies every coordinate.", **_POS),
    dims=(2, 3),
    default_dim=3,
    description="A sheet rolled up like a cake roll (scikit-learn's make_swiss_roll); in 2-D its side "
    "view, a spiral.",
    default_n=1000,
    paper="Fig. 6 (3-D, no noise)",
)
def _swiss_roll(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    x, _t = make_swiss_roll(n, noise=p["noise"], random_state=int(rng.integers(0, 2**32 - 1)))
    if d == 2:
        x = x[:, [0, 2]]  # the (x, z) plane: the classic 2-D spiral
    return p["scale"] * x


@functools.lru_cache(maxsize=8)
def carpet_cells(level: int) -> np.ndarray:
    """Integer (column, row) indices of the 8^level kept cells of the 3^level × 3^level grid.

    A cell is removed when, at some scale, both of its base-3 digits are 1 (the middle square).
    The returned array is read-only.
    """
    m = 3**level
    i = np.arange(m)
    col, row = np.meshgrid(i, i, indexing="xy")
    removed = np.zeros((m, m), dtype=bool)
    p = 1
    for _ in range(level):
        removed |= ((col // p) % 3 == 1) & ((row // p) % 3 == 1)
        p *= 3
    cells = np.column_stack([col[~removed], row[~removed]])
    cells.setflags(write=False)
    return cells


@_dataset(
    "sierpinski",
    "Sierpinski carpet",
    ParamSpec(
        "level",
        "int",
        4,
        low=1,
        high=6,
        help="Number of scales k: the 3^k × 3^k grid keeps 8^k cells (level 4: 4096).",
    ),
    ParamSpec("size", "float", 10.0, help="The carpet covers [0, size]².", **_POS),
    dims=(2, 3),
    description="A fractal: a square with its middle ninth removed, repeated at k scales; points fall "
    "in the kept cells (one per cell when n = 8^k). In 3-D the carpet lies flat at z = 0.",
    default_n=4096,
    paper="Fig. 7 (2-D, level 4, 4096 points) and Fig. 1 (3-D)",
)
def _sierpinski(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    cells = carpet_cells(p["level"])
    idx = _subsample_rows(rng, len(cells), n)
    width = p["size"] / 3 ** p["level"]
    pts = (cells[idx] + rng.random((n, 2))) * width
    if d == 3:
        pts = np.column_stack([pts, np.zeros(n)])
    return pts


@functools.lru_cache(maxsize=1)
def _digits_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@_dataset(
    "digits",
    "Handwritten digits (8×8)",
    ParamSpec(
        "digit",
        "choice",
        "all",
        choices=("all", *(str(k) for k in range(10))),
        help="Use only images of this digit (about 180 each) or all 1,797.",
    ),
    dims=(64,),
    default_dim=64,
    description="scikit-learn's 8×8 images of handwritten digits: each image is a point in 64 "
    "dimensions, pixel brightness scaled to [0, 1].",
    paper="stands in for MNIST (Fig. 5, 9, 10)",
)
def _digits(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    x, y = _digits_data()
    if p["digit"] != "all":
        x = x[y == int(p["digit"])]
    return x[_subsample_rows(rng, len(x), n)]


@_dataset(
    "image",
    "Picture (dark pixels)",
    ParamSpec("path", "str", DEFAULT_IMAGE, help="Image file (PNG, JPEG, ...)."),
    ParamSpec("threshold", "float", 0.5, low=0.0, high=1.0, help="Pixels darker than this (0-1) are used."),
    ParamSpec("size", "float", 10.0, help="The longer side of the image spans [0, size].", **_POS),
    dims=(2,),
    description="Points spread over the dark parts of a picture (by default the letters GPA).",
    default_n=2000,
)
def _image(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    return image_to_points(
        _resolve_path(p["path"]),
        n=n,
        seed=int(rng.integers(0, 2**63 - 1)),
        threshold=p["threshold"],
        size=p["size"],
    )


@_dataset(
    "file",
    "Points from a file",
    ParamSpec("path", "str", "", help="A .csv, .tsv, .txt, .npy or .npz file, one point per row."),
    description="Your own points, one per row of a CSV/TSV/text/NumPy file; a random subset when you "
    "ask for fewer points than the file has (all rows when you ask for more).",
    default_n=1000,
    dim_from_data=True,
)
def _file(rng: np.random.Generator, n: int, d: int | None, p: dict[str, Any]) -> np.ndarray:
    points = load_points(_resolve_path(p["path"]), expected_dim=d)
    if n >= len(points):
        return points  # asking for more points than rows returns every row once
    return points[_subsample_rows(rng, len(points), n)]


# --------------------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------------------


def list_datasets() -> list[DatasetSpec]:
    """All datasets, in a stable order."""
    return list(_REGISTRY.values())


def get_dataset(name: str) -> DatasetSpec:
    """The dataset called ``name``; an unknown name raises :class:`DatasetError` listing the known ones."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    shown = f"'{name}'" if isinstance(name, str) else repr(name)
    raise DatasetError(f"Unknown dataset {shown}; known datasets: {', '.join(_REGISTRY)}.")


def sample(name: str, n: int, *, seed: int = 0, dim: int | None = None, **params: Any) -> np.ndarray:
    """Draw ``n`` points of dataset ``name`` as an ``(n, d)`` float64 array, deterministically per seed.

    ``dim`` defaults to the dataset's ``default_dim``. Parameters are validated and coerced by their
    :class:`ParamSpec` (strings such as ``"0.5"`` are accepted). For ``file``, asking for more points
    than the file has returns all its rows (so fewer than ``n``); file problems raise
    :class:`gpa_core.data.sources.DataFileError`.
    """
    return get_dataset(name).sample(n, seed=seed, dim=dim, **params)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"name"``, ``"name:k=v,k2=v2"`` or ``"file:PATH"`` into ``(name, params)``.

    Values are validated and coerced (``"gaussian:mean=10"`` gives ``{"mean": 10.0}``); parameters not
    mentioned are left out (they take their defaults when sampling). For ``file:`` everything after the
    colon is the path.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(
            f"Empty dataset spec {spec!r}; write a name such as 'gaussian' or 'gaussian:mean=10,std=0.5'."
        )
    name, _sep, rest = spec.strip().partition(":")
    name = name.strip()
    ds = get_dataset(name)
    if name == "file":
        path = rest.strip()
        if not path:
            raise DatasetError("file: give the path after the colon, as in 'file:points.csv'.")
        return name, {"path": path}
    raw: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise DatasetError(
                f"{name}: '{item}' is not of the form key=value (as in '{name}:"
                f"{ds.params[0].name if ds.params else 'key'}=...'); {ds._allowed_names()}."
            )
        if key in raw:
            raise DatasetError(f"{name}: parameter '{key}' is given twice.")
        raw[key] = value.strip()
    return name, ds.validate_params(raw, fill_defaults=False)


def format_spec(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The spec string for ``name`` and ``params`` (the inverse of :func:`parse_spec`)."""
    ds = get_dataset(name)
    params = ds.validate_params(dict(params or {}), fill_defaults=False)
    if name == "file":
        return f"file:{params['path']}" if "path" in params else "file"
    parts = []
    for key, value in params.items():
        text = repr(value) if isinstance(value, float) else str(value)
        if "," in text or "=" in text:
            raise DatasetError(f"{name}: the value of '{key}' contains ',' or '=' and cannot go in a spec.")
        parts.append(f"{key}={text}")
    return name + (":" + ",".join(parts) if parts else "")


def sample_spec(spec: str, n: int, *, seed: int = 0, dim: int | None = None) -> np.ndarray:
    """Sample from a spec string such as ``"student_t:nu=0.5"`` or ``"file:data/points.csv"``.

    For ``file:`` a file with more rows than ``n`` gives a seeded subsample without replacement (rows in
    file order); a file with ``n`` or fewer rows is returned whole.
    """
    name, params = parse_spec(spec)
    return sample(name, n, seed=seed, dim=dim, **params)


def spec_notes(spec: str) -> tuple[Note, ...]:
    """What reading a ``file:`` spec's table had to say (a dropped index column, constant columns, ...;
    see :func:`gpa_core.data.points.read_points`), for a command line to show; ``()`` for other datasets. The
    file is read again, so call it after :func:`sample_spec` succeeded."""
    name, params = parse_spec(spec)
    if name != "file":
        return ()
    return read_points(_resolve_path(params["path"])).notes
