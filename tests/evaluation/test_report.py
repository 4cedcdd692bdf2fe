"""``sceneparser report``: numbers equal to the metric's, error types and confusions on hand-made
answers, a real eval folder of the shipped default model, and bad input (missing files, answers
without ground truth, moved or broken images, empty results)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from sceneparser.cli import main
from sceneparser.evaluation.metrics import ObjectLevelMetric
from sceneparser.evaluation.report import analyse_file, build_report
from sceneparser.evaluation.report.analysis import Analysis




def _aff(action, point=None, region=None):
    if region is not None:  # ground truth: a region box
        return {"action": action, "affordance_bbox": region}
    return {"action": action, "point": point}


def _part(name, box, affs=()):
    return {"part_name": name, "bbox": box, "affordances": list(affs)}


def _obj(name, box, parts=()):
    return {"name": name, "bbox": box, "parts": list(parts)}


def _row(category, gt_objs, pred_objs, *, image="img.png", status="ok", raw="{}"):
    return {"image_path": image, "category": category, "question": f"Parse {category}", "gt": {"objects": gt_objs},
            "extracted_predictions": {"objects": pred_objs}, "raw_response": raw, "parse_status": status,
            "parse_error": None if status == "ok" else "invalid JSON"}


MUG_GT = _obj("mug", [10, 10, 60, 60], [
    _part("handle", [40, 20, 60, 40], [_aff("grasp", region=[40, 20, 60, 40])]),
    _part("body", [10, 10, 40, 60], [_aff("pour", region=[10, 10, 40, 20])]),
])


def _rows():
    """Hand-made answers with one error of each kind."""
    return [
        # perfect
        _row("mug", [MUG_GT], [_obj("mug", [10, 10, 60, 60], [
            _part("handle", [40, 20, 60, 40], [_aff("grasp", [50, 30])]),
            _part("body", [10, 10, 40, 60], [_aff("pour", [20, 15])]),
        ])]),
        # object found; handle named "knob" (wrong name), body shifted (mislocalised), pour point outside
        _row("mug", [MUG_GT], [_obj("mug", [10, 10, 60, 60], [
            _part("knob", [40, 20, 60, 40], [_aff("grasp", [50, 30])]),
            _part("body", [25, 30, 55, 80], [_aff("pour", [20, 15])]),
        ])]),
        # the object missed entirely and an extra one elsewhere
        _row("mug", [MUG_GT], [_obj("mug", [200, 200, 260, 260])]),
        # unparsable answer
        _row("mug", [MUG_GT], [], status="failed", raw="{not json"),
        # right part, wrong action on the right spot (grasp -> push)
        _row("mug", [MUG_GT], [_obj("mug", [10, 10, 60, 60], [
            _part("handle", [40, 20, 60, 40], [_aff("push", [50, 30])]),
            _part("body", [10, 10, 40, 60], [_aff("pour", [20, 15])]),
        ])]),
    ]


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _metric(path: Path) -> dict:
    m = ObjectLevelMetric(ignore_pseudo_part=True, ignore_none_action=True)
    for line in path.read_text().splitlines():
        if line.strip():
            m.update(json.loads(line))
    return m.result()


def _assert_consistent(a: Analysis, result: dict) -> None:
    """The report's per-level counts are the metric's, and its breakdowns add up to them."""
    for key, level in (("L1", "object"), ("L2", "part"), ("L3", "affordance")):
        lv = a.levels[level]
        prf = lv.prf()
        for k in ("tp", "fp", "fn", "precision", "recall", "f1"):
            assert prf[k] == result[key][k], (key, k, prf[k], result[key][k])
        assert sum(lv.misses.values()) == lv.gt - lv.tp
        assert sum(lv.extras.values()) == lv.pred - lv.tp
        assert min(lv.misses.values()) >= 0 and min(lv.extras.values()) >= 0
        assert sum(s.gt for s in lv.by_name.values()) == lv.gt
        assert sum(s.pred for s in lv.by_name.values()) == lv.pred
        assert sum(s.tp for s in lv.by_name.values()) == lv.tp


# ------------------------------------------------------------------------------------------ tests
def test_error_types_and_confusions_on_hand_made_answers(tmp_path):
    path = _write(tmp_path / "answer.jsonl", _rows())
    a = analyse_file(path)
    _assert_consistent(a, _metric(path))
    obj, part, aff = a.levels["object"], a.levels["part"], a.levels["affordance"]
    assert obj.misses["unparsable"] == 1 and obj.extras["extra"] == 1 and obj.misses["missed"] == 1
    assert part.confusions == {("handle", "knob"): 1}
    assert part.misses["mislocalised"] == 1 and part.misses["wrong name"] == 1
    assert part.misses["unparsable"] == 2 and part.misses["parent missed"] == 2
    assert aff.confusions == {("grasp", "push"): 1}
    assert aff.misses["mislocalised"] == 0  # the shifted body's pour has no matched part
    assert aff.misses["parent missed"] == 2 + 2  # the missed mug's two, the renamed and the shifted part's
    assert a.status_counts == {"ok": 4, "failed": 1}
    worst, best = a.worst_and_best(2)
    assert [s.line for s in best][:1] == [1] and worst[0].line in (3, 4)
    assert best[0].quality == 1.0 and worst[0].quality == 0.0


def test_point_outside_the_region_is_mislocalised(tmp_path):
    rows = [_row("mug", [MUG_GT], [_obj("mug", [10, 10, 60, 60], [
        _part("handle", [40, 20, 60, 40], [_aff("grasp", [5, 5])]),
        _part("body", [10, 10, 40, 60], [_aff("pour", [20, 15])]),
    ])])]
    path = _write(tmp_path / "answer.jsonl", rows)
    a = analyse_file(path)
    _assert_consistent(a, _metric(path))
    assert a.levels["affordance"].misses["mislocalised"] == 1
    assert a.levels["affordance"].extras["mislocalised"] == 1


def test_report_page_from_hand_made_answers(tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    Image.new("RGB", (300, 300), (120, 130, 140)).save(tmp_path / "img.png")
    _write(res / "answer.jsonl", _rows())
    out = build_report(res, image_root=tmp_path, num_examples=3)
    page = out.path.read_text()
    assert out.path == res / "report.html"
    assert any("final_metrics.json is missing" in w for w in out.warnings)
    assert page.count('class="card"') == 5  # 3 worst + the 2 others as best
    assert "data:image/jpeg;base64," in page
    assert "{not json" in page  # the raw text of the unparsable answer
    assert "handle</td><td class=\"l\">knob" in page  # the part confusion
    assert re.search(r'id="metric-L1">0\.\d{4}<', page)


@pytest.mark.slow
def test_real_eval_folder_report_matches_final_metrics(real_eval, tmp_path):
    final = json.loads((real_eval / "final_metrics.json").read_text())
    filtered = json.loads((real_eval / "eval_results_filtered.json").read_text())
    a = analyse_file(real_eval / "answer.jsonl")
    _assert_consistent(a, filtered)
    assert a.result()["L2"]["f1"] == final["L2"]
    out_file = tmp_path / "report.html"
    assert main(["report", str(real_eval), "--out", str(out_file), "--examples", "3"]) == 0
    page = out_file.read_text()
    for key in ("L1", "L2", "L3", "ParseRate"):
        assert f'id="metric-{key}">{final[key]:.4f}<' in page
    for key in ("L1", "L2", "L3"):
        for k in ("precision", "recall", "f1"):
            assert f'id="{key}-{k}">{filtered[key][k]:.4f}<' in page
    assert page.count('class="card"') == 6 and page.count("data:image/jpeg;base64,") == 12
    assert "<svg" in page  # matplotlib plots
    assert "warning:" not in page


@pytest.mark.slow
def test_answers_without_gt_take_it_from_the_data_file(real_eval, tmp_path):
    res = tmp_path / "res"
    res.mkdir()
    rows = [json.loads(line) for line in (real_eval / "answer.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("gt")
    _write(res / "answer.jsonl", rows)
    data = real_eval.parent / "data"
    without = build_report(res, tmp_path / "a.html", image_root=data)
    assert any("have no ground-truth object" in w and "--gt" in w for w in without.warnings)
    with_gt = build_report(res, tmp_path / "b.html", gt=data / "train.jsonl", image_root=data)
    assert any(f"ground truth of {len(rows)} answers taken from" in w for w in with_gt.warnings)
    final = json.loads((real_eval / "final_metrics.json").read_text())
    assert f'id="metric-L1">{final["L1"]:.4f}<' in with_gt.path.read_text()


@pytest.mark.slow
def test_moved_and_broken_images_are_reported_in_place(real_eval, tmp_path):
    res = tmp_path / "res"
    shutil.copytree(real_eval, res)
    manifest = json.loads((res / "manifest.json").read_text())
    manifest["settings"]["image_root"] = str(tmp_path / "gone")
    (res / "manifest.json").write_text(json.dumps(manifest))
    out = build_report(res, num_examples=2)
    assert out.path.is_file()
    assert any("gallery images could not be shown" in w for w in out.warnings)
    assert "no picture: image not found" in out.path.read_text()
    broken = tmp_path / "broken"
    shutil.copytree(real_eval.parent / "data" / "images", broken / "images")
    for f in (broken / "images").iterdir():
        f.write_bytes(b"not an image")
    out = build_report(res, tmp_path / "r.html", image_root=broken, num_examples=2)
    assert "cannot decode image" in out.path.read_text()


def test_missing_files_and_empty_results(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    # only the headline numbers: a report with warnings, exit 0
    only = tmp_path / "only"
    only.mkdir()
    (only / "final_metrics.json").write_text(json.dumps({"L1": 0.5, "L2": 0.25, "L3": 0.125, "ParseRate": 1.0}))
    (only / "answer.jsonl").write_text("")
    assert main(["report", str(only)]) == 0
    err = capsys.readouterr().err
    assert "answer.jsonl holds no usable answers" not in err or "warning" in err
    page = (only / "report.html").read_text()
    assert 'id="metric-L2">0.2500<' in page
    assert "answer.jsonl is missing or unreadable" in page
    # a malformed line is left out with a warning
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad / "answer.jsonl", _rows())
    with open(bad / "answer.jsonl", "a") as f:
        f.write("{broken\n")
    out = build_report(bad)
    assert any("1 answer lines could not be read" in w for w in out.warnings)


def test_plots_say_which_extra_is_missing(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'", name="matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    res = tmp_path / "res"
    res.mkdir()
    _write(res / "answer.jsonl", _rows())
    out = build_report(res, num_examples=0)
    assert "pip install &#x27;sceneparser[report]&#x27;" in out.path.read_text()
    assert any("sceneparser[report]" in w for w in out.warnings)
