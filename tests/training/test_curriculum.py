"""The whole tiny curriculum through the CLI on 64 synthetic images (a few steps per stage)."""

import json

import pytest
from PIL import Image

from sceneparser import cli
from sceneparser.data.tsv import TSVReader
from sceneparser.model.loading import missing_files, read_extra

pytestmark = pytest.mark.slow


def _sets(values):
    return [a for v in values for a in ("--set", v)]


def test_curriculum_runs_chains_and_the_result_parses(tmp_path, train_tsv, fast_overrides, capsys):
    out = tmp_path / "run"
    argv = ["train", "--curriculum", "tiny", "--data", str(train_tsv), "--output-dir", str(out), "--quiet"]
    argv += _sets(fast_overrides + ["train.max_steps=6"])
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("6 steps") == 3

    losses = []
    for n in (1, 2, 3):
        d = out / f"stage{n}"
        assert missing_files(d) == [], d
        record = read_extra(d)["training"]
        assert record["status"] == "complete" and record["stage"] == n and record["global_step"] == 6
        assert record["init"] == ("tiny" if n == 1 else str(out / f"stage{n - 1}"))
        assert record["pseudo"] == ["drop", "mix(0.3)", "mix(0.5)"][n - 1]
        state = json.loads((d / "trainer_state.json").read_text())
        stage_losses = [h["loss"] for h in state["log_history"] if "loss" in h]
        assert len(stage_losses) == 6  # the tiny preset logs every step
        assert (d / "training_config.yaml").is_file() and (d / "rank_reports" / "rank0.json").is_file()
        losses.append(stage_losses)
    assert losses[0][-1] < losses[0][0]
    assert losses[2][-1] < losses[0][0] - 0.3  # the curriculum as a whole learns

    from sceneparser.inference.api import SceneParser

    parser = SceneParser.from_pretrained(out / "stage3", max_new_tokens=12)
    image = TSVReader(train_tsv).read(0).image()
    result = parser.parse(image, query="mug")
    assert isinstance(result.raw_text, str) and result.raw_text
    assert result.status in ("ok", "repaired", "failed")
    assert isinstance(result.prediction, dict)

    # running the same command again finds every stage finished and trains nothing
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("already complete") == 3


def test_single_stage_needs_the_previous_stage(tmp_path, train_tsv, capsys):
    argv = ["train", "--config", "tiny", "--stage", "2", "--data", str(train_tsv), "--output-dir", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    assert "--init" in capsys.readouterr().err
    assert cli.main(["train", "--config", "tiny", "--data", str(train_tsv), "--output-dir", str(tmp_path / "o")]) == 2
    assert "--stage" in capsys.readouterr().err
    assert cli.main(["train", "--config", "tiny", "--stage", "1", "--print-config", "--set", "train.epochs=2"]) == 0
    assert "epochs: 2.0" in capsys.readouterr().out
    assert cli.main(["train", "--config", "tiny", "--stage", "1", "--set", "train.epoch=2", "--print-config"]) == 2
    assert "did you mean 'train.epochs'" in capsys.readouterr().err
