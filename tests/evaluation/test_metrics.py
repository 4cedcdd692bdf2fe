"""Conformance vectors T1-T9 (docs/reference.md, *object-metric*) and the metric's documented behaviour."""

import json
import math
import statistics

import pytest

from sceneparser.errors import InputError
from sceneparser.evaluation.final import extract_final_metrics
from sceneparser.evaluation.metrics import (
    ObjectLevelMetric,
    SceneLevelMetric,
    iou,
    point_in_box,
    result_text,
)
from sceneparser.evaluation.metrics.means import small_mean


# ----------------------------------------------------------------------------- builders
def gt_aff(action, box=None, points=None, mask=None):
    pts = points or []
    return {"action": action, "affordance_bbox": box, "mask_path": mask, "points": pts,
            "point": pts[0] if pts else None}


def gt_part(name, box, affs=()):
    return {"part_name": name, "bbox": box, "affordances": list(affs)}


def gt_obj(name, box, parts=()):
    parts = list(parts)
    return {"name": name, "bbox": box, "has_part": bool(parts),
            "has_affordance": any(p["affordances"] for p in parts), "parts": parts, "affordances": []}


def pr_aff(action, point):
    return {"action": action, "point": point}


def pr_part(name, box, affs=()):
    return {"part_name": name, "bbox": box, "affordances": list(affs)}


def pr_obj(name, box, parts=()):
    return {"name": name, "bbox": box, "has_part": None, "has_affordance": None, "parts": list(parts),
            "affordances": []}


def sample(gt_objects, pred_objects, category="x"):
    return {"image_path": "img.jpg", "category": category, "question": "q",
            "gt": {"objects": gt_objects}, "extracted_predictions": {"objects": pred_objects},
            "raw_response": "", "task_name": "sceneparser_structured_parsing", "dataset_name": "SceneParserStructured"}


def score(samples, cls=ObjectLevelMetric, **kw):
    m = cls(**kw)
    for s in samples:
        m.update(s)
    return m.result()


def prf(d):
    return {k: d[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}


T1_GT = gt_obj("mug", [0, 0, 100, 100], [
    gt_part("handle", [70, 20, 100, 80], [gt_aff("grasp", [75, 30, 95, 70])]),
    gt_part("body", [0, 0, 70, 100]),
])
T1_PRED = pr_obj("mug", [0, 0, 100, 90], [
    pr_part("Handle ", [70, 20, 100, 80], [pr_aff("grasp", [85, 50]), pr_aff("pour", [10, 10])]),
    pr_part("body", [0, 0, 60, 100]),
    pr_part("lid", [0, 0, 100, 10]),
])
T2_GT = gt_obj("bottle", [200, 200, 260, 400], [gt_part("cap", [215, 200, 245, 230])])


# ----------------------------------------------------------------------------- T1 / T2
def test_t1_single_object_sample():
    r = score([sample([T1_GT], [T1_PRED], "mug")])
    assert prf(r["L1"]) == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert prf(r["L2"]) == {"tp": 2, "fp": 1, "fn": 0, "precision": 0.6666666666666666, "recall": 1.0, "f1": 0.8}
    assert prf(r["L3"]) == {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0,
                            "f1": 0.6666666666666666}
    assert r["ParseRate"] == 1.0
    assert r["object_0.5"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_t2_plus_empty_prediction():
    r = score([sample([T1_GT], [T1_PRED], "mug"), sample([T2_GT], [], "bottle")])
    assert prf(r["L1"]) == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": 0.6666666666666666}
    third = 0.6666666666666666
    assert prf(r["L2"]) == {"tp": 2, "fp": 1, "fn": 1, "precision": third, "recall": third, "f1": third}
    assert prf(r["L3"]) == {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0, "f1": third}
    assert r["ParseRate"] == 0.5
    assert r["diagnostics"]["parse_eligible_gt_objects_0.5"] == 2
    assert r["object_0.5"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


# ----------------------------------------------------------------------------- T3 filters
def t3_sample():
    g = gt_obj("container", [206, 0, 778, 541], [
        gt_part("__placeholder_part__", [206, 0, 778, 541], [gt_aff("grasp", [250, 100, 700, 500])]),
        gt_part("lid", [300, 0, 600, 80], [gt_aff("__none__", None, [[400, 40]]),
                                          gt_aff("open", [300, 0, 600, 80])]),
    ])
    p = pr_obj("container", [206, 0, 778, 541], [
        pr_part("__placeholder_part__", [206, 0, 778, 541], [pr_aff("grasp", [400, 300])]),
        pr_part("lid", [300, 0, 600, 80], [pr_aff("open", [450, 40])]),
    ])
    return sample([g], [p], "container")


def test_t3_unfiltered():
    r = score([t3_sample()])
    assert r["L1"]["f1"] == 1.0
    assert prf(r["L2"]) == {"tp": 2, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert prf(r["L3"]) == {"tp": 2, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.6666666666666666, "f1": 0.8}
    assert r["ParseRate"] == 1.0
    assert "ignore_pseudo_part" not in r["diagnostics"]


def test_t3_filtered():
    r = score([t3_sample()], ignore_pseudo_part=True, ignore_none_action=True)
    assert (r["L2"]["tp"], r["L2"]["fp"], r["L2"]["fn"]) == (1, 0, 0)
    assert (r["L3"]["tp"], r["L3"]["fp"], r["L3"]["fn"]) == (1, 0, 0)
    assert extract_final_metrics(r) == {"L1": 1.0, "L2": 1.0, "L3": 1.0, "ParseRate": 1.0}
    d = r["diagnostics"]
    assert list(d)[-3:] == ["ignore_pseudo_part", "ignore_none_action", "base_metric_script"]
    assert d["ignore_pseudo_part"] is True and d["base_metric_script"] == "sceneparser_hierarchical_metric.py"


# ----------------------------------------------------------------------------- T4 scene vs object
def t4_sample():
    pred = json.loads(json.dumps(T1_PRED))
    pred["name"] = "Mug"
    return sample([T1_GT, T2_GT], [pred])


def test_t4_scene_metric():
    r = score([t4_sample()], SceneLevelMetric)
    third = 0.6666666666666666
    assert prf(r["L1"]) == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": third}
    assert prf(r["L2"]) == {"tp": 2, "fp": 1, "fn": 1, "precision": third, "recall": third, "f1": third}
    assert prf(r["L3"]) == {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0, "f1": third}
    assert r["ParseRate"] == 0.5
    assert r["scene_average_recall_0.5"] == {"object": 0.5, "part": third, "affordance": 1.0}
    assert r["scene_exact_success_rate_0.5"] == 0.0
    assert r["diagnostics"]["num_samples"] == 1


def test_t4_object_metric_compares_raw_names():
    r = score([t4_sample()])
    assert r["L1"]["tp"] == 0
    r = score([t4_sample()], normalize_object_names=True)
    assert r["L1"]["tp"] == 1


# ----------------------------------------------------------------------------- T5 greedy vs optimal
def t5_sample():
    g = [gt_obj("a", [0, 0, 10, 10]), gt_obj("a", [3, 0, 13, 10])]
    p = [pr_obj("a", [1, 0, 11, 10]), pr_obj("a", [0, 0, 6, 10])]
    return sample(g, p, "a")


def test_t5_greedy_counterexample():
    assert score([t5_sample()])["L1"]["tp"] == 1
    assert score([t5_sample()], matching="optimal")["L1"]["tp"] == 2


def test_optimal_affordance_matching_section_11_2():
    g = gt_obj("a", [0, 0, 100, 100], [gt_part("p", [0, 0, 100, 100], [
        gt_aff("grasp", [0, 0, 100, 100]), gt_aff("grasp", [0, 0, 10, 10])])])
    p = pr_obj("a", [0, 0, 100, 100], [pr_part("p", [0, 0, 100, 100], [
        pr_aff("grasp", [5, 5]), pr_aff("grasp", [50, 50])])])
    assert score([sample([g], [p])])["L3"]["tp"] == 1
    assert score([sample([g], [p])], matching="optimal")["L3"]["tp"] == 2


def test_optimal_prefers_cardinality_then_iou():
    # one GT row with two candidates: optimal picks the higher IoU when cardinality ties
    g = [gt_obj("a", [0, 0, 10, 10])]
    p = [pr_obj("a", [0, 0, 10, 8]), pr_obj("a", [0, 0, 10, 9])]
    r = score([sample(g, p)], matching="optimal")
    assert r["L1"]["tp"] == 1 and r["object_0.95"]["recall"] == 0.0
    with pytest.raises(InputError):
        ObjectLevelMetric(matching="hungarian")


# ----------------------------------------------------------------------------- T6 structural ParseRate
def test_t6_parse_rate_is_structural():
    g = gt_obj("a", [0, 0, 100, 100], [gt_part("handle", [0, 0, 50, 50], [gt_aff("grasp", [0, 0, 50, 50])])])
    p = pr_obj("a", [0, 0, 100, 100], [pr_part("wheel", [60, 60, 90, 90], [pr_aff("fly", [500, 500])])])
    r = score([sample([g], [p])])
    assert r["ParseRate"] == 1.0 and r["L2"]["tp"] == 0 and r["L3"]["tp"] == 0
    assert r["parse_rate_0.5"] == 0.0  # the content-aware diagnostic


# ----------------------------------------------------------------------------- T8 primitives
def test_t8_iou_and_point_primitives():
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0
    assert iou([10, 10, 0, 0], [0, 0, 10, 10]) == 0.0
    assert iou(None, [0, 0, 1, 1]) == 0.0
    assert iou([0, 0, 100, 100], [0, 0, 100, 90]) == 0.9
    assert point_in_box((10, 10), [0, 0, 10, 10]) is True
    assert point_in_box((5, 5), [10, 10, 0, 0]) is True
    assert point_in_box(None, [0, 0, 1, 1]) is False


def _mask_sample(tmp_path, point, mask_rel="m.png"):
    from PIL import Image

    img = Image.new("L", (4, 3), 0)
    img.putpixel((2, 0), 255)  # only pixel x=2, y=0 is inside
    img.save(tmp_path / mask_rel)
    g = gt_obj("a", [0, 0, 4, 3], [gt_part("p", [0, 0, 4, 3], [gt_aff("grasp", [0, 0, 4, 3], mask=mask_rel)])])
    p = pr_obj("a", [0, 0, 4, 3], [pr_part("p", [0, 0, 4, 3], [pr_aff("grasp", point)])])
    return sample([g], [p])


def test_t8_mask_half_to_even_and_mask_decides_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # mask_path resolves against the current directory
    assert score([_mask_sample(tmp_path, [2.5, 0])])["L3"]["tp"] == 1  # round(2.5) == 2
    assert score([_mask_sample(tmp_path, [3.5, 0])])["L3"]["tp"] == 0  # inside the box, outside the mask
    assert score([_mask_sample(tmp_path, [9, 9])])["L3"]["tp"] == 0  # outside the image


def test_mask_root_option_and_missing_mask_falls_back_to_box(tmp_path):
    assert score([_mask_sample(tmp_path, [2.5, 0])], mask_root=tmp_path)["L3"]["tp"] == 1
    s = _mask_sample(tmp_path, [3.5, 0])
    # not found relative to the cwd: the box decides, and (3.5, 0) is inside the box
    assert score([s], mask_root=tmp_path / "nowhere")["L3"]["tp"] == 1


def test_non_finite_point_with_a_mask_is_outside_not_a_crash(tmp_path):
    for pt in ([float("nan"), 0.0], [float("inf"), 0.0]):
        r = score([_mask_sample(tmp_path, pt)], mask_root=tmp_path)
        assert r["L3"]["tp"] == 0
    assert score([_mask_sample(tmp_path, [2.5, 0])], SceneLevelMetric, mask_root=tmp_path)["L3"]["tp"] == 1
    assert score([_mask_sample(tmp_path, None)], SceneLevelMetric, mask_root=tmp_path)["L3"]["tp"] == 0


# ----------------------------------------------------------------------------- T9 final metrics
def test_t9_final_metrics():
    r = score([sample([T1_GT], [T1_PRED], "mug"), sample([T2_GT], [], "bottle")])
    f = extract_final_metrics(r)
    assert list(f) == ["L1", "L2", "L3", "ParseRate"]
    assert f == {"L1": r["L1"]["f1"], "L2": r["L2"]["f1"], "L3": r["L3"]["f1"], "ParseRate": 0.5}
    with pytest.raises(InputError, match="ParseRate"):
        extract_final_metrics({"L1": {"f1": 1}, "L2": 0.5, "L3": 0.1})


# ----------------------------------------------------------------------------- general properties
OBJECT_KEYS = ["object_0.5", "object_0.95", "part_0.5", "part_0.95", "affordance_point_in_bbox", "f_hier", "L1",
               "L2", "L3", "hier_f1_e2e_0.5", "ParseRate", "strict_parse_rate_0.5", "hier_em_e2e_0.5",
               "parse_rate_0.5", "hierarchical_exact_match", "part_expansion", "aff_expansion", "diagnostics"]
SCENE_KEYS = ["object_0.5", "object_0.95", "part_0.5", "part_0.95", "affordance_point_in_bbox",
              "affordance_point_in_bbox_0.95", "f_hier", "L1", "L1_0.95", "L2", "L2_0.95", "L3", "L3_0.95",
              "f_hier_scene_e2e", "scene_recall_0.5", "scene_exact_success_rate_0.5", "scene_hier_em_0.5",
              "ParseRate", "scene_strict_parse_rate_0.5", "scene_average_recall_0.5", "diagnostics"]


def test_key_order_of_both_reports():
    r = score([sample([T1_GT], [T1_PRED])])
    assert list(r) == OBJECT_KEYS
    assert len(r["diagnostics"]) == 42 and list(r["diagnostics"])[0] == "json_parse_success_rate"
    assert list(r["diagnostics"])[-3:] == ["canonical_eval_enabled", "part_mapping_path", "action_mapping_path"]
    assert list(score([sample([T1_GT], [T1_PRED])], SceneLevelMetric)) == SCENE_KEYS


def test_perfect_prediction_scores_one_everywhere():
    pred = json.loads(json.dumps(T1_GT))
    for part in pred["parts"]:
        for a in part["affordances"]:
            a["point"] = [85, 50]
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        r = score([sample([T1_GT], [pred])], cls)
        for key in ("L1", "L2", "L3", "object_0.5", "object_0.95", "part_0.5", "part_0.95",
                    "affordance_point_in_bbox"):
            assert r[key]["precision"] == r[key]["recall"] == r[key]["f1"] == 1.0, key
        assert r["ParseRate"] == 1.0
    r = score([sample([T1_GT], [pred])])
    assert r["hierarchical_exact_match"] == 1.0 and r["hier_em_e2e_0.5"] == 1.0
    assert r["f_hier"]["f_hier"] == pytest.approx(1.0) and r["hier_f1_e2e_0.5"] == pytest.approx(1.0)


def test_empty_prediction_scores_as_the_reference():
    r = score([sample([T1_GT], [])])
    assert r["object_0.5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}  # precision 0, not undefined
    assert (r["L1"]["fn"], r["L2"]["fn"], r["L3"]["fn"]) == (1, 2, 1)
    assert r["ParseRate"] == 0.0 and r["diagnostics"]["json_parse_success_rate"] == 1.0
    assert r["f_hier"]["f_hier"] == 3.0 / (3 * (1.0 / 1e-12))  # harmonic3(0, 0, 0), not 0
    # empty GT and empty prediction: macro P = R = 1
    r = score([sample([], [])])
    assert r["object_0.5"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    # no samples at all
    r = ObjectLevelMetric().result()
    assert r["L1"]["f1"] == 0.0 and r["diagnostics"]["json_parse_success_rate"] == 0.0


def test_order_invariance():
    samples = [sample([T1_GT], [T1_PRED]), sample([T2_GT], []), t3_sample(), t5_sample(), t4_sample()]
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        a = result_text(score(samples, cls))
        b = result_text(score(list(reversed(samples)), cls))
        c = result_text(score(samples[2:] + samples[:2], cls))
        assert a == b == c


def test_exact_means_match_statistics_mean():
    vals = [0.1, 0.2, 0.7, 1 / 3, 2 / 3, 0.3]
    assert small_mean(vals) == statistics.mean(vals)
    assert small_mean([0.1] * 7) == 0.1
    # ints: a whole mean stays an int (statistics.mean semantics), as the reference writes it
    g = [gt_obj("a", [0, 0, 10, 10], [gt_part("p", [0, 0, 5, 5]), gt_part("q", [5, 5, 10, 10])])]
    p = [pr_obj("a", [0, 0, 10, 10], [pr_part("p", [0, 0, 5, 5])])]
    r = score([sample(g, p), sample(g, p)])
    assert r["diagnostics"]["avg_gt_parts_per_matched_object"] == 2
    assert isinstance(r["diagnostics"]["avg_gt_parts_per_matched_object"], int)
    assert '"avg_gt_parts_per_matched_object": 2,' in result_text(r)


def test_canonical_eval_alias_maps(tmp_path):
    g = gt_obj("a", [0, 0, 10, 10], [gt_part("handle", [0, 0, 5, 5], [gt_aff("grasp", [0, 0, 5, 5])])])
    p = pr_obj("a", [0, 0, 10, 10], [pr_part("Grip", [0, 0, 5, 5], [pr_aff("hold", [1, 1])])])
    assert score([sample([g], [p])])["L2"]["tp"] == 0
    parts = tmp_path / "parts.json"
    parts.write_text(json.dumps({"alias_map": {"grip": "Handle"}}))
    actions = tmp_path / "actions.json"
    actions.write_text(json.dumps({"alias_map": {"HOLD": "grasp"}}))
    r = score([sample([g], [p])], canonical_eval=True, part_mapping_path=str(parts),
              action_mapping_path=str(actions))
    assert r["L2"]["tp"] == 1 and r["L3"]["tp"] == 1
    assert r["diagnostics"]["canonical_eval_enabled"] is True
    assert r["diagnostics"]["part_mapping_path"] == str(parts)
    # mapping paths are recorded but ignored without canonical_eval
    r = score([sample([g], [p])], part_mapping_path=str(parts))
    assert r["L2"]["tp"] == 0 and r["diagnostics"]["part_mapping_path"] == str(parts)
    with pytest.raises(InputError, match="not found"):
        ObjectLevelMetric(canonical_eval=True, part_mapping_path=str(tmp_path / "missing.json"))


# ----------------------------------------------------------------------------- reference crash inputs
def test_null_containers_are_read_as_empty():
    r = score([{"gt": None, "extracted_predictions": None}, {"gt": {"objects": None}},
               sample([T1_GT], [dict(T1_PRED, parts=None)])])
    assert r["L1"]["tp"] == 1 and r["L2"]["fp"] == 0
    # unfiltered: a null or missing prediction is a JSON-parse failure
    assert r["diagnostics"]["json_parse_success_rate"] == 1 / 3
    r = score([{"gt": None, "extracted_predictions": None}], ignore_pseudo_part=True)
    assert r["diagnostics"]["json_parse_success_rate"] == 1.0  # the wrapper normalises first


@pytest.mark.parametrize("bad, where", [
    ({"gt": {"objects": [{"name": "a", "bbox": [0, "x", 1, 1]}]}}, "gt.objects[0].bbox"),
    ({"gt": {"objects": [{"name": "a", "bbox": [0, 1, 1]}]}}, "gt.objects[0].bbox"),
    ({"gt": {"objects": [{"name": "a", "bbox": [0, 1, 1, 10 ** 400]}]}}, "too large"),
    ({"gt": {"objects": "abc"}}, "gt.objects"),
    ({"gt": {"objects": [{"name": "a", "parts": [5]}]}}, "gt.objects[0].parts[0]"),
    ({"extracted_predictions": {"objects": [{"name": "a", "parts": [{"affordances": [
        {"action": "x", "point": ["1", 2]}]}]}]}}, "extracted_predictions.objects[0].parts[0].affordances[0].point"),
    ({"gt": {"objects": [{"name": "a", "parts": [{"affordances": [{"action": "x", "mask_path": 3}]}]}]}},
     "mask_path"),
    ([1, 2], "JSON object"),
    ({"gt": [1]}, "gt"),
])
def test_malformed_input_names_the_field_and_counts_nothing(bad, where):
    m = ObjectLevelMetric()
    m.update(sample([T1_GT], [T1_PRED]))
    before = result_text(m.result())
    with pytest.raises(InputError) as exc:
        m.update(bad)
    assert where in str(exc.value)
    assert result_text(m.result()) == before


def test_nan_and_infinite_coordinates_score_like_the_reference():
    # NaN x0 in the prediction: the reference's max()/min() drop it, giving IoU 1.0 here
    g = gt_obj("a", [0, 0, 100, 100])
    p = pr_obj("a", [float("nan"), 0, 50, 100])
    r = score([sample([g], [p])])
    assert r["L1"]["tp"] == 1
    r = score([sample([g], [pr_obj("a", [0, 0, float("inf"), 100])])])
    assert r["L1"]["tp"] == 0 and math.isfinite(r["L1"]["f1"])


def test_library_inputs_parsed_prediction_and_tuples():
    from sceneparser.parsing import parse_prediction

    text = ('{"objects": [{"name": "mug", "bbox": "<0><0><999><999>", "parts": [{"part_name": "handle", '
            '"bbox": "<699><199><999><799>", "affordances": [{"action": "grasp", "point": "<849><499>"}]}]}]}')
    pred = parse_prediction(text, 100, 100)
    r = score([{"gt": {"objects": [T1_GT]}, "extracted_predictions": pred}])
    assert (r["L1"]["tp"], r["L2"]["tp"], r["L3"]["tp"]) == (1, 1, 1)
    g = dict(T1_GT, bbox=(0, 0, 100, 100))
    assert score([sample([g], [T1_PRED])])["L1"]["tp"] == 1
