"""A corpus of ordinary, odd and hostile files for the app's uploaders, generated (nothing is shipped).

Each case is (page, slot, filename, bytes, expect): ``page`` is "playground" or "latent", ``slot`` the
uploader ("points" on the playground; "expression" or "labels" on the latent page), ``expect`` either
"ok" (the file must be used) or "refused" (a message, no exception). Used by the real-browser upload test
and by ``bench/bench_uploads.py``, which uploads every case through the app in Chromium and measures how
long the page takes to settle and how much the server grows.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    page: str  # "playground" | "latent"
    slot: str  # "points" | "expression" | "labels"
    filename: str
    data: bytes
    expect: str  # "ok" | "refused"


def _csv(rows: list[list[object]], header: list[str] | None = None, sep: str = ",") -> bytes:
    lines = [] if header is None else [sep.join(header)]
    lines += [sep.join(str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def _points(n: int = 60, d: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).round(4)


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _png(width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("L", (width, height), 255)
    ImageDraw.Draw(img).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=0)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _noise_png(size: int) -> bytes:
    """A PNG of random gray noise (it does not compress: cutting it leaves most pixels missing)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width × height`` pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_bytes(members: dict[str, str | bytes]) -> bytes:
    """A zip archive of ``members`` (name → content), as bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


def _xlsx() -> bytes:
    return zip_bytes(
        {
            "[Content_Types].xml": "<Types/>",
            "xl/workbook.xml": "<workbook/>",
            "xl/worksheets/sheet1.xml": "<w/>",
        }
    )


def _gzip_bomb(decompressed: int = 1_200_000_000) -> bytes:
    """A few hundred kB of gzip that expands to ``decompressed`` bytes of digits and commas."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"1," * (1 << 19)
    out = [comp.compress(b"gene," + b"s," * 10 + b"\n")]
    for _ in range(decompressed // len(block)):
        out.append(comp.compress(block))
    out.append(comp.flush())
    return b"".join(out)


def _gene_table(genes: int = 300, samples: int = 12, seed: int = 0, prefix: str = "S") -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(8.0, 2.0, size=(genes, samples)).round(3)
    header = ["ID_REF", *[f"{prefix}{j}" for j in range(samples)]]
    rows = [[f"{1000 + i}_at", *X[i]] for i in range(genes)]
    return _csv(rows, header, sep="\t")


def golub_table(
    genes: int = 40,
    samples: list[str] | None = None,
    seed: int = 0,
    sep: str = ",",
    numbered_calls: bool = True,
) -> bytes:
    """A table in the layout of Golub et al.'s ALL/AML files (Affymetrix MAS4): 'Gene Description' (text
    that repeats, with the separator inside quotes), 'Gene Accession Number', then for each sample its
    values (linear, some negative) followed by a call column of P/A/M ('call', 'call.1', … as pandas
    writes it, or 'call' every time as in the original files)."""
    rng = np.random.default_rng(seed)
    samples = samples if samples is not None else [str(j) for j in range(1, 9)]
    header = ["Gene Description", "Gene Accession Number"]
    for j, s in enumerate(samples):
        header += [s, f"call.{j}" if numbered_calls and j else "call"]
    X = np.round(rng.lognormal(5.5, 1.6, size=(genes, len(samples))) - 80).astype(int)
    rows = []
    for i in range(genes):
        row = [f'"GB DEF = protein {i % 7}{sep} partial cds"', f"M{10_000 + i}_at"]
        for j in range(len(samples)):
            row += [str(X[i, j]), "PAM"[int(rng.integers(0, 3))]]
        rows.append(row)
    return _csv(rows, header, sep=sep)


def combined_files(
    per_batch: tuple[int, int] = (14, 12),
    genes: int = 60,
    seed: int = 0,
    batch_names: tuple[str, str] = ("A", "B"),
) -> tuple[bytes, bytes]:
    """Both studies in one gzipped table, samples as rows (first column sample_id), and a sample sheet
    (sample_id, batch, label): the layout of the shared real data (expression.csv.gz + meta.csv). The
    values are ln(CP10k + 1)-like (0 to about 7), with a batch shift and a label signal."""
    rng = np.random.default_rng(seed)
    rows, meta = [], []
    for b, (n, name) in enumerate(zip(per_batch, batch_names, strict=True)):
        for i in range(n):
            label = ("H1975", "H2228", "HCC827")[i % 3]
            x = np.clip(
                rng.gamma(2.0, 0.6, genes) + 0.4 * b + (i % 3) * 0.3 * (np.arange(genes) % 5 == 0), 0, 7
            )
            rows.append([f"{name}_{i}", *np.round(x, 4)])
            meta.append([f"{name}_{i}", name, label])
    expression = gzip.compress(_csv(rows, ["sample_id", *[f"ENSG{j:011d}" for j in range(genes)]]), mtime=0)
    return expression, _csv(meta, ["sample_id", "batch", "label"])


def series_matrix_head(samples: list[str], tags: list[str]) -> list[str]:
    """The lines of a GEO series matrix up to its table's header: accessions, one characteristics
    line (``tags``, one per sample) and the table's first line."""
    return [
        '!Series_geo_accession\t"GSE1"',
        "!Sample_geo_accession\t" + "\t".join(f'"{s}"' for s in samples),
        "!Sample_characteristics_ch1\t" + "\t".join(f'"{t}"' for t in tags),
        "!series_matrix_table_begin",
        '"ID_REF"\t' + "\t".join(f'"{s}"' for s in samples),
    ]


def _series_matrix(tags: list[str], truncated: bool = False) -> bytes:
    samples = [f"GSM{100 + j}" for j in range(len(tags))]
    rng = np.random.default_rng(1)
    lines = series_matrix_head(samples, tags)
    for i in range(200):
        lines.append(f'"{1000 + i}_at"\t' + "\t".join(f"{v:.3f}" for v in rng.normal(8, 2, len(samples))))
    if not truncated:
        lines.append("!series_matrix_table_end")
    return ("\n".join(lines) + "\n").encode()


def playground_cases() -> list[Case]:
    P = _points()
    good = _csv(P.tolist(), ["x", "y"])
    cases = [
        ("good csv", "points.csv", good, "ok"),
        ("ragged rows", "ragged.csv", b"1,2\n3,4\n5\n6,7\n", "refused"),
        ("pickle as npy", "evil.npy", pickle.dumps({"a": 1}), "refused"),
        ("object npy", "objects.npy", _npy(np.array([{"a": 1}, None], dtype=object), True), "refused"),
        ("utf-16 without BOM", "utf16.csv", "x,y\n1,2\n3,4\n5,6\n".encode("utf-16-le"), "ok"),
        ("utf-16 with BOM", "utf16bom.csv", "x,y\n1,2\n3,4\n5,6\n".encode("utf-16"), "ok"),
        ("latin-1 header", "latin1.csv", "é,ü\n1,2\n3,4\n".encode("latin-1"), "ok"),
        ("values beyond float32", "huge.csv", b"1e300,2\n3,4\n5,6\n", "refused"),
        ("NaN cells", "nan.csv", b"1,2\nnan,4\n5,6\n", "refused"),
        (
            "pandas index column",
            "indexed.csv",
            _csv([[i, *p] for i, p in enumerate(P.tolist())], ["", "x", "y"]),
            "ok",
        ),
        ("constant column", "constant.csv", _csv([[p[0], 5.0] for p in P.tolist()], ["x", "y"]), "ok"),
        ("all points identical (as the source)", "same.csv", _csv([[1.5, 2.5]] * 40, ["x", "y"]), "refused"),
        ("integer grid with duplicates", "grid.csv", _csv([[i % 5, i % 3] for i in range(60)]), "ok"),
        ("xlsx renamed csv", "sheet.csv", _xlsx(), "refused"),
        ("png renamed csv", "picture.csv", _png(32, 32), "refused"),
        ("image bomb", "bomb.png", _png_declaring(40_000, 40_000), "refused"),
        ("truncated png", "cut.png", _noise_png(256)[:3000], "refused"),
        ("good image", "disc.png", _png(64, 64), "ok"),
        ("empty file", "empty.csv", b"", "refused"),
        ("header only", "header.csv", b"x,y\n", "refused"),
        ("one row", "one.csv", b"1,2\n", "refused"),
        ("5000 columns", "wide.csv", _csv([[0.5] * 5000, [1.5] * 5000]), "refused"),
        ("decimal commas", "comma.csv", b"1,5;2,5\n3,0;4,25\n5,5;6,75\n", "ok"),
        ("binary junk", "junk.csv", bytes(range(256)) * 64, "refused"),
        ("gzip renamed csv", "points.csv.csv", gzip.compress(good), "refused"),
        ("3-D npz", "cloud.npz", _npz3(), "ok"),
    ]
    return [Case(n, "playground", "points", f, d, e) for n, f, d, e in cases]


def _npz3() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, points=_points(50, 3))
    return buf.getvalue()


def latent_cases() -> list[Case]:
    cases = [
        ("good table", "expression", "study.tsv", _gene_table(), "ok"),
        ("gzip bomb", "expression", "bomb.csv.gz", _gzip_bomb(), "refused"),
        ("1 sample × 1 gene", "expression", "tiny.csv", b"ID,S1\ng1,5.0\n", "refused"),
        ("all-missing sample", "expression", "missing.csv", _missing_sample(), "ok"),
        (
            "series matrix, tags in two cases",
            "expression",
            "GSE1_series_matrix.txt",
            _series_matrix(["er: P", "ER: N", "Er : P", "er: N"] * 3),
            "ok",
        ),
        (
            "truncated series matrix",
            "expression",
            "GSE2_series_matrix.txt",
            _series_matrix(["er: P", "er: N"] * 3, truncated=True),
            "refused",
        ),
        ("xlsx renamed csv", "expression", "study.csv", _xlsx(), "refused"),
        (
            "old xls",
            "expression",
            "study.txt",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "refused",
        ),
        ("zip archive", "expression", "study.gz", zip_bytes({"study.tsv": _gene_table()}), "refused"),
        ("utf-16 table", "expression", "u16.tsv", _gene_table().decode().encode("utf-16-le"), "ok"),
        ("binary junk", "expression", "junk.tsv", bytes(range(256)) * 64, "refused"),
        (
            "values beyond float32",
            "expression",
            "huge.csv",
            b"ID,S1,S2,S3\ng1,1e300,2,3\ng2,4,5,6\ng3,1,2,3\n",
            "refused",
        ),
        ("ragged table", "expression", "ragged.csv", b"ID,S1,S2\ng1,1,2\ng2,3\ng3,4,5,6,7\n", "refused"),
        ("square table", "expression", "square.csv", b"ID,a,b\nc,1,2\nd,3,4\n", "refused"),
        ("h5ad", "expression", "study.h5ad", b"\x89HDF\r\n\x1a\n" + b"\x00" * 512, "refused"),
        (
            "label file with header",
            "labels",
            "labels.csv",
            ("sample,label\n" + "".join(f"S{j},{'AB'[j % 2]}\n" for j in range(12))).encode(),
            "ok",
        ),
        (
            "label file without header",
            "labels",
            "labels2.csv",
            "".join(f"S{j},{'AB'[j % 2]}\n" for j in range(12)).encode(),
            "ok",
        ),
        ("label file, pickle", "labels", "labels.txt", pickle.dumps([1, 2]), "refused"),
        (
            "Golub-style table (description, accession, P/A/M calls)",
            "expression",
            "data_set_ALL_AML_train.csv",
            golub_table(samples=[f"S{j}" for j in range(12)]),
            "ok",
        ),
        (
            "linear values (MAS5-like intensities)",
            "expression",
            "linear.tsv",
            _gene_table_linear(),
            "ok",
        ),
        (
            "sample sheet (sample ID, batch, label)",
            "labels",
            "meta.csv",
            (
                "sample_id,batch,label\n" + "".join(f"S{j},b{j % 2},{'AB'[j % 3 % 2]}\n" for j in range(12))
            ).encode(),
            "ok",
        ),
    ]
    return [Case(n, "latent", s, f, d, e) for n, s, f, d, e in cases]


def _gene_table_linear(genes: int = 300, samples: int = 12) -> bytes:
    """A genes × samples table of linear intensities (what 2 ** log2 values look like)."""
    rng = np.random.default_rng(4)
    X = np.round(2.0 ** rng.normal(8.0, 2.0, size=(genes, samples)), 1)
    header = ["ID_REF", *[f"S{j}" for j in range(samples)]]
    return _csv([[f"{1000 + i}_at", *X[i]] for i in range(genes)], header, sep="\t")


def _missing_sample() -> bytes:
    rng = np.random.default_rng(2)
    rows = [[f"g{i}", *rng.normal(8, 1, 4).round(3), "NA"] for i in range(50)]
    return _csv(rows, ["ID", "S1", "S2", "S3", "S4", "S5"])


def large_cases() -> list[Case]:
    """Large valid files (tens of MB; for the benchmark, not the tests): a gzipped 20,000 × 400 gene
    table and a 30 MB point table (900,000 points in 4-D)."""
    rng = np.random.default_rng(3)
    X = rng.normal(8.0, 2.0, size=(20_000, 400)).astype(np.float32)
    lines = ["ID_REF\t" + "\t".join(f"S{j}" for j in range(400))]
    lines += [f"{1000 + i}_at\t" + "\t".join(f"{v:.3f}" for v in row) for i, row in enumerate(X)]
    table = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)
    points = _csv(rng.normal(size=(900_000, 4)).round(5).tolist())  # under the 1,000,000-row limit
    return [
        Case("large gene table (gzipped)", "latent", "expression", "large.tsv.gz", table, "ok"),
        Case("large point table", "playground", "points", "large.csv", points, "ok"),
    ]


def all_cases() -> list[Case]:
    return playground_cases() + latent_cases()
