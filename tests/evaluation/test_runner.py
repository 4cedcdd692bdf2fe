"""The eval runner end to end with a deterministic "oracle" backend (no model, fast).

The oracle answers every query with the ground truth in the model's token format (optionally
truncated, or crashing after N batches), so these tests check the real pipeline around the model:
samples, resume, manifest, sharding, image problems, bad val lines, parsing and scoring.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

from sceneparser import prompts
from sceneparser.coords import box_to_tokens, point_to_tokens
from sceneparser.errors import InputError
from sceneparser.evaluation import answers
from sceneparser.evaluation.runner import EvalConfig, format_summary, run_eval
from sceneparser.evaluation.samples import build_samples
from sceneparser.inference.types import Backend, GenerationOutput


class Crash(RuntimeError):
    pass


class Oracle(Backend):
    """Answers with the GT of the asked category, encoded as the model would write it."""

    def __init__(self, data_dir, *, crash_after=None, truncate=False):
        from PIL import Image

        self.by_pixels = {}
        for line in (data_dir / "val.jsonl").read_text().splitlines():
            rec = json.loads(line)
            img = Image.open(data_dir / rec["image_path"]).convert("RGB")
            self.by_pixels[hashlib.sha1(img.tobytes()).digest()] = (rec, img.size)
        self.crash_after = crash_after
        self.truncate = truncate
        self.calls = 0
        self.questions = []

    @staticmethod
    def _encode(o, w, h):
        parts = []
        for p in o.get("parts") or []:
            affs = [{"action": a["action"], "point": point_to_tokens(a["sampled_points"][0], w, h)}
                    for a in p.get("affordances") or [] if a.get("sampled_points")]
            parts.append({"part_name": p["part_name"], "bbox": box_to_tokens(p["part_bbox"], w, h), "affordances": affs})
        return {"name": o["phrase"], "bbox": box_to_tokens(o["object_bbox"], w, h), "parts": parts}

    def generate(self, requests, *, progress=False):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise Crash("simulated crash")
        out = []
        for r in requests:
            rec, (w, h) = self.by_pixels[hashlib.sha1(r.image.tobytes()).digest()]
            self.questions.append(r.question)
            m = re.search(r"Parse (.+) in this image", r.question)
            cat = None if r.question == prompts.scene_question() else m.group(1)  # None: a scene query
            objs = [self._encode(o, w, h) for o in rec["objects"] if o.get("phrase") and cat in (None, o["phrase"])]
            text = json.dumps({"objects": objs})
            out.append(GenerationOutput(text[:-3] if self.truncate else text, [], 0, "stop"))
        return out


@pytest.fixture()
def data(synth_dir, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(synth_dir, d)
    return d


def cfg_for(data, out, **kw):
    kw.setdefault("batch_size", 2)
    return EvalConfig(model=None, data=str(data / "val.jsonl"), out=str(out), image_root=str(data),
                      progress=False, **kw)


def read(out):
    return (out / "answer.jsonl").read_text(encoding="utf-8")


def test_oracle_run_writes_everything_and_scores_perfectly(data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    oracle = Oracle(data)
    res = run_eval(cfg_for(data, out), backend=oracle, log=lambda m: None)
    assert res.scored
    for name in ("answer.jsonl", "eval_results_full.json", "eval_results_filtered.json", "final_metrics.json",
                 "manifest.json", "eval_summary.json"):
        assert (out / name).is_file(), name
    rows = answers.read_answers(out / "answer.jsonl")
    recs = [json.loads(x) for x in (data / "val.jsonl").read_text().splitlines()]
    samples, _ = build_samples(recs, mask_root=data)
    assert [(r["image_path"], r["category"]) for r in rows] == [(s.image_path, s.category) for s in samples]
    assert [r["gt"] for r in rows] == [s.gt for s in samples]
    assert list(rows[0])[:8] == ["image_path", "category", "question", "gt", "extracted_predictions",
                                 "raw_response", "task_name", "dataset_name"]  # reference key order
    assert {r["parse_status"] for r in rows} == {"ok"}
    # GT masks resolved against the image root, so the metric really reads them
    masks = [a["mask_path"] for r in rows for o in r["gt"]["objects"] for p in o["parts"] for a in p["affordances"]
             if a["mask_path"]]
    assert masks and all((data / "masks").as_posix() in m for m in masks)
    final = json.loads((out / "final_metrics.json").read_text())
    assert list(final) == ["L1", "L2", "L3", "ParseRate"]
    assert final["L1"] == 1.0 and final["ParseRate"] == 1.0
    assert final["L2"] > 0.9 and final["L3"] > 0.9
    filtered = json.loads((out / "eval_results_filtered.json").read_text())
    assert filtered["diagnostics"]["ignore_pseudo_part"] is True
    assert res.final == final and oracle.calls == 3  # 5 samples in batches of 2
    # answer.jsonl is self-contained: re-scoring it from elsewhere gives the same bytes
    from sceneparser.evaluation.metrics import evaluate_file, result_text

    monkeypatch.chdir(tmp_path)
    rescored = evaluate_file(out / "answer.jsonl", ignore_pseudo_part=True, ignore_none_action=True)
    assert result_text(rescored) == (out / "eval_results_filtered.json").read_text()
    table = format_summary(res.summary, res.final)
    assert "L1" in table and "1.0000" in table and "5 of 5" in table


def test_gt_masks_are_resolved_against_the_image_root(data, tmp_path):
    """With every mask blanked, affordance points only count when the metric falls back to boxes."""
    from PIL import Image

    for m in (data / "masks").glob("*.png"):
        with Image.open(m) as im:
            size = im.size
        Image.new("L", size, 0).save(m)
    with_masks = run_eval(cfg_for(data, tmp_path / "m"), backend=Oracle(data), log=lambda m: None)
    no_masks = run_eval(cfg_for(data, tmp_path / "b", mask_root=str(tmp_path / "nowhere")),
                        backend=Oracle(data), log=lambda m: None)
    assert with_masks.final["L1"] == no_masks.final["L1"] == 1.0
    assert no_masks.final["L3"] > 0.9
    assert with_masks.final["L3"] < no_masks.final["L3"]
    assert with_masks.summary["gt_masks"]["missing"] == 0 and with_masks.summary["gt_masks"]["referenced"] > 0
    assert no_masks.summary["gt_masks"]["missing"] == no_masks.summary["gt_masks"]["referenced"]


def test_crash_mid_run_then_resume_gives_the_uninterrupted_answers(data, tmp_path):
    ref_out = tmp_path / "ref"
    run_eval(cfg_for(data, ref_out), backend=Oracle(data), log=lambda m: None)

    out = tmp_path / "out"
    with pytest.raises(Crash):
        run_eval(cfg_for(data, out), backend=Oracle(data, crash_after=2), log=lambda m: None)
    part = out / "parts" / answers.shard_file_name(0, 1)
    assert len(answers.read_answers(part)) == 4  # two whole batches survived, nothing else
    assert not (out / "answer.jsonl").exists()

    # a kill in the middle of the next write leaves a torn line: it is dropped, never duplicated
    part.write_bytes(part.read_bytes() + answers.encode_line({"image_path": "x"})[:17])
    logs = []
    oracle = Oracle(data)
    res = run_eval(cfg_for(data, out), backend=oracle, log=logs.append)
    assert len(oracle.questions) == 1  # only the unanswered sample was asked again
    assert res.summary["resumed_from_disk"] == 4 and res.summary["answered_this_run"] == 1
    assert any("torn last line" in m for m in logs)
    assert read(out) == read(ref_out)
    assert (out / "final_metrics.json").read_text() == (ref_out / "final_metrics.json").read_text()

    # a complete run re-merges and re-scores without asking the model anything
    again = Oracle(data)
    run_eval(cfg_for(data, out), backend=again, log=lambda m: None)
    assert again.calls == 0 and read(out) == read(ref_out)


def test_manifest_mismatch_is_refused_unless_overwrite(data, tmp_path):
    out = tmp_path / "out"
    run_eval(cfg_for(data, out), backend=Oracle(data), log=lambda m: None)
    with pytest.raises(InputError, match=r"max_new_tokens.*--overwrite"):
        run_eval(cfg_for(data, out, max_new_tokens=7), backend=Oracle(data), log=lambda m: None)
    assert len(answers.read_answers(out / "answer.jsonl")) == 5  # nothing lost
    oracle = Oracle(data)
    run_eval(cfg_for(data, out, max_new_tokens=7, overwrite=True), backend=oracle, log=lambda m: None)
    assert len(oracle.questions) == 5
    assert json.loads((out / "manifest.json").read_text())["settings"]["max_new_tokens"] == 7


def test_missing_and_undecodable_images_are_counted_not_silent(data, tmp_path):
    recs = [json.loads(x) for x in (data / "val.jsonl").read_text().splitlines()]
    moved = data / "moved.jpg"
    (data / recs[1]["image_path"]).rename(moved)
    (data / recs[2]["image_path"]).write_bytes(b"definitely not a jpeg")
    out = tmp_path / "out"
    good = Oracle(_only_first(data, tmp_path))  # only record 0 can still be answered
    res = run_eval(cfg_for(data, out), backend=good, log=lambda m: None)
    rows = answers.read_answers(out / "answer.jsonl")
    n_total = res.summary["samples_total"]
    assert len(rows) == n_total  # scored as empty predictions, not dropped
    statuses = {r["image_path"]: r["parse_status"] for r in rows}
    assert statuses[recs[1]["image_path"]] == "image_missing"
    assert statuses[recs[2]["image_path"]] == "image_undecodable"
    assert res.summary["images_missing_or_undecodable"] == sorted([recs[1]["image_path"], recs[2]["image_path"]])
    bad = [r for r in rows if r["parse_status"].startswith("image_")]
    assert all(r["extracted_predictions"] == {"objects": []} for r in bad)
    assert res.final["L1"] < 1.0  # the missing images' objects count as misses
    assert "image problems" in format_summary(res.summary, res.final)

    # reference behaviour on request: the same answers, merged without those samples
    res2 = run_eval(cfg_for(data, out, skip_missing=True), backend=Oracle(_only_first(data, tmp_path)),
                    log=lambda m: None)
    assert res2.summary["samples_scored"] == n_total - len(bad)
    assert res2.final["L1"] == 1.0

    # the missing image turns up again: only its samples are asked
    moved.rename(data / recs[1]["image_path"])
    later = Oracle(_only_first(data, tmp_path, index=1))
    res3 = run_eval(cfg_for(data, out), backend=later, log=lambda m: None)
    assert len(later.questions) == len({o["phrase"] for o in recs[1]["objects"]})
    assert res3.summary["images_missing_or_undecodable"] == [recs[2]["image_path"]]


def _only_first(data, tmp_path, index=0):
    """A data dir view whose val.jsonl holds just one record (for building an oracle)."""
    view = tmp_path / f"view{index}"
    view.mkdir(exist_ok=True)
    line = (data / "val.jsonl").read_text().splitlines()[index]
    (view / "val.jsonl").write_text(line + "\n")
    rec = json.loads(line)
    (view / rec["image_path"]).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / rec["image_path"], view / rec["image_path"])
    return view


def test_bad_val_lines_are_reported_with_line_numbers(data, tmp_path):
    lines = (data / "val.jsonl").read_text().splitlines()
    bad = data / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "{not json", '{"objects": []}', lines[1], lines[2]]) + "\n")
    logs = []
    res = run_eval(EvalConfig(model=None, data=str(bad), out=str(tmp_path / "out"), image_root=str(data),
                              progress=False), backend=Oracle(data), log=logs.append)
    assert [p["line"] for p in res.summary["bad_val_lines"]] == [2, 3]
    assert any("bad.jsonl:2" in m for m in logs) and any("bad.jsonl:3" in m for m in logs)
    assert res.summary["samples_scored"] == 5 and res.final["L1"] == 1.0
    assert "bad val lines    2" in format_summary(res.summary, res.final)


def test_independent_shards_merge_to_the_single_run(data, tmp_path):
    ref = tmp_path / "ref"
    run_eval(cfg_for(data, ref), backend=Oracle(data), log=lambda m: None)
    out = tmp_path / "out"
    logs = []
    r0 = run_eval(cfg_for(data, out, num_shards=2, shard_index=0), backend=Oracle(data), log=logs.append)
    assert not r0.scored and not (out / "answer.jsonl").exists()
    assert any("without --num-shards" in m for m in logs)
    r1 = run_eval(cfg_for(data, out, num_shards=2, shard_index=1), backend=Oracle(data), log=lambda m: None)
    assert r1.scored and read(out) == read(ref)
    assert sorted(p.name for p in (out / "parts").iterdir()) == [
        answers.shard_file_name(0, 2), answers.shard_file_name(1, 2)]
    # a later single-process run over the same dir re-uses both shards' answers
    again = Oracle(data)
    run_eval(cfg_for(data, out), backend=again, log=lambda m: None)
    assert again.calls == 0 and read(out) == read(ref)
    with pytest.raises(InputError, match="--overwrite cannot be combined"):
        run_eval(cfg_for(data, out, num_shards=2, overwrite=True), backend=again, log=lambda m: None)


def test_scene_level_and_limit(data, tmp_path):
    res = run_eval(cfg_for(data, tmp_path / "scene", level="scene"), backend=Oracle(data), log=lambda m: None)
    rows = answers.read_answers(tmp_path / "scene" / "answer.jsonl")
    assert len(rows) == 3 and all(r["category"] is None for r in rows)
    assert all(q.startswith("Return a single JSON object only.\n") for q in [r["question"] for r in rows])
    assert res.final["L1"] == 1.0
    full = json.loads((tmp_path / "scene" / "eval_results_full.json").read_text())
    assert "scene_recall_0.5" in full  # scored with the scene metric
    res = run_eval(cfg_for(data, tmp_path / "lim", limit=1), backend=Oracle(data), log=lambda m: None)
    assert {r["record_index"] for r in answers.read_answers(tmp_path / "lim" / "answer.jsonl")} == {0}


def test_parse_status_recorded_and_repair_mode(data, tmp_path):
    res = run_eval(cfg_for(data, tmp_path / "ref"), backend=Oracle(data, truncate=True), log=lambda m: None)
    rows = answers.read_answers(tmp_path / "ref" / "answer.jsonl")
    assert {r["parse_status"] for r in rows} == {"failed"} and all(r["parse_error"] for r in rows)
    assert res.final["L1"] == 0.0
    res = run_eval(cfg_for(data, tmp_path / "rep", parse_mode="repair"), backend=Oracle(data, truncate=True),
                   log=lambda m: None)
    rows = answers.read_answers(tmp_path / "rep" / "answer.jsonl")
    assert {r["parse_status"] for r in rows} == {"repaired"}
    assert 0.0 < res.final["L1"] < 1.0  # the object cut mid-way is dropped, earlier ones recovered


@pytest.mark.parametrize("kw,msg", [
    ({"level": "part"}, "--level"),
    ({"parse_mode": "fuzzy"}, "--parse-mode"),
    ({"batch_size": 0}, "--batch-size"),
    ({"question": "no placeholder"}, r"\[OBJ\]"),
    ({"num_shards": 2, "shard_index": 2}, "--shard-index"),
])
def test_bad_settings_are_clear_errors(data, tmp_path, kw, msg):
    with pytest.raises(InputError, match=msg):
        run_eval(cfg_for(data, tmp_path / "o", **kw), backend=Oracle(data), log=lambda m: None)
