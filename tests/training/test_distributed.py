"""The tiny preset under ``torchrun --nproc-per-node 2`` on CPU (gloo)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from sceneparser.model.loading import load_model_dir, read_extra
from sceneparser.training.params import parameter_checksum

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_train_the_same_model(tmp_path, train_tsv, fast_overrides):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "sceneparser.cli", "train", "--config", "tiny", "--stage", "1",
        "--data", str(train_tsv), "--output-dir", str(out), "--quiet",
    ]
    for value in fast_overrides + ["train.max_steps=3"]:
        cmd += ["--set", value]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    reports = [json.loads((out / "rank_reports" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, report in enumerate(reports):
        assert report["rank"] == rank and report["world_size"] == 2
        assert report["global_step"] == 3
        assert report["stats"]["micro_batches"] == 3 and report["stats"]["samples"] == 12
    # the ranks saw different samples but hold identical weights after every all-reduce
    assert reports[0]["stats"]["tokens"] != reports[1]["stats"]["tokens"]
    assert reports[0]["parameter_checksum"] == reports[1]["parameter_checksum"]
    record = read_extra(out)["training"]
    assert record["world_size"] == 2 and record["parameter_checksum"] == reports[0]["parameter_checksum"]
    model, _ = load_model_dir(out)
    assert parameter_checksum(model) == reports[0]["parameter_checksum"]
