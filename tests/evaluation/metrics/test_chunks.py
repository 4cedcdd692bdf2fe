"""Scoring in several processes gives the one-process result, skipped lines and errors, to the bit."""

import json

import pytest

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics import ObjectLevelMetric, SceneLevelMetric, evaluate_file, result_text
from sceneparser.evaluation.metrics import chunks
from sceneparser.evaluation.metrics.means import FloatMean, PairMean
from tests.evaluation.metrics.golden_inputs import answer_lines, write_masks


@pytest.fixture
def small_files_in_parallel(monkeypatch):
    monkeypatch.setattr(chunks, "PARALLEL_MIN_BYTES", 0)


def _answer_file(path, bad: bool) -> None:
    lines = [json.dumps(s) for s in answer_lines(11, 90, broken=0.1 if bad else 0.0)]
    if bad:
        lines[70] = '{"gt": '
        lines[75] = lines[75][:-1]
    # CRLF, a lone CR and blank lines: line numbers must survive the cuts
    text = "\r\n".join(lines[:30]) + "\r" + "\n\n".join(lines[30:60]) + "\n \n" + "\n".join(lines[60:]) + "\n"
    path.write_bytes(text.encode() + b'{"category": "caf\xe9"}\n' * bad)


def _run(path, level, workers, **kw):
    skipped, stats = [], {}
    try:
        result = result_text(evaluate_file(path, level, on_skip=skipped.append, stats=stats, workers=workers, **kw))
    except InputError as exc:
        result = f"error: {exc}"
    return result, skipped, stats


@pytest.mark.parametrize("level", ["object", "scene"])
@pytest.mark.parametrize("bad", [False, True])
def test_workers_give_the_one_process_result(tmp_path, small_files_in_parallel, level, bad):
    path = tmp_path / "a.jsonl"
    _answer_file(path, bad)
    write_masks(tmp_path)
    assert len(chunks.line_aligned_starts(path, 3)) == 3
    for kw in ({"skip_invalid": True, "mask_root": tmp_path}, {"ignore_pseudo_part": True, "ignore_none_action": True},
               {}):
        one = _run(path, level, 1, **kw)
        assert one[0].startswith("error: ") == (not kw.get("skip_invalid")) or not bad
        for workers in (2, 3):
            assert _run(path, level, workers, **kw) == one, (workers, kw)


def test_the_first_bad_line_wins_whichever_process_meets_it(tmp_path, small_files_in_parallel):
    good = json.dumps(answer_lines(1, 1, broken=0)[0])
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join([good] * 20 + ['{"gt": {"objects": 3}}'] + [good] * 20 + ["[1,"]) + "\n")
    for workers in (1, 2, 3):
        with pytest.raises(InputError, match=r"line 21: gt\.objects"):
            evaluate_file(path, workers=workers)


def test_cuts_fall_on_line_starts(tmp_path, small_files_in_parallel):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"a\n" + b"x" * 100 + b"\n" + b"b\n")
    starts = chunks.line_aligned_starts(path, 4)
    data = path.read_bytes()
    assert starts[0] == 0 and all(data[s - 1:s] == b"\n" for s in starts[1:]) and starts == sorted(set(starts))
    path.write_bytes(b"one long line without an end")
    assert chunks.line_aligned_starts(path, 2) == [0]


def test_means_and_metrics_merge_exactly():
    values = [0.1, 0.2, 0.30000000000000004, 1.0, 0.7, 0.1]
    a, b, whole = FloatMean(), FloatMean(), FloatMean()
    for i, v in enumerate(values):
        (a if i % 2 else b).add(v)
        whole.add(v)
    a.merge(b)
    assert a.mean() == whole.mean() and a.n == whole.n
    p, q = PairMean(), PairMean()
    p.add(0.5, 1.0)
    q.add(0.25, 0.5)
    p.merge(q)
    assert p.summary()["precision"] == 0.375
    samples = answer_lines(5, 40, broken=0)
    for cls in (ObjectLevelMetric, SceneLevelMetric):
        one, first, second = cls(), cls(), cls()
        for i, s in enumerate(samples):
            try:
                one.update(s)
            except InputError:
                continue
            (first if i < 17 else second).update(s)
        second.merge(first)  # the order of the parts does not matter
        assert result_text(second.result()) == result_text(one.result())
    with pytest.raises(TypeError):
        ObjectLevelMetric().merge(SceneLevelMetric())


def test_cli_workers(tmp_path, small_files_in_parallel, capsys):
    from sceneparser.cli import main

    path = tmp_path / "a.jsonl"
    _answer_file(path, bad=True)
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"r{workers}.json"
        assert main(["metrics", "--data-path", str(path), "--output-path", str(out), "--skip-invalid",
                     "--workers", workers]) == 0
        outs.append((out.read_text(), capsys.readouterr().err.replace(str(out), "OUT")))
    assert outs[0] == outs[1]
    assert main(["metrics", "--data-path", str(path), "--output-path", str(tmp_path / "r.json"),
                 "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_progress_follows_the_first_part_then_ends_at_the_last_line(tmp_path, small_files_in_parallel):
    from sceneparser.commands.metrics import _ProgressBar

    path = tmp_path / "a.jsonl"
    _answer_file(path, bad=False)
    seen: list = []
    evaluate_file(path, skip_invalid=True, progress=seen.append, workers=2)
    n_lines = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n")
    assert seen == sorted(seen) and seen[-1] == n_lines and len(seen) < 80
    bar = _ProgressBar()
    bar(999)
    assert bar.bar is None  # no tqdm (and no monitor thread) before there is something to show
    bar(2500)
    assert bar.bar is not None and bar.last == 2500
    bar.close()
