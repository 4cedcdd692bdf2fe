"""Sample building, sharding and image loading exactly as the reference evaluation does them."""

from __future__ import annotations

import math

import pytest

from sceneparser.evaluation.ground_truth import build_gt_for_category
from sceneparser.evaluation.samples import (
    build_samples,
    record_categories,
    resolve_image_path,
    shard_range,
)

# docs/reference.md, *prompts*: the driver's question for category "toaster", byte for byte
REFERENCE_TOASTER_QUESTION = (
    "Return a single JSON object only.\nParse toaster in this image and return object bbox, "
    "part bboxes, and affordance points when available."
)

RECORD = {
    "image_path": "images/a.jpg",
    "objects": [
        {"phrase": "toaster", "object_bbox": [356, 0, 857, 444],
         "parts": [{"part_name": "handle", "part_bbox": [685, 184, 787, 441], "is_pseudo_part": False,
                    "affordances": [{"action": "push down", "affordance_bbox": [700, 190, 780, 260],
                                     "sampled_points": [[735, 228]], "mask_path": "masks/h.png"}]}]},
        {"phrase": "container", "object_bbox": [206, 0, 778, 541], "parts": None},
        {"phrase": "Toaster", "object_bbox": None},
        {"phrase": "", "object_bbox": [0, 0, 1, 1]},
        {"phrase": "toaster", "object_bbox": [1, 1, 50, 50],
         "parts": [{"part_name": "slot", "part_bbox": [2, 2, 9, 9],
                    "affordances": [{"action": "insert", "affordance_bbox": None, "sampled_points": [[5, 5]],
                                     "mask_path": "/abs/m.png"}]}]},
    ],
}


def test_object_level_samples_follow_the_reference():
    samples, problems = build_samples([RECORD, {"image_path": "b.jpg", "objects": []}])
    assert problems == []
    # distinct truthy phrases, Python string order (upper case first), one sample each
    assert [s.category for s in samples] == ["Toaster", "container", "toaster"]
    assert record_categories(RECORD) == ["Toaster", "container", "toaster"]
    for s in samples:
        assert s.record_index == 0 and s.image_path == "images/a.jpg"
        assert s.gt == build_gt_for_category(RECORD, s.category)  # unchanged without a mask root
    assert samples[2].question == REFERENCE_TOASTER_QUESTION
    assert len(samples[2].gt["objects"]) == 2


def test_scene_level_sample_holds_every_phrased_object_in_record_order():
    (s,), problems = build_samples([RECORD], level="scene")
    assert problems == [] and s.category is None
    assert [o["name"] for o in s.gt["objects"]] == ["toaster", "container", "Toaster", "toaster"]
    assert s.gt["objects"][0] == build_gt_for_category(RECORD, "toaster")["objects"][0]
    assert s.question.startswith("Return a single JSON object only.\n")


def test_mask_root_rebases_only_relative_mask_paths():
    samples, _ = build_samples([RECORD], mask_root="/data/bench")
    toaster = samples[2].gt["objects"]
    assert toaster[0]["parts"][0]["affordances"][0]["mask_path"] == "/data/bench/masks/h.png"
    assert toaster[1]["parts"][0]["affordances"][0]["mask_path"] == "/abs/m.png"
    assert RECORD["objects"][0]["parts"][0]["affordances"][0]["mask_path"] == "masks/h.png"  # input untouched


def test_records_the_reference_would_crash_on_are_reported_with_their_line():
    bad = {"image_path": "c.jpg", "objects": [{"phrase": "mug", "parts": ["not a dict"]}]}
    samples, problems = build_samples([RECORD, bad, {"objects": [{"phrase": "x"}]}], lines=[1, 3, 4])
    assert {s.record_index for s in samples} == {0}
    assert [(p.record_index, p.line) for p in problems] == [(1, 3), (2, 4)]
    assert "parts[0]" in problems[0].message and "image_path" in problems[1].message


@pytest.mark.parametrize("n,k", [(10, 4), (2, 4), (7, 1), (0, 3), (9, 3)])
def test_shards_split_like_the_reference_driver(n, k):
    size = math.ceil(n / k) if n else 0
    ranges = [shard_range(n, k, i) for i in range(k)]
    assert [x for r in ranges for x in r] == list(range(n))
    for i, r in enumerate(ranges):
        assert r.start == min(i * size, n) and len(r) <= size


def test_open_eval_image_reports_missing_and_undecodable(tmp_path):
    from sceneparser.evaluation.runner import open_eval_image

    from PIL import Image

    Image.new("RGBA", (8, 6), (1, 2, 3, 4)).save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    img, problem = open_eval_image(tmp_path / "ok.png")
    assert problem is None and img.mode == "RGB" and img.size == (8, 6)
    assert open_eval_image(tmp_path / "nope.png") == (None, "image_missing")
    img, problem = open_eval_image(tmp_path / "bad.jpg")
    assert img is None and problem.startswith("image_undecodable:")
    assert resolve_image_path("a/b.png", tmp_path) == tmp_path / "a" / "b.png"
    assert resolve_image_path("/x/b.png", tmp_path).as_posix() == "/x/b.png"
    assert resolve_image_path("a/b.png").as_posix() == "a/b.png"
