"""The issue-18 measuring tools: benchmarks/default_model_checks.py and default_model_curve.py.

Only their pure parts run here (instance matching, checkpoint selection, the loss window); the
model runs are what the scripts are for and take minutes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checks():
    return _load("default_model_checks")


@pytest.fixture(scope="module")
def curve():
    return _load("default_model_curve")


def test_matching_is_one_box_per_instance(checks):
    truth = [[0, 0, 10, 10], [20, 20, 30, 30]]
    # two boxes on the first instance count once; the second instance is missed
    assert checks.matched(truth, [[0, 0, 10, 10], [1, 1, 10, 10]]) == 1
    assert checks.matched(truth, [[0, 0, 10, 10], [20, 20, 30, 31]]) == 2
    # IoU 0.5 is the threshold: [0,0,10,10] vs [0,0,10,20] has IoU exactly 0.5
    assert checks.iou([0, 0, 10, 10], [0, 0, 10, 20]) == pytest.approx(0.5)
    assert checks.matched(truth[:1], [[0, 0, 10, 20]]) == 1
    assert checks.matched(truth[:1], [[0, 0, 10, 21]]) == 0
    assert checks.matched(truth, []) == 0


def test_unknown_queries_are_no_class_names(checks):
    from sceneparser.data.synth import CLASS_NAMES

    for i in range(50):
        word, rand = checks.unknown_queries(4000, i)
        assert word not in CLASS_NAMES and rand not in CLASS_NAMES
        assert checks.unknown_queries(4000, i) == [word, rand]  # reproducible from the seed


def _fake_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    stage1 = run / "model" / "stage1"
    for step in (400, 800, 1200, 1600, 2000):
        (stage1 / f"checkpoint-{step}").mkdir(parents=True)
    (stage1 / "model.safetensors").write_bytes(b"x")
    log = [{"step": s, "loss": 10.0 / s, "attention_loss": 1.0 / s, "learning_rate": 1e-3 * (1 - s / 2000)}
           for s in range(10, 2001, 10)]
    (stage1 / "log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    for k in (2, 3):
        out = run / "model" / f"stage{k}"
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"x")
        (out / "log.jsonl").write_text("\n".join(json.dumps({"step": s, "loss": 1.0}) for s in (100, 200)) + "\n")
    return run


def test_curve_points_every_nth_checkpoint_then_the_stage_outputs(curve, tmp_path):
    run = _fake_run(tmp_path)
    got = [(label, step, path.name) for label, step, path in curve.points(run, 400)]
    assert got == [
        ("stage 1", 400, "checkpoint-400"),
        ("stage 1", 800, "checkpoint-800"),
        ("stage 1", 1200, "checkpoint-1200"),
        ("stage 1", 1600, "checkpoint-1600"),
        ("stage 1 output", 2000, "stage1"),  # checkpoint-2000 is the same model: scored once
        ("stage 2 output", 2200, "stage2"),
        ("stage 3 output", 2400, "stage3"),
    ]
    got = [(label, step, path.name) for label, step, path in curve.points(run, 800)]
    assert got == [
        ("stage 1", 800, "checkpoint-800"),
        ("stage 1", 1600, "checkpoint-1600"),
        ("stage 1 output", 2000, "stage1"),
        ("stage 2 output", 2200, "stage2"),  # steps count on from the end of stage 1
        ("stage 3 output", 2400, "stage3"),
    ]


def test_curve_loss_window_and_learning_rate(curve, tmp_path):
    log = curve.read_log(_fake_run(tmp_path) / "model" / "stage1" / "log.jsonl")
    assert curve.window(log, 100, "loss", 30) == pytest.approx(round((10 / 80 + 10 / 90 + 10 / 100) / 3, 4))
    assert curve.learning_rate(log, 1005) == pytest.approx(1e-3 * (1 - 1000 / 2000))
    assert curve.window(log, 5, "loss", 30) is None


def test_training_script_refuses_a_final_stage_it_does_not_have(tmp_path):
    import subprocess

    script = BENCHMARKS.parent / "scripts" / "train_default_model.sh"
    done = subprocess.run(["bash", str(script), "--v2", "--final-stage", "4", "--work", str(tmp_path / "w")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--final-stage must be 1, 2 or 3" in done.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written
