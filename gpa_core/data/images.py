"""An image upload as points: :func:`image_to_points` turns the dark pixels of a PNG, JPEG, GIF, BMP,
TIFF or WebP image into an ``(n, 2)`` point cloud, refusing oversized images before decoding them."""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np

from gpa_core.data.sources import (
    MAX_IMAGE_PIXELS,
    MAX_ROWS,
    MAX_UPLOAD_BYTES,
    DataFileError,
    Source,
    clip,
    read_source,
)
from gpa_core.data.tables import IMAGE_ADVICE, identify, looks_like_text_table

__all__ = ["IMAGE_FORMATS", "image_to_points"]


IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
"""The image formats :func:`image_to_points` decodes (PIL's other plugins are never tried)."""


def image_to_points(
    source: Source,
    *,
    n: int | None = None,
    seed: int = 0,
    threshold: float = 0.5,
    size: float = 10.0,
    max_bytes: int = MAX_UPLOAD_BYTES,
    filename: str | None = None,
) -> np.ndarray:
    """Turn the dark pixels of an image into an ``(n, 2)`` float64 point cloud.

    The image (one of :data:`IMAGE_FORMATS`; transparent parts count as white) is converted to grayscale
    in [0, 1]; pixels darker than ``threshold`` are "dark". With ``n=None`` there is one point per dark
    pixel; otherwise ``n`` dark pixels are drawn uniformly (without replacement while ``n`` does not
    exceed the number of dark pixels, with replacement beyond). Each point lies uniformly inside its
    pixel (seeded jitter). The y axis points up, so a scatter plot shows the image upright, and the longer
    side of the image spans [0, ``size``]. ``filename`` names bytes in messages (a path names itself).
    An image larger than ``MAX_IMAGE_PIXELS`` is refused from its header, before any pixel is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"threshold must be a number between 0 and 1, got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if (
        isinstance(size, bool)
        or not isinstance(size, int | float | np.number)
        or not (math.isfinite(size) and size > 0)
    ):
        raise ValueError(f"size must be a positive finite number, got {size!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    if n is not None and n > MAX_ROWS:
        raise ValueError(f"n = {n:,} is more than the limit of {MAX_ROWS:,} points")

    data, label, _suffix = read_source(source, filename, max_bytes)
    if len(data) == 0:
        raise DataFileError(f"{label} is empty (0 bytes); upload an image file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:  # refused from the header: nothing is decoded
                raise DataFileError(
                    f"{label} is {w}×{h} = {w * h / 1e6:.1f} megapixels, more than the "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the image and upload it again."
                )
            img.load()
            gray = _grayscale(img)
    except DataFileError:
        raise
    except Image.DecompressionBombError:
        raise DataFileError(
            f"{label} is far larger than the {MAX_IMAGE_PIXELS / 1e6:.0f}-megapixel limit. Downscale the "
            "image and upload it again."
        ) from None
    except UnidentifiedImageError:
        found = identify(data)
        if found is not None and found[1] != IMAGE_ADVICE:
            hint = f" It is {found[0]}; {found[1]}."
        elif found is None and looks_like_text_table(data):
            hint = " It looks like a text table of points: upload it with the .csv (or .txt) extension."
        else:
            hint = ""
        raise DataFileError(
            f"{label} is not an image PIL can read. Upload a PNG, JPEG, GIF, BMP, TIFF or WebP file.{hint}"
        ) from None
    except MemoryError:
        raise DataFileError(f"{label} is too large to decode here. Downscale the image.") from None
    except Exception as exc:  # truncated or corrupt data: PIL's decoders raise many kinds of errors
        raise DataFileError(
            f"{label} is a damaged or truncated image ({clip(str(exc)) or type(exc).__name__})."
        ) from None

    dark = gray < float(threshold)
    rows, cols = np.nonzero(dark)
    count = rows.size
    if count == 0:
        raise DataFileError(
            f"{label} has no pixels darker than the threshold {threshold:g} (the image is blank or too "
            "light). Raise the threshold or use an image with dark shapes on a light background."
        )
    rng = np.random.default_rng(seed)
    if n is None:
        if count < 2:
            raise DataFileError(
                f"{label} has only 1 pixel darker than the threshold {threshold:g}; at least 2 points are "
                "needed. Raise the threshold, use an image with larger dark shapes, or ask for n points."
            )
        if count > MAX_ROWS:
            raise DataFileError(
                f"{label} has {count:,} dark pixels, more than the limit of {MAX_ROWS:,} points; ask for "
                "fewer points (n) or lower the threshold."
            )
        idx = np.arange(count)
    elif n <= count:
        idx = np.sort(rng.choice(count, size=n, replace=False))
    else:
        idx = rng.integers(0, count, size=n)
    scale = float(size) / max(h, w)
    jitter = rng.random((idx.size, 2))
    x = (cols[idx] + jitter[:, 0]) * scale
    y = (h - 1 - rows[idx] + jitter[:, 1]) * scale
    return np.column_stack([x, y]).astype(np.float64, copy=False)


def _grayscale(img: Any) -> np.ndarray:
    """Grayscale in [0, 1] with transparent areas composited onto white."""
    from PIL import Image

    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return (arr - lo) / (hi - lo) if hi > lo else np.ones_like(arr)
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
