"""The fast reader: one answer line (a dict) -> ground-truth and predicted records.

It applies the filters while reading (the reference ``*_with_filters.py`` semantics, without
copying anything) and checks every field it uses, raising :class:`Malformed` (or a
``TypeError``/``OverflowError`` from the arithmetic checks) on a bad one; the slow validator
(:mod:`.validation`) then names the field. Record layouts: :mod:`.records`.

``check_wide=True`` is for dicts parsed by orjson, which turns integers beyond 64 bits into
floats where the standard library keeps ints: wherever such a value could change a number
(a box or point whose coordinate sum is NaN, infinite or beyond +-2**53, a float label of
magnitude >= 2**63) the reader raises :class:`WideNumber` and the caller re-parses the line
with the standard library. (A coordinate beyond 2**63 cancelled in its box's sum by another
of the opposite sign beyond 2**61 is the one case this does not see.)
"""

from __future__ import annotations

from sceneparser.evaluation.metrics.labels import LabelMap
from sceneparser.evaluation.metrics.primitives import normalize_label

MAX_FLOAT = 1.7976931348623157e308
PSEUDO_PART = "__placeholder_part__"
NONE_ACTIONS = frozenset({"__none__", "__placeholder_action__"})
SEQUENCES = frozenset({list, tuple})
_WIDE = 2.0 ** 53
_WIDE_LABEL = 2.0 ** 63


class Malformed(Exception):
    """A field the reader cannot use; the validator finds and names it."""


class WideNumber(Exception):
    """A number that orjson may have parsed differently from the standard library."""


def coords_ok(v, n: int) -> bool:
    """A list of exactly ``n`` real numbers (bools count, as in Python; non-finite floats too)."""
    if v.__class__ not in SEQUENCES or len(v) != n:
        return False
    for x in v:
        if type(x) is float:
            continue
        if isinstance(x, int) and -MAX_FLOAT <= x <= MAX_FLOAT:
            continue
        return False
    return True


def scene_point(aff: dict):
    """Scene-level predicted point: ``point`` if a list of >= 2, else ``points``/``sampled_points``[0]."""
    p = aff.get("point")
    if isinstance(p, list) and len(p) >= 2:
        return [p[0], p[1]]
    points = aff.get("points") or aff.get("sampled_points") or []
    if isinstance(points, list) and points and isinstance(points[0], list) and len(points[0]) >= 2:
        return [points[0][0], points[0][1]]
    return None


def _check_box(box, n: int, check_wide: bool) -> None:
    """``box`` (not None) must be a list/tuple of ``n`` numbers (TypeError/OverflowError otherwise)."""
    if box.__class__ not in SEQUENCES or len(box) != n:
        raise Malformed
    s = sum(box)
    s + 0.0  # TypeError on non-numbers, OverflowError on huge ints
    if check_wide and not -_WIDE < s < _WIDE:
        raise WideNumber


def _check_label(value, check_wide: bool) -> None:
    if check_wide and value.__class__ is float and not -_WIDE_LABEL < value < _WIDE_LABEL:
        raise WideNumber


class SampleReader:
    """Reads answer lines for one metric level with its filters and label maps."""

    def __init__(self, *, scene: bool, ignore_pseudo_part: bool, ignore_none_action: bool,
                 part_labels: LabelMap, action_labels: LabelMap, normalize_object_names: bool):
        self.scene = scene
        self.ignore_pseudo_part = ignore_pseudo_part
        self.ignore_none_action = ignore_none_action
        self.part_labels = part_labels
        self.action_labels = action_labels
        self.normalize_names = scene or normalize_object_names
        self.masks: list = []  # the GT affordances' mask paths of the last sample read

    def read(self, sample, check_wide: bool = False) -> tuple[list, list, float]:
        """``(gt objects, predicted objects, json_ok)`` records of one answer line."""
        if self.masks:
            self.masks = []
        if not isinstance(sample, dict):
            raise Malformed
        gobjs, pobjs, json_ok = self.containers(sample)
        return self.objects(gobjs, True, check_wide), self.objects(pobjs, False, check_wide), json_ok

    @staticmethod
    def containers(sample: dict):
        """(gt objects, pred objects, json_ok) with null -> empty; Malformed on wrong types."""
        gt = sample.get("gt")
        if isinstance(gt, dict):
            gobjs = gt.get("objects") or []
            if type(gobjs) is not list:
                raise Malformed
        elif not gt:
            gobjs = []
        else:
            raise Malformed
        pred = sample.get("extracted_predictions")
        if isinstance(pred, dict):
            json_ok = 1.0 if "objects" in pred else 0.0
            pobjs = pred.get("objects") or []
            if type(pobjs) is not list:
                raise Malformed
        elif not pred:
            pobjs = []
            json_ok = 0.0
        else:
            raise Malformed
        return gobjs, pobjs, json_ok

    # ------------------------------------------------------------------ objects and parts
    def objects(self, objs: list, is_gt: bool, check_wide: bool) -> list:
        records = []
        for o in objs:
            if not isinstance(o, dict):
                raise Malformed
            box = o.get("bbox")
            if box is not None:  # _check_box, inlined
                if box.__class__ not in SEQUENCES or len(box) != 4:
                    raise Malformed
                s = sum(box)
                s + 0.0
                if check_wide and not -_WIDE < s < _WIDE:
                    raise WideNumber
            raw_parts = o.get("parts")
            if raw_parts:
                parts, part_affs, sem_parts, sem_actions = self.parts(raw_parts, is_gt, check_wide)
            else:
                parts, part_affs, sem_parts, sem_actions = [], [], (), ()
            raw = o.get("affordances")  # the legacy object-level list
            obj_sem_actions: list = []
            obj_affs = []
            if raw:
                n_masks = len(self.masks)
                obj_affs = self.affordances(raw, is_gt, None, check_wide, obj_sem_actions)
                if part_affs and not self.scene:  # read (checked) but not scored: its masks do not count
                    del self.masks[n_masks:]
            name = o.get("name")
            if name.__class__ is not str:
                _check_label(name, check_wide)
            if self.normalize_names:
                name = normalize_label(name)
            n_part_affs = len(part_affs)
            if self.scene:
                affs = part_affs + obj_affs if n_part_affs else obj_affs
                records.append((name, box, parts, n_part_affs, len(affs), affs, None, None))
            else:
                if not n_part_affs:
                    part_affs, sem_actions = obj_affs, obj_sem_actions
                records.append((name, box, parts, n_part_affs, len(part_affs), part_affs,
                                sem_parts if parts else (), sem_actions if part_affs else ()))
        return records

    def parts(self, raw_parts, is_gt: bool, check_wide: bool) -> tuple[list, list, list, list]:
        """(part records, their affordances concatenated, semantic part names, semantic actions).

        Pseudo parts are dropped when filtering. The semantic lists hold the canonical labels of
        the parts / affordances whose raw label is truthy.
        """
        if raw_parts.__class__ is not list:
            raise Malformed
        pseudo = self.ignore_pseudo_part
        cache = self.part_labels.cache
        labels = self.part_labels
        affordances = self.affordances
        parts = []
        flat: list = []
        sem_parts = []
        sem_actions: list = []
        for p in raw_parts:
            if not isinstance(p, dict):
                raise Malformed
            pname = p.get("part_name")
            lab = cache.get(pname) if pname.__class__ is str else None
            if lab is None:
                _check_label(pname, check_wide)
                lab = labels(pname)
            if pseudo and (p.get("is_pseudo_part", False) or lab[0] == PSEUDO_PART):
                continue
            pbox = p.get("bbox")
            if pbox is not None:  # _check_box, inlined
                if pbox.__class__ not in SEQUENCES or len(pbox) != 4:
                    raise Malformed
                s = sum(pbox)
                s + 0.0
                if check_wide and not -_WIDE < s < _WIDE:
                    raise WideNumber
            raw_affs = p.get("affordances")
            if raw_affs:
                affs = affordances(raw_affs, is_gt, pbox, check_wide, sem_actions)
                flat += affs
            else:
                affs = []
            if pname:
                sem_parts.append(lab[1])
            parts.append((lab[1], pbox, affs, pname))
        return parts, flat, sem_parts, sem_actions

    # ------------------------------------------------------------------ affordances
    def affordances(self, affs, is_gt: bool, part_box, check_wide: bool, sem_actions: list) -> list:
        """Affordance records of one list (``part_box``: the GT region fallback); the canonical
        actions of those with a truthy raw action are appended to ``sem_actions``."""
        if affs.__class__ is not list:
            raise Malformed
        if is_gt:
            return self._gt_affordances(affs, part_box, check_wide, sem_actions)
        return self._pred_affordances(affs, check_wide, sem_actions)

    def _gt_affordances(self, affs: list, part_box, check_wide: bool, sem_actions: list) -> list:
        out = []
        skip_non_dict = self.scene and not self.ignore_none_action  # the scene metric ignores them
        none_filter = self.ignore_none_action
        need_action = self.scene  # the scene metric counts only affordances with an action
        cache = self.action_labels.cache
        labels = self.action_labels
        for a in affs:
            if not isinstance(a, dict):
                if skip_non_dict:
                    continue
                raise Malformed
            act = a.get("action")
            lab = cache.get(act) if act.__class__ is str else None
            if lab is None:
                _check_label(act, check_wide)
                lab = labels(act)
            if none_filter and lab[0] in NONE_ACTIONS:
                continue
            region = a["affordance_bbox"] if "affordance_bbox" in a else a.get("bbox")
            if region is not None:  # _check_box, inlined
                if region.__class__ not in SEQUENCES or len(region) != 4:
                    raise Malformed
                s = sum(region)
                s + 0.0
                if check_wide and not -_WIDE < s < _WIDE:
                    raise WideNumber
            if "part_bbox" in a:
                fallback = a["part_bbox"]
                if fallback is not None:
                    if not coords_ok(fallback, 4):
                        raise Malformed
                    if check_wide:
                        _check_box(fallback, 4, True)
            else:
                fallback = part_box
            mask = a.get("mask_path")
            if mask and mask.__class__ is not str:
                raise Malformed
            if act:
                sem_actions.append(lab[1])
            elif need_action:
                continue
            if mask:
                self.masks.append(mask)
            out.append((lab[1], act, mask, region, fallback))
        return out

    def _pred_affordances(self, affs: list, check_wide: bool, sem_actions: list) -> list:
        out = []
        scene = self.scene
        skip_non_dict = scene and not self.ignore_none_action  # the scene metric ignores them
        none_filter = self.ignore_none_action
        cache = self.action_labels.cache
        labels = self.action_labels
        for a in affs:
            if not isinstance(a, dict):
                if skip_non_dict:
                    continue
                raise Malformed
            act = a.get("action")
            lab = cache.get(act) if act.__class__ is str else None
            if lab is None:
                _check_label(act, check_wide)
                lab = labels(act)
            if none_filter and lab[0] in NONE_ACTIONS:
                continue
            if scene:
                pt = self._scene_point(a, check_wide)
                if not act:
                    continue  # the scene metric counts only affordances with an action
            else:
                pt = a["point"] if "point" in a else a.get("affordance_point")
                if pt is not None:  # _check_box, inlined
                    if pt.__class__ not in SEQUENCES or len(pt) != 2:
                        raise Malformed
                    s = sum(pt)
                    s + 0.0
                    if check_wide and not -_WIDE < s < _WIDE:
                        raise WideNumber
            if act:
                sem_actions.append(lab[1])
            out.append((lab[1], act, pt))
        return out

    @staticmethod
    def _scene_point(a: dict, check_wide: bool):
        pt = scene_point(a)
        if pt is not None:
            if not coords_ok(pt, 2):
                raise Malformed
            if check_wide:
                _check_box(pt, 2, True)
        return pt
