"""`sceneparser convert`: lossless ordered TSV output, bad input reported and never lost."""

from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from sceneparser.cli import main as cli_main
from sceneparser.data import convert as C
from sceneparser.data.records import record_to_annotation
from sceneparser.data.tsv import IMAGES_TSV, TSV_FILES, TSVReader, TSVWriter, validate_tsv
from sceneparser.images import open_image


def _read_jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _img_bytes(mode="RGB", fmt="JPEG", size=(64, 48), **kw):
    if mode == "I;16":
        im = Image.fromarray((np.arange(size[0] * size[1]).reshape(size[1], size[0]) * 7 % 65535).astype(np.uint16))
    else:
        im = Image.new(mode, size, (10, 200, 30, 0)[: len(mode)] if mode not in ("P", "L") else 5)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture()
def messy(tmp_path, synth_dir):
    """A JSONL mixing valid synth records with every kind of bad input."""
    root = tmp_path / "root"
    shutil.copytree(synth_dir, root)
    good = _read_jsonl(root / "train.jsonl")[:4]
    jpeg = (root / good[0]["image_path"]).read_bytes()
    (root / "zero.jpg").write_bytes(b"")
    (root / "trunc.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "garbage.jpg").write_bytes(b"this is not an image at all" * 10)
    (root / "cmyk.jpg").write_bytes(_img_bytes("CMYK"))
    (root / "deep.png").write_bytes(_img_bytes("I;16", "PNG"))
    (root / "pal.png").write_bytes(_img_bytes("P", "PNG"))
    obj = {"phrase": "mug", "object_bbox": [1, 1, 20, 20], "parts": []}
    lines = [
        json.dumps(good[0]),
        json.dumps({"image_path": "missing.jpg", "objects": [obj]}),
        json.dumps({"image_path": "zero.jpg", "objects": [obj]}),
        json.dumps(good[1]),
        json.dumps({"image_path": "trunc.jpg", "objects": [obj]}),
        json.dumps({"image_path": "garbage.jpg", "objects": [obj]}),
        "{broken json",
        json.dumps({"image_path": "cmyk.jpg", "objects": [obj]}),
        json.dumps({"image_path": "deep.png", "objects": [obj]}),
        json.dumps({"image_path": "pal.png", "objects": [dict(obj, phrase="tasse à café")]}),
        json.dumps({"image_path": good[2]["image_path"], "objects": [
            {"phrase": "mug", "object_bbox": [30, 30, 10, 10]},
            {"phrase": "mug", "object_bbox": [float("nan"), 0, 10, 10]},
            {"phrase": "mug", "object_bbox": [-5, 0, 500, 10]}]}),
        json.dumps({"objects": [obj]}),
        json.dumps(good[3]),
    ]
    data = "\n".join(lines).encode("utf-8") + b"\n" + b'{"image_path": "x\xff.jpg", "objects": []}\n'
    (root / "messy.jsonl").write_bytes(data)
    return root, good


def test_synth_roundtrip_is_lossless_and_ordered(synth_dir, tmp_path):
    s = C.convert_jsonl(synth_dir / "train.jsonl", tmp_path / "tsv", image_root=synth_dir, validate=True)
    recs = _read_jsonl(synth_dir / "train.jsonl")
    assert (s.processed, s.written, s.skipped, s.validation) == (len(recs), len(recs), 0, [])
    r = TSVReader(tmp_path / "tsv")
    assert len(r) == len(recs)
    for i, rec in enumerate(recs):
        row = r.read(i)
        assert row.image_bytes == (synth_dir / rec["image_path"]).read_bytes()
        assert row.annotation == record_to_annotation(rec)
    assert (tmp_path / "tsv" / "skipped.jsonl").read_text() == ""


def test_bad_input_counted_reported_and_valid_records_kept(messy, tmp_path):
    root, good = messy
    out = tmp_path / "out"
    s = C.convert_jsonl(root / "messy.jsonl", out, image_root=root, validate=True)
    assert s.processed == 14 and s.validation == []
    skipped = _read_jsonl(out / "skipped.jsonl")
    assert [x["line"] for x in skipped] == [2, 3, 5, 6, 7, 12, 14]
    reasons = {x["line"]: " ".join(x["reasons"]) for x in skipped}
    assert "not found" in reasons[2] and "empty" in reasons[3] and "truncated" in reasons[5]
    assert "not a readable image" in reasons[6] and "invalid JSON" in reasons[7]
    assert "image_path" in reasons[12] and "UTF-8" in reasons[14]
    assert s.skipped == 7 and s.written == 7 and sum(s.skip_reasons.values()) == 7
    rows = list(TSVReader(out))
    names = [r.annotation["objects"][0]["name"] if r.annotation["objects"] else None for r in rows]
    assert names[-1] == good[3]["objects"][0]["phrase"]
    assert rows[0].annotation == record_to_annotation(good[0])
    assert rows[1].annotation == record_to_annotation(good[1])
    # CMYK kept as is, 16-bit scaled to 8-bit PNG (not clipped), palette kept
    assert rows[2].image_bytes == (root / "cmyk.jpg").read_bytes()
    assert rows[2].image().mode == "RGB"
    deep = rows[3].image()
    assert deep.mode == "RGB" and len(set(np.asarray(deep).ravel().tolist())) > 2
    assert rows[4].image_bytes == (root / "pal.png").read_bytes()
    assert rows[4].annotation["objects"][0]["name"] == "tasse à café"
    boxes = [o["bbox"] for o in rows[5].annotation["objects"]]
    assert boxes == [[30, 30, 10, 10], None, [-5, 0, 500, 10]]  # inverted and out-of-image kept, NaN -> null
    warns = _read_jsonl(out / "warnings.jsonl")
    kinds = " | ".join(w["message"] for w in warns)
    for needle in ("CMYK", "16-bit", "palette", "inverted box", "NaN", "outside the"):
        assert needle in kinds
    assert all(w["severity"] == "warning" and w["line"] for w in warns)


def test_workers_give_identical_output(messy, tmp_path):
    root, _ = messy
    C.convert_jsonl(root / "messy.jsonl", tmp_path / "a", image_root=root, workers=1)
    C.convert_jsonl(root / "messy.jsonl", tmp_path / "b", image_root=root, workers=2, chunk_size=2)
    for name in TSV_FILES + ("skipped.jsonl", "warnings.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_reencode_matches_reference_bytes(synth_dir, tmp_path):
    C.convert_jsonl(synth_dir / "val.jsonl", tmp_path / "q", image_root=synth_dir, reencode_jpeg_quality=75)
    rec = _read_jsonl(synth_dir / "val.jsonl")[0]
    ref = io.BytesIO()
    Image.open(synth_dir / rec["image_path"]).convert("RGB").save(ref, format="JPEG")  # PIL defaults = q75
    assert TSVReader(tmp_path / "q").read(0).image_bytes == ref.getvalue()


def test_failure_midway_leaves_previous_output_consistent(synth_dir, tmp_path, monkeypatch):
    out = tmp_path / "tsv"
    C.convert_jsonl(synth_dir / "val.jsonl", out, image_root=synth_dir)
    before = {n: (out / n).read_bytes() for n in TSV_FILES}
    calls = {"n": 0}
    real = TSVWriter.write

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(self, *a, **k)

    monkeypatch.setattr(TSVWriter, "write", flaky)
    with pytest.raises(OSError):
        C.convert_jsonl(synth_dir / "train.jsonl", out, image_root=synth_dir)
    assert {n: (out / n).read_bytes() for n in TSV_FILES} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tsv-writing")]
    assert validate_tsv(out).ok


def test_inspect_image_classifies():
    assert C.inspect_image(_img_bytes()).format == "JPEG"
    assert C.inspect_image(_img_bytes("CMYK")).mode == "CMYK"
    assert C.inspect_image(_img_bytes("I;16", "PNG")).bit_depth == 16
    assert C.inspect_image(_img_bytes("P", "PNG")).mode == "P"
    assert C.inspect_image(_img_bytes(fmt="GIF")).width == 64
    for bad in (b"", _img_bytes()[:200], b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"nope"):
        with pytest.raises(C.ImageProblem):
            C.inspect_image(bad)


def test_cli_convert(synth_dir, tmp_path, capsys):
    rc = cli_main(["convert", "--json-file", str(synth_dir / "val.jsonl"), "--out-dir", str(tmp_path / "t"),
                   "--image-root", str(synth_dir), "--workers", "1", "--validate", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "wrote 3, skipped 0" in out and "validate: OK" in out
    rc = cli_main(["convert", "--json-file", str(tmp_path / "none.jsonl"), "--out-dir", str(tmp_path / "u")])
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = cli_main(["convert", "--json-file", str(synth_dir / "val.jsonl"), "--out-dir", str(tmp_path / "u"),
                   "--reencode-jpeg-quality", "0", "--no-progress"])
    assert rc == 2
    b64 = (tmp_path / "t" / IMAGES_TSV).read_bytes().split(b"\t")[1].split(b"\n")[0]
    assert base64.b64decode(b64)[:3] == b"\xff\xd8\xff"


def test_16bit_is_scaled_as_the_loader_scales_it():
    data = _img_bytes("I;16", "PNG")
    stored = Image.open(io.BytesIO(C._to_8bit_png(data)))
    assert stored.format == "PNG" and stored.mode == "RGB"
    values = np.asarray(Image.open(io.BytesIO(data)), dtype=np.float64)
    expected = np.rint(values / 257).astype(np.uint8)  # the loader's rint(v / 257), not v >> 8
    assert np.array_equal(np.asarray(stored)[..., 0], expected)
    assert np.array_equal(np.asarray(stored), np.asarray(open_image(data)))
