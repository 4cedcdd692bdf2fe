"""The reference filter wrappers (docs/reference.md, *filters*): pseudo parts and none actions.

``filter_sample`` returns a filtered copy (the input is not modified), applied to both the
ground truth and the prediction, exactly as ``*_with_filters.py`` does before it runs the base
metric: ``gt``/``extracted_predictions``/``objects``/``parts``/``affordances`` that are null
become empty lists; with ``ignore_pseudo_part`` parts named ``__placeholder_part__`` (any case or
surrounding space) or flagged ``is_pseudo_part`` are removed with their affordances; with
``ignore_none_action`` affordances whose action is ``__none__`` / ``__placeholder_action__`` are
removed. ``""``, ``"none"``, ``"null"`` and null actions are kept, as in the reference.

The metrics in :mod:`sceneparser.evaluation.metrics` can apply the same filters while they
read a sample (``ObjectLevelMetric(ignore_pseudo_part=True, ...)``) without copying anything;
both routes give identical numbers.
"""

from __future__ import annotations

from typing import Any

from sceneparser.errors import InputError

__all__ = ["filter_sample", "filter_object", "is_pseudo_part", "is_none_action", "norm",
           "PLACEHOLDER_PART", "NONE_ACTIONS"]

PLACEHOLDER_PART = "__placeholder_part__"
NONE_ACTIONS = frozenset({"__none__", "__placeholder_action__"})


def norm(value: Any) -> str:
    """``str(value or "").strip().lower()`` -- the reference label normalisation."""
    return str(value or "").strip().lower()


def is_pseudo_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    if part.get("is_pseudo_part", False):
        return True
    return norm(part.get("part_name")) == PLACEHOLDER_PART


def is_none_action(aff: dict) -> bool:
    return norm(aff.get("action")) in NONE_ACTIONS


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _affs(value: Any, ignore_none_action: bool, where: str) -> list:
    affs = value or []
    if not isinstance(affs, list):
        raise InputError(f"{where} must be a list or null, got {type(affs).__name__}")
    if ignore_none_action:
        return [a for i, a in enumerate(affs) if not is_none_action(_dict(a, f"{where}[{i}]"))]
    return list(affs)


def filter_object(obj: dict, ignore_pseudo_part: bool, ignore_none_action: bool, where: str = "object") -> dict:
    o = dict(_dict(obj, where))
    parts = o.get("parts", []) or []
    if not isinstance(parts, list):
        raise InputError(f"{where}.parts must be a list or null, got {type(parts).__name__}")
    out_parts = []
    for i, part in enumerate(parts):
        if ignore_pseudo_part and is_pseudo_part(part):
            continue
        p = dict(_dict(part, f"{where}.parts[{i}]"))
        p["affordances"] = _affs(p.get("affordances", []), ignore_none_action, f"{where}.parts[{i}].affordances")
        out_parts.append(p)
    o["parts"] = out_parts
    if "affordances" in o:  # legacy object-level list
        o["affordances"] = _affs(o.get("affordances", []), ignore_none_action, f"{where}.affordances")
    return o


def filter_sample(sample: dict, ignore_pseudo_part: bool = False, ignore_none_action: bool = False) -> dict:
    """A filtered copy of one answer line (the reference wrapper's ``filter_sample``)."""
    s = dict(_dict(sample, "sample"))
    out = {}
    for key in ("gt", "extracted_predictions"):
        d = dict(_dict(s.get(key, {}) or {}, key))
        objs = d.get("objects", []) or []
        if not isinstance(objs, list):
            raise InputError(f"{key}.objects must be a list or null, got {type(objs).__name__}")
        d["objects"] = [
            filter_object(o, ignore_pseudo_part, ignore_none_action, f"{key}.objects[{i}]") for i, o in enumerate(objs)
        ]
        out[key] = d
    s.update(out)
    return s
