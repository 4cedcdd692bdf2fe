"""Image intake for the HTTP service: base64 / data-URL decoding and error mapping.

Everything here is pure and raises :class:`RequestError` (a status code plus a message) for bad
input. The byte cap is enforced before the body is read (see ``app.IntakeMiddleware``); images
are opened by the one loader, :func:`sceneparser.images.open_image` (pixel cap checked from the
header before any pixel is decoded), so the service accepts and converts exactly what the CLI
does. No URL is ever fetched: only inline base64 (plain or as a ``data:`` URL) and uploaded files.
"""

from __future__ import annotations

import base64
import binascii
import re

from PIL import Image

from sceneparser.images import ImageError, open_image
from sceneparser.serve.errors import RequestError

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)


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


#: HTTP status and error code of each :class:`~sceneparser.images.ImageError` code
_STATUS = {
    "empty": (400, "invalid_image"),
    "not_found": (400, "invalid_image"),
    "unsupported": (400, "invalid_image"),
    "corrupt": (400, "invalid_image"),
    "bad_size": (400, "invalid_image"),
    "too_many_pixels": (413, "too_many_pixels"),
}


def open_upload(data: bytes, *, max_pixels: int, exif_transpose: bool = False, param: str = "image") -> Image.Image:
    """Uploaded image bytes opened by the one loader (:func:`sceneparser.images.open_image`), its
    problems as a :class:`RequestError` naming ``param`` (400, or 413 for too many pixels)."""
    try:
        return open_image(data, max_pixels=max_pixels, exif_transpose=exif_transpose, name=f"'{param}'")
    except ImageError as exc:
        status, code = _STATUS.get(exc.code, (400, "invalid_image"))
        raise RequestError(status, str(exc), code=code, param=param) from None
