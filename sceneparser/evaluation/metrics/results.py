"""The reference reports: every key, in the reference key order, from a metric's accumulators.

:func:`object_result` is the report of ``sceneparser_hierarchical_metric.py``
(docs/reference.md, *object-metric*), :func:`scene_result` that of
``sceneparser_scene_hierarchical_metric.py`` (docs/reference.md, *scene-metric*); with a
filter on, ``diagnostics`` also carries the filter wrapper's three keys.
"""

from __future__ import annotations

import json

from sceneparser.evaluation.metrics.means import int_mean
from sceneparser.evaluation.metrics.primitives import f1, harmonic3, prf_counts, ratio, scene_counts
from sceneparser.evaluation.metrics.records import (
    GT_ANY_AFFS,
    GT_PART_AFFS,
    GT_PARTS,
    PAIR_BOTH,
    PAIR_GT_ONLY,
    PAIR_NEITHER,
    PAIR_PRED_ONLY,
    PRED_ANY_AFFS,
    PRED_PART_AFFS,
    PRED_PARTS,
)


def result_text(result: dict) -> str:
    """The text the reference writes: ``json.dump(indent=2, ensure_ascii=False)``, no trailing newline."""
    return json.dumps(result, ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------------------- object level
def loose_strict(key: int) -> tuple[bool, bool]:
    """(loose, strict) structural parse success of a matched object with structure bits ``key``."""
    g_parts, g_part_affs, g_any = key & GT_PARTS, key & GT_PART_AFFS, key & GT_ANY_AFFS
    p_parts, p_part_affs, p_any = key & PRED_PARTS, key & PRED_PART_AFFS, key & PRED_ANY_AFFS
    if g_parts and g_part_affs:
        ok = bool(p_parts and p_part_affs)
        return ok, ok
    if g_parts:
        return bool(p_parts), bool(p_parts and not p_any)
    if g_any:
        return bool(p_any), bool(p_any and not p_parts)
    return False, False


def _structure_counts(obj_patterns: list, pair_patterns: list) -> dict:
    """Matched-object and matched-part-pair structure counts from the two pattern histograms."""

    def count(pred) -> int:
        return sum(n for key, n in enumerate(obj_patterns) if n and pred(key))

    matched = sum(obj_patterns)
    m_gt_parts = count(lambda k: k & GT_PARTS)
    pp = pair_patterns
    return {
        "matched": matched,
        "m_gt_parts": m_gt_parts,
        "m_gt_affs": count(lambda k: k & GT_PART_AFFS),
        "m_pred_parts": count(lambda k: k & PRED_PARTS),
        "m_pred_affs": count(lambda k: k & PRED_PART_AFFS),
        "part_mismatch": count(lambda k: k & GT_PARTS and not k & PRED_PARTS),
        "aff_mismatch": count(lambda k: k & GT_PART_AFFS and not k & PRED_PART_AFFS),
        "pexp_tp": count(lambda k: k & GT_PARTS and k & PRED_PARTS),
        "pover_base": matched - m_gt_parts,
        "pover": count(lambda k: not k & GT_PARTS and k & PRED_PARTS),
        "loose": count(lambda k: loose_strict(k)[0]),
        "strict": count(lambda k: loose_strict(k)[1]),
        "aexp_gt": pp[PAIR_GT_ONLY] + pp[PAIR_BOTH],
        "aexp_pred": pp[PAIR_PRED_ONLY] + pp[PAIR_BOTH],
        "aexp_tp": pp[PAIR_BOTH],
        "aover_base": pp[PAIR_NEITHER] + pp[PAIR_PRED_ONLY],
        "aover": pp[PAIR_PRED_ONLY],
        "aunder": pp[PAIR_GT_ONLY],
    }


def _object_diagnostics(m, s: dict) -> tuple[dict, tuple]:
    """(``diagnostics``, the expansion (p, r, p, r)) of the object-level report (``s``: :func:`_structure_counts`)."""
    t = m.totals
    matched = s["matched"]
    pexp_p, pexp_r = ratio(s["pexp_tp"], s["m_pred_parts"]), ratio(s["pexp_tp"], s["m_gt_parts"])
    aexp_p, aexp_r = ratio(s["aexp_tp"], s["aexp_pred"]), ratio(s["aexp_tp"], s["aexp_gt"])
    psem_p, psem_r = ratio(t.psem_m, t.psem_pred), ratio(t.psem_m, t.psem_gt)
    asem_p, asem_r = ratio(t.asem_m, t.asem_pred), ratio(t.asem_m, t.asem_gt)
    avg_gt_parts = int_mean(t.sum_gt_parts, matched)
    avg_pred_parts = int_mean(t.sum_pred_parts, matched)
    avg_gt_affs = int_mean(t.sum_gt_affs, matched)
    avg_pred_affs = int_mean(t.sum_pred_affs, matched)
    diagnostics = {
        "json_parse_success_rate": m.json_ok.mean(),
        "part_field_emission_rate": ratio(t.pred_with_parts, t.gt_with_parts),
        "affordance_field_emission_rate": ratio(t.pred_with_affs, t.gt_with_affs),
        "matched_object_part_emission_rate": ratio(s["m_pred_parts"], s["m_gt_parts"]),
        "matched_object_affordance_emission_rate": ratio(s["m_pred_affs"], s["m_gt_affs"]),
        "part_mismatch_rate": ratio(s["part_mismatch"], s["m_gt_parts"]),
        "affordance_mismatch_rate": ratio(s["aff_mismatch"], s["m_gt_affs"]),
        "matched_objects_at_0.5": matched,
        "loose_parse_success_count_0.5": s["loose"],
        "strict_parse_success_count_0.5": s["strict"],
        "parse_success_count_0.5": t.parse_ok,
        "hier_em_e2e_success_count_0.5": t.hier_em,
        "parse_eligible_gt_objects_0.5": t.eligible,
        "parse_rate_given_matched_object_0.5": ratio(t.parse_ok_cond, matched),
        "part_expansion_tp": s["pexp_tp"],
        "part_expansion_gt_positive": s["m_gt_parts"],
        "part_expansion_pred_positive": s["m_pred_parts"],
        "aff_expansion_tp": s["aexp_tp"],
        "aff_expansion_gt_positive": s["aexp_gt"],
        "aff_expansion_pred_positive": s["aexp_pred"],
        "part_overexpansion_rate": ratio(s["pover"], s["pover_base"]),
        "part_underexpansion_rate": ratio(s["part_mismatch"], s["m_gt_parts"]),
        "aff_overexpansion_rate": ratio(s["aover"], s["aover_base"]),
        "aff_underexpansion_rate": ratio(s["aunder"], s["aexp_gt"]),
        "part_semantic_precision": psem_p,
        "part_semantic_recall": psem_r,
        "part_semantic_f1": f1(psem_p, psem_r),
        "aff_action_precision": asem_p,
        "aff_action_recall": asem_r,
        "aff_action_f1": f1(asem_p, asem_r),
        "part_box_acc_given_semantic_0.5": ratio(t.pgeom05, t.psem_pairs),
        "part_box_acc_given_semantic_0.95": ratio(t.pgeom095, t.psem_pairs),
        "aff_point_acc_given_action": ratio(t.apoint_ok, t.asem_pairs),
        "avg_gt_parts_per_matched_object": avg_gt_parts,
        "avg_pred_parts_per_matched_object": avg_pred_parts,
        "part_overprediction_ratio": avg_pred_parts / avg_gt_parts if avg_gt_parts > 0 else 0.0,
        "avg_gt_affs_per_matched_object": avg_gt_affs,
        "avg_pred_affs_per_matched_object": avg_pred_affs,
        "aff_overprediction_ratio": avg_pred_affs / avg_gt_affs if avg_gt_affs > 0 else 0.0,
        "canonical_eval_enabled": m.canonical_eval,
        "part_mapping_path": m.part_mapping_path,
        "action_mapping_path": m.action_mapping_path,
    }
    m._filter_diagnostics(diagnostics)
    return diagnostics, (pexp_p, pexp_r, aexp_p, aexp_r)


def object_result(m) -> dict:
    """The object-level report of an :class:`~.object_level.ObjectLevelMetric`."""
    t = m.totals
    s = _structure_counts(m.obj_patterns, m.pair_patterns)
    obj05 = m.obj05.summary()
    obj095 = m.obj095.summary()
    part05 = m.part05.summary()
    part095 = m.part095.summary()
    aff = m.aff.summary()
    f_obj, f_part, f_aff = obj05["f1"], part05["f1"], aff["f1"]
    f_hier_h = harmonic3(f_obj, f_part, f_aff)
    L1 = prf_counts(t.obj_tp, t.obj_pred, t.obj_gt)
    L2 = prf_counts(t.part_tp, t.part_pred, t.part_gt)
    L3 = prf_counts(t.aff_tp, t.aff_pred, t.aff_gt)
    elig = t.eligible
    diagnostics, (pexp_p, pexp_r, aexp_p, aexp_r) = _object_diagnostics(m, s)
    return {
        "object_0.5": obj05,
        "object_0.95": obj095,
        "part_0.5": part05,
        "part_0.95": part095,
        "affordance_point_in_bbox": aff,
        "f_hier": {"f_obj": f_obj, "f_part_obj": f_part, "f_aff_part": f_aff, "f_hier_h": f_hier_h,
                   "f_hier": f_hier_h},
        "L1": L1,
        "L2": L2,
        "L3": L3,
        "hier_f1_e2e_0.5": harmonic3(L1["f1"], L2["f1"], L3["f1"]),
        "ParseRate": ratio(s["loose"], elig),
        "strict_parse_rate_0.5": ratio(s["strict"], elig),
        "hier_em_e2e_0.5": ratio(t.hier_em, elig),
        "parse_rate_0.5": ratio(t.parse_ok, elig),
        "hierarchical_exact_match": m.hier.mean(),
        "part_expansion": {"precision": pexp_p, "recall": pexp_r, "f1": f1(pexp_p, pexp_r)},
        "aff_expansion": {"precision": aexp_p, "recall": aexp_r, "f1": f1(aexp_p, aexp_r)},
        "diagnostics": diagnostics,
    }


# ---------------------------------------------------------------------------------- scene level
def scene_result(m) -> dict:
    """The scene-level report of a :class:`~.scene_level.SceneLevelMetric`."""
    c = m.counts

    def counts(kind, thr):
        return scene_counts(c[(kind + "_tp", thr)], c[(kind + "_fp", thr)], c[(kind + "_fn", thr)])

    o05, o095 = counts("obj", 0.5), counts("obj", 0.95)
    p05, p095 = counts("part", 0.5), counts("part", 0.95)
    a05, a095 = counts("aff", 0.5), counts("aff", 0.95)
    obj05, obj095 = m.obj[0.5].summary(), m.obj[0.95].summary()
    part05, part095 = m.part[0.5].summary(), m.part[0.95].summary()
    aff05, aff095 = m.aff[0.5].summary(), m.aff[0.95].summary()
    elig = c["eligible"]
    h = harmonic3(obj05["f1"], part05["f1"], aff05["f1"])
    diagnostics = {
        "num_samples": m.num_samples,
        "parse_eligible_gt_objects_0.5": elig,
        "scene_exact_success_count_0.5": int(m.exact.counts.get(1.0, 0)),
        "scene_hier_em_success_count_0.5": c["hier_em"],
        "scene_loose_parse_success_count_0.5": c["loose"],
        "scene_strict_parse_success_count_0.5": c["strict"],
        "canonical_eval_enabled": m.canonical_eval,
    }
    m._filter_diagnostics(diagnostics)
    return {
        "object_0.5": obj05,
        "object_0.95": obj095,
        "part_0.5": part05,
        "part_0.95": part095,
        "affordance_point_in_bbox": aff05,
        "affordance_point_in_bbox_0.95": aff095,
        "f_hier": {"f_obj": obj05["f1"], "f_part_obj": part05["f1"], "f_aff_part": aff05["f1"],
                   "f_hier_h": h, "f_hier": h},
        "L1": o05,
        "L1_0.95": o095,
        "L2": p05,
        "L2_0.95": p095,
        "L3": a05,
        "L3_0.95": a095,
        "f_hier_scene_e2e": {
            "f_obj_e2e_0.5": o05["f1"],
            "f_part_e2e_0.5": p05["f1"],
            "f_aff_e2e_0.5": a05["f1"],
            "f_hier_e2e_0.5": harmonic3(o05["f1"], p05["f1"], a05["f1"]),
        },
        "scene_recall_0.5": {"object": o05["recall"], "part": p05["recall"], "affordance": a05["recall"]},
        "scene_exact_success_rate_0.5": m.exact.mean(),
        "scene_hier_em_0.5": ratio(c["hier_em"], elig),
        "ParseRate": ratio(c["loose"], elig),
        "scene_strict_parse_rate_0.5": ratio(c["strict"], elig),
        "scene_average_recall_0.5": {
            "object": m.rec_obj.mean(),
            "part": m.rec_part.mean(),
            "affordance": m.rec_aff.mean(),
        },
        "diagnostics": diagnostics,
    }
