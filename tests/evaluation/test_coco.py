"""COCO export (sceneparser export --format coco) and COCO AP (sceneparser coco) through pycocotools."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from sceneparser.cli import main
from sceneparser.evaluation.coco import CocoBuilder, build, coco_box, evaluate

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _gt_obj(name, box, parts=()):
    return {"name": name, "bbox": box, "has_part": bool(parts), "has_affordance": False, "affordances": [],
            "parts": [{"part_name": pn, "bbox": pb,
                       "affordances": [{"action": "grasp", "affordance_bbox": None, "mask_path": None,
                                        "points": [[pb[0] + 1, pb[1] + 1]], "point": [pb[0] + 1, pb[1] + 1]}]}
                      for pn, pb in parts]}


def _as_prediction(gt):
    return {"objects": [{"name": o["name"], "bbox": o["bbox"], "has_part": None, "has_affordance": None,
                         "parts": [{"part_name": p["part_name"], "bbox": p["bbox"],
                                    "affordances": [{"action": a["action"], "point": a["point"]} for a in p["affordances"]]}
                                   for p in o["parts"]], "affordances": []} for o in gt["objects"]]}


def _answers(tmp_path, perfect=True):
    rows = []
    scenes = [
        ("a.jpg", "mug", [_gt_obj("mug", [10, 10, 110, 90], [("handle", [80, 20, 110, 60]), ("body", [10, 10, 80, 90])]),
                          _gt_obj("mug", [200, 200, 260, 300], [("Handle", [240, 220, 260, 260])])]),
        ("a.jpg", "door", [_gt_obj("door", [300, 0, 500, 400], [("knob", [450, 200, 470, 220])])]),
        ("b.jpg", "mug", [_gt_obj("mug", [0, 0, 640, 480], [("__placeholder_part__", [0, 0, 640, 480])])]),
    ]
    for i, (img, cat, objs) in enumerate(scenes):
        gt = {"objects": objs}
        pred = _as_prediction(gt)
        if not perfect:
            for o in pred["objects"]:
                o["bbox"] = [v + 15 for v in o["bbox"]]
        rows.append({"image_path": img, "category": cat, "gt": gt, "extracted_predictions": pred,
                     "record_index": 0 if img == "a.jpg" else 1})
    path = tmp_path / "answer.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_coco_box():
    assert coco_box([1, 2, 4, 8]) == [1.0, 2.0, 3.0, 6.0]
    for bad in (None, [1, 2, 3], [0, 0, 0, 5], [5, 5, 1, 1], [0, 0, float("nan"), 1], ["a", 0, 1, 1], [True, 0, 1, 1]):
        assert coco_box(bad) is None


def test_ground_truth_as_prediction_scores_ap_one(tmp_path):
    builder = build(_answers(tmp_path))
    m = evaluate(builder.ground_truth(), builder.results())
    for level in ("object", "part"):
        assert m[level]["AP"] == pytest.approx(1.0)
        assert m[level]["AP50"] == pytest.approx(1.0)
        assert m[level]["AP75"] == pytest.approx(1.0)
    assert builder.summary()["score_note"].startswith("no prediction carries")


def test_layout_links_parts_to_objects(tmp_path):
    builder = build(_answers(tmp_path))
    gt = builder.ground_truth()
    cats = {c["id"]: c for c in gt["categories"]}
    assert len(gt["images"]) == 2  # the two answer lines of a.jpg share one image
    names = {c["name"] for c in cats.values()}
    assert {"mug", "door", "mug:handle", "mug:body", "door:knob", "mug:__placeholder_part__"} == names
    anns = {a["id"]: a for a in gt["annotations"]}
    for a in anns.values():
        cat = cats[a["category_id"]]
        if cat["level"] == "part":
            parent = anns[a["obj_ann_id"]]
            assert cats[parent["category_id"]]["name"] == cat["object"]
            assert cat["object_category_id"] == parent["category_id"]
            assert a["image_id"] == parent["image_id"]
            assert a["affordances"][0]["action"] == "grasp"
    # detection ids are their 1-based positions: what COCO.loadRes assigns
    dets = builder.results()
    assert [d["id"] for d in dets] == list(range(1, len(dets) + 1))
    assert all(dets[d["obj_ann_id"] - 1]["image_id"] == d["image_id"] for d in dets if "obj_ann_id" in d)


def test_filters_drop_pseudo_parts(tmp_path):
    builder = build(_answers(tmp_path), ignore_pseudo_part=True)
    assert "mug:__placeholder_part__" not in {c["name"] for c in builder.ground_truth()["categories"]}


def test_cli_files_load_in_pycocotools_and_score_the_same_by_hand(tmp_path):
    src = _answers(tmp_path, perfect=False)
    rc, out, _ = _run("coco", str(src), "--out", str(tmp_path / "coco"), "--json")
    assert rc == 0
    report = json.loads(out)
    assert report["summary"]["scored_detections"] == 0
    gt = COCO(str(tmp_path / "coco" / "ground_truth.json"))
    dt = gt.loadRes(str(tmp_path / "coco" / "predictions.json"))
    for level in ("object", "part"):
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = [c["id"] for c in gt.dataset["categories"] if c["level"] == level]
        ev.evaluate(), ev.accumulate(), ev.summarize()
        assert report["metrics"][level]["stats"] == pytest.approx(list(ev.stats), abs=0)
    assert 0 < report["metrics"]["object"]["AP"] < 1
    on_disk = json.loads((tmp_path / "coco" / "coco_metrics.json").read_text())
    assert on_disk["metrics"] == report["metrics"]
    # export writes the same two files
    rc, _, err = _run("export", "--format", "coco", str(src), "--out", str(tmp_path / "exp"))
    assert rc == 0 and "ground_truth.json" in err
    for name in ("ground_truth.json", "predictions.json"):
        assert (tmp_path / "exp" / name).read_bytes() == (tmp_path / "coco" / name).read_bytes()


def test_scores_from_parse_output_rank_detections(tmp_path):
    record = {"image_path": "img.jpg", "objects": [
        {"phrase": "mug", "object_bbox": [10, 10, 110, 110], "parts": []}]}
    data = tmp_path / "bench.jsonl"
    data.write_text(json.dumps(record) + "\n")

    def parse_rows(good, bad):
        return [{"image": str(tmp_path / "img.jpg"), "image_size": [640, 480], "query": "mug", "scene": False,
                 "objects": [{"name": "mug", "bbox": [300, 300, 400, 400], "parts": [], "score": bad},
                             {"name": "mug", "bbox": [10, 10, 110, 110], "parts": [], "score": good}]}]

    ap = {}
    for label, (good, bad) in {"ranked": (0.9, 0.1), "reversed": (0.1, 0.9)}.items():
        p = tmp_path / f"{label}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in parse_rows(good, bad)))
        builder = build(p, data=data, image_root=tmp_path)
        assert builder.summary()["scored_detections"] == 2
        assert builder.ground_truth()["images"][0]["width"] == 640
        ap[label] = evaluate(builder.ground_truth(), builder.results())["object"]["AP"]
    assert ap["ranked"] == pytest.approx(1.0)
    assert ap["reversed"] < 1.0


def test_parse_output_needs_data(tmp_path):
    p = tmp_path / "parse.jsonl"
    p.write_text(json.dumps({"image": "x.jpg", "query": "mug", "objects": []}) + "\n")
    rc, _, err = _run("coco", str(p))
    assert rc == 2 and "--data" in err


def test_unusable_boxes_are_counted_and_no_detections_score_zero(tmp_path):
    b = CocoBuilder()
    b.add_sample("x", "x.jpg", [{"name": "mug", "bbox": [0, 0, 10, 10], "parts": []},
                                {"name": "mug", "bbox": None, "parts": []}],
                 [{"name": "mug", "bbox": [5, 5, 5, 9]}])
    assert b.skipped == {"ground-truth object without a usable box": 1, "predicted object without a usable box": 1}
    m = evaluate(b.ground_truth(), b.results())
    assert m["object"]["AP"] == 0.0 and m["part"] is None


def test_missing_source_is_a_clear_error(tmp_path):
    rc, _, err = _run("coco", str(tmp_path / "nope.jsonl"))
    assert rc == 2 and "not found" in err
    rc, _, err = _run("coco", str(tmp_path))
    assert rc == 2 and "answer.jsonl" in err


def test_without_pycocotools_coco_names_the_extra_and_export_still_works(tmp_path):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "pycocotools":
                    raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        sys.meta_path.insert(0, _Blocker())
        from sceneparser.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    src = _answers(tmp_path)
    r = subprocess.run([sys.executable, "-c", code, "coco", str(src)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "pip install 'sceneparser[coco]'" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-c", code, "export", str(src), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
