"""The msgspec typed path (object level) reads every line as the dict path and the standard library do."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics import ObjectLevelMetric, evaluate_file, result_text
from tests.evaluation.test_metrics_fuzz import any_line

A = '"name": "a", "bbox": [0, 0, 10, 10]'
PART = '"part_name": "p", "bbox": [0, 0, 8, 8]'


def _line(gt_affs: str, pred_affs: str, extra: str = "") -> str:
    return (f'{{"gt": {{"objects": [{{{A}, "parts": [{{{PART}, "affordances": [{gt_affs}]}}]}}]}}, '
            f'"extracted_predictions": {{"objects": [{{{A}, "parts": [{{{PART}, "affordances": [{pred_affs}]}}]}}]}}'
            f'{extra}}}')


EDGES = [
    # presence rules: a key that is there with null is not the same as no key
    _line('{"action": "x", "affordance_bbox": null, "bbox": [0, 0, 1, 1]}', '{"action": "x", "point": [5, 5]}'),
    _line('{"action": "x", "bbox": [0, 0, 1, 1]}', '{"action": "x", "point": [0.5, 0.5]}'),
    _line('{"action": "x", "affordance_bbox": null, "part_bbox": null}', '{"action": "x", "point": [5, 5]}'),
    _line('{"action": "x", "affordance_bbox": null, "part_bbox": [4, 4, 6, 6]}', '{"action": "x", "point": [5, 5]}'),
    _line('{"action": "x", "affordance_bbox": null}', '{"action": "x", "point": null, "affordance_point": [5, 5]}'),
    _line('{"action": "x", "affordance_bbox": null}', '{"action": "x", "affordance_point": [5, 5]}'),
    '{"gt": {"objects": [{' + A + '}]}, "extracted_predictions": {"objects": null}}',
    '{"gt": {"objects": [{' + A + '}]}, "extracted_predictions": {}}',
    '{"gt": {}, "extracted_predictions": null}',
    # duplicate keys (the last wins), escaped key names, numbers at the edges of the typed range
    '{"gt": {"objects": [{' + A + ', "name": "b"}]}, "extracted_predictions": {"objects": [{"n\\u0061me": "b", '
    '"bbox": [0, 0, 10, 10]}]}}',
    '{"gt": {"objects": [{"name": "a", "bbox": [0, 0, 9223372036854775807, 10]}]}, "extracted_predictions": '
    '{"objects": [{"name": "a", "bbox": [0, 0, 9223372036854775808, 10]}]}}',
    '{"gt": {"objects": [{"name": "a", "bbox": [0, 0, 1' + "0" * 400 + ', 10]}]}, "extracted_predictions": null}',
    '{"gt": {"objects": [{"name": "a", "bbox": [true, 0, 10, 10]}]}, "extracted_predictions": '
    '{"objects": [{"name": "a", "bbox": [1, 0, 10, 10]}]}}',
    '{"gt": {"objects": [{"name": "a", "bbox": [0, 0, 10, 10], "parts": 0, "affordances": ""}]}, '
    '"extracted_predictions": {"objects": [{"name": "a", "bbox": [0, 0, 1e400, 10]}]}}',
    '{"gt": {"objects": [{"name": 7, "bbox": [0, 0, 10, 10], "parts": [{"part_name": ["x"], "bbox": null, '
    '"is_pseudo_part": 1, "affordances": [{"action": 0, "mask_path": ""}]}]}]}, "extracted_predictions": '
    '{"objects": [{"name": 7, "bbox": [0, 0, 10, 10]}]}}',
    # fields the metric does not read: the standard library's verdict on them stands
    _line('{"action": "x"}', '{"action": "x", "point": [1, 1]}', ', "question": "\\ud800", "q2": 1e999, "q3": NaN'),
    _line('{"action": "x", "mask_path": "m.png"}', '{"action": "x", "point": [1, 1]}'),
]


@pytest.mark.parametrize("filtered", [False, True])
def test_typed_path_equals_the_standard_library_on_edge_lines(tmp_path, filtered):
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(EDGES) + "\n", encoding="utf-8")
    opts = dict(ignore_pseudo_part=filtered, ignore_none_action=filtered)
    skipped: list = []
    got = result_text(evaluate_file(path, skip_invalid=True, on_skip=skipped.append, **opts))
    exact = ObjectLevelMetric(**opts)
    n_bad = 0
    for line in EDGES:
        try:
            exact.update(json.loads(line))
        except InputError:
            n_bad += 1
    assert got == result_text(exact.result())
    assert len(skipped) == n_bad


def test_bad_utf8_in_a_field_the_metric_does_not_read_is_still_unreadable(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(_line('{"action": "x"}', "").encode() + b"\n" + b'{"gt": null, "question": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"line 2: not valid UTF-8"):
        evaluate_file(path)


FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(any_line, min_size=1, max_size=4), st.booleans())
def test_fuzz_typed_path_equals_the_dict_path(lines, filtered):
    opts = dict(ignore_pseudo_part=filtered, ignore_none_action=filtered)
    typed, plain = ObjectLevelMetric(**opts), ObjectLevelMetric(**opts)
    for line in lines:
        raw = json.dumps(line).encode()
        try:
            plain.update(json.loads(raw))
        except InputError:
            ok = False
        else:
            ok = True
        try:
            typed.update_typed(typed.decode_typed(raw))
        except Exception:  # noqa: BLE001 - the typed path may refuse a line; the dict path then reads it
            if ok:
                typed.update(json.loads(raw))
        else:
            assert ok, raw  # the typed path never takes a line the dict path refuses
    assert result_text(typed.result()) == result_text(plain.result())
    assert typed.num_samples == plain.num_samples
