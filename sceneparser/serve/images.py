"""Safe image intake for the HTTP service and the demo.

Everything here is pure and raises :class:`RequestError` (a status code plus a message) for bad
input. The byte cap is enforced before the body is read (see ``app.BodyLimitMiddleware``); the
pixel cap here is checked from the image *header*, before any pixel is decoded. No URL is ever
fetched: only inline base64 (plain or as a ``data:`` URL) and uploaded files are accepted.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageOps

#: Formats a client may send. Anything else (PDF, SVG, PSD, ...) is rejected before decoding.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


class RequestError(Exception):
    """A client error: HTTP ``status`` with an actionable ``message`` (and an error ``code``)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def decode_base64_image(value: str, *, max_bytes: int, param: str = "image") -> bytes:
    """Bytes of an image sent as base64 or as a ``data:image/...;base64,`` URL.

    http(s) and other URLs are refused: the server never fetches anything.
    """
    if not isinstance(value, str) or not value.strip():
        raise RequestError(400, f"'{param}' must be a non-empty base64 string or data URL", param=param)
    text = value.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "file:", "ftp://", "s3://", "gs://")):
        raise RequestError(
            400,
            f"'{param}' is a URL; this server never fetches URLs. Send the image inline as base64 "
            "or as a data URL ('data:image/png;base64,...').",
            code="url_not_allowed",
            param=param,
        )
    if lowered.startswith("data:"):
        m = _DATA_URL.match(text)
        if m is None or not m.group("b64"):
            raise RequestError(
                400, f"'{param}' must be a base64 data URL ('data:image/png;base64,...')", param=param
            )
        mime = (m.group("mime") or "").lower()
        if mime and not mime.startswith("image/"):
            raise RequestError(415, f"'{param}' has media type '{mime}', expected image/*", param=param)
        text = text[m.end():]
    # base64 grows 4/3: refuse before decoding anything that cannot fit the byte cap.
    if len(text) > (max_bytes * 4) // 3 + 8:
        raise RequestError(413, f"'{param}' is larger than the {max_bytes}-byte cap", code="too_large", param=param)
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"'{param}' is not valid base64", param=param) from None
    if not data:
        raise RequestError(400, f"'{param}' decodes to zero bytes", param=param)
    return data


def load_image(data: bytes, *, max_pixels: int, exif_transpose: bool = False, param: str = "image") -> Image.Image:
    """Decode image bytes into an RGB PIL image, refusing oversized or broken images.

    The size is read from the header and checked against ``max_pixels`` before decoding, so a
    decompression bomb never allocates its pixels. EXIF orientation is applied, so coordinates
    refer to the image as a browser shows it.
    """
    if not data:
        raise RequestError(400, f"'{param}' is empty", param=param)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise RequestError(413, f"'{param}' has more pixels than allowed", code="too_many_pixels", param=param) from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, OSError, struct.error, ...: all "not an image"
        raise RequestError(
            400,
            f"'{param}' is not a readable image (accepted formats: {', '.join(ALLOWED_FORMATS)})",
            code="invalid_image",
            param=param,
        ) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise RequestError(400, f"'{param}' has an empty size {width}x{height}", code="invalid_image", param=param)
    if width * height > max_pixels:
        raise RequestError(
            413,
            f"'{param}' is {width}x{height} = {width * height} pixels, over the cap of {max_pixels} "
            "(downscale it, or start the server with a larger --max-image-pixels)",
            code="too_many_pixels",
            param=param,
        )
    if max(width, height) / min(width, height) > 200:
        raise RequestError(
            400, f"'{param}' is {width}x{height}: aspect ratio over 200 is not supported", code="invalid_image", param=param
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()  # decode now, so a truncated file fails here and not inside the model
            if exif_transpose:
                img = ImageOps.exif_transpose(img) or img
            rgb = img.convert("RGB")
    except Exception:  # noqa: BLE001 - truncated data, bad chunks, decoder errors
        raise RequestError(
            400, f"'{param}' is truncated or corrupt and cannot be decoded", code="invalid_image", param=param
        ) from None
    return rgb
