"""Tests for gpa_core.data.datasets: the registry, every sampler's shape/determinism/statistics, and specs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from scipy import stats

from gpa_core.data import datasets as ds
from gpa_core.data.datasets import (
    DatasetError,
    ParamSpec,
    format_spec,
    get_dataset,
    list_datasets,
    parse_spec,
    sample,
    sample_spec,
)
from gpa_core.data.points import DataFileError

NAMES = [
    "gaussian",
    "mixture",
    "student_t",
    "ggm",
    "uniform",
    "swiss_roll",
    "sierpinski",
    "digits",
    "image",
    "file",
]
SAMPLED = [n for n in NAMES if n != "file"]  # `file` needs a path; tested separately


@pytest.fixture
def points_csv(tmp_path: Path) -> Path:
    p = tmp_path / "pts.csv"
    rows = np.arange(40.0).reshape(20, 2)
    p.write_text("x,y\n" + "\n".join(f"{a},{b}" for a, b in rows))
    return p


# ---- registry -------------------------------------------------------------------------------------------


def test_registry_names_labels_and_defaults() -> None:
    specs = list_datasets()
    assert [s.name for s in specs] == NAMES
    for spec in specs:
        assert get_dataset(spec.name) is spec
        assert spec.label and spec.description and spec.default_n >= 1
        assert spec.dims is None or spec.default_dim in spec.dims
        for p in spec.params:
            assert p.kind in ("float", "int", "choice", "str")
            if spec.name != "file":  # file's path has no meaningful default
                assert p.coerce(p.default, spec.name) == p.default
        assert isinstance(spec.defaults(), dict)


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(DatasetError, match=r"Unknown dataset 'gauss'; known datasets: gaussian, mixture"):
        get_dataset("gauss")
    with pytest.raises(DatasetError, match="Unknown dataset"):
        sample("nope", 10)
    assert issubclass(DatasetError, ValueError)


# ---- every sampler: shape, dtype, determinism, seeds ---------------------------------------------------


@pytest.mark.parametrize("name", SAMPLED)
def test_shape_determinism_and_seeds(name: str) -> None:
    spec = get_dataset(name)
    for dim in {spec.default_dim, *(spec.dims or (1, 5))}:
        a = sample(name, 50, seed=3, dim=dim)
        assert a.shape == (50, dim) and a.dtype == np.float64 and a.flags.c_contiguous
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, sample(name, 50, seed=3, dim=dim))
        assert not np.array_equal(a, sample(name, 50, seed=4, dim=dim))
    assert sample(name, 7).shape == (7, spec.default_dim)


@pytest.mark.parametrize("name", SAMPLED)
def test_spec_sample_method_matches_function(name: str) -> None:
    np.testing.assert_array_equal(get_dataset(name).sample(20, seed=1), sample(name, 20, seed=1))


@pytest.mark.parametrize(
    ("name", "dim", "pattern"),
    [
        ("mixture", 3, r"mixture: dim must be 2; got 3"),
        ("sierpinski", 4, r"sierpinski: dim must be 2 or 3; got 4"),
        ("digits", 2, r"digits: dim must be 64; got 2"),
        ("gaussian", 0, r"gaussian: dim must be a positive integer; got 0"),
        ("gaussian", 5000, r"gaussian: dim must be at most 4096"),
    ],
)
def test_dim_validation(name: str, dim: int, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        sample(name, 10, dim=dim)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n": 0}, r"gaussian: the number of points n must be a positive integer; got 0"),
        ({"n": 2.5}, "positive integer"),
        ({"n": True}, "positive integer"),
        ({"n": 2_000_000}, "more than the limit of 1,000,000 points"),
        ({"n": 10, "seed": -1}, r"seed must be a non-negative integer; got -1"),
        ({"n": 10, "seed": 1.5}, "seed must be"),
        ({"n": 100_000, "dim": 4096}, r"n × dim .* more than the limit"),
    ],
)
def test_n_seed_and_size_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        sample("gaussian", **kwargs)


def test_numpy_integer_n_seed_dim_accepted() -> None:
    a = sample("gaussian", np.int64(5), seed=np.int32(2), dim=np.int64(3))
    np.testing.assert_array_equal(a, sample("gaussian", 5, seed=2, dim=3))


# ---- parameter validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("gaussian", {"std": 0}, r"gaussian: parameter 'std' must be a number > 0; got 0\."),
        ("gaussian", {"std": -1.0}, r"'std' must be a number > 0"),
        (
            "gaussian",
            {"mean": "abc"},
            r"gaussian: parameter 'mean' must be a finite number; got 'abc' \(not a",
        ),
        ("gaussian", {"mean": float("nan")}, r"'mean' .* \(not finite\)"),
        ("gaussian", {"mean": True}, r"'mean' must be a finite number"),
        ("gaussian", {"foo": 1}, r"gaussian: unknown parameter 'foo'; allowed parameters: mean, std"),
        ("sierpinski", {"level": 7}, r"sierpinski: parameter 'level' must be an integer from 1 to 6; got 7"),
        ("sierpinski", {"level": 0}, r"from 1 to 6; got 0"),
        (
            "sierpinski",
            {"level": 2.5},
            r"'level' must be an integer from 1 to 6; got 2\.5 \(not an integer\)",
        ),
        ("digits", {"digit": "x"}, r"digits: parameter 'digit' must be one of 'all', '0', '1'.*got 'x'"),
        ("digits", {"digit": 10}, r"'digit' must be one of"),
        ("image", {"threshold": 1.5}, r"image: parameter 'threshold' must be a number from 0 to 1"),
        ("uniform", {"low": 2, "high": 1}, r"uniform: low \(2\) must be smaller than high \(1\)"),
        ("student_t", {"nu": 0}, r"student_t: parameter 'nu' must be a number > 0"),
        ("ggm", {"beta": -0.5}, r"ggm: parameter 'beta' must be a number > 0"),
        ("swiss_roll", {"noise": -0.1}, r"swiss_roll: parameter 'noise' must be a number ≥ 0"),
        ("mixture", {"spacing": 0}, r"mixture: parameter 'spacing' must be a number > 0"),
        ("file", {}, r"file: parameter 'path' must be a non-empty text; got '' \(empty\)"),
    ],
)
def test_parameter_validation_messages(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        sample(name, 10, **params)


def test_params_coerced_from_strings_and_numpy() -> None:
    a = sample("sierpinski", 64, level="2", size="3")
    np.testing.assert_array_equal(a, sample("sierpinski", 64, level=2.0, size=np.float32(3)))
    b = sample("digits", 5, digit=3)
    np.testing.assert_array_equal(b, sample("digits", 5, digit="3"))


def test_param_spec_allowed_texts() -> None:
    assert ParamSpec("p", "float", 0.5, low=0, high=1).allowed() == "a number from 0 to 1"
    assert ParamSpec("p", "float", 0.5, low=0, high=1, low_open=True).allowed() == "a number with 0 < p ≤ 1"
    assert ParamSpec("p", "int", 1, high=3).allowed() == "an integer ≤ 3"
    assert ParamSpec("p", "float", 1.0).allowed() == "a finite number"


def test_overflow_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match=r"student_t: with nu=0\.001.*too large for float64"):
        sample("student_t", 200, nu=0.001)
    with pytest.raises(DatasetError, match=r"ggm: with beta=0\.001.*too large"):
        sample("ggm", 200, beta=0.001)


# ---- statistics ----------------------------------------------------------------------------------------


def test_gaussian_mean_and_std() -> None:
    x = sample("gaussian", 20_000, seed=0, dim=3, mean=10.0, std=0.5)
    np.testing.assert_allclose(x.mean(axis=0), 10.0, atol=0.02)  # standard error 0.0035
    np.testing.assert_allclose(x.std(axis=0), 0.5, atol=0.015)
    assert abs(np.corrcoef(x.T)[0, 1]) < 0.03  # independent coordinates


def test_mixture_four_equal_wells() -> None:
    x = sample("mixture", 8000, seed=0)
    centres = np.array([[0, 0], [4, 0], [0, 4], [4, 4]], dtype=float)
    nearest = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=4) / len(x), 0.25, atol=0.025)
    for k in range(4):
        within = x[nearest == k] - centres[k]
        np.testing.assert_allclose(within.mean(axis=0), 0.0, atol=0.05)
        np.testing.assert_allclose(within.std(axis=0), 0.5, atol=0.04)
    wide = sample("mixture", 8000, seed=0, spacing=10.0, std=0.1)
    assert np.abs(wide - np.round(wide / 10) * 10).max() < 0.7  # every point near a corner of [0, 10]²


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 4.0])
def test_ggm_moment_and_ks(beta: float) -> None:
    x = sample("ggm", 50_000, seed=1, beta=beta).ravel()  # 100,000 coordinates
    # density ∝ exp(−|x|^β)  =>  |x|^β ~ Gamma(1/β, 1), so E|x|^β = 1/β (std error sqrt(1/β / 1e5))
    assert abs(np.mean(np.abs(x) ** beta) - 1.0 / beta) < 0.02 / beta + 0.005
    assert abs(np.mean(x > 0) - 0.5) < 0.01  # symmetric
    assert stats.kstest(x[:20_000], stats.gennorm(beta).cdf).pvalue > 1e-3
    # the KS test has the power to catch a wrong shape parameter
    assert stats.kstest(x[:20_000], stats.gennorm(beta * 1.5).cdf).pvalue < 1e-3


def test_ggm_loc_scale() -> None:
    x = sample("ggm", 10_000, seed=2, dim=1, beta=0.5, loc=3.0, scale=2.0).ravel()
    assert stats.kstest(x, stats.gennorm(0.5, loc=3.0, scale=2.0).cdf).pvalue > 1e-3


@pytest.mark.parametrize(("nu", "loc", "scale"), [(0.5, 0.0, 1.0), (1.5, 0.0, 1.0), (3.0, -2.0, 0.5)])
def test_student_t_ks(nu: float, loc: float, scale: float) -> None:
    x = sample("student_t", 10_000, seed=5, nu=nu, loc=loc, scale=scale).ravel()
    assert stats.kstest(x, stats.t(nu, loc=loc, scale=scale).cdf).pvalue > 1e-3
    assert stats.kstest(x, stats.t(2 * nu, loc=loc, scale=scale).cdf).pvalue < 1e-3


def test_uniform_range_and_moments() -> None:
    x = sample("uniform", 20_000, seed=0, dim=2, low=-2.0, high=3.0)
    assert x.min() >= -2.0 and x.max() <= 3.0
    np.testing.assert_allclose(x.mean(axis=0), 0.5, atol=0.03)
    np.testing.assert_allclose(x.var(axis=0), 25 / 12, rtol=0.03)


# ---- sierpinski ----------------------------------------------------------------------------------------


def _removed(ix: np.ndarray, iy: np.ndarray, level: int) -> np.ndarray:
    """Whether integer cell (ix, iy) of the 3^level grid is removed from the carpet (independent check)."""
    out = np.zeros(ix.shape, dtype=bool)
    for _ in range(level):
        out |= (ix % 3 == 1) & (iy % 3 == 1)
        ix, iy = ix // 3, iy // 3
    return out


@pytest.mark.parametrize("level", [1, 2, 3, 4])
def test_sierpinski_one_point_per_kept_cell(level: int) -> None:
    m = 3**level
    n = 8**level
    assert len(ds.carpet_cells(level)) == n
    x = sample("sierpinski", n, seed=0, level=level)  # size 10: paper Fig. 7 at level 4 (4096 points)
    assert x.min() >= 0 and x.max() <= 10
    cell = np.floor(x / (10 / m)).astype(int)
    assert not _removed(cell[:, 0], cell[:, 1], level).any()
    flat = cell[:, 0] * m + cell[:, 1]
    assert len(np.unique(flat)) == n  # n distinct kept cells, so exactly one point in each


def test_sierpinski_level1_middle_is_empty() -> None:
    x = sample("sierpinski", 5000, seed=0, level=1, size=3.0)
    assert not ((x > 1) & (x < 2)).all(axis=1).any()
    assert ((x < 1).all(axis=1)).any() and ((x > 2).all(axis=1)).any()


@pytest.mark.parametrize("n", [100, 5000])
def test_sierpinski_random_n_stays_in_carpet(n: int) -> None:
    level = 3
    x = sample("sierpinski", n, seed=7, level=level, size=5.0)
    cell = np.floor(x / (5.0 / 27)).astype(int)
    assert not _removed(cell[:, 0], cell[:, 1], level).any()
    if n <= 8**level:  # cells drawn without replacement
        assert len(np.unique(cell[:, 0] * 27 + cell[:, 1])) == n


def test_sierpinski_3d_is_flat() -> None:
    x = sample("sierpinski", 4096, seed=0, dim=3)
    assert x.shape == (4096, 3) and (x[:, 2] == 0).all()
    np.testing.assert_array_equal(x[:, :2], sample("sierpinski", 4096, seed=0, dim=2))


# ---- swiss roll, digits, image -------------------------------------------------------------------------


def test_swiss_roll_dims_geometry_and_scale() -> None:
    x3 = sample("swiss_roll", 2000, seed=0, dim=3)
    x2 = sample("swiss_roll", 2000, seed=0, dim=2)
    np.testing.assert_array_equal(x2, x3[:, [0, 2]])  # the (x, z) plane of the same roll
    radius = np.hypot(x3[:, 0], x3[:, 2])  # noise-free roll: radius = t in [1.5π, 4.5π]
    assert radius.min() >= 1.5 * np.pi - 1e-9 and radius.max() <= 4.5 * np.pi + 1e-9
    assert x3[:, 1].min() >= 0 and x3[:, 1].max() <= 21
    np.testing.assert_allclose(sample("swiss_roll", 2000, seed=0, dim=3, scale=0.1), 0.1 * x3)
    noisy = sample("swiss_roll", 2000, seed=0, dim=3, noise=1.0)
    assert np.abs(np.hypot(noisy[:, 0], noisy[:, 2]) - radius).max() > 0.5


def test_digits_range_filter_and_replacement() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = sample("digits", 300, seed=0)
    assert x.shape == (300, 64) and x.min() >= 0 and x.max() <= 1 and x.max() == 1
    threes = bunch.data[bunch.target == 3] / 16
    y = sample("digits", 50, seed=1, digit="3")
    assert all((threes == row).all(axis=1).any() for row in y)  # every row is an image of a 3
    rows = {tuple(r) for r in sample("digits", len(threes), seed=2, digit="3")}
    assert len(rows) == len({tuple(r) for r in threes})  # n == available: each image once
    assert sample("digits", 500, seed=0, digit="3").shape == (500, 64)  # more than available: replacement


def test_image_dataset_default_and_custom(tmp_path: Path) -> None:
    x = sample("image", 2000, seed=0)
    assert x.shape == (2000, 2) and x.min() >= 0 and x.max() <= 10
    img = Image.new("L", (20, 10), 255)
    ImageDraw.Draw(img).rectangle((0, 0, 4, 9), fill=0)  # the left quarter is dark
    path = tmp_path / "bar.png"
    img.save(path)
    y = sample("image", 300, seed=0, path=str(path), size=20.0)
    assert y[:, 0].max() <= 5 and y[:, 1].max() <= 10
    with pytest.raises(DataFileError, match="File not found"):
        sample("image", 10, path=str(tmp_path / "missing.png"))


# ---- file dataset and specs ----------------------------------------------------------------------------


def test_file_dataset_subsample_and_all_rows(points_csv: Path) -> None:
    full = np.arange(40.0).reshape(20, 2)
    np.testing.assert_array_equal(sample_spec(f"file:{points_csv}", 20), full)
    np.testing.assert_array_equal(sample_spec(f"file:{points_csv}", 50), full)  # n > rows: all rows once
    sub = sample_spec(f"file:{points_csv}", 8, seed=3)
    assert sub.shape == (8, 2)
    idx = (sub[:, 0] / 2).astype(int)
    assert len(set(idx)) == 8 and (np.diff(idx) > 0).all()  # distinct rows, in file order
    np.testing.assert_array_equal(sub, full[idx])
    np.testing.assert_array_equal(sub, sample_spec(f"file:{points_csv}", 8, seed=3))
    assert not np.array_equal(sub, sample_spec(f"file:{points_csv}", 8, seed=4))
    np.testing.assert_array_equal(sub, sample("file", 8, seed=3, path=points_csv))
    with pytest.raises(DataFileError, match="but 3 are needed"):
        sample_spec(f"file:{points_csv}", 5, dim=3)
    assert sample_spec(f"file:{points_csv}", 5, dim=2).shape == (5, 2)


def test_file_path_with_colon_and_comma(tmp_path: Path) -> None:
    p = tmp_path / "a:b,c=d.csv"
    p.write_text("1,2\n3,4\n")
    assert parse_spec(f"file:{p}") == ("file", {"path": str(p)})
    assert sample_spec(f"file:{p}", 2).shape == (2, 2)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gaussian", ("gaussian", {})),
        ("gaussian:", ("gaussian", {})),
        ("gaussian:mean=10,std=0.5", ("gaussian", {"mean": 10.0, "std": 0.5})),
        ("  student_t : nu = 0.5 , scale=2 ", ("student_t", {"nu": 0.5, "scale": 2.0})),
        ("sierpinski:level=4,", ("sierpinski", {"level": 4})),
        ("digits:digit=7", ("digits", {"digit": "7"})),
    ],
)
def test_parse_spec(spec: str, expected: tuple) -> None:
    name, params = parse_spec(spec)
    assert (name, params) == expected
    assert all(type(v) is type(expected[1][k]) for k, v in params.items())


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("", "Empty dataset spec"),
        ("gaus:mean=1", "Unknown dataset 'gaus'"),
        ("gaussian:mean", r"'mean' is not of the form key=value"),
        ("gaussian:=3", r"'=3' is not of the form key=value"),
        ("gaussian:mean=1,mean=2", r"parameter 'mean' is given twice"),
        ("gaussian:sigma=1", r"unknown parameter 'sigma'; allowed parameters: mean, std"),
        ("gaussian:std=abc", r"parameter 'std' must be a number > 0; got 'abc' \(not a number\)"),
        ("file:", "give the path after the colon"),
    ],
)
def test_parse_spec_errors(spec: str, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        parse_spec(spec)


def test_sample_spec_equals_sample() -> None:
    np.testing.assert_array_equal(
        sample_spec("gaussian:mean=10,std=0.5", 100, seed=4, dim=3),
        sample("gaussian", 100, seed=4, dim=3, mean=10, std=0.5),
    )
    with pytest.raises(DatasetError, match="uniform: low"):
        sample_spec("uniform:low=5", 10)


@settings(max_examples=50, deadline=None)
@given(
    mean=st.floats(-1e6, 1e6, allow_nan=False),
    std=st.floats(1e-6, 1e6, allow_nan=False),
    dim=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_format_parse_round_trip_and_determinism(mean: float, std: float, dim: int, seed: int) -> None:
    spec = format_spec("gaussian", {"mean": mean, "std": std})
    assert parse_spec(spec) == ("gaussian", {"mean": mean, "std": std})
    a = sample_spec(spec, 5, seed=seed, dim=dim)
    np.testing.assert_array_equal(a, sample("gaussian", 5, seed=seed, dim=dim, mean=mean, std=std))
    assert np.all(np.abs(a - mean) <= 10 * std + 1e-9 * abs(mean))


def test_format_spec_file_and_refused_values() -> None:
    assert format_spec("file", {"path": "data/x.csv"}) == "file:data/x.csv"
    assert format_spec("sierpinski", {"level": 3}) == "sierpinski:level=3"
    with pytest.raises(DatasetError, match="cannot go in a spec"):
        format_spec("image", {"path": "a,b.png"})
