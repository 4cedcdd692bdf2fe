"""Benchmark JSONL loading/validation and the converter's annotation shape."""

from __future__ import annotations

import json

import pytest

from sceneparser.data import records as R
from sceneparser.errors import InputError


def _write_jsonl(path, lines):
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else json.dumps(line).encode("utf-8"))
            fh.write(b"\n")
    return path


def test_load_records_reports_every_problem_with_line_and_field(tmp_path):
    good = {"image_path": "a.jpg", "objects": [{"phrase": "mug", "object_bbox": [1, 2, 30, 40], "parts": []}]}
    variant = {"image_path": "b.jpg", "objects": [{"name": "cup", "bbox": [1, 2, 3, 4],
                                                   "parts": [{"part_name": "rim", "bbox": [1, 2, 3, 3]}]}]}
    bad_fields = {"image_path": "c.jpg", "objects": [
        "junk",
        {"phrase": "mug", "object_bbox": [5, 5, 1, 1], "parts": [
            {"part_name": "handle", "part_bbox": [1, 2, 3], "affordances": [
                {"action": "grasp", "sampled_points": [[1, 2], ["x", 3]], "affordance_bbox": [1, 1, float("nan"), 2]}]}]},
    ]}
    path = _write_jsonl(tmp_path / "r.jsonl", [
        good, b"", variant, b"{not json", b'{"image_path": "d.jpg", "objects": [{"phrase": "caf\xe9"}]}',
        {"objects": []}, {"image_path": "e.jpg", "objects": {"a": 1}}, bad_fields, b"[1, 2]",
    ])
    rep = R.load_records(path, image_root=tmp_path)
    assert rep.num_lines == 8
    assert [r.line for r in rep.records] == [1, 3, 8]
    errors = {(p.line, p.field) for p in rep.errors}
    assert errors == {(4, ""), (5, ""), (6, "image_path"), (7, "objects"), (9, "")}
    assert "UTF-8" in next(p.message for p in rep.errors if p.line == 5)
    warns = {(p.line, p.field) for p in rep.warnings}
    assert warns == {
        (8, "objects[0]"),
        (8, "objects[0].object_bbox"),  # inverted, kept
        (8, "objects[0].parts[0].part_bbox"),  # 3 numbers -> null
        (8, "objects[0].parts[0].affordances[0].affordance_bbox"),  # NaN -> null
        (8, "objects[0].parts[0].affordances[0].sampled_points[1]"),  # dropped
    }
    rec = rep.records[2]
    assert rec.resolved_path == tmp_path / "c.jpg"
    obj = rec.objects[0]
    assert obj["object_bbox"] == [5, 5, 1, 1]
    assert obj["parts"][0]["part_bbox"] is None
    assert obj["parts"][0]["affordances"][0]["affordance_bbox"] is None
    assert obj["parts"][0]["affordances"][0]["sampled_points"] == [[1, 2]]
    assert "8 valid" not in rep.summary() and "3 valid records" in rep.summary()


def test_missing_file_and_check_images(tmp_path):
    with pytest.raises(InputError):
        R.load_records(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "ok.jpg").write_bytes(b"x")
    path = _write_jsonl(tmp_path / "r.jsonl", [{"image_path": p, "objects": []} for p in ("ok.jpg", "empty.jpg", "gone.jpg")])
    rep = R.load_records(path, image_root=tmp_path, check_images=True)
    assert [r.image_path for r in rep.records] == ["ok.jpg"]
    assert [p.line for p in rep.errors] == [2, 3]


def test_resolve_image_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert R.resolve_image_path("x/y.jpg") == tmp_path / "x/y.jpg"
    assert R.resolve_image_path("x/y.jpg", "/data") == R.Path("/data/x/y.jpg")
    assert R.resolve_image_path("/abs/y.jpg", "/data") == R.Path("/abs/y.jpg")


def test_validate_record_copy_leaves_input_untouched():
    rec = {"image_path": "a.jpg", "objects": [{"phrase": "a", "object_bbox": [0, 0, float("inf"), 1]}]}
    clean, probs = R.validate_record(rec, 3)
    assert rec["objects"][0]["object_bbox"][2] == float("inf")
    assert clean["objects"][0]["object_bbox"] is None
    assert probs[0].line == 3 and probs[0].severity == "warning"


def test_out_of_image_warnings():
    rec = {"image_path": "a.jpg", "objects": [{"phrase": "a", "object_bbox": [-1, 0, 10, 10], "parts": [
        {"part_name": "p", "part_bbox": [0, 0, 5, 5], "affordances": [{"action": "x", "sampled_points": [[11, 1]]}]}]}]}
    probs = R.check_boxes_in_image(rec, 10, 10, line=2)
    assert [p.field for p in probs] == ["objects[0].object_bbox", "objects[0].parts[0].affordances[0].sampled_points[0]"]


def test_record_to_annotation_matches_reference_reshaping_and_dedup():
    aff = {"action": "Grasp", "affordance_bbox": [1, 1, 2, 2], "sampled_points": [[5, 6, 7], [8, 9]], "mask_path": None}
    rec = {"image_path": "a.jpg", "objects": [
        {"phrase": "mug", "name": "cup", "object_bbox": [0, 0, 9, 9], "affordances": [{"action": "lift"}], "parts": [
            {"part_name": "handle", "part_bbox": [1, 1, 4, 4], "bbox": [0, 0, 1, 1], "is_pseudo_part": True,
             "affordances": [aff, dict(aff, action=" grasp"), {"action": "pull", "sampled_points": []}]},
            {"part_name": "Handle", "bbox": [1, 1, 4, 4], "affordances": [aff]},
            {"part_name": "handle", "part_bbox": [1, 1, 4, 4.0], "affordances": []},
        ]},
        {"phrase": "", "name": "mug", "object_bbox": None, "bbox": [0, 0, 9, 9], "parts": [
            {"part_name": "handle", "part_bbox": [1, 1, 4, 4], "affordances": [aff]},
            {"part_name": "handle", "part_bbox": [1, 1, 4, 4], "affordances": []}]},
        {"phrase": "bowl", "object_bbox": [0, 0, 1, 1]},
    ]}
    ann = R.record_to_annotation(rec)
    assert ann == {"objects": [
        {"name": "mug", "bbox": [0, 0, 9, 9], "parts": [
            {"part_name": "handle", "bbox": [1, 1, 4, 4], "affordances": [
                {"action": "Grasp", "point": [5, 6]}, {"action": "pull", "point": None}]},
            {"part_name": "Handle", "bbox": [1, 1, 4, 4], "affordances": [{"action": "Grasp", "point": [5, 6]}]},
            {"part_name": "handle", "bbox": [1, 1, 4, 4.0], "affordances": []},
        ]},
        {"name": "mug", "bbox": [0, 0, 9, 9], "parts": [
            {"part_name": "handle", "bbox": [1, 1, 4, 4], "affordances": [{"action": "Grasp", "point": [5, 6]}]},
            {"part_name": "handle", "bbox": [1, 1, 4, 4], "affordances": []}]},
        {"name": "bowl", "bbox": [0, 0, 1, 1], "parts": []},
    ]}
    # identical object -> removed; keep_pseudo_flag adds the flag
    twice = {"image_path": "a.jpg", "objects": [rec["objects"][2], dict(rec["objects"][2], phrase="BOWL ")]}
    assert len(R.record_to_annotation(twice)["objects"]) == 1
    flagged = R.record_to_annotation(rec, keep_pseudo_flag=True)
    assert flagged["objects"][0]["parts"][0]["is_pseudo_part"] is True
    assert list(flagged["objects"][0]["parts"][0]) == ["part_name", "bbox", "affordances", "is_pseudo_part"]


# ---- property: the optimised one-pass annotation equals a plain implementation of the reference rules
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_num = st.sampled_from([0, 1, 1.0, 2, 5.5])
_box = st.one_of(st.none(), st.lists(_num, min_size=4, max_size=4))
_aff = st.fixed_dictionaries({"action": st.sampled_from(["grasp", "Grasp ", "__none__", "", None]),
                              "sampled_points": st.one_of(st.none(), st.lists(st.lists(_num, min_size=2, max_size=3), max_size=2))})
_part = st.fixed_dictionaries({"part_name": st.sampled_from(["handle", "Handle", None, "rim"]), "part_bbox": _box,
                               "affordances": st.lists(_aff, max_size=3)})
_obj = st.fixed_dictionaries({"phrase": st.sampled_from(["mug", "MUG", "", "bowl"]), "object_bbox": _box,
                              "bbox": _box, "parts": st.lists(_part, max_size=3)})


def _plain_reference(record):
    def norm(v):
        return str(v or "").strip().lower()

    def key(v):
        return tuple(v) if isinstance(v, list) else v

    def dedup(items, k):
        out, seen = [], set()
        for it in items:
            kk = k(it)
            if kk not in seen:
                seen.add(kk)
                out.append(it)
        return out

    objs = []
    for o in record["objects"]:
        parts = []
        for p in o["parts"]:
            affs = []
            for a in p["affordances"]:
                sps = a.get("sampled_points") or []
                pt = [sps[0][0], sps[0][1]] if sps and isinstance(sps[0], list) and len(sps[0]) >= 2 else None
                affs.append({"action": a.get("action"), "point": pt})
            affs = dedup(affs, lambda a: (norm(a["action"]), key(a["point"])))
            parts.append({"part_name": p.get("part_name"), "bbox": p.get("part_bbox") or p.get("bbox"), "affordances": affs})
        parts = dedup(parts, lambda p: (norm(p["part_name"]), key(p["bbox"]), json.dumps(p["affordances"], sort_keys=True)))
        objs.append({"name": o.get("phrase") or o.get("name"), "bbox": o.get("object_bbox") or o.get("bbox"), "parts": parts})
    objs = dedup(objs, lambda o: (norm(o["name"]), key(o["bbox"]), json.dumps(o["parts"], sort_keys=True)))
    return {"objects": objs}


@settings(max_examples=150, deadline=None)
@given(st.lists(_obj, max_size=4))
def test_annotation_equals_plain_reference_rules(objects):
    rec = {"image_path": "a.jpg", "objects": objects}
    expected = _plain_reference(json.loads(json.dumps(rec)))
    assert R.record_to_annotation(rec) == expected
    assert json.dumps(R.record_to_annotation(rec)) == json.dumps(expected)
    clean, _, ann = R.validate_and_annotate(json.loads(json.dumps(rec)), 1, size=(4, 4))
    assert json.dumps(ann) == json.dumps(expected)


def test_non_list_and_non_object_entries_are_dropped_with_warnings(tmp_path):
    obj = {"phrase": "mug", "object_bbox": [0, 0, 5, 5],
           "parts": [1, {"part_name": "h", "part_bbox": [0, 0, 1, 1], "affordances": "no"}]}
    other = {"phrase": "cup", "object_bbox": [0, 0, 5, 5], "parts": {"a": 1}}
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"image_path": "x.jpg", "objects": [obj, other]}) + "\n")
    report = R.load_records(path, image_root=tmp_path)
    got = {(p.field, p.message) for p in report.problems if p.severity == "warning"}
    assert ("objects[0].parts[0]", "part must be a JSON object, got int; dropped") in got
    assert ("objects[0].parts[0].affordances", "'affordances' must be a list, got str; treated as []") in got
    assert ("objects[1].parts", "'parts' must be a list, got dict; treated as []") in got
