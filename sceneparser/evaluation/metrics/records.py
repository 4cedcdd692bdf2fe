"""The light records the reader builds once per sample (plain tuples, for speed) and their fields.

The input dicts are never modified. Use the index constants (or unpack) instead of bare
numbers. Objects and parts keep the name at 0 and the box at 1, so one IoU table serves both.

Object ``(name, box, parts, n_part_affs, n_affs, affs, semantic_parts, semantic_actions)``:
    ``affs`` -- object level: the part-level affordances, or the object-level ones when no
    part has any (the reference ``get_object_affordances``); scene level: part-level +
    object-level. ``n_affs == len(affs)``. ``semantic_*`` (object level only, else None):
    canonical labels of the parts / affordances whose raw label is truthy.
Part ``(name, box, affs, raw_name)``: ``name`` canonical.
GT affordance ``(action, raw_action, mask_path, region_box, part_box)``: ``part_box`` is the
    region fallback (the affordance's own ``part_bbox`` when given, else its part's box).
Predicted affordance ``(action, raw_action, point)``.
"""

from __future__ import annotations

OBJ_NAME, OBJ_BOX, OBJ_PARTS, OBJ_N_PART_AFFS, OBJ_N_AFFS, OBJ_AFFS, OBJ_SEM_PARTS, OBJ_SEM_ACTIONS = range(8)
PART_NAME, PART_BOX, PART_AFFS, PART_RAW_NAME = range(4)
AFF_ACTION, AFF_RAW_ACTION = 0, 1  # both kinds
GT_AFF_MASK, GT_AFF_REGION, GT_AFF_PART_BOX = 2, 3, 4
PRED_AFF_POINT = 2

# structure bits of a matched object pair (GT has parts / part-level affordances / any affordance;
# the prediction the same): ObjectLevelMetric.obj_patterns counts matched pairs by these bits
GT_PARTS, GT_PART_AFFS, GT_ANY_AFFS, PRED_PARTS, PRED_PART_AFFS, PRED_ANY_AFFS = 1, 2, 4, 8, 16, 32
# matched part pairs at IoU 0.5 by which side has affordances (ObjectLevelMetric.pair_patterns)
PAIR_NEITHER, PAIR_GT_ONLY, PAIR_PRED_ONLY, PAIR_BOTH = 0, 1, 2, 3
