"""TSV writer / random-access reader / validator (docs/reference.md, *training-data*)."""

from __future__ import annotations

import base64
import io
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from sceneparser.data import tsv as T
from sceneparser.errors import InputError
from sceneparser.images import open_image

ROWS = [(bytes([0xFF, 0xD8, 0xFF, i]) * (i + 1), {"objects": [{"name": f"tasse n°{i} 杯", "bbox": [i, 0, 5, 5], "parts": []}]})
        for i in range(6)]


def _write(d):
    with T.TSVWriter(d) as w:
        for img, ann in ROWS:
            w.write_row(img, ann)
    return d


def test_roundtrip_random_access_and_layout(tmp_path):
    d = _write(tmp_path / "tsv")
    assert sorted(p.name for p in d.iterdir()) == sorted(T.TSV_FILES)
    r = T.TSVReader(d)
    assert len(r) == len(ROWS)
    for i in (3, 0, 5, 1, -1):
        row = r.read(i)
        assert row.image_bytes == ROWS[i][0] and row.annotation == ROWS[i][1]
    with pytest.raises(IndexError):
        r.read(6)
    # reference layout: image line starts with its own offset, annotation line with that offset
    img_lines = (d / T.IMAGES_TSV).read_bytes().splitlines(keepends=True)
    ann_lines = (d / T.ANNOTATIONS_TSV).read_bytes().splitlines(keepends=True)
    idx = [int(x) for x in (d / T.LINEIDX).read_text().split()]
    off = 0
    for k, line in enumerate(img_lines):
        assert line.split(b"\t")[0] == str(off).encode()
        assert ann_lines[k].split(b"\t")[0] == str(off).encode()
        off += len(line)
    assert idx == [sum(len(x) for x in ann_lines[:k]) for k in range(len(ann_lines))]
    assert ann_lines[0].split(b"\t", 1)[1].rstrip(b"\n").decode("utf-8") == json.dumps(ROWS[0][1], ensure_ascii=False)
    assert T.validate_tsv(d).ok


def test_reads_reference_made_tsv_with_legacy_wrapper(tmp_path):
    img = b"\xff\xd8\xffDATA"
    ann = {"objects": [{"name": "café", "bbox": None, "parts": []}]}
    b64 = base64.b64encode(img).decode()
    lines_img, lines_ann, idx = [], [], []
    io_, ao = 0, 0
    for wrapped in (f"b'{b64}'", b64):
        il = f"{io_}\t{wrapped}\n".encode()
        al = f"{io_}\t{json.dumps(ann, ensure_ascii=False)}\n".encode()
        lines_img.append(il), lines_ann.append(al), idx.append(f"{ao}\n".encode())
        io_ += len(il)
        ao += len(al)
    (tmp_path / "images.tsv").write_bytes(b"".join(lines_img))
    (tmp_path / "annotations.tsv").write_bytes(b"".join(lines_ann))
    (tmp_path / "annotations.tsv.lineidx").write_bytes(b"".join(idx))
    r = T.TSVReader(images_tsv=tmp_path / "images.tsv", annotations_tsv=tmp_path / "annotations.tsv")
    assert [r.read(i).image_bytes for i in range(2)] == [img, img]
    assert r.read(1).annotation == ann
    assert T.validate_tsv(tmp_path).ok


def test_fork_and_pickle_safe(tmp_path):
    d = _write(tmp_path / "tsv")
    r = T.TSVReader(d)
    assert r.read(2).annotation == ROWS[2][1]  # parent opens its handles
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: reads with its own handles
        try:
            ok = all(r.read(i).image_bytes == ROWS[i][0] for i in (5, 0, 4))
            os.write(wfd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(rfd, 1) == b"1"
    assert r.read(3).image_bytes == ROWS[3][0]
    r2 = pickle.loads(pickle.dumps(r))
    assert r2._ann_fh is None and r2.read(1).annotation == ROWS[1][1]


def test_writer_abort_leaves_nothing_and_keeps_previous_output(tmp_path):
    d = _write(tmp_path / "tsv")
    before = (d / T.IMAGES_TSV).read_bytes()
    with pytest.raises(RuntimeError):
        with T.TSVWriter(d) as w:
            w.write_row(b"\xff\xd8\xffX", {"objects": []})
            raise RuntimeError("boom")
    assert (d / T.IMAGES_TSV).read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == sorted(T.TSV_FILES)


def test_validate_detects_corruption(tmp_path):
    d = _write(tmp_path / "tsv")
    idx = (d / T.LINEIDX).read_text().split()
    (d / T.LINEIDX).write_text("\n".join(idx[:3] + [str(int(idx[3]) + 1)] + idx[4:]) + "\n")
    res = T.validate_tsv(d)
    assert not res.ok and any("entry 4" in p for p in res.problems)
    d2 = _write(tmp_path / "tsv2")
    data = (d2 / T.IMAGES_TSV).read_bytes()
    (d2 / T.IMAGES_TSV).write_bytes(data[:-10])
    res2 = T.validate_tsv(d2)
    assert not res2.ok
    with pytest.raises(InputError):
        T.TSVReader(tmp_path / "nothing")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_row_image_decodes_through_the_one_loader(tmp_path, fmt):
    src = Image.fromarray(np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3))
    buf = io.BytesIO()
    (src.convert("P") if fmt == "GIF" else src).save(buf, format=fmt)
    with T.TSVWriter(tmp_path) as w:
        w.write_row(buf.getvalue(), {"objects": []})
    img = T.TSVReader(tmp_path).read(0).image()
    assert img.mode == "RGB" and img.size == (32, 24)
    assert np.array_equal(np.asarray(img), np.asarray(open_image(buf.getvalue())))
    assert T.validate_tsv(tmp_path, decode_images=True).ok
