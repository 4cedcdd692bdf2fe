"""The typed SceneParser hierarchy: scene -> object -> part -> affordance, in pixel coordinates.

Three serialisations:

* **token JSON** -- what the model reads and writes (training target format; docs/reference.md, *parser*)::

    {"objects": [{"name": "mug", "bbox": "<0><0><99><99>", "parts": [{"part_name": "handle",
      "bbox": "<...>", "affordances": [{"action": "grasp", "point": "<x><y>"}]}]}]}

  ``to_token_json(width, height)`` quantises with :func:`sceneparser.coords.quantize`;
  ``from_token_json(text, width, height)`` parses model text with
  :func:`sceneparser.parsing.parse_prediction` (so it accepts anything the parser does).
* **pixel JSON** -- the same nesting and keys with pixel lists instead of token strings
  (``to_pixel_dict`` / ``from_pixel_dict``).
* **prediction** -- the reference answer schema (``extracted_predictions``): objects with
  ``name, bbox, has_part, has_affordance, parts, affordances`` (``from_prediction`` /
  ``to_prediction``).

The models validate types, not content: names may be any string (or None), boxes may be
inverted or lie outside the image -- they are what the model said.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterator, Optional, Tuple

from pydantic import BaseModel, ConfigDict, Field

from sceneparser.coords import box_to_tokens, point_to_tokens
from sceneparser.parsing import parse_prediction

Box = Tuple[float, float, float, float]
Point = Tuple[float, float]

__all__ = ["Affordance", "Part", "SceneObject", "Hierarchy", "Box", "Point"]


def _as_name(value: Any) -> Optional[str]:
    """Names from model output may be any JSON value; keep strings, stringify other scalars."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _as_coords(value: Any, n: int) -> Optional[tuple]:
    """A list/tuple of ``n`` real numbers -> tuple of floats; anything else -> None."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            out.append(float(v))
        except OverflowError:
            return None
    return tuple(out)


def _finite(values: Optional[tuple]) -> bool:
    return values is not None and all(math.isfinite(v) for v in values)


def _scored(d: dict, score: Optional[float]) -> dict:
    """``d`` with its ``score`` last, when there is one (answers without scores keep their shape)."""
    if score is not None:
        d["score"] = score
    return d


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Affordance(_Model):
    """An action on a part, with the interaction point ``(x, y)`` in pixels."""

    action: Optional[str] = None
    point: Optional[Point] = None
    score: Optional[float] = None  # confidence (sceneparser.scores); None when unknown

    def to_token_dict(self, width: float, height: float) -> dict:
        pt = point_to_tokens(self.point, width, height) if _finite(self.point) else None
        return {"action": self.action, "point": pt}

    def to_pixel_dict(self) -> dict:
        return _scored({"action": self.action, "point": None if self.point is None else list(self.point)}, self.score)


class Part(_Model):
    """A named part with its box ``(x0, y0, x1, y1)`` in pixels and its affordances."""

    name: Optional[str] = None
    box: Optional[Box] = None
    affordances: list[Affordance] = Field(default_factory=list)
    score: Optional[float] = None

    def to_token_dict(self, width: float, height: float) -> dict:
        return {
            "part_name": self.name,
            "bbox": box_to_tokens(self.box, width, height) if _finite(self.box) else None,
            "affordances": [a.to_token_dict(width, height) for a in self.affordances],
        }

    def to_pixel_dict(self) -> dict:
        return _scored({
            "part_name": self.name,
            "bbox": None if self.box is None else list(self.box),
            "affordances": [a.to_pixel_dict() for a in self.affordances],
        }, self.score)


class SceneObject(_Model):
    """An object instance: its name (the category), box in pixels, and parts."""

    name: Optional[str] = None
    box: Optional[Box] = None
    parts: list[Part] = Field(default_factory=list)
    score: Optional[float] = None

    def to_token_dict(self, width: float, height: float) -> dict:
        return {
            "name": self.name,
            "bbox": box_to_tokens(self.box, width, height) if _finite(self.box) else None,
            "parts": [p.to_token_dict(width, height) for p in self.parts],
        }

    def to_pixel_dict(self) -> dict:
        return _scored({
            "name": self.name,
            "bbox": None if self.box is None else list(self.box),
            "parts": [p.to_pixel_dict() for p in self.parts],
        }, self.score)


class Hierarchy(_Model):
    """The whole parse of one image (or one queried category): a list of objects."""

    objects: list[SceneObject] = Field(default_factory=list)

    # ---------------------------------------------------------------- iteration helpers
    def iter_parts(self) -> Iterator[tuple[SceneObject, Part]]:
        for obj in self.objects:
            for part in obj.parts:
                yield obj, part

    def iter_affordances(self) -> Iterator[tuple[SceneObject, Part, Affordance]]:
        for obj, part in self.iter_parts():
            for aff in part.affordances:
                yield obj, part, aff

    # ---------------------------------------------------------------- token JSON
    def to_token_dict(self, width: float, height: float) -> dict:
        return {"objects": [o.to_token_dict(width, height) for o in self.objects]}

    def to_token_json(self, width: float, height: float) -> str:
        """Token JSON text as the model emits it (``json.dumps`` defaults, ``ensure_ascii=False``).

        Coordinates are quantised with floor bins; a missing or non-finite box/point becomes null.
        """
        return json.dumps(self.to_token_dict(width, height), ensure_ascii=False)

    @classmethod
    def from_token_json(cls, text: str, width: float, height: float, mode: str = "reference") -> "Hierarchy":
        """Parse model text (see :func:`sceneparser.parsing.parse_prediction`) into a hierarchy.

        Never raises on bad text: an unparsable answer gives an empty hierarchy. Use
        ``parse_prediction`` directly to see the parse status.
        """
        return cls.from_prediction(parse_prediction(text, width, height, mode=mode))

    # ---------------------------------------------------------------- pixel JSON
    def to_pixel_dict(self) -> dict:
        return {"objects": [o.to_pixel_dict() for o in self.objects]}

    # ---------------------------------------------------------------- confidence scores
    def with_scores(self, scores: Optional[list]) -> "Hierarchy":
        """A copy with the scores of :func:`sceneparser.scores.answer_scores` attached, element by
        element in answer order (a level whose count differs keeps ``None``)."""
        out = self.model_copy(deep=True)
        if not scores or len(scores) != len(out.objects):
            return out
        for obj, s in zip(out.objects, scores):
            obj.score = s.get("score")
            if len(s.get("parts", [])) != len(obj.parts):
                continue
            for part, ps in zip(obj.parts, s["parts"]):
                part.score = ps.get("score")
                if len(ps.get("affordances", [])) == len(part.affordances):
                    for aff, a_score in zip(part.affordances, ps["affordances"]):
                        aff.score = a_score
        return out

    def filtered(self, min_score: float) -> "Hierarchy":
        """A copy without the objects, parts and affordances scored below ``min_score``
        (elements without a score are kept)."""

        def keep(x) -> bool:
            return x.score is None or x.score >= min_score

        out = self.model_copy(deep=True)
        out.objects = [o for o in out.objects if keep(o)]
        for o in out.objects:
            o.parts = [p for p in o.parts if keep(p)]
            for p in o.parts:
                p.affordances = [a for a in p.affordances if keep(a)]
        return out

    @classmethod
    def from_pixel_dict(cls, data: dict) -> "Hierarchy":
        """Inverse of :meth:`to_pixel_dict` (strict: raises ``pydantic.ValidationError`` on bad data)."""
        objects = []
        for o in data.get("objects", []):
            parts = []
            for p in o.get("parts") or []:
                affs = [Affordance(action=a.get("action"), point=a.get("point"), score=a.get("score"))
                        for a in p.get("affordances") or []]
                parts.append(Part(name=p.get("part_name"), box=p.get("bbox"), affordances=affs, score=p.get("score")))
            objects.append(SceneObject(name=o.get("name"), box=o.get("bbox"), parts=parts, score=o.get("score")))
        return cls(objects=objects)

    # ---------------------------------------------------------------- reference answer schema
    @classmethod
    def from_prediction(cls, pred: dict) -> "Hierarchy":
        """From the reference answer schema (``extracted_predictions``); tolerant of odd values.

        Non-dict entries are skipped, non-string names are stringified (JSON), boxes/points that
        are not lists of 4/2 numbers become None. Object-level affordances are ignored, as the
        reference does.
        """
        objects = []
        raw = pred.get("objects") if isinstance(pred, dict) else None
        for o in raw if isinstance(raw, list) else []:
            if not isinstance(o, dict):
                continue
            parts = []
            for p in o.get("parts") if isinstance(o.get("parts"), list) else []:
                if not isinstance(p, dict):
                    continue
                affs = []
                for a in p.get("affordances") if isinstance(p.get("affordances"), list) else []:
                    if not isinstance(a, dict):
                        continue
                    affs.append(Affordance(action=_as_name(a.get("action")), point=_as_coords(a.get("point"), 2)))
                parts.append(
                    Part(name=_as_name(p.get("part_name")), box=_as_coords(p.get("bbox"), 4), affordances=affs)
                )
            objects.append(SceneObject(name=_as_name(o.get("name")), box=_as_coords(o.get("bbox"), 4), parts=parts))
        return cls(objects=objects)

    def to_prediction(self) -> dict:
        """To the reference answer schema, with the key order the reference parser writes."""
        return {
            "objects": [
                {
                    "name": o.name,
                    "bbox": None if o.box is None else list(o.box),
                    "has_part": None,
                    "has_affordance": None,
                    "parts": [
                        {
                            "part_name": p.name,
                            "bbox": None if p.box is None else list(p.box),
                            "affordances": [
                                {"action": a.action, "point": None if a.point is None else list(a.point)}
                                for a in p.affordances
                            ],
                        }
                        for p in o.parts
                    ],
                    "affordances": [],
                }
                for o in self.objects
            ]
        }
