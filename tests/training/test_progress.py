"""The training terminal: one progress bar per stage (loss, lr), no printed log dicts, every
logged dict in OUTPUT_DIR/log.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys


def test_one_bar_per_stage_and_a_log_file(tmp_path, train_tsv):
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "sceneparser.cli", "train", "--config", "tiny", "--stage", "1", "--data", str(train_tsv),
         "--output-dir", str(out), "--set", "train.max_steps=4", "--set", "runtime.logging_steps=1",
         "--set", "runtime.report_to=[]", "--set", "runtime.save_steps=1000"],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    err = r.stderr.replace("\r", "\n")
    assert "stage 1" in err and "4/4" in err and "loss=" in err and "lr=" in err
    assert "{'loss'" not in err and "{'loss'" not in r.stdout  # no printed log dicts
    assert "Warning" not in err and "warn(" not in err
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    losses = [x for x in rows if "loss" in x]
    assert [x["step"] for x in losses] == [1, 2, 3, 4] and all("learning_rate" in x for x in losses)
