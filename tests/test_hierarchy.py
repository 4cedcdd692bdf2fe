import json

import pytest
from pydantic import ValidationError

from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject
from sceneparser.parsing import parse_prediction

TOKEN_TEXT = (
    '{"objects": [{"name": "toaster", "bbox": "<185><0><446><411>", "parts": [{"part_name": "handle", '
    '"bbox": "<356><170><409><408>", "affordances": [{"action": "push down", "point": "<382><211>"}]}]}]}'
)


def sample():
    return Hierarchy(objects=[
        SceneObject(name="mug", box=(10, 20, 110, 220), parts=[
            Part(name="handle", box=(80, 40, 110, 200), affordances=[Affordance(action="grasp", point=(95, 120))]),
            Part(name="body", box=(10, 20, 80, 220)),
        ]),
        SceneObject(name="lamp", box=None),
    ])


def test_token_json_matches_training_format():
    h = sample()
    text = h.to_token_json(640, 480)
    data = json.loads(text)
    assert list(data["objects"][0]) == ["name", "bbox", "parts"]
    assert list(data["objects"][0]["parts"][0]) == ["part_name", "bbox", "affordances"]
    assert data["objects"][0]["bbox"] == "<15><41><171><457>"
    assert data["objects"][0]["parts"][0]["affordances"] == [{"action": "grasp", "point": "<148><249>"}]
    assert data["objects"][0]["parts"][1]["affordances"] == []
    assert data["objects"][1]["bbox"] is None
    # json.dumps default separators, unicode kept
    assert text.startswith('{"objects": [{"name": "mug", "bbox": "<15>')
    assert "é" in Hierarchy(objects=[SceneObject(name="café")]).to_token_json(10, 10)


def test_from_token_json_roundtrip_is_within_one_bin():
    h = sample()
    back = Hierarchy.from_token_json(h.to_token_json(640, 480), 640, 480)
    assert [o.name for o in back.objects] == ["mug", "lamp"]
    b0, b1 = h.objects[0].box, back.objects[0].box
    assert all(abs(x - y) <= 640 / 999 + 1e-9 for x, y in zip(b0, b1))
    assert back.objects[0].parts[0].affordances[0].action == "grasp"
    # re-quantising the decoded boxes loses at most one bin per coordinate
    assert back.objects[1].box is None


def test_from_token_json_reference_values():
    h = Hierarchy.from_token_json(TOKEN_TEXT, 1920, 1080)
    assert h.objects[0].box == (355.55555555555554, 0.0, 857.1771771771771, 444.3243243243243)
    assert h.objects[0].parts[0].affordances[0].point == (734.1741741741741, 228.10810810810813)
    assert Hierarchy.from_token_json("not json", 10, 10).objects == []


def test_pixel_dict_roundtrip():
    h = sample()
    d = h.to_pixel_dict()
    assert d["objects"][0]["bbox"] == [10.0, 20.0, 110.0, 220.0]
    assert json.loads(json.dumps(d)) == d
    assert Hierarchy.from_pixel_dict(d) == h
    with pytest.raises(ValidationError):
        Hierarchy.from_pixel_dict({"objects": [{"name": "x", "bbox": [1, 2, 3]}]})


def test_prediction_roundtrip_equals_parser_output():
    pred = parse_prediction(TOKEN_TEXT, 1920, 1080)
    h = Hierarchy.from_prediction(pred)
    assert h.to_prediction() == dict(pred)


def test_from_prediction_is_tolerant():
    pred = {"objects": [
        "junk", {"name": 3, "bbox": [1, 2, "x", 4], "parts": None},
        {"name": None, "bbox": [0, 0, 1, 1], "parts": [1, {"part_name": ["a"], "bbox": None,
                                                           "affordances": [{"action": "go", "point": [1, 2, 3]}]}]},
    ]}
    h = Hierarchy.from_prediction(pred)
    assert [o.name for o in h.objects] == ["3", None]
    assert h.objects[0].box is None and h.objects[0].parts == []
    assert h.objects[1].parts[0].name == '["a"]'
    assert h.objects[1].parts[0].affordances[0].point is None
    assert Hierarchy.from_prediction({"objects": None}).objects == []


def test_non_finite_coordinates_become_null_tokens():
    h = Hierarchy(objects=[SceneObject(name="a", box=(float("nan"), 0, 1, 1))])
    assert json.loads(h.to_token_json(10, 10))["objects"][0]["bbox"] is None


def test_iterators():
    h = sample()
    assert [p.name for _, p in h.iter_parts()] == ["handle", "body"]
    assert [a.action for _, _, a in h.iter_affordances()] == ["grasp"]
