"""Hypothesis fuzzing of the scorer: random answer lines never make an exception escape
(other than a clear InputError for a malformed line), and invariants hold."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sceneparser.errors import InputError
from sceneparser.evaluation.filters import filter_sample
from sceneparser.evaluation.metrics import ObjectLevelMetric, SceneLevelMetric, result_text

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIGHT = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

num = st.one_of(st.integers(-5, 40), st.floats(-5, 40), st.sampled_from([float("nan"), float("inf"), 0.5]))
box = st.one_of(st.none(), st.lists(num, min_size=4, max_size=4))
point = st.one_of(st.none(), st.lists(num, min_size=2, max_size=2))
label = st.sampled_from(["a", "A ", "b", "", None, "__none__", "__placeholder_part__", "grasp", 3])
junk = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=5),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))

aff = st.fixed_dictionaries({"action": label, "point": point, "affordance_bbox": box},
                            optional={"mask_path": st.sampled_from([None, "", "missing.png"]), "bbox": box})
part = st.fixed_dictionaries({"part_name": label, "bbox": box, "affordances": st.lists(aff, max_size=3)},
                             optional={"is_pseudo_part": st.booleans()})
obj = st.fixed_dictionaries({"name": label, "bbox": box, "parts": st.lists(part, max_size=3)},
                            optional={"affordances": st.lists(aff, max_size=2)})
well_formed = st.fixed_dictionaries({"gt": st.fixed_dictionaries({"objects": st.lists(obj, max_size=3)}),
                                     "extracted_predictions": st.fixed_dictionaries(
                                         {"objects": st.lists(obj, max_size=3)})})




any_line = st.one_of(
    well_formed,
    st.builds(lambda s, j, which: _break(s, j, which), well_formed, junk, st.integers(0, 50)),
    junk,
)


def _break(sample, junk_value, which):
    nodes = []

    def walk(v):
        if isinstance(v, dict):
            for k in v:
                nodes.append((v, k))
                walk(v[k])
        elif isinstance(v, list):
            for i in range(len(v)):
                nodes.append((v, i))
                walk(v[i])

    walk(sample)
    if nodes:
        container, key = nodes[which % len(nodes)]
        container[key] = junk_value
    return sample


def _score_lines(cls, lines, **kw):
    m = cls(**kw)
    for line in lines:
        try:
            m.update(line)
        except InputError as exc:
            assert str(exc)
    r = m.result()
    json.loads(result_text(r).replace("NaN", "0").replace("Infinity", "0"))
    return r


@FUZZ
@given(st.lists(any_line, max_size=4), st.booleans(), st.sampled_from(["reference", "optimal"]))
def test_fuzz_scorer_never_crashes(lines, filtered, matching):
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        r = _score_lines(cls, json.loads(json.dumps(lines)), ignore_pseudo_part=filtered,
                         ignore_none_action=filtered, matching=matching)
        for key in ("L1", "L2", "L3"):
            assert r[key]["tp"] >= 0 and 0.0 <= r[key]["f1"] <= 1.0
        assert 0.0 <= r["ParseRate"] <= 1.0


@LIGHT
@given(st.lists(well_formed, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_internal_filters_equal_filter_sample_then_plain_metric(lines, pseudo, none):
    lines = json.loads(json.dumps(lines))
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        direct = cls(ignore_pseudo_part=pseudo, ignore_none_action=none, filter_wrapper=True)
        via = cls(filter_wrapper=True)
        for s in lines:
            direct.update(s)
            via.update(filter_sample(s, pseudo, none))
        a, b = direct.result(), via.result()
        for r in (a, b):
            for k in ("ignore_pseudo_part", "ignore_none_action", "base_metric_script"):
                r["diagnostics"].pop(k)
        assert result_text(a) == result_text(b)


@LIGHT
@given(st.lists(well_formed, min_size=1, max_size=3))
def test_optimal_matching_never_matches_fewer_objects(lines):
    lines = json.loads(json.dumps(lines))
    ref, opt = ObjectLevelMetric(), ObjectLevelMetric(matching="optimal")
    for s in lines:
        ref.update(s)
        opt.update(s)
    assert opt.result()["L1"]["tp"] >= ref.result()["L1"]["tp"]


@LIGHT
@given(well_formed)
def test_update_does_not_modify_the_sample(line):
    line = json.loads(json.dumps(line))
    before = json.dumps(line, sort_keys=True)
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        cls(ignore_pseudo_part=True, ignore_none_action=True).update(line)
    assert json.dumps(line, sort_keys=True) == before
