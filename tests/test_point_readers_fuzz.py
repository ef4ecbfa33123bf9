"""Fuzz tests for the upload readers (gpa_core.data.points): whatever bytes arrive, ``read_points`` /
``load_points`` (every extension, and no name) and ``image_to_points`` either return finite float64
points (n >= 2, d >= 1) or raise a DataFileError whose message names the file -- never another
exception. Inputs: arbitrary bytes, and valid tables, arrays and images that are then damaged.

Sized to run in about 10 s on two shared cores; the suite's conftest loads a deterministic
profile when CI is set."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from gpa_core.data.points import (
    MAX_IMAGE_PIXELS,
    DataFileError,
    PointTable,
    image_to_points,
    load_points,
    read_points,
)

TABLE_NAMES = ["p.csv", "p.tsv", "p.txt", "p.dat", "P.CSV", "p.npy", "p.npz", None]
TEXT_NAMES = ["p.csv", "p.tsv", "p.txt", "p.dat", None]
IMAGE_NAMES = ["pic.png", "pic.gif", "pic.bmp", "pic.jpg", None]


def fuzz(max_examples: int) -> settings:
    """Settings for one fuzz test: its number of examples, no deadline (the first call compiles)."""
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _label(filename: str | None) -> str:
    return f"'{filename}'" if filename else "The uploaded data"


def _points_or_named_error(read: Callable[..., Any], data: bytes, filename: str | None) -> np.ndarray | None:
    """The points ``read`` returns (checked), or None after a DataFileError that names the file."""
    try:
        got = read(data, filename=filename)
    except DataFileError as exc:
        assert _label(filename) in str(exc), str(exc)
        return None
    points = got.points if isinstance(got, PointTable) else got
    assert isinstance(points, np.ndarray) and points.dtype == np.float64
    assert points.ndim == 2 and points.shape[0] >= 2 and points.shape[1] >= 1, points.shape
    assert np.isfinite(points).all()
    if isinstance(got, PointTable):
        assert all(note.level in ("info", "warning") and note.text for note in got.notes)
    return points


# ---- damage ----------------------------------------------------------------------------------------------


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` unchanged, truncated, with bytes flipped, or with a chunk cut out or repeated."""
    how = draw(st.sampled_from(["keep", "truncate", "flip", "cut", "repeat"]))
    if how == "keep" or not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    if how == "truncate":
        return data[:i]
    if how == "flip":
        out = bytearray(data)
        for j in [i, *draw(st.lists(st.integers(0, len(data) - 1), max_size=4))]:
            out[j] ^= draw(st.integers(1, 255))
        return bytes(out)
    j = draw(st.integers(i, min(len(data), i + 64)))
    return data[:i] + data[j:] if how == "cut" else data[:j] + data[i:j] + data[j:]


# ---- arbitrary bytes -------------------------------------------------------------------------------------


@fuzz(600)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(alphabet="0123456789.,;\t -+eE\r\nnaifxy#\"'_:U", max_size=300).map(str.encode),
        st.text(max_size=100).map(lambda t: t.encode("utf-16-le")),
    ),
    filename=st.sampled_from(TABLE_NAMES),
)
def test_arbitrary_bytes_give_points_or_a_named_error(data: bytes, filename: str | None) -> None:
    _points_or_named_error(read_points, data, filename)


# ---- near-valid text tables ------------------------------------------------------------------------------

_JUNK = [
    "abc",
    "",
    " ",
    "nan",
    "inf",
    "-inf",
    "NaN",
    "1e300",
    "-1e300",
    "1e999",
    "1,000",
    "1,5",
    '"',
    "#",
    "\x00",
]
_ELEMENTS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-3, 3).map(float),
    st.sampled_from([0.0, -0.0, 5.0, 1e-300, 1e30]),
)


@st.composite
def text_tables(draw: st.DrawFn) -> bytes:
    """A table of numbers as a text file in one of many dialects, then damaged."""
    n = draw(st.integers(1, 12))
    d = (
        draw(st.sampled_from([1, 2, 3, 5]))
        if draw(st.integers(0, 20))
        else draw(st.sampled_from([4096, 4097]))
    )
    values = draw(arrays(np.float64, (n, d), elements=_ELEMENTS)) if d < 100 else np.ones((n, d))
    if d < 100 and draw(st.booleans()):
        values[:, draw(st.integers(0, d - 1))] = draw(_ELEMENTS)  # a constant column
    if n > 1 and draw(st.booleans()):
        values[draw(st.integers(0, n - 1))] = values[0]  # a duplicated row
    delim = draw(st.sampled_from([",", "\t", ";", " ", "  "]))
    fmt = draw(st.sampled_from([repr, "{:.3f}".format, "{:g}".format, lambda v: str(int(v))]))
    rows = [[fmt(float(v)) for v in row] for row in values]
    if delim == ";" and draw(st.booleans()):
        rows = [[c.replace(".", ",") for c in row] for row in rows]  # European decimal commas
    index = draw(st.sampled_from([None, 0, 1]))
    if index is not None:
        rows = [[str(index + i), *row] for i, row in enumerate(rows)]
    header = draw(st.sampled_from(["none", "names", "pandas", "index"]))
    if header == "names":
        rows.insert(0, [f"c{j}" for j in range(len(rows[0]))])
    elif header == "pandas":
        rows.insert(0, ["", *map(str, range(len(rows[0]) - 1))])
    elif header == "index":
        rows.insert(0, [draw(st.sampled_from(["", "Unnamed: 0", "index"])), *("xyzwv"[: len(rows[0]) - 1])])
    for _ in range(draw(st.integers(0, 3))):  # junk cells, ragged rows, comments, blank lines, quotes
        r = draw(st.integers(0, len(rows) - 1))
        what = draw(st.sampled_from(["junk", "short", "long", "comment", "blank", "quote"]))
        if what == "junk":
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(st.sampled_from(_JUNK))
        elif what == "short" and len(rows[r]) > 1:
            rows[r].pop()
        elif what == "long":
            rows[r].append("7")
        elif what == "comment":
            rows.insert(r, ["# a comment"])
        elif what == "blank":
            rows.insert(r, [""])
        else:
            rows[r] = [f'"{c}"' for c in rows[r]]
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = eol.join(delim.join(row) for row in rows) + (eol if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1"]))
    return draw(damaged(text.encode(encoding, errors="replace")))


@fuzz(750)
@given(data=text_tables(), filename=st.sampled_from(TEXT_NAMES))
def test_near_valid_text_tables_give_points_or_a_named_error(data: bytes, filename: str | None) -> None:
    points = _points_or_named_error(read_points, data, filename)
    if points is not None:
        np.testing.assert_array_equal(points, load_points(data, filename=filename))


# ---- near-valid NumPy files ------------------------------------------------------------------------------


@st.composite
def numpy_files(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A .npy or .npz file of a small array (some odd dtypes and shapes), then damaged."""
    dtype = draw(st.sampled_from(["<f8", ">f4", "<i4", "u1", "?", "<f2", "<c8"]))
    shape = draw(st.sampled_from([(5, 2), (3,), (2, 3, 1), (1, 4), (0, 2), (4, 0), ()]))
    arr = draw(arrays(np.dtype(dtype), shape))
    buf = io.BytesIO()
    kind = draw(st.sampled_from(["npy", "npz", "npz_compressed", "npz_two"]))
    if kind == "npy":
        np.save(buf, arr)
    elif kind == "npz":
        np.savez(buf, points=arr)
    elif kind == "npz_compressed":
        np.savez_compressed(buf, arr)
    else:
        np.savez(buf, a=arr, b=arr)
    name = draw(st.sampled_from([f"p.{kind[:3]}", None, "p.csv"]))
    return draw(damaged(buf.getvalue())), name


@fuzz(450)
@given(file=numpy_files())
def test_near_valid_numpy_files_give_points_or_a_named_error(file: tuple[bytes, str | None]) -> None:
    _points_or_named_error(read_points, *file)


# ---- near-valid images -----------------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, idat: bytes = b"", bit_depth: int = 1) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` gray pixels, followed by ``idat``."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@st.composite
def images(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A small PNG/GIF/BMP/JPEG from PIL (or a tiny file declaring a huge image), then damaged."""
    name = draw(st.sampled_from(IMAGE_NAMES))
    if draw(st.integers(0, 5)) == 0:  # a few bytes that declare a huge image
        w, h = draw(st.integers(1, 2**31 - 1)), draw(st.integers(1, 2**31 - 1))
        fmt = draw(st.sampled_from(["png", "gif", "bmp"]))
        if fmt == "png":
            data = png_declaring(w, h, zlib.compress(b"\x00" * 64))
        elif fmt == "gif":
            w, h = min(w, 65535), min(h, 65535)
            data = b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b",\x00\x00\x00\x00"
            data += struct.pack("<HHB", w, h, 0) + b"\x02\x02\x44\x01\x00;"
        else:
            w, h = min(w, 2**31 - 1), min(h, 2**31 - 1)
            info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, 0, 2835, 2835, 0, 0)
            data = b"BM" + struct.pack("<IHHI", 14 + 40 + 1024 + 16, 0, 0, 14 + 40 + 1024) + info
            data += b"\x00" * 1024 + b"\x00" * 16
        return draw(damaged(data)), name
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "P", "1", "LA"]))
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pixels = draw(st.binary(min_size=w * h, max_size=w * h))
    img = Image.frombytes("L", (w, h), pixels).convert(mode)
    fmt = draw(st.sampled_from(["PNG", "GIF", "BMP", "JPEG"]))
    if fmt == "JPEG" and mode not in ("L", "RGB"):
        img = img.convert("RGB")
    if fmt == "BMP" and mode == "LA":
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return draw(damaged(buf.getvalue())), name


@fuzz(450)
@given(file=images(), n=st.one_of(st.none(), st.integers(2, 50)))
def test_near_valid_images_give_points_or_a_named_error(
    file: tuple[bytes, str | None], n: int | None
) -> None:
    def read(data: bytes, filename: str | None) -> np.ndarray:
        return image_to_points(data, filename=filename, n=n)

    points = _points_or_named_error(read, *file)
    if points is not None:
        assert points.shape[1] == 2 and (n is None or len(points) == n)


@fuzz(150)
@given(data=st.one_of(st.binary(max_size=200), text_tables()), filename=st.sampled_from(IMAGE_NAMES))
def test_tables_and_junk_uploaded_as_images_give_a_named_error(data: bytes, filename: str | None) -> None:
    try:
        image_to_points(data, filename=filename)
    except DataFileError as exc:
        assert _label(filename) in str(exc)


# ---- decompression bomb ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "refused"),
    [
        (30_000, r"'bomb\.png' is far larger than the 20-megapixel limit"),  # PIL's own bomb check fires
        (8_000, r"'bomb\.png' is 8000×8000 = 64\.0 megapixels, more than the 20-megapixel limit"),  # ours
    ],
)
def test_decompression_bomb_is_refused_from_its_header_in_bounded_memory(side: int, refused: str) -> None:
    """A small PNG whose (valid, highly compressible) data decode to side × side pixels: 30000² is
    beyond PIL's own limit, 8000² (64 MP) only beyond ours (20 MP), so the reader's check must refuse it.

    Bound: refusing from the header needs the file's bytes and PIL's parse of its first chunks, i.e.
    memory of the order of the file. Decoding would need at least w·h/8 bytes (8 MB for 8000², 112 MB
    for 30000², even at one bit per pixel; PIL's image buffers are seen by tracemalloc) and the grayscale
    float image 8·w·h. We allow 8 copies of the file, which stays under 1/50 of the smallest decoded
    buffer (here the file is ~1/500 of that buffer; zlib packs at most ~1000:1). One refusal runs
    first, outside the measurement: importing PIL's plugins is a one-time cost, not one per file."""
    w = h = side
    row = b"\x00" + b"\xff" * (w // 8)  # filter byte + one row of white 1-bit pixels
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row * 1000) for _ in range(h // 1000)) + z.flush()
    bomb = png_declaring(w, h, body)
    assert w * h > MAX_IMAGE_PIXELS
    bound = 8 * len(bomb)
    assert bound < (w * h // 8) / 50
    with pytest.raises(DataFileError, match=refused):
        image_to_points(bomb, filename="bomb.png")

    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataFileError, match=refused):
            image_to_points(bomb, filename="bomb.png")
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < bound, f"peak {peak:,} bytes, bound {bound:,}"
    assert elapsed < 1.0  # reading a header takes about a millisecond; decoding the pixels, far longer
