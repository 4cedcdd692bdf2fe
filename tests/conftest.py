"""Shared pytest configuration and session fixtures.

Fixtures that build models or data call the package's own public functions, so they also
exercise them. Keep them small: the whole suite must stay well under 30 minutes on 2 cores.
"""

from __future__ import annotations

import os

import pytest

# Nothing in the test-suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic dataset (train.jsonl, val.jsonl, images, masks) in the benchmark format."""
    from sceneparser.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, num_images=12, seed=1234, image_size=(160, 120), val_fraction=0.25)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A complete tiny random model directory that SceneParser.from_pretrained can load."""
    from sceneparser.model.loading import save_model_dir
    from sceneparser.model.tiny import build_tiny

    model, processor = build_tiny(seed=0)
    out = tmp_path_factory.mktemp("tiny_model")
    save_model_dir(model, processor, out)
    return out
