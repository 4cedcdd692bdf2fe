"""sceneparser.images: the one image loader, and proof that every front end uses it.

The same 16-bit, palette, LA, CMYK and EXIF-rotated files go through the CLI (`sceneparser
parse`), the Python API, the HTTP service (`/v1/parse`), the demo and `sceneparser eval`; the
backend records the pixels it is handed and answers from them, so identical pixels and identical
answers are asserted, not assumed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sceneparser.errors import InputError
from sceneparser.images import ImageError, open_image, to_rgb
from sceneparser.inference.types import Backend, GenerationOutput


def _noise(w, h, seed=0):
    return Image.fromarray((np.random.RandomState(seed).rand(h, w, 3) * 255).astype("uint8"))


# ---------------------------------------------------------------------------------------------
# open_image: bad input
# ---------------------------------------------------------------------------------------------


def _png_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _bomb_png(width, height):
    """A tiny PNG whose header claims width x height pixels (never decoded by open_image)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_open_image_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_image(tmp_path / "empty.png")
    (tmp_path / "corrupt.png").write_bytes(b"this is not an image")
    with pytest.raises(InputError, match="cannot decode"):
        open_image(tmp_path / "corrupt.png")
    data = _png_bytes(_noise(64, 64))
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot decode"):
        open_image(tmp_path / "truncated.png")
    with pytest.raises(InputError, match="empty"):
        open_image(b"")
    with pytest.raises(InputError):
        open_image(12345)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_bomb_png(100_000, 100_000))
    with pytest.raises(InputError, match="pixels"):
        open_image(tmp_path / "bomb.png")
    with pytest.raises(InputError, match="limit"):
        open_image(_png_bytes(_noise(50, 50)), max_pixels=100)


@pytest.mark.parametrize("mode", ["CMYK", "LA", "P", "RGBA", "L", "1", "I;16", "I", "F"])
def test_modes_become_rgb(mode):
    base = _noise(40, 30)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        assert img.mode == "I;16"
    elif mode == "I":
        img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.int32) * 257)
    elif mode == "F":
        img = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        img = base.convert(mode)
    out = open_image(img)
    assert out.mode == "RGB" and out.size == (40, 30)
    if mode in ("I;16", "I", "F", "L"):  # greyscale values survive (scaled, not clipped to white)
        grey = np.asarray(base.convert("L"), dtype=np.int32)
        assert np.abs(np.asarray(out)[..., 0].astype(np.int32) - grey).max() <= 1


def test_sixteen_bit_png_file(tmp_path):
    arr = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 31).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    out = open_image(tmp_path / "deep.png")
    assert out.mode == "RGB" and out.size == (64, 32)
    assert 0 < np.asarray(out).mean() < 255


def test_exif_transpose_off_by_default(tmp_path):
    img = _noise(60, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert open_image(tmp_path / "rot.jpg").size == (60, 20)
    assert open_image(tmp_path / "rot.jpg", exif_transpose=True).size == (20, 60)


def test_error_codes_and_aspect_ratio(tmp_path):
    with pytest.raises(ImageError) as e:
        open_image(tmp_path / "missing.png")
    assert e.value.code == "not_found" and isinstance(e.value, InputError)
    with pytest.raises(ImageError) as e:
        open_image(_png_bytes(_noise(50, 50)), max_pixels=100)
    assert e.value.code == "too_many_pixels"
    with pytest.raises(ImageError) as e:
        open_image(_png_bytes(_noise(402, 2)))
    assert e.value.code == "bad_size" and "aspect ratio" in str(e.value)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(ImageError) as e:
        open_image(eps)
    assert e.value.code == "unsupported"


def test_rgb_input_is_kept_and_8bit_modes_match_pil():
    img = _noise(20, 10)
    assert to_rgb(img) is img
    for mode in ("L", "P", "RGBA", "CMYK", "LA"):
        conv = img.convert(mode)
        assert np.array_equal(np.asarray(open_image(conv)), np.asarray(conv.convert("RGB"))), mode


# ---------------------------------------------------------------------------------------------
# every front end: identical pixels, identical answers
# ---------------------------------------------------------------------------------------------


class PixelEcho(Backend):
    """Answers with one object whose box is derived from the pixels it was handed; records them."""

    def __init__(self):
        from sceneparser.inference.types import GenerationSettings

        self.settings = GenerationSettings()
        self.seen: list[tuple[int, int, str]] = []

    def generate(self, requests, *, progress=False):
        outs = []
        for r in requests:
            digest = hashlib.sha1(r.image.tobytes()).hexdigest()
            self.seen.append((*r.image.size, digest))
            mean = int(np.asarray(r.image).mean())
            k = [int(digest[i : i + 2], 16) * 3 for i in (0, 2)]
            text = json.dumps({"objects": [{"name": f"m{mean}", "bbox": f"<{k[0]}><{k[1]}><{k[0] + 10}><{k[1] + 10}>", "parts": []}]})
            outs.append(GenerationOutput(text, [], 0, "stop"))
        return outs


def _variants(tmp_path):
    """The awkward files: 16-bit, palette (with transparency), LA, CMYK JPEG, EXIF-rotated JPEG."""
    base = _noise(48, 36, seed=3)
    grey16 = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
    files = {"deep16.png": grey16, "palette.png": base.convert("P"), "la.png": base.convert("LA")}
    for name, img in files.items():
        img.save(tmp_path / name)
    pal = base.convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "palette_t.png", transparency=0)
    base.convert("CMYK").save(tmp_path / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6
    base.save(tmp_path / "rot.jpg", exif=exif)
    return ["deep16.png", "palette.png", "palette_t.png", "la.png", "cmyk.jpg", "rot.jpg"]


def test_every_front_end_sees_the_same_pixels_and_gives_the_same_answer(tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from sceneparser import cli
    from sceneparser.demo.predict import make_predict
    from sceneparser.evaluation.runner import EvalConfig, run_eval
    from sceneparser.inference.api import SceneParser
    from sceneparser.serve.app import ServeConfig, create_app
    from sceneparser.serve.jobs import make_batch_fn

    names = _variants(tmp_path)
    backend = PixelEcho()
    parser = SceneParser(backend)
    expected = {}
    for name in names:
        want = np.asarray(to_rgb(Image.open(tmp_path / name)))
        assert want.mean() < 250, name  # not whitened
        expected[name] = want

    # Python API
    api = {}
    for name in names:
        backend.seen.clear()
        r = parser.parse(tmp_path / name, "thing")
        (seen,) = backend.seen
        assert seen[2] == hashlib.sha1(expected[name].tobytes()).hexdigest(), name
        api[name] = (seen, r.raw_text, r.to_dict(raw=False)["objects"])
    assert api["deep16.png"][2][0]["name"] != "m255"

    # CLI: `sceneparser parse FILE -q thing --out X.json`, the model swapped for the same backend
    monkeypatch.setattr(SceneParser, "from_pretrained", classmethod(lambda cls, *a, **k: parser))
    for name in names:
        backend.seen.clear()
        out = tmp_path / f"{name}.json"
        assert cli.main(["parse", str(tmp_path / name), "-q", "thing", "--out", str(out)]) == 0
        (row,) = json.loads(out.read_text())
        assert (backend.seen[0], row["raw_text"], row["objects"]) == api[name], name

    # HTTP /v1/parse (base64 JSON and multipart upload)
    with TestClient(create_app(make_batch_fn(parser), ServeConfig(max_batch_size=2, max_wait_ms=5))) as client:
        for name in names:
            data = (tmp_path / name).read_bytes()
            backend.seen.clear()
            body = client.post("/v1/parse", json={"image": base64.b64encode(data).decode(), "query": "thing"})
            assert body.status_code == 200, body.text
            (res,) = body.json()["results"]
            assert (backend.seen[0], res["raw_text"], res["objects"]) == api[name], name
            backend.seen.clear()
            up = client.post("/v1/parse", files={"image": (name, data)}, data={"query": "thing"})
            assert up.status_code == 200, up.text
            assert up.json()["results"][0]["raw_text"] == api[name][1]

    # demo: the page hands the uploaded file's path to predict
    predict = make_predict(parser)
    for name in names:
        backend.seen.clear()
        _, payload = predict(str(tmp_path / name), "thing", False)
        assert (backend.seen[0], payload["results"][0]["raw_text"], payload["objects"]) == api[name], name

    # eval
    rows = [{"image_path": name, "objects": [{"phrase": "thing", "object_bbox": [1, 1, 20, 20], "parts": []}]}
            for name in names]
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend.seen.clear()
    cfg = EvalConfig(model=None, data=str(tmp_path / "val.jsonl"), out=str(tmp_path / "ev"),
                     image_root=str(tmp_path), progress=False, batch_size=2)
    run_eval(cfg, backend=backend, log=lambda m: None)
    answers = [json.loads(x) for x in (tmp_path / "ev" / "answer.jsonl").read_text().splitlines()]
    assert [a["image_path"] for a in answers] == names
    for name, a, seen in zip(names, answers, backend.seen):
        assert seen == api[name][0], name
        assert a["raw_response"] == api[name][1] and a["parse_status"] == "ok"


def test_http_maps_image_errors_to_4xx(tmp_path):
    from fastapi.testclient import TestClient

    from sceneparser.inference.api import SceneParser
    from sceneparser.serve.app import ServeConfig, create_app
    from sceneparser.serve.jobs import make_batch_fn

    cfg = ServeConfig(max_batch_size=2, max_wait_ms=5, max_image_pixels=50 * 50)
    with TestClient(create_app(make_batch_fn(SceneParser(PixelEcho())), cfg)) as client:
        big = client.post("/v1/parse", files={"image": ("a.png", _png_bytes(_noise(60, 60)))}, data={"query": "x"})
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_many_pixels"
        bad = client.post("/v1/parse", files={"image": ("a.png", b"not an image")}, data={"query": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_image"
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF", "PPM", "TGA"])
def test_every_listed_format_opens(fmt):
    buf = io.BytesIO()
    _noise(32, 24).save(buf, format=fmt)
    out = open_image(buf.getvalue())
    assert out.mode == "RGB" and out.size == (32, 24)
