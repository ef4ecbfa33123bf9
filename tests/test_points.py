"""Tests for the point readers (gpa_core.data.points and the sources, tables, images and checks modules
behind it): reading uploaded point tables and images, and every error path."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageDraw
from upload_corpus import zip_bytes

from gpa_core.data import points as gio
from gpa_core.data import tables
from gpa_core.data.points import DataFileError, image_to_points, load_points

FIXTURES = Path(__file__).parent / "fixtures" / "points"


def npy_bytes(arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


# ---- reading good files -----------------------------------------------------------------------------------


def test_header_fixture_skipped_and_values_exact() -> None:
    got = load_points(FIXTURES / "header.csv")
    np.testing.assert_array_equal(got, [[0.5, 1.5], [-2.0, 0.3], [4.25, -7.0]])
    assert got.dtype == np.float64 and got.flags.c_contiguous


def test_no_header_first_row_is_data() -> None:
    got = load_points(b"1,2\n3,4\n", filename="a.csv")
    np.testing.assert_array_equal(got, [[1, 2], [3, 4]])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tabs.tsv", [[1, 2], [3, 4], [5, 6]]),
        ("semicolon_decimal_comma.csv", [[1.5, 2.5], [-3.25, 4.0]]),
        ("whitespace_comments.txt", [[1, 2], [3, 4]]),
    ],
)
def test_delimiter_fixtures(name: str, expected: list[list[float]]) -> None:
    np.testing.assert_array_equal(load_points(str(FIXTURES / name)), expected)


@pytest.mark.parametrize(
    ("text", "filename"),
    [
        ("1,2\n3,4\n", "a.csv"),
        ("1\t2\n3\t4\n", "a.tsv"),
        ("1;2\n3;4\n", "a.csv"),
        ("1 2\n  3   4  \n", "a.txt"),
        ("1, 2\n3 ,4\n", "a.txt"),
        ("1\t2\n3\t4\n", "a.csv"),  # sniffed, not trusted from the extension
        ('"a","b"\n"1","2"\n3,4\n', "a.csv"),  # quoted header and cells
        ("1,2\r\n3,4\r\n", "a.csv"),
        ("1,2\n\n   \n3,4\n\n", "a.dat"),  # blank lines
        ("# comment\nx y\n1 2 # trailing\n# more\n3 4\n", "a.txt"),
    ],
)
def test_delimiters_and_layouts(text: str, filename: str) -> None:
    np.testing.assert_array_equal(load_points(text.encode(), filename=filename), [[1, 2], [3, 4]])


def test_header_detection_only_first_row() -> None:
    with pytest.raises(DataFileError, match=r"row 3, column 1 contains 'x'"):
        load_points(b"a,b\n1,2\nx,y\n", filename="a.csv")


def test_single_column_is_n_by_1() -> None:
    got = load_points(b"value\n1\n2\n3\n", filename="a.csv")
    assert got.shape == (3, 1)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xef\xbb\xbfx,y\n1,2\n3,4\n", "utf-8 BOM"),
        ("x,y\r\n1,2\r\n3,4\r\n".encode("utf-16"), "utf-16 (Excel Unicode text)"),
        ("Größe,Höhe\n1,2\n3,4\n".encode("latin-1"), "latin-1 header"),
    ],
)
def test_encodings(data: bytes, why: str) -> None:
    np.testing.assert_array_equal(load_points(data, filename="a.csv"), [[1, 2], [3, 4]], err_msg=why)


def test_sources_path_bytes_and_filelike(tmp_path: Path) -> None:
    p = tmp_path / "pts.csv"
    p.write_text("1,2\n3,4\n")
    expected = [[1, 2], [3, 4]]
    np.testing.assert_array_equal(load_points(p), expected)
    np.testing.assert_array_equal(load_points(str(p)), expected)
    np.testing.assert_array_equal(load_points(b"1,2\n3,4\n"), expected)  # no name: sniffed as text
    fh = io.BytesIO(b"1,2\n3,4\n")
    fh.name = "upload.csv"  # like Streamlit's UploadedFile
    np.testing.assert_array_equal(load_points(fh), expected)


def test_npy_sniffed_without_name() -> None:
    arr = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(load_points(npy_bytes(arr)), arr)


def test_npy_dtypes_and_1d() -> None:
    np.testing.assert_array_equal(
        load_points(npy_bytes(np.arange(6)), filename="a.npy"), np.arange(6.0)[:, None]
    )
    got = load_points(npy_bytes(np.ones((3, 2), dtype=np.float32)), filename="a.npy")
    assert got.dtype == np.float64 and got.shape == (3, 2)
    fortran = np.asfortranarray(np.arange(12.0).reshape(4, 3))
    np.testing.assert_array_equal(load_points(npy_bytes(fortran), filename="a.npy"), fortran)


def test_npz_single_and_named_points() -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, np.ones((4, 3)))
    assert load_points(buf.getvalue(), filename="a.npz").shape == (4, 3)
    buf = io.BytesIO()
    np.savez(buf, labels=np.arange(5), points=np.zeros((5, 2)))
    assert load_points(buf.getvalue(), filename="a.npz").shape == (5, 2)


def test_large_csv_round_trip() -> None:
    arr = np.random.default_rng(0).normal(size=(100_000, 2))
    text = "x,y\n" + "\n".join(f"{a!r},{b!r}" for a, b in arr.tolist())
    np.testing.assert_array_equal(load_points(text.encode(), filename="big.csv"), arr)


# ---- error paths -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\n\n   \n", b"# only a comment\n"])
def test_empty(data: bytes) -> None:
    with pytest.raises(DataFileError, match="is empty"):
        load_points(data, filename="e.csv")


def test_too_large_bytes_and_path(tmp_path: Path) -> None:
    data = b"1,2\n" * 1000
    with pytest.raises(DataFileError, match=r"'big.csv' is 4 kB, larger than the 1 kB upload limit"):
        load_points(data, filename="big.csv", max_bytes=1024)
    p = tmp_path / "big.csv"
    p.write_bytes(b"1,2\n" * 300_000)  # 1.1 MB
    with pytest.raises(DataFileError, match=r"'big.csv' is 1\.1 MB, larger than the 1 MB upload limit"):
        load_points(p, max_bytes=2**20)


def test_default_limit_is_50_mb() -> None:
    assert gio.MAX_UPLOAD_BYTES == 50 * 2**20
    with pytest.raises(DataFileError, match="50 MB upload limit"):
        load_points(b"0" * (gio.MAX_UPLOAD_BYTES + 1), filename="x.csv")


def test_non_numeric_cell_fixture() -> None:
    with pytest.raises(
        DataFileError, match=r"'text_cell.csv': row 3, column 2 contains 'four', which is not a number"
    ):
        load_points(FIXTURES / "text_cell.csv")


def test_non_numeric_cell_text_truncated_and_rows_count_blank_lines() -> None:
    long = "z" * 200
    data = f"1,2\n\n# note\n3,{long}\n".encode()
    with pytest.raises(DataFileError) as exc:
        load_points(data, filename="a.csv")
    msg = str(exc.value)
    assert "row 4, column 2" in msg  # physical line numbers, as in an editor or spreadsheet
    assert long not in msg and "z" * 30 in msg


def test_empty_cell() -> None:
    with pytest.raises(DataFileError, match=r"row 2, column 1 is empty"):
        load_points(b"1,2\n,4\n", filename="a.csv")
    with pytest.raises(DataFileError, match=r"row 2, column 2 is empty \(a trailing comma"):
        load_points(b"1,2\n3,\n", filename="a.csv")


def test_nan_and_inf_count_and_first_location() -> None:
    data = b"x,y\n1,2\n3,nan\ninf,4\n5,-Infinity\n"
    with pytest.raises(
        DataFileError, match=r"has 3 cells that are NaN or infinite; the first is row 3, column 2"
    ):
        load_points(data, filename="a.csv")
    with pytest.raises(DataFileError, match=r"1 value that is NaN or infinite.*row 2, column 1"):
        load_points(npy_bytes(np.array([[1.0, 2.0], [np.inf, 3.0]])), filename="a.npy")
    with pytest.raises(DataFileError, match="NaN or infinite"):
        load_points(b"1,2\n3,1e999\n", filename="a.csv")  # overflows to inf


def test_ragged_rows_fixture_and_short_row() -> None:
    with pytest.raises(DataFileError, match=r"'ragged.csv': row 3 has 3 fields but row 2 has 2"):
        load_points(FIXTURES / "ragged.csv")
    with pytest.raises(DataFileError, match=r"row 3 has 1 field but row 1 has 2"):
        load_points(b"1,2\n3,4\n5\n", filename="a.csv")


@pytest.mark.parametrize(
    ("data", "filename", "pattern"),
    [
        # a cell that is not a number, with a hint at what it may be
        (b"1;2\n3,5;4,5\n1.5;2\n", "a.txt", r"row 2, column 1 contains '3,5'.*Decimal commas"),
        (b"1\t2\n1,000\t4\n", "a.txt", r"row 2, column 1 contains '1,000'.*thousands separators"),
        # too few rows
        (b"1,2\n", "a.csv", r"has 1 data row; at least 2 points"),
        (b"x,y\n1,2\n", "a.csv", r"has 1 data row; at least 2 points"),
        (b"x,y\n", "a.csv", r"header row but no data rows"),
    ],
)
def test_text_table_refused(data: bytes, filename: str, pattern: str) -> None:
    with pytest.raises(DataFileError, match=pattern):
        load_points(data, filename=filename)


def test_single_row_npy_refused() -> None:
    with pytest.raises(DataFileError, match="at least 2 points"):
        load_points(npy_bytes(np.ones((1, 3))), filename="a.npy")


def test_million_columns_refused_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    line = b",".join([b"1.5"] * 1_000_000) + b"\n"
    calls: list[object] = []
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: calls.append(1))  # the table is never parsed
    with pytest.raises(DataFileError, match=r"1,000,000 columns in row 1, more than the limit of 4,096"):
        load_points(line, filename="wide.csv")
    assert not calls


def test_too_many_columns_npy_and_whitespace() -> None:
    with pytest.raises(DataFileError, match="5,000 columns"):
        load_points(npy_bytes(np.zeros((2, 5000))), filename="a.npy")
    with pytest.raises(DataFileError, match="5,000 columns"):
        load_points((" ".join(["1"] * 5000) + "\n").encode(), filename="a.txt")


def test_max_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables, "MAX_ROWS", 5)  # the limit the table readers check
    with pytest.raises(DataFileError, match=r"6 data rows, more than the limit of 5"):
        load_points(b"x\n" + b"1\n" * 6, filename="a.csv")
    with pytest.raises(DataFileError, match=r"6 rows, more than the limit of 5"):
        load_points(npy_bytes(np.zeros((6, 2))), filename="a.npy")


def test_expected_dim() -> None:
    assert load_points(b"1,2\n3,4\n", filename="a.csv", expected_dim=2).shape == (2, 2)
    with pytest.raises(DataFileError, match=r"has 2 columns \(dimension 2\), but 3 are needed"):
        load_points(b"1,2\n3,4\n", filename="a.csv", expected_dim=3)
    with pytest.raises(ValueError, match="expected_dim"):
        load_points(b"1,2\n3,4\n", filename="a.csv", expected_dim=0)


def test_npy_3d_and_scalar_refused() -> None:
    with pytest.raises(DataFileError, match=r"3-dimensional array of shape \(2, 2, 2\)"):
        load_points(npy_bytes(np.zeros((2, 2, 2))), filename="a.npy")
    with pytest.raises(DataFileError, match="single number"):
        load_points(npy_bytes(np.float64(1.0)), filename="a.npy")


_UNPICKLED: list[str] = []


def _side_effect(tag: str) -> str:
    """Called only if something unpickles the payload below."""
    _UNPICKLED.append(tag)
    return tag


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_side_effect, ("unpickled!",))


def test_pickle_disguised_as_npy_is_never_unpickled() -> None:
    data = npy_bytes(np.array([_Payload(), 1.0], dtype=object), allow_pickle=True)
    _UNPICKLED.clear()
    with pytest.raises(DataFileError, match=r"contains Python objects \(pickle\); only plain numeric arrays"):
        load_points(data, filename="points.npy")
    with pytest.raises(DataFileError, match=r"contains Python objects \(pickle\)"):
        load_points(pickle.dumps(_Payload()), filename="points.npy")
    buf = io.BytesIO()
    np.savez(buf, points=np.array([_Payload()], dtype=object))
    with pytest.raises(DataFileError, match=r"contains Python objects \(pickle\)"):
        load_points(buf.getvalue(), filename="points.npz")
    assert _UNPICKLED == []


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (npy_bytes(np.array([1 + 2j, 3])), "complex numbers"),
        (npy_bytes(np.array(["a", "b"])), r"holds text"),
        (npy_bytes(np.zeros(3, dtype=[("a", float), ("b", float)])), "structured"),
        (npy_bytes(np.array(["2020-01-01"], dtype="datetime64[D]")), "only plain numeric"),
        (npy_bytes(np.zeros((3, 2)))[:-8], "truncated"),
        (npy_bytes(np.zeros((3, 2)))[:20], "damaged .npy header"),
        (b"1,2\n3,4\n", r"not a NumPy \.npy file"),
    ],
)
def test_npy_errors(data: bytes, pattern: str) -> None:
    with pytest.raises(DataFileError, match=pattern):
        load_points(data, filename="a.npy")


def test_npz_errors() -> None:
    buf = io.BytesIO()
    np.savez(buf, a=np.ones((3, 2)), b=np.ones((3, 2)))
    with pytest.raises(DataFileError, match=r"several arrays \(a, b\)"):
        load_points(buf.getvalue(), filename="a.npz")
    with pytest.raises(DataFileError, match=r"not a valid \.npz"):
        load_points(b"not a zip", filename="a.npz")
    buf = io.BytesIO()
    np.savez_compressed(buf, points=np.zeros((2000, 100)))  # 1.6 MB uncompressed, tiny compressed
    with pytest.raises(DataFileError, match="uncompressed"):
        load_points(buf.getvalue(), filename="a.npz", max_bytes=100_000)


@pytest.mark.parametrize(
    ("filename", "pattern"),
    [
        ("a.xlsx", "spreadsheet workbook.*Save the sheet as CSV"),
        ("a.json", r"unsupported file type '\.json'"),
    ],
)
def test_unsupported_extensions(filename: str, pattern: str) -> None:
    with pytest.raises(DataFileError, match=pattern):
        load_points(b"1,2\n3,4\n", filename=filename)


def test_binary_named_csv() -> None:
    with pytest.raises(DataFileError, match=r"not a text table.*give it the \.npy extension"):
        load_points(npy_bytes(np.zeros((3, 2))), filename="a.csv")


def test_missing_path_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="File not found"):
        load_points(tmp_path / "nope.csv")
    with pytest.raises(DataFileError, match="not a regular file"):
        load_points(tmp_path)


def test_errors_are_value_errors() -> None:
    assert issubclass(DataFileError, ValueError)


# ---- properties ------------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arr=arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 5)), elements=finite),
    delim=st.sampled_from([",", "\t", ";", " "]),
    header=st.booleans(),
)
def test_any_finite_matrix_round_trips_through_text(arr: np.ndarray, delim: str, header: bool) -> None:
    lines = [delim.join(repr(float(v)) for v in row) for row in arr]
    if header:
        lines.insert(0, delim.join(f"col{j}" for j in range(arr.shape[1])))
    got = load_points("\n".join(lines).encode(), filename="p.txt")
    np.testing.assert_array_equal(got, arr)


@settings(max_examples=60, deadline=None)
@given(arr=arrays(np.float64, st.tuples(st.integers(2, 12), st.integers(1, 5)), elements=finite))
def test_any_finite_matrix_round_trips_through_npy(arr: np.ndarray) -> None:
    np.testing.assert_array_equal(load_points(npy_bytes(arr), filename="p.npy"), arr)


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='0123456789.,;\t -+eE\nnaifxy#"', max_size=200).map(str.encode),
    ),
    filename=st.sampled_from(["f.csv", "f.txt", "f.npy", "f.npz", None]),
)
def test_arbitrary_input_gives_points_or_data_file_error(data: bytes, filename: str | None) -> None:
    try:
        got = load_points(data, filename=filename)
    except DataFileError:
        return
    assert got.ndim == 2 and got.shape[0] >= 2 and got.shape[1] >= 1
    assert got.dtype == np.float64 and np.isfinite(got).all()


# ---- image_to_points -------------------------------------------------------------------------------------


def _rect_image() -> Image.Image:
    """40 wide x 20 high, white, with a black 10x5 rectangle whose top-left pixel is (x=2, y=1)."""
    img = Image.new("L", (40, 20), 255)
    ImageDraw.Draw(img).rectangle((2, 1, 11, 5), fill=0)
    return img


def test_image_points_one_per_dark_pixel_upright_and_scaled(tmp_path: Path) -> None:
    path = tmp_path / "rect.png"
    _rect_image().save(path)
    pts = image_to_points(path, size=40.0)  # 1 unit per pixel
    assert pts.shape == (50, 2) and pts.dtype == np.float64
    # columns 2..11, rows 1..5 from the top of a 20-pixel-high image -> y in [20-6, 20-1] = [14, 19]
    assert pts[:, 0].min() >= 2 and pts[:, 0].max() <= 12
    assert pts[:, 1].min() >= 14 and pts[:, 1].max() <= 19
    cells = {(int(x), int(y)) for x, y in pts}
    assert cells == {(x, y) for x in range(2, 12) for y in range(14, 19)}  # one point inside each pixel
    small = image_to_points(path)  # default size 10: the longer side (40 px) maps to [0, 10]
    np.testing.assert_allclose(small, pts / 4)


def test_image_points_n_seed_and_formats() -> None:
    data = png_bytes(_rect_image())
    a = image_to_points(data, n=30, seed=1)
    np.testing.assert_array_equal(a, image_to_points(data, n=30, seed=1))
    assert not np.array_equal(a, image_to_points(data, n=30, seed=2))
    assert len({(int(x * 4), int(y * 4)) for x, y in a}) == 30  # n <= dark pixels: distinct pixels
    assert image_to_points(data, n=500, seed=0).shape == (500, 2)  # more than dark pixels: with replacement
    for fmt in ("JPEG", "BMP", "GIF"):
        pts = image_to_points(png_bytes(_rect_image().convert("RGB"), fmt))
        assert 40 <= len(pts) <= 60


def test_image_transparency_counts_as_white() -> None:
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # transparent black background
    ImageDraw.Draw(img).rectangle((0, 0, 1, 1), fill=(0, 0, 0, 255))
    assert image_to_points(png_bytes(img)).shape == (4, 2)


def test_image_threshold() -> None:
    img = Image.new("L", (4, 1), 255)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 100)  # 0.39
    img.putpixel((2, 0), 200)  # 0.78
    data = png_bytes(img)
    assert len(image_to_points(data, threshold=0.5)) == 2
    assert len(image_to_points(data, threshold=0.9)) == 3
    with pytest.raises(ValueError, match="threshold"):
        image_to_points(data, threshold=1.5)


def test_image_errors() -> None:
    with pytest.raises(DataFileError, match="is not an image PIL can read"):
        image_to_points(b"x,y\n1,2\n")
    with pytest.raises(DataFileError, match="no pixels darker than the threshold"):
        image_to_points(png_bytes(Image.new("L", (8, 8), 255)))
    with pytest.raises(DataFileError, match="damaged or truncated image"):
        image_to_points(png_bytes(Image.new("L", (64, 64), 0))[:60])
    with pytest.raises(DataFileError, match="is empty"):
        image_to_points(b"")
    with pytest.raises(DataFileError, match="upload limit"):
        image_to_points(png_bytes(_rect_image()), max_bytes=10)
    with pytest.raises(ValueError, match="n must be"):
        image_to_points(png_bytes(_rect_image()), n=0)


def test_image_decompression_bomb_refused() -> None:
    big = png_bytes(Image.new("1", (4500, 4500), 1))  # 20.25 megapixels, a few kB of PNG
    with pytest.raises(
        DataFileError, match=r"4500×4500 = 20\.2 megapixels, more than the 20-megapixel limit"
    ):
        image_to_points(big)


def test_shipped_image_asset() -> None:
    path = Path(__file__).parent.parent / "assets" / "images" / "gpa.png"
    pts = image_to_points(path)
    assert len(pts) > 1000
    assert pts[:, 0].max() <= 10 and pts.min() >= 0
    assert pts[:, 0].max() > 9  # the image is wider than high: x spans (almost) all of [0, 10]


# ---- read_points: notes ------------------------------------------------------------------------------------


def _notes(table: gio.PointTable, level: str | None = None) -> list[str]:
    return [n.text for n in table.notes if level is None or n.level == level]


def test_read_points_returns_a_frozen_table_and_load_points_the_array() -> None:
    table = gio.read_points(b"x,y\n1,2\n3,4\n", filename="a.csv")
    assert isinstance(table, gio.PointTable) and table.notes == () and table.label == "'a.csv'"
    np.testing.assert_array_equal(table.points, load_points(b"x,y\n1,2\n3,4\n", filename="a.csv"))
    with pytest.raises(AttributeError):
        table.notes = ()  # type: ignore[misc]


# ---- degenerate point sets (class 1) ---------------------------------------------------------------------


def test_constant_column_is_warned_about_by_number_and_name() -> None:
    table = gio.read_points(b"x,y,z\n1,2,5\n3,4,5\n6,8,5\n", filename="a.csv")
    assert table.points.shape == (3, 3)
    assert _notes(table, "warning") == [
        "Column 3 ('z') is constant (every value is 5): the points vary in only 2 of their 3 coordinates."
    ]
    no_header = gio.read_points(npy_bytes(np.array([[1.0, 7.0], [2.0, 7.0]])), filename="a.npy")
    assert _notes(no_header) == [
        "Column 2 is constant (every value is 7): the points vary in only 1 of their 2 coordinates."
    ]


def test_many_constant_columns_make_one_note() -> None:
    x = np.zeros((5, 64))
    x[:, 10:20] = np.random.default_rng(0).normal(size=(5, 10))  # digits-like: most pixels always 0
    (note,) = _notes(gio.read_points(npy_bytes(x), filename="d.npy"))
    assert note.startswith("54 of the 64 columns are constant: column 1, column 2, ")
    assert "vary in only 10 of their 64 coordinates" in note


def test_all_points_identical_is_read_with_a_warning_and_refused_as_a_source() -> None:
    table = gio.read_points(b"5,5\n5,5\n5,5\n", filename="same.csv")
    assert table.points.shape == (3, 2)
    assert [n.text for n in table.notes if n.level == "warning"] == [
        "Every row is the same point (5, 5): as the target that is a single point mass; it cannot be the "
        "source (particles that start at one point move as one)."
    ]
    assert len(table.notes) == 1  # not also "2 of the 3 rows repeat an earlier row"
    with pytest.raises(DataFileError, match=r"'same\.csv' cannot be the source: every one of its 3 points"):
        gio.check_source(table.points, "'same.csv'")
    gio.check_source(np.array([[5.0, 5.0], [5.0, 6.0]]))  # two distinct points are fine


def test_duplicated_grid_points_are_counted() -> None:
    grid = np.repeat(np.stack(np.meshgrid(np.arange(3), np.arange(3)), -1).reshape(-1, 2), 4, axis=0)
    text = "\n".join(f"{a},{b}" for a, b in grid).encode()
    table = gio.read_points(text, filename="grid.csv")
    assert table.points.shape == (36, 2)
    assert _notes(table) == [
        "27 of the 36 rows repeat an earlier row (9 distinct points); particles that start at the same "
        "point move together."
    ]
    assert _notes(gio.read_points(b"0,1\n-0,1\n2,3\n", filename="z.csv"))[0].startswith("1 of the 3 rows")


def test_column_constant_only_in_float32_is_warned_about() -> None:
    (note,) = _notes(gio.read_points(b"1000000,1\n1000000.01,2\n", filename="a.csv"))
    assert note.startswith("Column 1 varies only in digits float32 cannot hold (1e+06 to 1000000.01)")
    assert "float64 precision" in note


# ---- index columns (class 2) -----------------------------------------------------------------------------

XY = [[1.5, 2.0], [3.5, 4.0], [5.0, 6.5]]


@pytest.mark.parametrize(
    ("text", "dropped"),
    [
        (
            ",x,y\n0,1.5,2\n1,3.5,4\n2,5,6.5\n",
            "Dropped column 1 (no name in the header): it numbers the rows 0, 1, 2",
        ),
        ("Unnamed: 0,x,y\n0,1.5,2\n1,3.5,4\n2,5,6.5\n", "Dropped column 1 (named 'Unnamed: 0')"),
        ("index,x,y\n7,1.5,2\n3,3.5,4\n9,5,6.5\n", "it holds row labels (3 distinct whole numbers: 7, 3, …)"),
        ('"","x","y"\n"1",1.5,2\n"2",3.5,4\n"3",5,6.5\n', "it numbers the rows 1, 2, 3"),  # R's write.csv
        (",0,1\n0,1.5,2\n1,3.5,4\n2,5,6.5\n", "Dropped column 1 (no name"),  # pandas, numbered columns
        ("0,1.5,2\n1,3.5,4\n2,5,6.5\n", "Dropped column 1: it numbers the rows 0, 1, 2"),  # header=False
        ("1\t1.5\t2\n2\t3.5\t4\n3\t5\t6.5\n", "Dropped column 1: it numbers the rows 1, 2, 3"),
    ],
)
def test_index_column_is_dropped_and_said(text: str, dropped: str) -> None:
    table = gio.read_points(text.encode(), filename="a.csv")
    np.testing.assert_array_equal(table.points, XY)
    (note,) = table.notes
    assert note.level == "info" and dropped in note.text, note.text


def test_two_index_columns_from_a_second_to_csv_are_both_dropped() -> None:
    table = gio.read_points(b",Unnamed: 0,x,y\n0,3,1.5,2\n1,7,3.5,4\n2,9,5,6.5\n", filename="a.csv")
    np.testing.assert_array_equal(table.points, XY)
    assert [n.text.split(" (")[0] for n in table.notes] == ["Dropped column 1", "Dropped column 2"]


def test_pandas_to_csv_round_trips() -> None:
    pd = pytest.importorskip("pandas")
    arr = np.random.default_rng(0).normal(size=(20, 3))
    for csv in (
        pd.DataFrame(arr, columns=["x", "y", "z"]).to_csv(),
        pd.DataFrame(arr).to_csv(),
        pd.DataFrame(arr).to_csv(header=False),
        pd.DataFrame(arr).sample(frac=1.0, random_state=0).sort_index().to_csv(),
        pd.DataFrame(arr, index=pd.RangeIndex(20, name="index")).to_csv(),
    ):
        got = gio.read_points(csv.encode(), filename="df.csv")
        np.testing.assert_allclose(got.points, arr, rtol=1e-15)
        assert "Dropped column 1" in got.notes[0].text
    shuffled = pd.DataFrame(arr).sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(
        load_points(shuffled.to_csv().encode(), filename="df.csv"), shuffled.to_numpy()
    )


@pytest.mark.parametrize(
    ("text", "shape", "notes"),
    [
        (
            "0,0\n1,1\n2,2\n",
            (3, 2),
            ["Column 1 numbers the rows 0, 1, 2, like a saved row index; it is kept"],
        ),
        ("0.0,1.5\n1.0,2.5\n2.0,3.5\n", (3, 2), ["Column 1 numbers the rows"]),  # written as floats
        ("t,x\n0,1.5\n1,2.5\n2,3.5\n", (3, 2), []),  # the header names it: a coordinate
        ("0,1.5\n1,2.5\n", (2, 2), []),  # two rows: too few to tell
        ("index\n0\n1\n2\n", (3, 1), []),  # the only column stays
        (",x\n0.5,1\n1.5,2\n2.5,3\n", (3, 2), []),  # no name, but not whole numbers
        ("2,1.5\n3,2.5\n4,3.5\n", (3, 2), []),  # not the row numbers
    ],
)
def test_index_detection_is_conservative(text: str, shape: tuple[int, int], notes: list[str]) -> None:
    table = gio.read_points(text.encode(), filename="a.csv")
    assert table.points.shape == shape
    got = _notes(table)
    assert len(got) == len(notes) and all(g.startswith(n) for g, n in zip(got, notes, strict=True)), got


def test_index_dropped_before_expected_dim_and_constant_columns_counted_in_file_columns() -> None:
    table = gio.read_points(b",x,y\n0,1.5,3\n1,2.5,3\n2,3.5,3\n", filename="a.csv", expected_dim=2)
    assert table.points.shape == (3, 2)
    assert "Column 3 ('y') is constant (every value is 3)" in table.notes[1].text


# ---- specific messages (class 4) -------------------------------------------------------------------------


def test_values_beyond_float32_are_named_at_read_time_and_refused_for_a_float32_run() -> None:
    table = gio.read_points(b"x,y\n1,2\n3,1e300\n", filename="big.csv")
    (note,) = table.notes
    assert note.level == "warning"
    assert note.text.startswith(
        "Column 2 ('y') has 1 value that is beyond float32's range (±3.4e38), up to 1e+300"
    )
    assert "divide every value by 1e300" in note.text
    with pytest.raises(
        DataFileError,
        match=r"'big\.csv' has 1 value that is beyond float32's range \(±3\.4e38\), the precision this run "
        r"computes in \(the first in coordinate 2\)\. Rescale the data \(e\.g\. divide every value by 1e300",
    ):
        gio.check_precision(table.points, "float32", "'big.csv'")
    gio.check_precision(table.points, "float64", "'big.csv'")  # float64 holds it
    gio.check_precision(np.array([[3.4e38, -3.4e38]]), "float32")  # the edge of the range is fine


def test_number_too_large_for_float64_is_named() -> None:
    with pytest.raises(DataFileError, match=r"'1e999' is too large even for float64 \(beyond ±1\.8e308\)"):
        load_points(b"1,2\n3,1e999\n", filename="a.csv")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_decoded(encoding: str) -> None:
    data = "x;y\r\n1,5;2\r\n3;4\r\n".encode(encoding)
    np.testing.assert_array_equal(load_points(data, filename="a.csv"), [[1.5, 2], [3, 4]])
    with pytest.raises(
        DataFileError, match=r"looks like UTF-16-.E text but cannot be decoded.*Save it as UTF-8"
    ):
        load_points(data[:-1], filename="a.csv")


XLSX = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, points=np.ones((3, 2)))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "pattern"),
    [
        (
            XLSX,
            "a.csv",
            r"'a\.csv' is not a text table: it is an Excel workbook \(\.xlsx\); save the sheet as CSV",
        ),
        (XLSX, None, r"it is an Excel workbook \(\.xlsx\)"),
        (XLSX, "a.npz", r"'a\.npz' is not a \.npz archive: it is an Excel workbook"),
        (zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}), "a.csv", "OpenDocument"),
        (
            zip_bytes({"points.csv": b"1,2\n3,4\n"}),
            "a.csv",
            r"a zip archive; unzip it and upload the table inside",
        ),
        (_npz(), "a.csv", r"it is a NumPy \.npz archive; give it the \.npz extension"),
        (
            png_bytes(Image.new("L", (4, 4))),
            "a.csv",
            r"it is a PNG image; upload it with its image extension",
        ),
        (png_bytes(Image.new("L", (4, 4))), "a.npy", r"not a NumPy \.npy file .*: it is a PNG image"),
        (pickle.dumps(np.ones(3)), "a.csv", r"it is a Python pickle; save the array with numpy\.save"),
        (pickle.dumps(np.ones(3)), "a.npy", r"contains Python objects \(pickle\)"),
        (b"%PDF-1.7\n1 0 obj\n", "a.csv", "it is a PDF document"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "a.csv", r"an old \.xls workbook"),
        (b"1,2\n3,4\n", "a.npz", r"not a valid \.npz \(zip\) archive\. It looks like a text table"),
        (b"1,2\n3,4\n", "a.npy", r"not a NumPy \.npy file .*: it looks like a text table"),
    ],
)
def test_files_of_other_kinds_are_named(data: bytes, filename: str | None, pattern: str) -> None:
    with pytest.raises(DataFileError, match=pattern):
        load_points(data, filename=filename)


def test_text_starting_like_a_binary_format_is_still_a_table() -> None:
    np.testing.assert_array_equal(load_points(b"PAR1,BM\n1,2\n3,4\n", filename="a.csv"), [[1, 2], [3, 4]])


def test_image_errors_name_the_file() -> None:
    with pytest.raises(
        DataFileError, match=r"^'points\.png' is not an image PIL can read.*text table of points"
    ):
        image_to_points(b"x,y\n1,2\n3,4\n", filename="points.png")
    with pytest.raises(DataFileError, match=r"^'a\.png' is not an image.*It is a NumPy \.npy file"):
        image_to_points(npy_bytes(np.ones((3, 2))), filename="a.png")
    with pytest.raises(DataFileError, match=r"^'blank\.png' has no pixels darker"):
        image_to_points(png_bytes(Image.new("L", (8, 8), 255)), filename="blank.png")
    with pytest.raises(DataFileError, match=r"^'cut\.png' is a damaged or truncated image"):
        image_to_points(png_bytes(Image.new("L", (64, 64), 0))[:60], filename="cut.png")
    dot = Image.new("L", (8, 8), 255)
    dot.putpixel((3, 3), 0)
    with pytest.raises(DataFileError, match=r"^'dot\.png' has only 1 pixel darker"):
        image_to_points(png_bytes(dot), filename="dot.png")
    assert image_to_points(png_bytes(dot), filename="dot.png", n=5).shape == (5, 2)


def test_only_the_listed_image_formats_are_decoded() -> None:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 0).save(buf, format="PPM")  # PIL reads PPM, but it is not offered
    with pytest.raises(DataFileError, match="is not an image PIL can read"):
        image_to_points(buf.getvalue(), filename="a.ppm")
    for fmt in ("TIFF", "WEBP"):
        assert len(image_to_points(png_bytes(_rect_image().convert("RGB"), fmt), filename=f"a.{fmt}")) >= 40
