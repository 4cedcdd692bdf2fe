import pytest

import sceneparser.evaluation as evaluation
from sceneparser.errors import InputError
from sceneparser.evaluation import build_gt_for_category

RECORD = {
    "image_path": "datasets/EgoObjects/images/x.jpg",
    "objects": [
        {"phrase": "toaster", "object_bbox": [356, 0, 857, 444], "parts": [
            {"part_name": "handle", "part_bbox": [685, 184, 787, 441], "is_pseudo_part": False, "affordances": [
                {"action": "push down", "affordance_bbox": [700, 190, 780, 260],
                 "sampled_points": [[735, 228], [742, 240]], "mask_path": "datasets/masks/xxx.png"},
                {"action": "", "affordance_bbox": [0, 0, 1, 1]},
                {"action": "press", "affordance_bbox": None, "sampled_points": []},
                {"action": "__none__", "affordance_bbox": None, "sampled_points": [[1, 2]]}]},
            {"part_name": "", "part_bbox": [0, 0, 1, 1]},
            {"part_name": "slot", "part_bbox": None},
            {"part_name": "body", "part_bbox": [1, 1, 2, 2], "affordances": None}]},
        {"phrase": "container", "object_bbox": None, "parts": [
            {"part_name": "__placeholder_part__", "part_bbox": [206, 0, 778, 541], "is_pseudo_part": True,
             "affordances": [{"action": "grasp", "affordance_bbox": [300, 100, 700, 500],
                              "sampled_points": [[480, 310]], "mask_path": None}]}]},
        {"phrase": "toaster", "object_bbox": [1, 2, 3, 4], "parts": None},
        {"phrase": "Toaster", "object_bbox": [1, 2, 3, 4]},
    ],
}


def test_build_gt_for_category_section_2_1():
    gt = build_gt_for_category(RECORD, "toaster")
    objs = gt["objects"]
    assert [o["bbox"] for o in objs] == [[356, 0, 857, 444], [1, 2, 3, 4]]  # exact, case-sensitive phrase
    first = objs[0]
    assert list(first) == ["name", "bbox", "has_part", "has_affordance", "parts", "affordances"]
    assert [p["part_name"] for p in first["parts"]] == ["handle", "body"]
    affs = first["parts"][0]["affordances"]
    assert [a["action"] for a in affs] == ["push down", "__none__"]
    assert affs[0] == {"action": "push down", "affordance_bbox": [700, 190, 780, 260],
                       "mask_path": "datasets/masks/xxx.png", "points": [[735, 228], [742, 240]],
                       "point": [735, 228]}
    assert first["has_part"] is True and first["has_affordance"] is True and first["affordances"] == []
    assert objs[1] == {"name": "toaster", "bbox": [1, 2, 3, 4], "has_part": False, "has_affordance": False,
                       "parts": [], "affordances": []}
    container = build_gt_for_category(RECORD, "container")["objects"][0]
    assert container["bbox"] is None and "is_pseudo_part" not in container["parts"][0]
    assert build_gt_for_category(RECORD, "sofa") == {"objects": []}


def test_contract_names():
    assert evaluation.build_gt_for_category is build_gt_for_category
    assert evaluation.ground_truth.build_gt_for_category is build_gt_for_category  # the module


@pytest.mark.parametrize("record, match", [
    ({"objects": None}, "objects"),
    ({"objects": [3]}, r"objects\[0\]"),
    ({"objects": [{"phrase": "t", "parts": [1]}]}, r"parts\[0\]"),
    ({"objects": [{"phrase": "t", "parts": [{"part_name": "h", "part_bbox": [0, 0, 1, 1], "affordances": ["a"]}]}]},
     r"affordances\[0\]"),
    ([1], "JSON object"),
])
def test_crash_records_raise_value_error(record, match):
    with pytest.raises(InputError, match=match):
        build_gt_for_category(record, "t")
    with pytest.raises(ValueError):
        build_gt_for_category(record, "t")
