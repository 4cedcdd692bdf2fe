"""ParseResult.to_supervision(): sv.Detections + sv.KeyPoints, back to the hierarchy, drawn by supervision."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject
from sceneparser.inference.api import ParseResult
from sceneparser.interop.supervision import from_supervision, to_supervision

sv = pytest.importorskip("supervision")


def _hierarchy(scored=True):
    s = (lambda v: v) if scored else (lambda v: None)
    return Hierarchy(objects=[
        SceneObject(name="mug", box=(10.5, 20.0, 110.25, 90.0), score=s(0.9), parts=[
            Part(name="handle", box=(80.0, 30.0, 110.0, 70.0), score=s(0.7), affordances=[
                Affordance(action="grasp", point=(95.125, 50.0), score=s(0.6)),
                Affordance(action="lift", point=(96.0, 51.0), score=s(0.5))]),
            Part(name="body", box=(10.5, 20.0, 80.0, 90.0), score=s(0.8))]),
        SceneObject(name="door", box=(120.0, 5.0, 190.0, 95.0), score=s(0.4), parts=[
            Part(name="knob", box=(170.0, 50.0, 180.0, 60.0), score=s(0.3), affordances=[
                Affordance(action="twist", point=(175.0, 55.0), score=s(0.2))])]),
    ])


def _result(h):
    return ParseResult(query=None, question="q", scene=True, raw_text="", prediction={}, status="ok", reason=None,
                       hierarchy=h, image_size=(200, 100))


def test_detections_carry_boxes_names_scores_and_the_hierarchy():
    det, kp = _result(_hierarchy()).to_supervision()
    assert len(det) == 5 and len(kp) == 3
    assert list(det.data["class_name"]) == ["mug", "mug:handle", "mug:body", "door", "door:knob"]
    assert list(det.data["level"]) == ["object", "part", "part", "object", "part"]
    assert list(det.data["object_index"]) == [0, 0, 0, 3, 3]
    assert det.metadata["class_names"][det.class_id[1]] == "mug:handle"
    np.testing.assert_allclose(det.confidence, [0.9, 0.7, 0.8, 0.4, 0.3])
    np.testing.assert_allclose(det.xyxy[0], [10.5, 20.0, 110.25, 90.0])
    assert list(kp.data["action"]) == ["grasp", "lift", "twist"]
    assert list(kp.data["detection_index"]) == [1, 1, 4]
    np.testing.assert_allclose(kp.xy[:, 0], [[95.125, 50.0], [96.0, 51.0], [175.0, 55.0]])


@pytest.mark.parametrize("scored", [True, False])
def test_round_trip(scored):
    h = _hierarchy(scored)
    det, kp = to_supervision(h)
    if not scored:
        assert det.confidence is None and kp.keypoint_confidence is None
    assert from_supervision(det, kp) == h


def test_missing_boxes_are_left_out_and_empty_results_work():
    h = Hierarchy(objects=[SceneObject(name="mug", box=None, parts=[Part(name="handle", box=(1, 1, 2, 2))]),
                           SceneObject(name="cup", box=(0, 0, 5, math.inf))])
    det, kp = to_supervision(h)
    assert len(det) == 0 and len(kp) == 0
    assert from_supervision(det, kp) == Hierarchy()


def test_foreign_detections_become_objects():
    det = sv.Detections(xyxy=np.array([[1.0, 2.0, 3.0, 4.0]]), confidence=np.array([0.5]),
                        class_id=np.array([7]), data={"class_name": np.array(["cat"])})
    assert from_supervision(det) == Hierarchy(objects=[SceneObject(name="cat", box=(1.0, 2.0, 3.0, 4.0), score=0.5)])


def test_supervision_annotators_draw_them():
    det, kp = to_supervision(_hierarchy())
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # supervision warns when it draws without OpenCV
        out = sv.BoxAnnotator().annotate(image.copy(), det)
        out = sv.LabelAnnotator().annotate(out, det, labels=list(det.data["class_name"]))
        out = sv.VertexAnnotator(radius=3).annotate(out, kp)
    assert out.shape == image.shape and out.any()
    assert out[50, 95].any()  # the grasp point is drawn
