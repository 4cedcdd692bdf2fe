"""``sceneparser parse`` end to end with the tiny model directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sceneparser.cli import main


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i, (w, h) in enumerate([(120, 90), (80, 100)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((np.random.RandomState(i).rand(h, w, 3) * 255).astype("uint8")).save(p)
        paths.append(str(p))
    return paths


def test_parse_jsonl_and_viz_dir(tiny_model_dir, images, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    rc = main(
        ["parse", *images, "--model", str(tiny_model_dir), "-q", "mug", "-q", "lid",
         "--out", str(out), "--viz", str(tmp_path / "viz"), "--max-new-tokens", "4", "--batch-size", "3"]
    )
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["image"], r["query"]) for r in rows] == [(images[0], "mug"), (images[0], "lid"), (images[1], "mug"), (images[1], "lid")]
    assert rows[1]["image_size"] == [120, 90] and rows[2]["image_size"] == [80, 100]
    pics = sorted(p.name for p in (tmp_path / "viz").iterdir())
    assert pics == ["img0.png", "img1.png"]
    assert Image.open(tmp_path / "viz" / "img0.png").width >= 120
    captured = capsys.readouterr()
    assert "mug" in captured.out and "wrote 4 results" in captured.err


def test_parse_stdout_json_scene_and_single_picture(tiny_model_dir, images, tmp_path, capsys):
    pic = tmp_path / "one.png"
    rc = main(["parse", images[0], "--model", str(tiny_model_dir), "--scene", "--viz", str(pic), "--max-new-tokens", "3"])
    assert rc == 0 and pic.is_file()
    line = capsys.readouterr().out.strip().splitlines()[0]
    d = json.loads(line)
    assert d["scene"] is True and d["query"] is None and "raw_text" not in d


def test_parse_json_list(tiny_model_dir, images, tmp_path):
    out = tmp_path / "out.json"
    assert main(["parse", images[1], "--model", str(tiny_model_dir), "-q", "cup", "--out", str(out), "--max-new-tokens", "2"]) == 0
    data = json.loads(out.read_text())
    assert isinstance(data, list) and data[0]["query"] == "cup"


def test_bad_inputs_are_reported_without_losing_the_rest(tiny_model_dir, images, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    out = tmp_path / "out.jsonl"
    rc = main(["parse", images[0], str(bad), str(tmp_path / "missing.png"), "--model", str(tiny_model_dir),
               "-q", "mug", "--out", str(out), "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "cannot decode" in err and "not found" in err and "Traceback" not in err
    assert len(out.read_text().splitlines()) == 1  # the good image was still parsed and written


def test_usage_errors(tiny_model_dir, images, tmp_path, capsys):
    assert main(["parse", images[0], "--model", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["parse", images[0], "--model", str(tiny_model_dir), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["parse", *images, "--model", str(tiny_model_dir), "--viz", str(tmp_path / "a.png"), "-q", "m", "--max-new-tokens", "1"]) == 2
    assert "single picture" in capsys.readouterr().err
    assert main(["parse", images[0], "--model", str(tiny_model_dir), "-q", "  ", "--max-new-tokens", "1"]) == 2
