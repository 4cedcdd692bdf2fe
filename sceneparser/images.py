"""The one image loader: a path, bytes, a file object or a PIL image -> an 8-bit RGB PIL image.

Every entry point opens images here: the CLI and the Python API (:class:`~sceneparser.inference.api.SceneParser`),
the HTTP service, the demo, ``sceneparser eval``, the training dataset and ``convert``'s checks. So a
file gives the same pixels, and the same answer, whichever way it comes in.

* **Formats**: the common raster formats (:data:`IMAGE_FORMATS`); others (EPS, which would run
  Ghostscript, PSD, PDF, ...) are refused before decoding.
* **Size**: the pixel count is read from the header and checked against ``max_pixels`` before any
  pixel is decoded, so a decompression bomb never allocates; zero sizes and aspect ratios over
  :data:`MAX_ASPECT_RATIO` (which the model's resize cannot handle) are refused too.
* **Modes**: :func:`to_rgb` turns every mode into 8-bit RGB the same way: 16-bit and 32-bit
  integer / float greyscale is *scaled* to 0..255 (PIL's plain ``convert("RGB")`` clips it, which
  whitens a 16-bit PNG); palette, LA, CMYK, 1-bit and the rest go through PIL's conversion; alpha is
  dropped, as the reference's ``convert("RGB")`` drops it. For 8-bit RGB, L, P, RGBA and CMYK input
  the pixels are exactly PIL's ``convert("RGB")``, i.e. the reference's.
* **EXIF orientation** is ignored by default, as in the reference (coordinates then refer to the
  stored pixels); ``exif_transpose=True`` applies it (coordinates as a browser shows the image).

Problems raise :class:`ImageError` (an :class:`~sceneparser.errors.InputError`) whose ``code`` says
what went wrong, so each front end can map it (the HTTP service to 400/413, ``eval`` to a
per-sample problem).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from sceneparser.errors import InputError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_FORMATS",
    "MAX_ASPECT_RATIO",
    "ImageError",
    "open_image",
    "to_rgb",
]

#: Default limit on the decoded size of an input image (width * height), checked before decoding.
DEFAULT_MAX_IMAGE_PIXELS = 12_000 * 12_000
#: The model's resize refuses images whose long side is more than this many times the short side.
MAX_ASPECT_RATIO = 200
#: Formats accepted everywhere (PIL format names). MPO is how PIL names many phone-camera JPEGs.
IMAGE_FORMATS: tuple[str, ...] = (
    "PNG", "JPEG", "MPO", "WEBP", "BMP", "DIB", "GIF", "TIFF", "PPM", "TGA", "ICO", "JPEG2000", "PCX", "SGI",
)

_SCALED_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# What Image.open is given: PIL has no "MPO" opener (an MPO file opens through the JPEG one) and
# raises KeyError on the name, which refused every format listed after it.
_OPEN_FORMATS = tuple(f for f in IMAGE_FORMATS if f != "MPO")


class ImageError(InputError):
    """An image that cannot be used. ``code``: ``not_found``, ``empty``, ``unsupported``,
    ``corrupt``, ``too_many_pixels`` or ``bad_size``."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB (returned as is when it already is); see the module notes."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SCALED_MODES:
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            hi = float(arr.max()) if arr.size else 0.0
            arr = arr / 257.0 if hi > 255 else arr
        else:  # float: assume 0..1 when it fits, else min-max
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
            arr = arr * 255.0 if (lo >= 0.0 and hi <= 1.0) else (arr - lo) / max(hi - lo, 1e-12) * 255.0
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # PIL warns when converting a transparent palette directly
    return image.convert("RGB")


def _check_size(size: tuple[int, int], max_pixels: int | None, name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"image {name} has zero size ({w}x{h})", "bad_size")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            f"image {name} is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} "
            "(possible decompression bomb); downscale it or raise the limit (max_image_pixels / --max-image-pixels)",
            "too_many_pixels",
        )
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"image {name} is {w}x{h}: aspect ratio {max(w, h) / min(w, h):.1f} is over the supported {MAX_ASPECT_RATIO}",
            "bad_size",
        )


def _open_file(source: Any, name: str):
    """A binary file object for ``source`` (not a PIL image) and whether we opened it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(f"image {name} is empty (0 bytes)", "empty")
        return io.BytesIO(bytes(source)), False
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise ImageError(f"image not found: {name}", "not_found")
        if not p.is_file():
            raise ImageError(f"not a file: {name}", "not_found")
        if p.stat().st_size == 0:
            raise ImageError(f"image file is empty (0 bytes): {name}", "empty")
        try:
            return open(p, "rb"), True
        except OSError as exc:
            raise ImageError(f"cannot read image {name}: {exc.strerror or exc}", "not_found") from None
    if hasattr(source, "read"):
        return source, False
    raise ImageError(f"cannot read an image from a {type(source).__name__}", "unsupported")


def open_image(
    source: Any,
    *,
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    exif_transpose: bool = False,
    name: str | None = None,
) -> Image.Image:
    """Open ``source`` (path, bytes, binary file object or PIL image) as a decoded 8-bit RGB image.

    ``name`` is how errors refer to the image (default: the path, else ``<image>``). Raises
    :class:`ImageError` for missing, empty, unsupported, corrupt or truncated images and for sizes
    over ``max_pixels`` (``None``: no limit) or over the aspect-ratio limit.
    """
    if name is None:
        name = str(source) if isinstance(source, (str, os.PathLike)) else "<image>"
    if isinstance(source, Image.Image):
        img = source
        _check_size(img.size, max_pixels, name)
    else:
        fh, owned = _open_file(source, name)
        try:
            with warnings.catch_warnings():
                # our own limit replaces PIL's warning; PIL still refuses images over twice its own limit
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                try:
                    img = Image.open(fh, formats=_OPEN_FORMATS)  # reads the header only
                except Image.DecompressionBombError as exc:
                    raise ImageError(f"image {name} is too large to decode safely: {exc}", "too_many_pixels") from None
                except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError, ...
                    raise ImageError(
                        f"cannot decode image {name}: not a supported image (formats: {', '.join(IMAGE_FORMATS)})",
                        "unsupported",
                    ) from None
                _check_size(img.size, max_pixels, name)
                try:
                    img.load()
                except Exception as exc:  # noqa: BLE001 - truncated data, bad chunks, decoder errors
                    raise ImageError(
                        f"cannot decode image {name}: truncated or corrupt ({type(exc).__name__}: {exc})", "corrupt"
                    ) from None
        finally:
            if owned:
                fh.close()
    if exif_transpose:
        try:
            img = ImageOps.exif_transpose(img) or img
        except Exception as exc:  # noqa: BLE001 - a broken EXIF block must not lose the image
            warnings.warn(f"ignoring unreadable EXIF orientation of {name}: {exc}", stacklevel=2)
    try:
        return to_rgb(img)
    except Exception as exc:  # noqa: BLE001 - an exotic mode PIL cannot convert
        raise ImageError(f"cannot convert image {name} (mode {img.mode}) to RGB: {exc}", "unsupported") from None
