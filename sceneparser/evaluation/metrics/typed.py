"""Typed reading for the object-level metric: msgspec decodes only the fields it reads, checked.

``msgspec.json.Decoder(AnswerLine)`` builds small structs instead of dicts, skips every other
field (``raw_response``, ``question``, GT ``points``...) and checks in C what the dict reader
(:mod:`.reading`) checks in Python: boxes are ``null`` or 4 numbers, points ``null`` or 2,
containers are lists of objects, ``mask_path`` is a string or null. :class:`TypedReader` then
builds the same records as :class:`~.reading.SampleReader` with the same filters.

Only what decodes exactly as the standard library would is accepted; anything else raises
``msgspec.MsgspecError`` (or ``RecursionError``) and the caller takes the dict path, which reads
it (or names the bad field) as before. So: no ``NaN``/``Infinity`` or numbers beyond the float
range, no integers beyond 64 bits (``json.loads`` keeps them exact, as msgspec does, but the dict
path also handles the ones beyond the float range), no booleans in boxes, no invalid UTF-8 or
lone surrogates, no BOM. Fields keep JSON's presence rules where the reference has them
(``"affordance_bbox" in a``, ``"point" in a``, ``"part_bbox" in a``, ``"objects" in pred``):
absent is ``UNSET``, distinct from ``null``. Duplicate keys: the last wins, as in ``json.loads``.

msgspec skips the fields it does not read without checking their text, so the caller checks
UTF-8 itself (:mod:`.files`). The one difference left: an integer of more than 4300 digits in a
field the metric does not read (``json.loads`` refuses it, Python's int-to-string limit) lets
the line be scored instead of reported unreadable.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from sceneparser.evaluation.metrics.labels import LabelMap
from sceneparser.evaluation.metrics.primitives import normalize_label
from sceneparser.evaluation.metrics.reading import NONE_ACTIONS, PSEUDO_PART

Int64 = Annotated[int, Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]
Number = Union[Int64, float]
Box = Union[Annotated[list[Number], Meta(min_length=4, max_length=4)], None]
Point = Union[Annotated[list[Number], Meta(min_length=2, max_length=2)], None]

DECODE_ERRORS = (msgspec.MsgspecError, RecursionError)


class Affordance(Struct, gc=False):
    action: Any = None
    affordance_bbox: Union[Box, UnsetType] = UNSET
    bbox: Box = None
    part_bbox: Union[Box, UnsetType] = UNSET
    mask_path: Union[str, None] = None
    point: Union[Point, UnsetType] = UNSET
    affordance_point: Point = None


class Part(Struct, gc=False):
    part_name: Any = None
    bbox: Box = None
    affordances: Union[list[Affordance], None] = None
    is_pseudo_part: Any = False


class Object(Struct, gc=False):
    name: Any = None
    bbox: Box = None
    parts: Union[list[Part], None] = None
    affordances: Union[list[Affordance], None] = None


class Objects(Struct, gc=False):
    objects: Union[list[Object], None, UnsetType] = UNSET


class AnswerLine(Struct, gc=False):
    gt: Union[Objects, None] = None
    extracted_predictions: Union[Objects, None] = None


def answer_decoder() -> msgspec.json.Decoder:
    return msgspec.json.Decoder(AnswerLine)


class TypedReader:
    """:class:`~.reading.SampleReader` (object level) for decoded :class:`AnswerLine` structs."""

    def __init__(self, *, ignore_pseudo_part: bool, ignore_none_action: bool, part_labels: LabelMap,
                 action_labels: LabelMap, normalize_object_names: bool):
        self.ignore_pseudo_part = ignore_pseudo_part
        self.ignore_none_action = ignore_none_action
        self.part_labels = part_labels
        self.action_labels = action_labels
        self.normalize_names = normalize_object_names
        self.masks: list = []  # the GT affordances' mask paths of the last sample read

    def read(self, line: AnswerLine) -> tuple[list, list, float]:
        """``(gt objects, predicted objects, json_ok)`` records of one decoded line."""
        if self.masks:
            self.masks = []
        gt = line.gt
        pred = line.extracted_predictions
        gobjs = (gt.objects or []) if gt is not None else []
        if pred is None:
            pobjs, json_ok = [], 0.0
        else:
            pobjs, json_ok = pred.objects or [], 0.0 if pred.objects is UNSET else 1.0
        return self.objects(gobjs, True), self.objects(pobjs, False), json_ok

    def objects(self, objs: list, is_gt: bool) -> list:
        records = []
        for o in objs:
            if o.parts:
                parts, part_affs, sem_parts, sem_actions = self.parts(o.parts, is_gt)
            else:
                parts, part_affs, sem_parts, sem_actions = [], [], (), ()
            if not part_affs:  # the legacy object-level list stands in
                sem_actions = []
                part_affs = self.affordances(o.affordances, is_gt, None, sem_actions) if o.affordances else []
                n_part_affs = 0
            else:
                n_part_affs = len(part_affs)
            name = normalize_label(o.name) if self.normalize_names else o.name
            records.append((name, o.bbox, parts, n_part_affs, len(part_affs), part_affs,
                            sem_parts if parts else (), sem_actions if part_affs else ()))
        return records

    def parts(self, raw_parts: list, is_gt: bool) -> tuple[list, list, list, list]:
        """(part records, their affordances concatenated, semantic part names, semantic actions)."""
        pseudo = self.ignore_pseudo_part
        cache = self.part_labels.cache
        labels = self.part_labels
        affordances = self.affordances
        parts = []
        flat: list = []
        sem_parts = []
        sem_actions: list = []
        for p in raw_parts:
            pname = p.part_name
            lab = cache.get(pname) if pname.__class__ is str else None
            if lab is None:
                lab = labels(pname)
            if pseudo and (p.is_pseudo_part or lab[0] == PSEUDO_PART):
                continue
            pbox = p.bbox
            if p.affordances:
                affs = affordances(p.affordances, is_gt, pbox, sem_actions)
                flat += affs
            else:
                affs = []
            if pname:
                sem_parts.append(lab[1])
            parts.append((lab[1], pbox, affs, pname))
        return parts, flat, sem_parts, sem_actions

    def affordances(self, affs: list, is_gt: bool, part_box, sem_actions: list) -> list:
        """GT or predicted affordance records (``part_box``: the GT region fallback)."""
        none_filter = self.ignore_none_action
        cache = self.action_labels.cache
        labels = self.action_labels
        out = []
        for a in affs:
            act = a.action
            lab = cache.get(act) if act.__class__ is str else None
            if lab is None:
                lab = labels(act)
            if none_filter and lab[0] in NONE_ACTIONS:
                continue
            if act:
                sem_actions.append(lab[1])
            if is_gt:
                region = a.bbox if a.affordance_bbox is UNSET else a.affordance_bbox
                fallback = part_box if a.part_bbox is UNSET else a.part_bbox
                if a.mask_path:
                    self.masks.append(a.mask_path)
                out.append((lab[1], act, a.mask_path, region, fallback))
            else:
                out.append((lab[1], act, a.affordance_point if a.point is UNSET else a.point))
        return out
