"""COCO / PACO import (sceneparser convert --from coco|paco): records that validate, every skip with a reason."""

from __future__ import annotations

import contextlib
import io
import json

from PIL import Image

from sceneparser.cli import main
from sceneparser.data.importers import import_coco
from sceneparser.data.records import validate_record
from sceneparser.data.tsv import TSVReader


def _paco(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (100, 80), (120, 30, 200)).save(tmp_path / name)
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
                   {"id": 2, "file_name": "b.jpg", "width": 100, "height": 80},
                   {"id": 3, "file_name": "gone.jpg", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "mug"}, {"id": 2, "name": "mug:handle"}, {"id": 3, "name": "cup"},
                       {"id": 4, "name": "mug:rim"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "obj_ann_id": 10},
            {"id": 11, "image_id": 1, "category_id": 2, "bbox": [40, 15, 20, 20], "obj_ann_id": 10},
            {"id": 12, "image_id": 1, "category_id": 4, "bbox": [10, 10, 50, 5], "obj_ann_id": 10},
            {"id": 13, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "obj_ann_id": 99},      # no object
            {"id": 20, "image_id": 2, "category_id": 3, "bbox": [0, 0, 100.5, 80], "obj_ann_id": 20},  # clipped
            {"id": 21, "image_id": 2, "category_id": 1, "bbox": [0, 0, 0, 10], "obj_ann_id": 21},      # zero area
            {"id": 22, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5, 5], "obj_ann_id": 21},       # object left out
            {"id": 23, "image_id": 2, "category_id": 1, "bbox": [90, 70, 30, 30], "obj_ann_id": 23},   # outside
            {"id": 24, "image_id": 2, "category_id": 77, "bbox": [1, 1, 5, 5], "obj_ann_id": 24},      # unknown cat
            {"id": 25, "image_id": 9, "category_id": 1, "bbox": [1, 1, 5, 5], "obj_ann_id": 25},       # no image
            {"id": 26, "image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5], "obj_ann_id": 26},       # file missing
            {"id": 27, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 1},
            {"id": 28, "image_id": 2, "category_id": 1, "bbox": [1, "x", 5, 5]},
        ],
    }


def test_paco_records_validate_and_every_skip_has_a_reason(tmp_path):
    rep = import_coco(_paco(tmp_path), "paco", image_root=tmp_path, check_images=True,
                      categories={"cup": "mug", "mug:rim": None})
    assert [r["image_path"] for r in rep.records] == ["a.jpg", "b.jpg"]
    a, b = rep.records
    assert a["objects"] == [{"phrase": "mug", "object_bbox": [10.0, 10.0, 60.0, 50.0], "parts": [
        {"part_name": "handle", "part_bbox": [40.0, 15.0, 60.0, 35.0], "is_pseudo_part": False, "affordances": []}]}]
    assert b["objects"] == [{"phrase": "mug", "object_bbox": [0.0, 0.0, 100.0, 80.0], "parts": []}]
    for r in rep.records:
        _, problems = validate_record(r, 1, size=(100, 80))
        assert problems == []
    by_id = {s.get("annotation_id"): s["reason"] for s in rep.skipped}
    assert by_id == {
        12: "category dropped by the category map", 13: "part whose object annotation is missing",
        21: "zero-area box", 22: "part whose object was left out", 23: "box outside the image",
        24: "unknown category id", 25: "image id not in 'images'", 26: "image file not found",
        27: "crowd region (iscrowd=1)", 28: "box is not 4 numbers [x, y, w, h]", None: "image file not found",
    }
    assert "left out" in rep.summary()


def test_coco_keeps_objects_only(tmp_path):
    rep = import_coco(_paco(tmp_path), "coco")
    assert all(not o["parts"] for r in rep.records for o in r["objects"])
    assert rep.reasons()["part annotation (import with --from paco to keep parts)"] == 4
    # without an image check, the image whose file is missing still gets its record
    assert "gone.jpg" in [r["image_path"] for r in rep.records]


def test_convert_from_paco_to_tsv(tmp_path):
    src = tmp_path / "paco.json"
    src.write_text(json.dumps(_paco(tmp_path)))
    (tmp_path / "map.json").write_text(json.dumps({"cup": "mug"}))
    out = tmp_path / "tsv"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(["convert", "--from", "paco", "--json-file", str(src), "--out-dir", str(out), "--image-root",
                   str(tmp_path), "--categories", str(tmp_path / "map.json"), "--workers", "1", "--no-progress",
                   "--validate"])
    assert rc == 0, err.getvalue()
    assert "imported" in err.getvalue()
    reader = TSVReader(out)
    assert len(reader) == 2
    ann = reader.read(0).annotation
    assert ann["objects"][0]["name"] == "mug" and ann["objects"][0]["parts"][1]["part_name"] == "rim"
    skipped = [json.loads(x) for x in (out / "import_skipped.jsonl").read_text().splitlines()]
    assert all(s["reason"] for s in skipped)


def test_bad_files_are_clear_errors(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["convert", "--from", "coco", "--json-file", str(tmp_path / "x.json"), "--out-dir",
                     str(tmp_path / "o")]) == 2
        assert main(["convert", "--from", "coco", "--json-file", str(tmp_path / "nope.json"), "--out-dir",
                     str(tmp_path / "o")]) == 2
    assert "not a COCO file" in err.getvalue() and "not found" in err.getvalue()
