"""Fuzz tests of the gene-expression readers: whatever the bytes, every reader either returns a
plausible study (≥ 2 samples, ≥ 2 genes, float32 values that are finite or NaN) or raises
GeneDataError whose message names the file, never another exception; and a gzip bomb is refused
quickly with bounded memory."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import os
import sys
import time
import tracemalloc
import types
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upload_corpus import series_matrix_head

from gpa_core.genes import table as gene_table
from gpa_core.genes import text as gene_text
from gpa_core.genes.batches import SampleSheet, read_sample_sheet
from gpa_core.genes.readers import (
    load_study,
    read_expression_table,
    read_h5ad,
    read_label_file,
    read_series_matrix,
)
from gpa_core.genes.study import GeneDataError, Study

#: examples per test: the file runs in about 15 s here; GPA_FUZZ_EXAMPLES=5000 searches longer
FUZZ = settings(
    max_examples=int(os.environ.get("GPA_FUZZ_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAME = "fuzz_upload.csv"
JUNK = ["high", "", "NA", "null", "-", ".", "nan", "inf", "-inf", "1e300", "-1e39", "1" + "0" * 60,
        "0x1F", "1_0", '"', '""', "é", "\x00", " 7.5 ", "1,5", "\t", "#N/A", "3.4e38"]  # fmt: skip


def _check(call) -> object:
    """Run a reader: a plausible study / label dict, or GeneDataError naming the file."""
    try:
        out = call()
    except GeneDataError as exc:
        assert NAME in str(exc), str(exc)
        return None
    if isinstance(out, Study):
        X = out.expression
        assert X.dtype == np.float32 and X.ndim == 2
        assert out.n_samples >= 2 and out.n_genes >= 2, X.shape
        assert not np.isinf(X).any()
        assert not np.isnan(X).all(axis=1).any()  # samples without any value were dropped
        assert out.gene_ids.shape == (out.n_genes,) and out.sample_ids.shape == (out.n_samples,)
        assert np.unique(out.sample_ids).size == out.n_samples
        if out.labels is not None:
            assert out.labels.shape == (out.n_samples,)
        assert all(v.shape == (out.n_samples,) for v in out.annotations.values())
        assert (out.linear is not None) == any(n.startswith("values look linear") for n in out.notes)
    else:
        assert isinstance(out, dict) and out and all(isinstance(k, str) and k for k in out)
    return out


def _sheet(sheet: SampleSheet) -> dict[str, str]:
    """A sample sheet checked (IDs unique and not empty, one value per row in every column) as the
    sample ID → first column dict that _check expects of a label reader."""
    n = sheet.ids.shape[0]
    assert n and np.unique(sheet.ids).shape[0] == n and all(sheet.ids.tolist())
    assert sheet.columns and all(v.shape == (n,) for v in sheet.columns.values())
    return sheet.lookup(next(iter(sheet.columns)))


@contextlib.contextmanager
def _parser(wide: bool, small_slices: bool) -> Iterator[None]:
    """Send every table through the split parser of wide tables (as if it had > 2,048 columns),
    and/or parse it in slices of a few lines (as a file of many megabytes is)."""
    old = gene_table._WIDE, gene_table._SLICE
    gene_table._WIDE = 1 if wide else old[0]
    gene_table._SLICE = 16 if small_slices else old[1]
    try:
        yield
    finally:
        gene_table._WIDE, gene_table._SLICE = old


def _readers(data: bytes) -> list:
    return [
        lambda: read_expression_table(data, filename=NAME),
        lambda: read_expression_table(data, filename=NAME, orientation="genes_by_samples"),
        lambda: read_series_matrix(data, filename=NAME),
        lambda: read_label_file(data, filename=NAME),
        lambda: _sheet(read_sample_sheet(data, filename=NAME)),
        lambda: read_h5ad(data, filename=NAME),
        lambda: load_study(data, filename=NAME),
    ]


# ------------------------------------------------------------------------------------------ strategies
def _sometimes(p: float) -> st.SearchStrategy[bool]:
    """True with probability about ``p`` (so that most examples stay near-valid)."""
    return st.integers(0, 99).map(lambda k: k < 100 * p)


@st.composite
def tables(draw: st.DrawFn, quotes: bool = True) -> bytes:
    """A valid genes × samples or samples × genes table, then mutated the ways real files go wrong
    (``quotes=False``: no double quotes, whose odd uses the two parsers may read differently)."""
    n_rows = draw(st.integers(0, 7) if draw(_sometimes(0.2)) else st.integers(2, 7))
    n_cols = draw(st.integers(0, 6) if draw(_sometimes(0.2)) else st.integers(2, 6))
    sep = draw(st.sampled_from([",", "\t", ";"]))
    gsm = draw(st.booleans())
    values = draw(
        st.lists(
            st.lists(
                st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
                min_size=n_cols,
                max_size=n_cols,
            ),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    header = ["ID_REF", *[f"GSM{j}" if gsm else f"S{j}" for j in range(n_cols)]]
    rows = [[f"g{i}", *("NA" if np.isnan(v) else repr(v) for v in row)] for i, row in enumerate(values)]
    for _ in range(draw(st.integers(0, 4))):  # cell-level mutations
        if not rows:
            break
        kinds = [
            "junk",
            "ragged",
            "dup_id",
            "empty_col",
            "dup_sample",
            "calls",
            "description",
            "batch",
            "quote",
        ]
        kind = draw(st.sampled_from(kinds[: len(kinds) if quotes else -1]))
        i = draw(st.integers(0, len(rows) - 1))
        if kind == "junk" and rows[i]:
            junk = draw(st.sampled_from(JUNK if quotes else [j for j in JUNK if '"' not in j]))
            rows[i][draw(st.integers(0, len(rows[i]) - 1))] = junk
        elif kind == "ragged" and rows[i]:
            rows[i] = rows[i][:-1] if draw(st.booleans()) else [*rows[i], "9"]
        elif kind == "dup_id":
            rows.append(list(rows[i]))
        elif kind == "empty_col":
            header.append("EMPTY")
            rows = [[*r, ""] for r in rows]
        elif kind == "dup_sample" and len(header) > 1:
            header.append(header[1])
            rows = [[*r, r[1] if len(r) > 1 else ""] for r in rows]
        elif kind == "calls":  # a P/A/M call column beside a sample (Affymetrix MAS4/MAS5)
            j = draw(st.integers(1, len(header)))
            header.insert(j, "call")
            rows = [[*r[:j], draw(st.sampled_from(["P", "A", "M", "", "x"])), *r[j:]] for r in rows]
        elif kind == "description":  # a description first, the IDs second (Golub et al.)
            header = ["Gene Description", "Gene Accession Number", *header[1:]]
            rows = [[draw(st.sampled_from(["kinase", "a kinase", "kinase"])), *r] for r in rows]
        elif kind == "batch":  # a per-sample column of batches, text or whole numbers
            header.insert(1, "batch")
            rows = [[*r[:1], draw(st.sampled_from(["1", "2", "b1", "", "NA"])), *r[1:]] for r in rows]
        elif kind == "quote":
            rows[i] = [f'"{c}"' for c in rows[i]]
    if draw(_sometimes(0.2)):
        header = header[1:]  # R's write.csv: no cell above the row names
    if draw(_sometimes(0.05)):
        rows = []  # header only
    lines = [sep.join(header), *(sep.join(r) for r in rows)]
    if draw(_sometimes(0.2)):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "  ", sep])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    encodings = ["utf-8"] * 4 + ["utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "latin-1"]
    data = text.encode(draw(st.sampled_from(encodings)), errors="replace")
    if draw(_sometimes(0.15)):
        data = data[: draw(st.integers(0, len(data)))]  # truncated
    if draw(_sometimes(0.3)):
        data = gzip.compress(data, mtime=0)
        if draw(_sometimes(0.2)):
            data = data[: draw(st.integers(0, len(data)))]  # a truncated download
    return data


@st.composite
def series_matrices(draw: st.DrawFn) -> bytes:
    """A GEO series matrix (metadata, characteristics, table), then mutated."""
    n_samples = draw(st.integers(0, 5) if draw(_sometimes(0.2)) else st.integers(2, 5))
    n_probes = draw(st.integers(0, 6) if draw(_sometimes(0.2)) else st.integers(2, 6))
    gsm = [f"GSM{j}" for j in range(n_samples)]
    spellings = ["er: +", "ER :-", "er  status: P", "ER status: N", "grade: 2", "x"]
    tags = draw(st.lists(st.sampled_from(spellings), min_size=n_samples, max_size=n_samples))
    lines = series_matrix_head(gsm, tags)
    cell = (
        st.sampled_from(["7.1", "5", "null", "", "-3.5e2"])
        if draw(_sometimes(0.7))
        else st.sampled_from(JUNK)
    )
    for i in range(n_probes):
        lines.append(f'"{i}_at"\t' + "\t".join(draw(cell) for _ in gsm))
    if not draw(_sometimes(0.1)):
        lines.append("!series_matrix_table_end")
    if draw(_sometimes(0.1)) and len(lines) > 3:
        del lines[draw(st.integers(0, len(lines) - 1))]
    data = ("\n".join(lines) + "\n").encode()
    return gzip.compress(data, mtime=0) if draw(_sometimes(0.3)) else data


LABELS = st.lists(
    st.tuples(
        st.sampled_from(["GSM1", "GSM2", "S1", "", '"q"', "x,y"]), st.sampled_from(["P", "N", "ER+", ""])
    ),
    max_size=6,
).map(lambda rows: ("sample,label\n" + "".join(f"{a},{b}\n" for a, b in rows)).encode())


# ------------------------------------------------------------------------------------------ tests
INPUTS = {
    "arbitrary bytes": st.binary(max_size=600),
    "tables": tables(),
    "series matrices": series_matrices(),
}


@FUZZ
@pytest.mark.parametrize("kind", list(INPUTS))
@given(draw=st.data(), wide=st.booleans(), small=st.booleans())
def test_every_reader_loads_or_refuses(kind: str, draw: st.DataObject, wide: bool, small: bool) -> None:
    """Arbitrary bytes and near-valid tables and series matrices, through every reader."""
    data = draw.draw(INPUTS[kind], label=kind)
    with _parser(wide, small):
        for call in _readers(data):
            _check(call)


@FUZZ
@given(data=LABELS)
def test_label_files(data: bytes) -> None:
    for encoded in (
        data,
        gzip.compress(data, mtime=0),
        codecs.BOM_UTF16_LE + data.decode().encode("utf-16-le"),
    ):
        _check(lambda d=encoded: read_label_file(d, filename=NAME))
        _check(lambda d=encoded: _sheet(read_sample_sheet(d, filename=NAME)))


class _AnnData:
    def __init__(self, X: np.ndarray, var: list[str], obs: list[str]) -> None:
        self.X, self.var_names, self.obs_names, self.shape = X, var, obs, X.shape


@FUZZ
@given(
    X=st.integers(0, 4).flatmap(
        lambda n: st.integers(0, 4).flatmap(
            lambda g: st.lists(
                st.sampled_from([0.0, 1.5, -2.0, np.nan, np.inf, 1e300, -1e39, 3e38]),
                min_size=n * g,
                max_size=n * g,
            ).map(lambda v, n=n, g=g: np.array(v, dtype=np.float64).reshape(n, g))
        )
    ),
    dup=st.booleans(),
    fail=st.sampled_from([None, OSError("bad"), KeyError("X"), ValueError("v")]),
)
def test_h5ad_contents(X: np.ndarray, dup: bool, fail: Exception | None) -> None:
    """read_h5ad with a stand-in anndata (the real one is optional): any matrix it returns is checked."""
    obs = ["a"] * X.shape[0] if dup else [f"s{i}" for i in range(X.shape[0])]
    module = types.ModuleType("anndata")

    def read(_fh: object) -> _AnnData:
        if fail is not None:
            raise fail
        return _AnnData(X, [f"g{j}" for j in range(X.shape[1])], obs)

    module.read_h5ad = read  # type: ignore[attr-defined]
    saved = sys.modules.get("anndata")
    sys.modules["anndata"] = module
    try:
        _check(lambda: read_h5ad(b"\x89HDF\r\n\x1a\n", filename=NAME))
        _check(lambda: load_study(b"\x89HDF\r\n\x1a\n", filename=NAME))
    finally:
        if saved is None:
            sys.modules.pop("anndata", None)
        else:
            sys.modules["anndata"] = saved


# ------------------------------------------------------------------------------------------ gzip bomb
@pytest.fixture(scope="module")
def bomb() -> bytes:
    """gzip of 600 MiB of zeros (about 600 kB), compressed in 4 MiB chunks."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(4 << 20)
    parts = [z.compress(zeros) for _ in range(150)]
    parts.append(z.flush())
    return b"".join(parts)


def test_gzip_bomb_is_refused_quickly_with_bounded_memory(bomb: bytes) -> None:
    cap = gene_text.MAX_BYTES
    assert len(bomb) < 2 << 20 and 600 << 20 > cap
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(GeneDataError, match=rf"'bomb\.csv\.gz' decompresses to more than {cap >> 20} MB"):
            load_study(bomb, filename="bomb.csv.gz")
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The counting pass holds one decompressed piece (_OUT_CHUNK) and one input slice (_IN_CHUNK) at
    # a time and never the output, so the peak is the input plus a few pieces; allow the input plus
    # 16 MiB (zlib's state and pieces) — far below the cap, which a non-streaming reader would reach.
    bound = len(bomb) + 4 * gene_text._OUT_CHUNK + gene_text._IN_CHUNK + (16 << 20)
    assert peak < bound < cap, (peak, bound)
    assert elapsed < 10.0, elapsed  # about 1 s here: zlib inflates zeros at ~1 GB/s


def _outcome(data: bytes) -> tuple[str, object]:
    try:
        s = read_expression_table(data, filename=NAME)
    except GeneDataError as exc:
        return "error", str(exc).split(":")[0]
    info = {k: v.tolist() for k, v in s.annotations.items()}
    return "study", (s.expression.tobytes(), s.gene_ids.tolist(), s.sample_ids.tolist(), s.notes, info)


@FUZZ
@given(data=tables(quotes=False))
def test_the_parsers_agree(data: bytes) -> None:
    """The CSV reader, the split parser of wide tables and small slices give the same study."""
    with _parser(False, False):
        expected = _outcome(data)
    for wide, small in ((True, False), (False, True), (True, True)):
        with _parser(wide, small):
            got = _outcome(data)
        if expected[0] == "study" or got[0] == "study":
            assert got == expected, (wide, small)
