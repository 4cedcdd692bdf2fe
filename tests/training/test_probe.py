"""sceneparser.training.probe: coordinate roles, and real-vs-shuffled image loss."""

from __future__ import annotations

import json
import math

import pytest

from sceneparser.training.config import DataSection
from sceneparser.training.dataset import build_dataset
from sceneparser.training.probe import image_dependence
from sceneparser.training.roles import ROLES, coordinate_roles


@pytest.fixture()
def model_and_data(train_tsv):
    from sceneparser.model.tiny import build_tiny
    from sceneparser.training.stage import apply_pixel_limits

    model, processor = build_tiny(seed=0)
    apply_pixel_limits(processor, 3136, 12544)
    dataset = build_dataset(train_tsv, processor, DataSection(), seed=42, defer_pixels=True)
    return model, processor, dataset


def test_roles_follow_the_target_structure(model_and_data):
    _, processor, dataset = model_and_data
    tok = processor.tokenizer
    first = tok.convert_tokens_to_ids("<0>")
    checked = 0
    for i in range(8):
        sample = dataset[i]
        ids, labels = sample["input_ids"].tolist(), sample["labels"].tolist()
        roles = coordinate_roles(ids, labels, first, tok)
        answer = tok.decode([t for t, lab in zip(ids, labels) if lab >= 0]).replace("<|im_end|>", "").strip()
        target = json.loads(answer)
        objects = target["objects"]
        parts = [p for o in objects for p in o.get("parts", [])]
        points = [a for p in parts for a in p.get("affordances", [])]
        kinds = [r for _, r in roles]
        assert kinds.count("object_x1") == len(objects)
        assert kinds.count("object_box") == 3 * len(objects)
        assert kinds.count("part_box") == 4 * len(parts)
        assert kinds.count("point") == 2 * len(points)
        assert all(first <= ids[p] < first + 1000 and labels[p] == ids[p] for p, _ in roles)
        checked += bool(objects)
    assert checked > 0


def test_roles_with_long_part_names(model_and_data):
    _, processor, _ = model_and_data
    tok = processor.tokenizer
    first = tok.convert_tokens_to_ids("<0>")
    box = "<1><2><3><4>"
    text = (
        '{"objects": [{"name": "kitchen cabinet", "bbox": "' + box + '", "parts": [{"part_name": '
        '"__placeholder_part__ of the left front door", "bbox": "' + box + '", "affordances": [{"action": '
        '"pull", "point": "<5><6>"}]}]}, {"name": "mug", "bbox": "' + box + '", "parts": []}]}'
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    kinds = [role for _, role in coordinate_roles(ids, ids, first, tok)]
    assert kinds == ["object_x1"] + ["object_box"] * 3 + ["part_box"] * 4 + ["point"] * 2 + ["object_x1"] + [
        "object_box"
    ] * 3


def test_a_model_blind_to_the_image_has_no_gap_and_a_random_one_has(model_and_data):
    import torch

    model, processor, dataset = model_and_data
    report = image_dependence(model, processor, dataset, num_samples=12, batch_size=4)
    assert report["samples"] >= 2 and report["coordinate_tokens"] > 0
    assert set(ROLES) >= {k for k in report if k in ROLES}
    for key in ("all", *[r for r in ROLES if r in report]):
        assert math.isfinite(report[key]["real"]) and math.isfinite(report[key]["shuffled"])
    assert abs(report["all"]["gap"]) > 1e-5  # at init the image does change the prediction

    merger_out = model.model.visual.merger.mlp[-1]  # the merger's last linear layer
    with torch.no_grad():
        merger_out.weight.zero_()
        merger_out.bias.zero_()
    blind = image_dependence(model, processor, dataset, num_samples=12, batch_size=4)
    assert blind["all"]["gap"] == 0.0
    assert blind["coordinate_tokens"] == report["coordinate_tokens"]


def test_cli_probe_writes_the_report(tiny_model_dir, train_tsv, tmp_path, capsys):
    from sceneparser.cli import main

    out = tmp_path / "probe.json"
    rc = main(["probe", "--model", str(tiny_model_dir), "--data", str(train_tsv), "--samples", "6",
               "--max-pixels", "12544", "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["all"]["tokens"] == report["coordinate_tokens"] > 0
    assert "gap" in capsys.readouterr().out


def test_cli_probe_rejects_too_few_samples(tiny_model_dir, train_tsv, capsys):
    from sceneparser.cli import main

    assert main(["probe", "--model", str(tiny_model_dir), "--data", str(train_tsv), "--samples", "1"]) == 2
    assert "--samples" in capsys.readouterr().err
