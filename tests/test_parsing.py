import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sceneparser.parsing import ParsedPrediction, box_to_pixels, parse_prediction, point_to_pixels

W, H = 1920, 1080
VALID = (
    '{"objects": [{"name": "toaster", "bbox": "<185><0><446><411>", "parts": [{"part_name": "handle", '
    '"bbox": "<356><170><409><408>", "affordances": [{"action": "push down", "point": "<382><211>"}, '
    '{"action": "grasp", "point": "<380><200>"}]}, {"part_name": "slot", "bbox": "<200><0><400><50>", '
    '"affordances": []}]}, {"name": "toaster", "bbox": "<500><10><700><300>", "parts": []}]}'
)


# ---------------------------------------------------------------- T7 conformance vectors
def test_t7_coordinates():
    assert box_to_pixels("<185><0><446><411>", W, H) == [355.55555555555554, 0.0, 857.1771771771771, 444.3243243243243]
    assert point_to_pixels("<382><211>", W, H) == [734.1741741741741, 228.10810810810813]
    assert box_to_pixels("<1><2><3>", W, H) is None
    assert box_to_pixels([0.5, 0.5, 1.0, 1.0], W, H) == [960.0, 540.0, 1920.0, 1080.0]
    assert box_to_pixels([10, 20, 30, 40], W, H) == [19.21921921921922, 21.62162162162162, 57.65765765765766, 43.24324324324324]
    assert box_to_pixels([10, 20, 1000, 40], W, H) == [10.0, 20.0, 1000.0, 40.0]
    # boxes use the signed max, points the absolute max
    assert box_to_pixels([-5000, 0.5, 0.5, 0.5], W, H) == [-5000 * W, 0.5 * H, 0.5 * W, 0.5 * H]
    assert point_to_pixels([-5000, 0.5], W, H) == [-5000.0, 0.5]
    assert point_to_pixels("<1><2><3>", W, H) is None
    assert box_to_pixels(["a", 1, 2, 3], W, H) is None
    assert box_to_pixels("<1500><0><1><1>", W, H)[0] == 1500 / 999.0 * W


def test_t7_texts():
    r = parse_prediction('```json\n{"objects": []}\n```', W, H)
    assert r == {"objects": []} and r.status == "ok"
    r = parse_prediction(VALID[:120], W, H)
    assert r == {"objects": []} and r.status == "failed"
    r = parse_prediction(VALID + "<|im_end|>garbage {]}", W, H)
    assert r.status == "ok" and len(r["objects"]) == 2
    r = parse_prediction('```json\n[{"name": "a"}]\n```', W, H)
    assert r == {"objects": []} and r.status == "failed" and "list" in r.reason


def test_schema_and_key_order():
    r = parse_prediction("Sure! " + VALID + " done.", W, H)
    assert isinstance(r, ParsedPrediction) and isinstance(r, dict)
    o = r["objects"][0]
    assert list(o) == ["name", "bbox", "has_part", "has_affordance", "parts", "affordances"]
    assert list(o["parts"][0]) == ["part_name", "bbox", "affordances"]
    assert list(o["parts"][0]["affordances"][0]) == ["action", "point"]
    assert o["has_part"] is None and o["affordances"] == []
    assert json.loads(json.dumps(r)) == r


def test_first_fenced_block_wins_even_if_invalid():
    text = '```json\n{"objects": [}\n```\n```json\n{"objects": []}\n```'
    assert parse_prediction(text, W, H).status == "failed"


def test_unfenced_top_level_list_is_empty_not_crash():
    r = parse_prediction('[{"name": "a"}, {"name": "b"}]', W, H)
    assert r == {"objects": []} and r.status == "failed"


def test_object_level_affordances_ignored_and_odd_items_skipped():
    text = json.dumps({"objects": [1, "x", {"name": "a", "bbox": None, "affordances": [{"action": "go"}],
                                           "parts": [2, {"part_name": "p", "affordances": "no"}]}]})
    r = parse_prediction(text, W, H)
    assert r["objects"] == [{"name": "a", "bbox": None, "has_part": None, "has_affordance": None,
                             "parts": [{"part_name": "p", "bbox": None, "affordances": []}], "affordances": []}]
    assert parse_prediction('{"objects": 5}', W, H).status == "failed"
    assert parse_prediction('{"foo": 1}', W, H) == {"objects": []}


def test_crash_inputs_of_the_reference_fail_cleanly():
    huge_int = "1" + "0" * 400
    for text in [
        '```json\n"str"\n```', "```json\nnull\n```", "```json\n3\n```", "```json\ntrue\n```",
        '{"objects": [{"name": "a", "bbox": [%s, 1, 2, 3]}]}' % huge_int,
        '{"objects": [{"name": "a", "parts": [{"affordances": [{"point": [%s, 1]}]}]}]}' % huge_int,
        '{"objects": [{"name": "a", "bbox": "<%s><1><2><3>"}]}' % huge_int,
        '{"objects": [{"name": "a", "bbox": "<%s><1><2><3>"}]}' % ("9" * 5000),
        '{"objects": [' + "[" * 50000 + "]" * 50000 + "]}",
    ]:
        r = parse_prediction(text, W, H)
        assert r == {"objects": []} and r.status == "failed" and r.reason


def test_nan_and_infinity_pass_through_like_the_reference():
    r = parse_prediction('{"objects": [{"name": "a", "bbox": [NaN, 1, 2, Infinity], "parts": []}]}', W, H)
    assert r.status == "ok"
    box = r["objects"][0]["bbox"]
    assert box[0] != box[0] and box[3] == float("inf")


def test_bad_arguments_never_raise():
    assert parse_prediction(None, W, H).status == "failed"
    assert parse_prediction(b"{}", W, H).status == "failed"
    assert parse_prediction(VALID, W, H, mode="nope").status == "failed"


# ---------------------------------------------------------------- repair mode
def test_repair_equals_reference_on_valid_text():
    ref = parse_prediction(VALID, W, H)
    rep = parse_prediction(VALID, W, H, mode="repair")
    assert rep == ref and rep.status == "ok"


def _shape(r):
    return [(o["name"], [(p["part_name"], len(p["affordances"])) for p in o["parts"]]) for o in r["objects"]]


def test_repair_drops_incomplete_tail_element():
    cut_in_second_aff = VALID.index('"grasp"') + 3
    r = parse_prediction(VALID[:cut_in_second_aff], W, H, mode="repair")
    assert r.status == "repaired" and _shape(r) == [("toaster", [("handle", 1)])]
    cut_in_second_object_box = VALID.index("<500><10>") + 6
    r = parse_prediction(VALID[:cut_in_second_object_box], W, H, mode="repair")
    assert _shape(r) == [("toaster", [("handle", 2), ("slot", 0)])]
    # every kept coordinate is complete
    assert all(o["bbox"] is not None for o in r["objects"])


def test_repair_unterminated_fence_and_prose():
    r = parse_prediction("Here you go:\n```json\n" + VALID[:-30], W, H, mode="repair")
    assert r.status == "repaired" and r["objects"][0]["name"] == "toaster"
    r = parse_prediction("```json\n[" + '{"name": "a", "bbox": "<1><2><3><4>"}' + "]\n```", W, H, mode="repair")
    assert r.status == "repaired" and r["objects"][0]["name"] == "a"
    r = parse_prediction("{'objects': [{'name': 'a', 'bbox': [1, 2, 3, 4],}]}", W, H, mode="repair")
    assert r.status == "repaired" and r["objects"][0]["bbox"] == box_to_pixels([1, 2, 3, 4], W, H)
    assert parse_prediction("no json here", W, H, mode="repair").status == "failed"


# ---------------------------------------------------------------- fuzzing: never raises
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(text):
    for mode in ("reference", "repair"):
        r = parse_prediction(text, W, H, mode=mode)
        assert isinstance(r, ParsedPrediction)
        assert r.status in ("ok", "repaired", "failed")
        assert isinstance(r["objects"], list)
        if mode == "reference":
            assert r.status != "repaired"


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(text):
    _check(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["<1><2><3><4>", "<5><6>", "<999><0>", "<12"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["objects", "name", "bbox", "parts", "part_name", "affordances", "action", "point", "x"]),
        children, max_size=5),
    max_leaves=25,
)


@FUZZ
@given(json_values, st.sampled_from(["", "```json\n", "Answer: "]), st.sampled_from(["", "\n```", "<|im_end|>x"]))
def test_fuzz_json_like(value, prefix, suffix):
    text = prefix + json.dumps(value) + suffix
    _check(text)


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID)))
def test_fuzz_truncations_of_valid_output(cut):
    text = VALID[:cut]
    _check(text)
    r = parse_prediction(text, W, H, mode="repair")
    full = parse_prediction(VALID, W, H)
    # repaired objects are a prefix-wise subset of the full parse: no invented names, complete boxes
    names = [o["name"] for o in full["objects"]]
    assert [o["name"] for o in r["objects"]] == names[: len(r["objects"])]
    for o in r["objects"]:
        assert o["bbox"] is None or len(o["bbox"]) == 4
