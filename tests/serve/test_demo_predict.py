"""The demo's predict function over the real SceneParser (tiny model) and its example images."""

from __future__ import annotations

import json

from PIL import Image

from sceneparser.demo.predict import make_predict, split_queries
from sceneparser.demo.examples import write_examples


def test_split_queries():
    assert split_queries(" mug, door ,,lamp ") == ["mug", "door", "lamp"]
    assert split_queries("") == [] and split_queries(None) == []


def test_examples_are_written_once_and_name_objects(tmp_path):
    first = write_examples(tmp_path, count=3, size=(160, 120))
    again = write_examples(tmp_path, count=3, size=(160, 120))
    assert first == again and len(list(tmp_path.glob("*.png"))) == 3
    assert [scene for _, _, scene in first] == [False, False, True]
    assert all(q for _, q, scene in first if not scene)
    assert Image.open(first[0][0]).size == (160, 120)


def test_predict_queries_and_scene(tiny_parser, tmp_path):
    path = write_examples(tmp_path, count=1, size=(160, 120))[0][0]
    image = Image.open(path).convert("RGB")
    predict = make_predict(tiny_parser)
    annotated, payload = predict(image, "mug, door", False)
    assert isinstance(annotated, Image.Image)
    assert payload["query"] == ["mug", "door"] and [r["query"] for r in payload["results"]] == ["mug", "door"]
    assert payload["status"] in {"ok", "repaired", "failed"} and payload["image_size"] == [160, 120]
    json.dumps(payload)  # the download is plain JSON
    _, scene = predict(image, "", True)
    assert scene["scene"] is True and scene["query"] is None and len(scene["results"]) == 1
