import json

from sceneparser.cli import main
from sceneparser.evaluation.final import extract_final_metrics
from sceneparser.evaluation.metrics import ObjectLevelMetric, SceneLevelMetric, result_text

GOOD = {
    "image_path": "i.jpg", "category": "mug", "question": "q",
    "gt": {"objects": [{"name": "mug", "bbox": [0, 0, 100, 100], "has_part": True, "has_affordance": True,
                        "parts": [{"part_name": "__placeholder_part__", "bbox": [0, 0, 100, 100], "affordances": [
                            {"action": "grasp", "affordance_bbox": [0, 0, 50, 50], "mask_path": None,
                             "points": [[1, 1]], "point": [1, 1]}]},
                            {"part_name": "handle", "bbox": [70, 20, 100, 80], "affordances": [
                                {"action": "__none__", "affordance_bbox": None, "mask_path": None,
                                 "points": [[80, 50]], "point": [80, 50]}]}],
                        "affordances": []}]},
    "extracted_predictions": {"objects": [{"name": "mug", "bbox": [0.0, 0.0, 100.0, 90.0], "has_part": None,
                                           "has_affordance": None, "parts": [
                                               {"part_name": "handle", "bbox": [70.0, 20.0, 100.0, 80.0],
                                                "affordances": [{"action": "grasp", "point": [85.0, 50.0]}]}],
                                           "affordances": []}]},
    "raw_response": "{...}", "task_name": "sceneparser_structured_parsing", "dataset_name": "SceneParserStructured",
}
EMPTY = dict(GOOD, extracted_predictions={"objects": []})


def write_lines(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def test_metrics_filtered_run_writes_reference_files(tmp_path, capsys):
    data = write_lines(tmp_path / "answer.jsonl", [GOOD, "", EMPTY])
    out = tmp_path / "res" / "eval_results_filtered.json"
    fin = tmp_path / "final_metrics.json"
    rc = main(["metrics", "--data-path", str(data), "--output-path", str(out), "--ignore-pseudo-part",
               "--ignore-none-action", "--final-metrics-path", str(fin)])
    assert rc == 0
    m = ObjectLevelMetric(ignore_pseudo_part=True, ignore_none_action=True)
    m.update(GOOD)
    m.update(EMPTY)
    expected = m.result()
    text = out.read_text(encoding="utf-8")
    assert text == result_text(expected) and not text.endswith("\n")
    assert text.startswith('{\n  "object_0.5": {\n    "precision": ')
    assert json.loads(fin.read_text()) == extract_final_metrics(expected)
    assert not fin.read_text().endswith("\n")
    assert sorted(p.name for p in out.parent.iterdir()) == ["eval_results_filtered.json"]  # no temp files left
    err = capsys.readouterr().err
    assert "L1" in err and "L3" in err and "ParseRate" in err and "over 2 samples" in err


def test_reference_flag_spellings_and_scene_level(tmp_path):
    data = write_lines(tmp_path / "a.jsonl", [GOOD])
    out = tmp_path / "scene.json"
    assert main(["metrics", "--data_path", str(data), "--output_path", str(out), "--level", "scene"]) == 0
    m = SceneLevelMetric()
    m.update(GOOD)
    assert out.read_text(encoding="utf-8") == result_text(m.result())


def test_unfiltered_run_has_no_wrapper_keys_and_unicode_is_kept(tmp_path):
    g = json.loads(json.dumps(GOOD))
    g["gt"]["objects"][0]["parts"][1]["part_name"] = "poignée"
    data = write_lines(tmp_path / "a.jsonl", [g])
    out = tmp_path / "full.json"
    assert main(["metrics", "--data-path", str(data), "--output-path", str(out), "--matching", "optimal"]) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert "ignore_pseudo_part" not in r["diagnostics"]


def test_bad_line_exit_2_names_line_and_field_and_writes_nothing(tmp_path, capsys):
    bad = json.loads(json.dumps(GOOD))
    bad["extracted_predictions"]["objects"][0]["bbox"] = [0, "zero", 1, 1]
    data = write_lines(tmp_path / "a.jsonl", [GOOD, bad])
    out = tmp_path / "r.json"
    out.write_text("previous result")
    rc = main(["metrics", "--data-path", str(data), "--output-path", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "extracted_predictions.objects[0].bbox" in err and "Traceback" not in err
    assert out.read_text() == "previous result"


def test_invalid_json_line(tmp_path, capsys):
    data = write_lines(tmp_path / "a.jsonl", [GOOD, '{"gt": ', GOOD])
    rc = main(["metrics", "--data-path", str(data), "--output-path", str(tmp_path / "r.json")])
    assert rc == 2 and "line 2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_skip_invalid_scores_the_rest(tmp_path, capsys):
    data = write_lines(tmp_path / "a.jsonl", [GOOD, {"gt": {"objects": 5}}, EMPTY])
    out = tmp_path / "r.json"
    assert main(["metrics", "--data-path", str(data), "--output-path", str(out), "--skip-invalid"]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "line 2" in err
    m = ObjectLevelMetric()
    m.update(GOOD)
    m.update(EMPTY)
    assert out.read_text(encoding="utf-8") == result_text(m.result())


def test_unusable_files_exit_2(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["metrics", "--data-path", str(tmp_path / "missing.jsonl"), "--output-path", str(out)]) == 2
    empty = write_lines(tmp_path / "e.jsonl", ["", "  "])
    assert main(["metrics", "--data-path", str(empty), "--output-path", str(out)]) == 2
    latin = tmp_path / "l.jsonl"
    latin.write_bytes(b'{"category": "caf\xe9"}\n')
    assert main(["metrics", "--data-path", str(latin), "--output-path", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "empty" in err and "UTF-8" in err
    assert not out.exists()


def test_missing_mapping_file_exit_2(tmp_path, capsys):
    data = write_lines(tmp_path / "a.jsonl", [GOOD])
    rc = main(["metrics", "--data-path", str(data), "--output-path", str(tmp_path / "r.json"), "--canonical-eval",
               "--part-mapping-path", str(tmp_path / "nope.json")])
    assert rc == 2 and "mapping file not found" in capsys.readouterr().err
