"""Fixtures of the training tests: a small synthetic TSV and the tiny processor.

The TSV is made with the package's own ``generate_dataset`` + ``convert_jsonl`` (64 images of
112x112, so one image is 16 tokens at most and a training step of the tiny model is fast).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_tsv(tmp_path_factory):
    """A TSV directory with 64 synthetic training images (112x112)."""
    from sceneparser.data.convert import convert_jsonl
    from sceneparser.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("train_data")
    generate_dataset(root / "synth", num_images=64, seed=7, image_size=(112, 112), val_fraction=0.0)
    convert_jsonl(root / "synth" / "train.jsonl", root / "tsv", image_root=root / "synth", workers=1)
    return root / "tsv"


@pytest.fixture(scope="session")
def tiny_processor():
    """The tiny model's processor with the tiny preset's pixel range."""
    from sceneparser.model.tiny import build_tiny
    from sceneparser.training.stage import apply_pixel_limits

    _, processor = build_tiny(seed=0)
    apply_pixel_limits(processor, 3136, 12544)
    return processor


@pytest.fixture()
def fast_overrides():
    """``--set`` values that keep a tiny-preset run to a few seconds."""
    return [
        "train.max_steps=3",
        "runtime.disable_tqdm=true",
        "runtime.report_to=[]",
        "runtime.save_steps=1000",
    ]
