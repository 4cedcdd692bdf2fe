import copy

import pytest

from sceneparser.errors import InputError
from sceneparser.evaluation.filters import filter_sample, is_none_action, is_pseudo_part, norm


def line():
    return {
        "image_path": "i.jpg",
        "gt": {"objects": [{"name": "c", "bbox": [0, 0, 9, 9], "parts": [
            {"part_name": "__placeholder_part__", "bbox": [0, 0, 9, 9], "affordances": [{"action": "grasp"}]},
            {"part_name": "lid", "bbox": [0, 0, 5, 5], "affordances": [
                {"action": "__none__"}, {"action": " __Placeholder_Action__ "}, {"action": "open"},
                {"action": ""}, {"action": "none"}, {"action": None}]},
            {"part_name": "Handle", "is_pseudo_part": True, "bbox": [0, 0, 1, 1], "affordances": None},
        ], "affordances": [{"action": "__none__"}, {"action": "push"}]}]},
        "extracted_predictions": {"objects": [{"name": "c", "parts": [
            {"part_name": " __PLACEHOLDER_PART__", "bbox": None, "affordances": []},
            {"part_name": "lid", "bbox": None, "affordances": None}]}]},
    }


def test_helpers():
    assert norm("  A b ") == "a b" and norm(None) == "" and norm(0) == ""
    assert is_pseudo_part({"part_name": " __placeholder_part__ "})
    assert is_pseudo_part({"part_name": "lid", "is_pseudo_part": True})
    assert not is_pseudo_part("__placeholder_part__")
    assert is_none_action({"action": "__NONE__"}) and not is_none_action({"action": "none"})


def test_both_filters():
    src = line()
    keep = copy.deepcopy(src)
    out = filter_sample(src, ignore_pseudo_part=True, ignore_none_action=True)
    assert src == keep  # the input is not modified
    parts = out["gt"]["objects"][0]["parts"]
    assert [p["part_name"] for p in parts] == ["lid"]
    assert [a["action"] for a in parts[0]["affordances"]] == ["open", "", "none", None]
    assert out["gt"]["objects"][0]["affordances"] == [{"action": "push"}]
    pred_parts = out["extracted_predictions"]["objects"][0]["parts"]
    assert [p["part_name"] for p in pred_parts] == ["lid"] and pred_parts[0]["affordances"] == []
    assert out["image_path"] == "i.jpg"


def test_no_flags_only_normalises_nulls():
    out = filter_sample(line())
    parts = out["gt"]["objects"][0]["parts"]
    assert len(parts) == 3 and parts[2]["affordances"] == []
    assert len(parts[1]["affordances"]) == 6
    out = filter_sample({"gt": None})
    assert out["gt"] == {"objects": []} and out["extracted_predictions"] == {"objects": []}


def test_pseudo_only_and_none_only():
    out = filter_sample(line(), ignore_pseudo_part=True)
    assert len(out["gt"]["objects"][0]["parts"][0]["affordances"]) == 6
    out = filter_sample(line(), ignore_none_action=True)
    assert [p["part_name"] for p in out["gt"]["objects"][0]["parts"]][0] == "__placeholder_part__"


def test_malformed_items_raise_input_error():
    with pytest.raises(InputError, match=r"gt.objects\[0\].parts\[0\]"):
        filter_sample({"gt": {"objects": [{"parts": [3]}]}})
    with pytest.raises(InputError, match="objects"):
        filter_sample({"gt": {"objects": "x"}})
