"""Fixtures of the evaluation tests."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def real_eval(tmp_path_factory):
    """A real eval folder: the shipped default model on 8 synthetic held-out images (seed 2000),
    made once per session (the report and the report browser tests read it)."""
    base = tmp_path_factory.mktemp("report-real-eval")
    res = base / "res"
    cli = [sys.executable, "-m", "sceneparser.cli"]
    subprocess.run(cli + ["synth", "--out", str(base / "data"), "--num-images", "8", "--seed", "2000"],
                   check=True, capture_output=True)
    subprocess.run(cli + ["eval", "--data", str(base / "data" / "train.jsonl"), "--image-root", str(base / "data"),
                          "--out", str(res), "--limit", "8", "--max-new-tokens", "512", "--no-progress"],
                   check=True, capture_output=True)
    return res
