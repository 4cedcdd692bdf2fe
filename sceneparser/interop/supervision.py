"""A hierarchy as `supervision <https://supervision.roboflow.com>`_ detections, and back.

``pip install 'sceneparser[supervision]'``; ``supervision`` is imported only when these
functions run.

:func:`to_supervision` gives ``(detections, keypoints)``:

* ``sv.Detections``: one row per object, followed by one row per part of it; ``xyxy`` in
  pixels; ``confidence`` the scores (NaN where an element has none; ``None`` if none has one);
  ``class_id`` the index of ``class_name`` in ``detections.metadata["class_names"]``. ``data``
  holds the hierarchy: ``class_name`` (the object name, or ``object:part``), ``level``
  (``"object"`` / ``"part"``), ``object_name``, ``part_name`` (``None`` on object rows) and
  ``object_index`` (the row of the part's object; an object row names itself).
* ``sv.KeyPoints``: one row per affordance point (one key point each); ``class_id`` the index of
  the action in the sorted actions of this result; ``keypoint_confidence`` the scores (NaN where
  unknown); ``data``: ``action`` and ``detection_index`` (the row of its part in ``detections``).

Elements without a finite box (or point) cannot be drawn and are left out, with their children.
:func:`from_supervision` rebuilds the :class:`~sceneparser.hierarchy.Hierarchy`; detections
without ``level`` (from any other detector) become objects named by ``class_name``.
"""

from __future__ import annotations

import math
from typing import Any

from sceneparser.errors import require
from sceneparser.hierarchy import Affordance, Hierarchy, Part, SceneObject

__all__ = ["to_supervision", "from_supervision"]


def _sv():
    return require("supervision", "supervision")


def _finite(values: Any) -> bool:
    return values is not None and all(math.isfinite(v) for v in values)


def _score(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def to_supervision(hierarchy: Hierarchy):
    """``(sv.Detections, sv.KeyPoints)`` for a hierarchy (see the module docstring)."""
    import numpy as np

    sv = _sv()
    boxes, scores, names, levels, obj_names, part_names, obj_index = [], [], [], [], [], [], []
    points, point_scores, actions, det_index = [], [], [], []
    for obj in hierarchy.objects:
        if not _finite(obj.box):
            continue
        oi = len(boxes)
        boxes.append(obj.box), scores.append(obj.score), names.append(str(obj.name)), levels.append("object")
        obj_names.append(obj.name), part_names.append(None), obj_index.append(oi)
        for part in obj.parts:
            if not _finite(part.box):
                continue
            pi = len(boxes)
            boxes.append(part.box), scores.append(part.score), names.append(f"{obj.name}:{part.name}")
            levels.append("part"), obj_names.append(obj.name), part_names.append(part.name), obj_index.append(oi)
            for aff in part.affordances:
                if _finite(aff.point):
                    points.append([aff.point]), point_scores.append([_score(aff.score)])
                    actions.append(aff.action), det_index.append(pi)
    classes = sorted(set(names))
    if boxes:
        detections = sv.Detections(
            xyxy=np.asarray(boxes, dtype=np.float64),
            confidence=None if all(s is None for s in scores) else np.asarray([_score(s) for s in scores]),
            class_id=np.asarray([classes.index(n) for n in names], dtype=int),
            data={"class_name": np.asarray(names, dtype=object), "level": np.asarray(levels, dtype=object),
                  "object_name": np.asarray(obj_names, dtype=object), "part_name": np.asarray(part_names, dtype=object),
                  "object_index": np.asarray(obj_index, dtype=int)},
            metadata={"class_names": classes},
        )
    else:
        detections = sv.Detections.empty()
        detections.metadata = {"class_names": []}
    if points:
        action_names = sorted({str(a) for a in actions})
        keypoints = sv.KeyPoints(
            xy=np.asarray(points, dtype=np.float64),
            class_id=np.asarray([action_names.index(str(a)) for a in actions], dtype=int),
            keypoint_confidence=None if all(math.isnan(s[0]) for s in point_scores) else np.asarray(point_scores),
            data={"action": np.asarray(actions, dtype=object), "detection_index": np.asarray(det_index, dtype=int)},
        )
    else:
        keypoints = sv.KeyPoints.empty()
    return detections, keypoints


def _value(x: Any) -> Any:
    """A numpy scalar as a plain Python value (NaN -> None)."""
    if x is None:
        return None
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def from_supervision(detections, keypoints=None) -> Hierarchy:
    """The :class:`Hierarchy` of :func:`to_supervision`'s output (``keypoints`` optional)."""
    n = len(detections)
    data = detections.data or {}
    conf = detections.confidence
    names = data.get("class_name")

    def name_of(i: int) -> Any:
        if names is not None:
            return _value(names[i])
        cid = detections.class_id
        return None if cid is None else str(_value(cid[i]))

    def box_of(i: int) -> tuple:
        return tuple(float(v) for v in detections.xyxy[i])

    def score_of(i: int) -> float | None:
        return None if conf is None else _value(conf[i])

    objects: list[SceneObject] = []
    row_object: dict[int, SceneObject] = {}
    row_part: dict[int, Part] = {}
    levels = data.get("level")
    for i in range(n):
        if levels is None or levels[i] == "object":
            name = _value(data["object_name"][i]) if levels is not None else name_of(i)
            obj = SceneObject(name=name, box=box_of(i), score=score_of(i))
            objects.append(obj)
            row_object[i] = obj
    if levels is not None:
        for i in range(n):
            if levels[i] != "part":
                continue
            owner = row_object.get(int(data["object_index"][i]))
            if owner is None:
                continue
            part = Part(name=_value(data["part_name"][i]), box=box_of(i), score=score_of(i))
            owner.parts.append(part)
            row_part[i] = part
    if keypoints is not None and len(keypoints):
        kd = keypoints.data or {}
        kconf = keypoints.keypoint_confidence
        for k in range(len(keypoints)):
            part = row_part.get(int(kd["detection_index"][k])) if "detection_index" in kd else None
            if part is None:
                continue
            score = None if kconf is None else _value(kconf[k][0])
            part.affordances.append(Affordance(action=_value(kd["action"][k]),
                                               point=tuple(float(v) for v in keypoints.xy[k][0]), score=score))
    return Hierarchy(objects=objects)
