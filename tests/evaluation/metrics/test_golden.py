"""The metrics package against committed golden results, and its fast reading path against the exact one."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics import (
    ObjectLevelMetric,
    SceneLevelMetric,
    evaluate_file,
    iter_answer_lines,
    result_text,
)
from tests.evaluation.metrics.golden_inputs import answer_lines, answers_text, golden_runs, write_support_files

EXPECTED = json.loads((Path(__file__).parent / "golden" / "expected.json").read_text(encoding="utf-8"))


def test_results_are_byte_identical_to_the_golden_ones(tmp_path):
    text = answers_text()
    assert hashlib.sha256(text.encode()).hexdigest() == EXPECTED["answers_sha256"], "generator changed"
    answers = tmp_path / "answers.jsonl"
    answers.write_text(text, encoding="utf-8")
    write_support_files(tmp_path)
    runs = golden_runs(evaluate_file, result_text, answers, tmp_path)
    for got, want in zip(runs, EXPECTED["runs"]):
        assert (got["level"], got["options"]) == (want["level"], want["options"])
        assert got["result"] == want["result"], (got["level"], got["options"])
        assert got["skipped"] == want["skipped"], (got["level"], got["options"])
    assert len(runs) == len(EXPECTED["runs"])


def _exact(path, level, **options):
    """Score through the standard library only (iter_answer_lines + update), skipping bad lines."""
    metric = SceneLevelMetric(**options) if level == "scene" else ObjectLevelMetric(**options)
    for _, sample in iter_answer_lines(path):
        try:
            metric.update(sample)
        except InputError:
            pass
    return result_text(metric.result())


WIDE = [  # lines where orjson and the standard library read numbers differently
    '{"gt": {"objects": [{"name": "a", "bbox": [0, 0, 100000000000000000000000, 10]}]}, '
    '"extracted_predictions": {"objects": [{"name": "a", "bbox": [0, 0, 100000000000000000000001, 10]}]}}',
    '{"gt": {"objects": [{"name": 100000000000000000000000, "bbox": [0, 0, 10, 10]}]}, '
    '"extracted_predictions": {"objects": [{"name": 100000000000000000000001, "bbox": [0, 0, 10, 10]}]}}',
    '{"gt": {"objects": [{"name": "a", "bbox": [0, 0, 10, 10], "parts": [{"part_name": 18446744073709551617, '
    '"bbox": [0, 0, 9, 9], "affordances": [{"action": "x", "affordance_bbox": [0, 0, 5, 5]}]}]}]}, '
    '"extracted_predictions": {"objects": [{"name": "a", "bbox": [0, 0, 10, 10], "parts": [{"part_name": '
    '18446744073709551616, "bbox": [0, 0, 9, 9], "affordances": [{"action": "x", "point": [1, '
    '36893488147419103232]}]}]}]}}',
    '{"gt": {"objects": [{"name": "a", "bbox": [NaN, 0, 10, 10]}]}, '
    '"extracted_predictions": {"objects": [{"name": "a", "bbox": [0, 0, Infinity, 10]}]}}',
    '{"gt": {"objects": [{"name": "\\ud800", "bbox": [0, 0, 10, 10]}]}, '
    '"extracted_predictions": {"objects": [{"name": "\\ud800", "bbox": [0, 0, 10, 10]}]}}',
]


@pytest.mark.parametrize("level", ["object", "scene"])
@pytest.mark.parametrize("filtered", [False, True])
def test_fast_path_equals_the_standard_library(tmp_path, level, filtered):
    lines = [json.dumps(s) for s in answer_lines(7, 120)] + WIDE
    path = tmp_path / "a.jsonl"
    # lone CR and CRLF line ends, a line of Unicode spaces only: split and skipped as text mode does
    path.write_bytes(("\r\n".join(lines[:60]) + "\r" + "\n\u00a0\u2003\n".join(lines[60:]) + "\n").encode())
    opts = dict(ignore_pseudo_part=filtered, ignore_none_action=filtered)
    assert result_text(evaluate_file(path, level, skip_invalid=True, **opts)) == _exact(path, level, **opts)


def test_unreadable_lines_are_named_exactly_and_skipped_on_request(tmp_path):
    good = json.dumps(answer_lines(1, 1, broken=0)[0])
    path = tmp_path / "a.jsonl"
    cases = [
        (good.encode() + b"\n" + good.encode() + b"\n" + b'{"category": "caf\xe9"}\n', r"line 3: not valid UTF-8", 3, 2),
        (good.encode() + b"\n[" * 1 + b"[" * 3000 + b"]" * 3001 + b"\n", r"line 2: JSON nested too deeply", 2, 1),
        (b"\xef\xbb\xbf" + good.encode() + b"\n" + good.encode(), r"line 1: not valid JSON \(Unexpected UTF-8 BOM", 1, 1),
    ]
    for data, message, lineno, n_good in cases:
        path.write_bytes(data)
        with pytest.raises(InputError, match=message):
            evaluate_file(path)
        skipped, stats = [], {}
        result = evaluate_file(path, skip_invalid=True, on_skip=skipped.append, stats=stats)
        assert len(skipped) == 1 and re.search(message, skipped[0])
        assert stats["skipped_lines"] == [lineno] and stats["samples"] == n_good
        assert result_text(result) == _exact_text([good] * n_good)


def _exact_text(lines: list, level: str = "object") -> str:
    metric = SceneLevelMetric() if level == "scene" else ObjectLevelMetric()
    for line in lines:
        metric.update(json.loads(line))
    return result_text(metric.result())
