"""Synthetic scene generator: format, schema coverage, exact boxes, determinism, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from sceneparser.cli import main as cli_main
from sceneparser.data import synth


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_fixture_layout_and_splits(synth_dir):
    train, val = _read(synth_dir / "train.jsonl"), _read(synth_dir / "val.jsonl")
    assert (len(train), len(val)) == (9, 3)
    for rec in train + val:
        assert set(rec) == {"image_path", "objects"}
        assert not Path(rec["image_path"]).is_absolute()
        img = Image.open(synth_dir / rec["image_path"])
        assert img.format == "JPEG" and img.size == (160, 120)
        assert 1 <= len(rec["objects"]) <= 5


def _check_record(rec: dict, root: Path | None, w: int, h: int) -> None:
    def inside(inner, outer):
        return outer[0] <= inner[0] <= inner[2] <= outer[2] and outer[1] <= inner[1] <= inner[3] <= outer[3]

    for obj in rec["objects"]:
        assert obj["phrase"] in synth.CLASSES
        ob = obj["object_bbox"]
        assert all(isinstance(v, int) for v in ob)
        assert 0 <= ob[0] <= ob[2] < w and 0 <= ob[1] <= ob[3] < h
        info = synth.CLASSES[obj["phrase"]]
        assert tuple(p["part_name"] for p in obj["parts"]) == info.parts
        if obj["parts"]:  # object box is exactly the union of its part boxes (tight)
            pbs = [p["part_bbox"] for p in obj["parts"]]
            assert ob == [min(b[0] for b in pbs), min(b[1] for b in pbs), max(b[2] for b in pbs), max(b[3] for b in pbs)]
        for part in obj["parts"]:
            assert inside(part["part_bbox"], ob)
            assert isinstance(part["is_pseudo_part"], bool)
            assert tuple(a["action"] for a in part["affordances"]) == info.actions[part["part_name"]]
            for aff in part["affordances"]:
                pts = aff["sampled_points"]
                assert pts and all(len(p) == 2 for p in pts)
                region = aff["affordance_bbox"] or part["part_bbox"]
                if aff["affordance_bbox"] is not None:
                    assert inside(aff["affordance_bbox"], part["part_bbox"])
                for x, y in pts:
                    assert region[0] <= x <= region[2] and region[1] <= y <= region[3]
                if aff["mask_path"] and root is not None:
                    mask = np.array(Image.open(root / aff["mask_path"]))
                    assert mask.shape == (h, w)
                    for x, y in pts:
                        assert mask[y, x]


def test_fixture_boxes_points_masks_are_consistent(synth_dir):
    for rec in _read(synth_dir / "train.jsonl") + _read(synth_dir / "val.jsonl"):
        _check_record(rec, synth_dir, 160, 120)


def test_every_schema_feature_is_used():
    feats = set()
    classes = set()
    for i in range(60):
        _, objects, masks = synth.render_scene(5, i, (160, 120))
        _check_record({"objects": objects}, None, 160, 120)
        for o in objects:
            classes.add(o["phrase"])
            if not o["parts"]:
                feats.add("no_parts")
            for p in o["parts"]:
                if p["part_name"] == synth.PLACEHOLDER_PART:
                    assert p["is_pseudo_part"] and p["part_bbox"] == o["object_bbox"] and p["affordances"]
                    feats.add("placeholder")
                elif p["is_pseudo_part"]:
                    feats.add("pseudo_real_name")
                if not p["affordances"]:
                    feats.add("part_without_aff")
                for a in p["affordances"]:
                    if a["action"] == synth.NONE_ACTION:
                        feats.add("none_action")
                    if a["affordance_bbox"] is not None:
                        feats.add("aff_bbox")
                    if len(a["sampled_points"]) > 1:
                        feats.add("several_points")
                    if a["mask_path"]:
                        assert a["mask_path"] in masks
                        feats.add("mask")
                    elif a["affordance_bbox"] is not None:
                        feats.add("aff_bbox_without_mask")
        if len({o["phrase"] for o in objects}) < len(objects):
            feats.add("repeated_class")
    assert len(synth.CLASSES) >= 8 and classes == set(synth.CLASSES)
    assert feats == {
        "no_parts", "placeholder", "pseudo_real_name", "part_without_aff", "none_action", "aff_bbox",
        "several_points", "mask", "aff_bbox_without_mask", "repeated_class",
    }


def test_deterministic_for_seed_and_independent_of_workers(tmp_path):
    a = synth.generate_dataset(tmp_path / "a", 6, seed=9, image_size=(96, 64), val_fraction=0.5)
    synth.generate_dataset(tmp_path / "b", 6, seed=9, image_size=(96, 64), val_fraction=0.5, workers=2)
    synth.generate_dataset(tmp_path / "c", 6, seed=10, image_size=(96, 64), val_fraction=0.5)
    assert (a.num_train, a.num_val) == (3, 3)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert not list((tmp_path / "a").rglob("*.tmp"))


def test_cli_synth(tmp_path, capsys):
    rc = cli_main(["synth", "--out", str(tmp_path / "s"), "--num-images", "4", "--seed", "1",
                   "--image-size", "64x48", "--val-fraction", "0.25", "--no-progress"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["num_train"], info["num_val"], info["image_size"]) == (3, 1, [64, 48])
    assert len(_read(tmp_path / "s" / "train.jsonl")) == 3
    assert cli_main(["synth", "--out", str(tmp_path / "t"), "--num-images", "2", "--val-fraction", "2"]) == 2


def test_rerun_into_a_larger_runs_folder_leaves_exactly_the_new_dataset(tmp_path):
    big = synth.generate_dataset(tmp_path / "d", 8, seed=3, image_size=(64, 48), val_fraction=0.25)
    assert big.removed_files == 0
    small = synth.generate_dataset(tmp_path / "d", 3, seed=4, image_size=(64, 48), val_fraction=0.0)
    synth.generate_dataset(tmp_path / "fresh", 3, seed=4, image_size=(64, 48), val_fraction=0.0)
    assert _digest(tmp_path / "d") == _digest(tmp_path / "fresh")  # no image or mask of the old run left
    assert small.removed_files > 0
    (tmp_path / "d" / "notes.txt").write_text("mine")  # files beside the dataset are not the run's business
    synth.generate_dataset(tmp_path / "d", 2, seed=4, image_size=(64, 48), val_fraction=0.0)
    assert (tmp_path / "d" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "d" / "images").iterdir()) == ["000000.jpg", "000001.jpg"]


def test_folder_with_foreign_images_is_refused_before_writing(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "images" / "holiday.jpg").write_bytes(b"not ours")
    before = sorted(p.name for p in (tmp_path / "d").rglob("*"))
    rc = cli_main(["synth", "--out", str(tmp_path / "d"), "--num-images", "2", "--image-size", "64x48", "--no-progress"])
    assert rc == 2 and "holiday.jpg" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "d").rglob("*")) == before
    assert (tmp_path / "d" / "images" / "holiday.jpg").read_bytes() == b"not ours"
