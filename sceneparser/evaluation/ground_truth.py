"""Per-sample ground truth: ``build_gt_for_category`` (docs/reference.md, *object-metric*).

For one benchmark record (one image) and one category (an object ``phrase``), the ground truth
of the sample is every object with exactly that phrase, with its parts (named, with a box) and
their affordances (with an action, and a box or sampled points). ``is_pseudo_part`` is not
carried over (the reference drops it, so the pseudo-part filter works by name only), GT objects
with ``object_bbox: null`` are kept (they can never be matched), and ``has_part`` /
``has_affordance`` are informational.

Records the reference crashes on (``objects`` not a list, an object/part/affordance that is not
a JSON object, ``parts``/``affordances``/``sampled_points`` of the wrong type) raise
:class:`sceneparser.errors.InputError` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

from typing import Any

from sceneparser.errors import InputError

__all__ = ["build_gt_for_category"]


def build_gt_for_category(record: dict, category: Any) -> dict:
    """``{"objects": [...]}`` in the answer schema for the objects of ``record`` named ``category``."""
    if not isinstance(record, dict):
        raise InputError(f"a benchmark record must be a JSON object, got {type(record).__name__}")
    objects = record.get("objects", [])
    if not isinstance(objects, list):
        raise InputError(f"record.objects must be a list, got {type(objects).__name__}")
    gt_objects = []
    for oi, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise InputError(f"record.objects[{oi}] must be a JSON object, got {type(obj).__name__}")
        if obj.get("phrase") != category:
            continue
        gt_parts = []
        parts = obj.get("parts", [])
        if parts and not isinstance(parts, list):
            raise InputError(f"record.objects[{oi}].parts must be a list or null, got {type(parts).__name__}")
        for pi, part in enumerate(parts or []):
            where = f"record.objects[{oi}].parts[{pi}]"
            if not isinstance(part, dict):
                raise InputError(f"{where} must be a JSON object, got {type(part).__name__}")
            if not (part.get("part_name") and part.get("part_bbox") is not None):
                continue  # dropped with its affordances
            affs = part.get("affordances", [])
            if affs and not isinstance(affs, list):
                raise InputError(f"{where}.affordances must be a list or null, got {type(affs).__name__}")
            part_affordances = []
            for ai, aff in enumerate(affs or []):
                if not isinstance(aff, dict):
                    raise InputError(f"{where}.affordances[{ai}] must be a JSON object, got {type(aff).__name__}")
                sampled = aff.get("sampled_points") or []
                if not isinstance(sampled, list):
                    raise InputError(
                        f"{where}.affordances[{ai}].sampled_points must be a list or null, got {type(sampled).__name__}"
                    )
                if aff.get("action") and (aff.get("affordance_bbox") is not None or sampled):
                    part_affordances.append(
                        {
                            "action": aff.get("action"),
                            "affordance_bbox": aff.get("affordance_bbox"),
                            "mask_path": aff.get("mask_path"),
                            "points": sampled,
                            "point": sampled[0] if sampled else None,
                        }
                    )
            gt_parts.append({"part_name": part.get("part_name"), "bbox": part.get("part_bbox"),
                             "affordances": part_affordances})
        gt_objects.append(
            {
                "name": obj.get("phrase"),
                "bbox": obj.get("object_bbox"),
                "has_part": len(gt_parts) > 0,
                "has_affordance": any(p["affordances"] for p in gt_parts),
                "parts": gt_parts,
                "affordances": [],
            }
        )
    return {"objects": gt_objects}

