"""Confidence scores: spans of the answer's elements, the score formula, and min_score filtering."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from sceneparser.hierarchy import Hierarchy
from sceneparser.scores import answer_scores, element_spans, span_score

TEXT = ('{"objects": [{"name": "mug", "bbox": "<1><2><3><4>", "parts": [{"part_name": "handle", '
        '"bbox": "<5><6><7><8>", "affordances": [{"action": "grasp", "point": "<9><9>"}]}]}, 7, '
        '{"name": "pan", "bbox": "<1><1><2><2>", "parts": []}]}')


def test_spans_follow_the_parser_elements():
    els = element_spans(TEXT)
    assert [[TEXT[a:b] for a, b in e.spans] for e in els] == [["mug", "<1><2><3><4>"], ["pan", "<1><1><2><2>"]]
    (part,) = els[0].children
    assert [TEXT[a:b] for a, b in part.spans] == ["handle", "<5><6><7><8>"]
    assert [[TEXT[a:b] for a, b in x.spans] for x in part.children] == [["grasp", "<9><9>"]]
    fenced = "Here:\n```json\n" + TEXT + "\n```"
    assert len(element_spans(fenced)) == 2
    assert element_spans("no json here") == []


def test_score_is_the_geometric_mean_probability_of_the_element_tokens():
    # one token per character: every character of "mug" and its box has log-prob -0.1, the rest -5
    lps = [-5.0] * len(TEXT)
    (obj, _) = element_spans(TEXT)
    for a, b in obj.spans:
        for i in range(a, b):
            lps[i] = -0.1
    offsets = list(range(len(TEXT)))
    assert span_score(obj.spans, offsets, lps, len(TEXT)) == pytest.approx(math.exp(-0.1), abs=1e-6)
    scores = answer_scores(TEXT, offsets, lps)
    assert scores[0]["score"] == pytest.approx(math.exp(-0.1), abs=1e-6)
    assert scores[1]["score"] == pytest.approx(math.exp(-5.0), abs=1e-6)
    assert answer_scores(TEXT, None, None) is None


def test_with_scores_and_filtered():
    h = Hierarchy.from_pixel_dict({"objects": [
        {"name": "mug", "bbox": [0, 0, 10, 10], "parts": [
            {"part_name": "handle", "bbox": [0, 0, 2, 2], "affordances": [{"action": "grasp", "point": [1, 1]}]},
            {"part_name": "body", "bbox": [2, 2, 9, 9], "affordances": []}]},
        {"name": "pan", "bbox": [20, 20, 30, 30], "parts": []}]})
    scored = h.with_scores([{"score": 0.9, "parts": [{"score": 0.2, "affordances": [0.8]},
                                                      {"score": 0.7, "affordances": []}]},
                            {"score": 0.1, "parts": []}])
    assert h.objects[0].score is None and scored.objects[0].score == 0.9  # a copy
    kept = scored.filtered(0.5)
    assert [o.name for o in kept.objects] == ["mug"] and [p.name for p in kept.objects[0].parts] == ["body"]
    assert scored.to_pixel_dict()["objects"][0]["score"] == 0.9
    assert "score" not in h.to_pixel_dict()["objects"][0]  # answers without scores keep their shape
    assert h.with_scores([{"score": 1.0, "parts": []}]).objects[0].score is None  # counts differ: unknown


def test_parser_scores_every_element_and_greedy_text_is_unchanged(tiny_model_dir):
    from sceneparser.inference.api import SceneParser

    img = Image.fromarray((np.random.RandomState(1).rand(90, 120, 3) * 255).astype("uint8"))
    parser = SceneParser.from_pretrained(tiny_model_dir, device="cpu", max_new_tokens=40)
    r = parser.parse(img, "mug")
    assert r.token_logprobs is not None and len(r.token_logprobs) == r.timing["num_output_tokens"]
    assert all(lp <= 0 for lp in r.token_logprobs)
    for o in r.hierarchy.objects:
        assert o.score is None or 0.0 <= o.score <= 1.0
    strict = SceneParser(parser.backend, min_score=1.0).parse(img, "mug")
    assert strict.raw_text == r.raw_text and strict.prediction == r.prediction  # only the hierarchy is filtered
    assert all(o.score is None or o.score >= 1.0 for o in strict.hierarchy.objects)
