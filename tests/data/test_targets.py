"""Training targets: every rule of docs/reference.md, *training-data*, incl. worked examples."""

from __future__ import annotations

import json

import pytest

from sceneparser.data import targets as T
from sceneparser.data.records import record_to_annotation

W, H = 1920, 1080

# an example record in the reference's schema (docs/reference.md, *training-data*)
RECORD = {
    "image_path": "datasets/EgoObjects/images/EXAMPLE.jpg",
    "objects": [
        {"phrase": "mug", "object_bbox": [400, 300, 700, 810], "parts": [
            {"part_name": "handle", "part_bbox": [620, 420, 700, 600], "is_pseudo_part": False,
             "affordances": [{"action": "grasp", "affordance_bbox": [630, 430, 690, 590],
                              "sampled_points": [[655, 505], [660, 520]], "mask_path": None}]},
            {"part_name": "rim", "part_bbox": [400, 300, 620, 360], "is_pseudo_part": False,
             "affordances": [{"action": "__none__", "affordance_bbox": None,
                              "sampled_points": [[510, 330]], "mask_path": None}]}]},
        {"phrase": "mug", "object_bbox": [100, 500, 300, 900], "parts": []},
        {"phrase": "drawer", "object_bbox": [1000, 600, 1500, 1000], "parts": [
            {"part_name": "__placeholder_part__", "part_bbox": [1000, 600, 1500, 1000], "is_pseudo_part": True,
             "affordances": [{"action": "pull", "affordance_bbox": [1200, 700, 1300, 760],
                              "sampled_points": [[1250, 730]], "mask_path": None}]}]},
    ],
}
ANN = record_to_annotation(RECORD)

MUG_DROP = (
    '{"objects": [{"name": "mug", "bbox": "<52><462><156><832>", "parts": []}, {"name": "mug", "bbox": '
    '"<208><277><364><749>", "parts": [{"part_name": "handle", "bbox": "<322><388><364><555>", "affordances": '
    '[{"action": "grasp", "point": "<340><467>"}]}, {"part_name": "rim", "bbox": "<208><277><322><333>", '
    '"affordances": []}]}]}'
)


def test_worked_example_mug_drop_branch():
    assert T.build_target(ANN, W, H, "mug") == MUG_DROP
    assert T.build_target(ANN, W, H, "mug", pseudo="drop") == MUG_DROP


def test_worked_example_mug_pseudo_branch():
    expected = MUG_DROP.replace(
        '"rim", "bbox": "<208><277><322><333>", "affordances": []',
        '"rim", "bbox": "<208><277><322><333>", "affordances": [{"action": "__none__", "point": "<265><305>"}]',
    )
    assert T.build_target(ANN, W, H, "mug", pseudo="keep") == expected


def test_worked_example_drawer_both_branches():
    assert T.build_target(ANN, W, H, "drawer") == (
        '{"objects": [{"name": "drawer", "bbox": "<520><555><780><925>", "parts": []}]}'
    )
    assert T.build_target(ANN, W, H, "drawer", pseudo="keep") == (
        '{"objects": [{"name": "drawer", "bbox": "<520><555><780><925>", "parts": [{"part_name": '
        '"__placeholder_part__", "bbox": "<520><555><780><925>", "affordances": [{"action": "pull", '
        '"point": "<650><675>"}]}]}]}'
    )


def test_converter_annotation_shape_and_key_order():
    obj = ANN["objects"][0]
    assert list(ANN) == ["objects"]
    assert list(obj) == ["name", "bbox", "parts"]
    assert list(obj["parts"][0]) == ["part_name", "bbox", "affordances"]
    assert obj["parts"][0]["affordances"] == [{"action": "grasp", "point": [655, 505]}]


def _obj(name, bbox, parts=()):
    return {"name": name, "bbox": bbox, "parts": list(parts)}


def _part(name, bbox, affs=()):
    return {"part_name": name, "bbox": bbox, "affordances": list(affs)}


def test_floor_bins_clamping_and_zero_size_boxes():
    ann = {"objects": [_obj("a", [-5, 0, 100, 100.0]), _obj("b", [50, 50, 50, 50]), _obj("c", [10, 10, 5000, 5000])]}
    out = json.loads(T.build_target(ann, 100, 100, None, scene=True))["objects"]
    assert [o["bbox"] for o in out] == ["<0><0><999><999>", "<99><99><999><999>", "<499><499><499><499>"]
    # 0.1 * 999 = 99.9 -> floor 99, not round
    assert T.box_bins([10, 10, 10, 10], 100, 100) == [99, 99, 99, 99]
    assert T.point_bins([99.99, 0.05], 100, 100) == [998, 0]


def test_inverted_and_missing_boxes():
    ann = {"objects": [
        _obj("mug", [50, 10, 40, 20], [_part("body", [10, 10, 20, 20]), _part("handle", [30, 10, 20, 20]),
                                       _part("lid", None)]),
        _obj("mug", None),
        _obj("mug", [0, 0, 10, 10]),
    ]}
    out = json.loads(T.build_target(ann, 100, 100, "mug"))["objects"]
    # null boxes sort last; inverted box -> null; invalid part box -> part dropped
    assert [o["bbox"] for o in out] == ["<0><0><99><99>", None, None]
    assert out[1]["parts"] == [{"part_name": "body", "bbox": "<99><99><199><199>", "affordances": []}]
    assert out[2]["parts"] == []


def test_objects_without_name_are_dropped_and_exact_match():
    ann = {"objects": [_obj("", [0, 0, 1, 1]), _obj(None, [0, 0, 1, 1]), _obj("Mug", [0, 0, 5, 5]), _obj("mug", [1, 1, 5, 5])]}
    assert [o["name"] for o in json.loads(T.build_target(ann, 10, 10, "mug"))["objects"]] == ["mug"]
    assert [o["name"] for o in json.loads(T.build_target(ann, 10, 10, "mug", case_insensitive=True))["objects"]] == ["Mug", "mug"]
    assert T.build_target(ann, 10, 10, None) == '{"objects": []}'
    assert T.build_target(ann, 10, 10, "sofa") == '{"objects": []}'  # negative query


def test_sort_by_x0_then_lowercased_name_stable():
    ann = {"objects": [_obj("b", [10, 0, 20, 5]), _obj("A", [10, 1, 20, 5]), _obj("c", [0, 0, 5, 5]),
                       _obj("a", [10, 2, 20, 5])]}
    out = json.loads(T.build_target(ann, 100, 100, None, scene=True))["objects"]
    assert [o["name"] for o in out] == ["c", "A", "a", "b"]


def test_object_part_affordance_dedup():
    affs = [{"action": "Grasp", "point": [5, 5]}, {"action": "grasp ", "point": [5.005, 5.005]}, {"action": "grasp", "point": [50, 50]}]
    ann = {"objects": [
        _obj("mug", [0, 0, 90, 90], [_part("Handle", [0, 0, 50, 50], affs), _part("handle", [0, 0, 50, 50.05]),
                                     _part("body", [0, 0, 50, 50])]),
        _obj("MUG", [0, 0, 90, 90.05], [_part("Handle", [0, 0, 50, 50], affs), _part("body", [0, 0, 50, 50])]),
    ]}
    out = json.loads(T.build_target(ann, 100, 100, None, scene=True))["objects"]
    assert len(out) == 1  # same norm(name), same box tokens, same parts
    parts = out[0]["parts"]
    assert [p["part_name"] for p in parts] == ["Handle", "body"]
    assert parts[0]["affordances"] == [{"action": "Grasp", "point": "<49><49>"}, {"action": "grasp", "point": "<499><499>"}]


def test_drop_branch_removes_placeholders_and_none_actions_keep_branch_does_not():
    affs = [{"action": a, "point": [1, 1]} for a in ("", "__none__", "None", " null ", "__placeholder_action__", "open")]
    ann = {"objects": [_obj("box", [0, 0, 9, 9], [
        _part("Placeholder Part", [0, 0, 9, 9], [{"action": "grasp", "point": [2, 2]}]),
        _part("lid", [0, 0, 5, 5], affs),
    ])]}
    drop = json.loads(T.build_target(ann, 10, 10, "box"))["objects"][0]["parts"]
    assert [p["part_name"] for p in drop] == ["lid"]
    assert [a["action"] for a in drop[0]["affordances"]] == ["__placeholder_action__", "open"]
    keep = json.loads(T.build_target(ann, 10, 10, "box", pseudo="keep"))["objects"][0]["parts"]
    assert [p["part_name"] for p in keep] == ["Placeholder Part", "lid"]
    assert [a["action"] for a in keep[1]["affordances"]] == ["__none__", "None", " null ", "__placeholder_action__", "open"]


def test_point_fallback_to_sampled_points_only_in_drop_branch():
    ann = {"objects": [_obj("box", [0, 0, 9, 9], [_part("lid", [0, 0, 5, 5], [
        {"action": "open", "point": None, "sampled_points": [[3, 3], [4, 4]]}])])]}
    drop = json.loads(T.build_target(ann, 10, 10, "box"))["objects"][0]["parts"][0]["affordances"]
    keep = json.loads(T.build_target(ann, 10, 10, "box", pseudo="keep"))["objects"][0]["parts"][0]["affordances"]
    assert drop == [{"action": "open", "point": "<299><299>"}] and keep == []


def test_evaluation_definition_uses_flag():
    part = {"part_name": "knob", "is_pseudo_part": True}
    assert T.EVALUATION_PSEUDO.is_placeholder_part(part) and not T.TRAINING_PSEUDO.is_placeholder_part(part)
    assert T.TRAINING_PSEUDO.is_none_action("NULL") and not T.EVALUATION_PSEUDO.is_none_action("null")
    assert T.EVALUATION_PSEUDO.is_none_action("__placeholder_action__")
    assert T.TRAINING_PLACEHOLDER_PART_NAMES == {"__placeholder_part__", "placeholder_part", "placeholder part"}
    assert T.TRAINING_NONE_ACTIONS == {"", "__none__", "none", "null"}
    assert T.EVALUATION_NONE_ACTIONS == {"__none__", "__placeholder_action__"}
    ann = {"objects": [_obj("door", [0, 0, 9, 9], [dict(_part("knob", [0, 0, 5, 5]), is_pseudo_part=True)])]}
    policy = T.PseudoPolicy.drop(T.EVALUATION_PSEUDO)
    assert json.loads(T.build_target(ann, 10, 10, "door", pseudo=policy))["objects"][0]["parts"] == []
    assert len(json.loads(T.build_target(ann, 10, 10, "door"))["objects"][0]["parts"]) == 1


def test_mix_policy_is_deterministic_and_has_the_right_rate():
    assert T.PseudoPolicy.parse("mix(0.3)") == T.STAGE_POLICIES[2] == T.PseudoPolicy.mix(0.3)
    assert T.PseudoPolicy.parse("mix:0.5") == T.STAGE_POLICIES[3]
    assert T.STAGE_POLICIES[1].mode == "drop"
    pol = T.STAGE_POLICIES[2]
    draws = [pol.branch(seed=7, epoch=1, index=i) for i in range(4000)]
    assert draws == [pol.branch(seed=7, epoch=1, index=i) for i in range(4000)]
    assert 0.27 < draws.count("keep") / 4000 < 0.33
    assert draws != [pol.branch(seed=7, epoch=2, index=i) for i in range(4000)]
    assert draws != [pol.branch(seed=8, epoch=1, index=i) for i in range(4000)]
    keep_i = draws.index("keep")
    drop_i = draws.index("drop")
    assert T.build_target(ANN, W, H, "drawer", pseudo="mix(0.3)", seed=7, epoch=1, index=keep_i) == \
        T.build_target(ANN, W, H, "drawer", pseudo="keep")
    assert T.build_target(ANN, W, H, "drawer", pseudo=pol, seed=7, epoch=1, index=drop_i) == \
        T.build_target(ANN, W, H, "drawer", pseudo="drop")
    with pytest.raises(ValueError):
        T.PseudoPolicy.parse("sometimes")
    with pytest.raises(ValueError):
        T.PseudoPolicy.mix(1.5)


def test_scene_target_and_non_ascii_names():
    ann = {"objects": [_obj("tasse à café", [10, 0, 20, 5]), _obj("杯子", [0, 0, 5, 5])]}
    text = T.build_target(ann, 100, 100, None, scene=True)
    assert text == ('{"objects": [{"name": "杯子", "bbox": "<0><0><49><49>", "parts": []}, '
                    '{"name": "tasse à café", "bbox": "<99><0><199><49>", "parts": []}]}')


def test_malformed_values_never_raise():
    ann = {"objects": ["junk", _obj("x", [float("nan"), 0, 1, 1], [
        "junk", _part("p", [0, 0, "a", 1]), _part("q", [0, 0, 1, 1], ["junk", {"action": "a", "point": [1, 2, 3]},
                                                                        {"action": "b", "point": [float("inf"), 1]}])])]}
    out = json.loads(T.build_target(ann, 10, 10, "x"))
    assert out == {"objects": [{"name": "x", "bbox": None, "parts": [{"part_name": "q", "bbox": "<0><0><99><99>", "affordances": []}]}]}


def test_categories_and_choose_query():
    ann = {"objects": [_obj("mug", None), _obj("Mug", None), _obj("bowl", None), _obj("", None)]}
    assert T.categories(ann) == ["Mug", "bowl", "mug"]
    assert T.categories(ann, case_insensitive=True) == ["Mug", "bowl"]
    qs = {T.choose_query(ann, seed=1, index=i).category for i in range(200)}
    assert qs == {"Mug", "bowl", "mug"}
    assert T.choose_query(ann, seed=1, index=3) == T.choose_query(ann, seed=1, index=3)
    assert T.choose_query({"objects": []}) == T.Query(None)
    assert T.Query(None).prompt_category == "target object"
    opts = T.QueryOptions(scene_ratio=0.2, negative_ratio=0.5, vocabulary=("mug", "sofa", "lamp"))
    got = [T.choose_query(ann, seed=2, index=i, options=opts) for i in range(400)]
    scene = sum(q.scene for q in got)
    neg = [q for q in got if q.negative]
    assert 40 < scene < 120 and neg and {q.category for q in neg} == {"sofa", "lamp"}
    for q in neg:
        assert T.build_target(ann, 10, 10, q.category) == '{"objects": []}'
