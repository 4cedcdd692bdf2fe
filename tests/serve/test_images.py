"""Image intake: base64 / data URLs, no URL fetching, pixel cap from the header, broken files."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from sceneparser.serve.images import RequestError, decode_base64_image, open_upload


def png_bytes(size=(32, 24), color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def lying_png(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims width x height (a decompression bomb header)."""
    data = bytearray(png_bytes((1, 1)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_base64_and_data_url_round_trip():
    raw = png_bytes()
    b64 = base64.b64encode(raw).decode()
    assert decode_base64_image(b64, max_bytes=10_000) == raw
    assert decode_base64_image("data:image/png;base64," + b64, max_bytes=10_000) == raw
    img = open_upload(raw, max_pixels=10_000)
    assert img.size == (32, 24) and img.mode == "RGB"


@pytest.mark.parametrize("url", ["http://127.0.0.1/x.png", "https://example.org/a.jpg", "file:///etc/passwd"])
def test_urls_are_never_fetched(url):
    with pytest.raises(RequestError) as err:
        decode_base64_image(url, max_bytes=10_000)
    assert err.value.status == 400 and err.value.code == "url_not_allowed"


@pytest.mark.parametrize(
    "value, status",
    [("", 400), ("not base64 !!!", 400), ("data:text/plain;base64,aGk=", 415), ("data:image/png,rawdata", 400)],
)
def test_bad_base64(value, status):
    with pytest.raises(RequestError) as err:
        decode_base64_image(value, max_bytes=10_000)
    assert err.value.status == status


def test_base64_over_byte_cap_is_refused_before_decoding():
    with pytest.raises(RequestError) as err:
        decode_base64_image("A" * 4000, max_bytes=1000)
    assert err.value.status == 413


def test_pixel_cap_is_checked_from_the_header():
    bomb = lying_png(60_000, 60_000)  # 3.6 G pixels declared, ~70 bytes on the wire
    with pytest.raises(RequestError) as err:
        open_upload(bomb, max_pixels=4096 * 4096)
    assert err.value.status == 413 and err.value.code == "too_many_pixels"
    with pytest.raises(RequestError) as err:
        open_upload(png_bytes((100, 100)), max_pixels=50 * 50)
    assert err.value.status == 413 and "100x100" in err.value.message


@pytest.mark.parametrize(
    "data",
    [b"hello, I am text", png_bytes()[:60], b"%PDF-1.4\n%...", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40],
    ids=["text", "truncated-png", "pdf", "png-magic-only"],
)
def test_broken_or_foreign_bytes_are_a_400(data):
    with pytest.raises(RequestError) as err:
        open_upload(data, max_pixels=10_000_000)
    assert err.value.status == 400 and err.value.code == "invalid_image"


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(RequestError) as err:
        open_upload(png_bytes((1000, 2)), max_pixels=10_000_000)
    assert err.value.status == 400


def test_exif_orientation_is_opt_in():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    assert open_upload(buf.getvalue(), max_pixels=10_000).size == (40, 20)  # as the reference
    assert open_upload(buf.getvalue(), max_pixels=10_000, exif_transpose=True).size == (20, 40)


from hypothesis import given, settings, strategies as st  # noqa: E402

from sceneparser.serve.schemas import check_text  # noqa: E402

_PNG = png_bytes((16, 16))


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.binary(max_size=512),
    st.builds(lambda cut, junk: _PNG[:cut] + junk, st.integers(0, len(_PNG)), st.binary(max_size=64)),
))
def test_any_bytes_give_an_image_or_a_request_error(data):
    try:
        img = open_upload(data, max_pixels=1_000_000)
    except RequestError as exc:
        assert 400 <= exc.status < 500 and exc.message
    else:
        assert img.mode == "RGB" and img.width * img.height <= 1_000_000


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_accepted_clean_or_refused_with_4xx(text):
    try:
        out = check_text(text, max_chars=200, param="query")
    except RequestError as exc:
        assert 400 <= exc.status < 500
    else:
        assert out and len(out) <= 200 and "<|" not in out and "|>" not in out
