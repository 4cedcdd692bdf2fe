"""One stage: checkpoints, resume, and refusing an incompatible checkpoint."""

import json

import pytest

from sceneparser.errors import InputError
from sceneparser.model.loading import EXTRA_FILE, load_model_dir
from sceneparser.training.checkpoints import SIGNATURE_FILE
from sceneparser.training.config import load_config, resolve_stage
from sceneparser.training.params import parameter_checksum
from sceneparser.training.stage import train_stage

pytestmark = pytest.mark.slow


def _stage1(overrides):
    cfg, init = resolve_stage(load_config("tiny", overrides), 1)
    return cfg, init


def test_resume_and_incompatible_checkpoints(tmp_path, train_tsv, fast_overrides):
    out = tmp_path / "s1"
    cfg, init = _stage1(fast_overrides + ["train.max_steps=2", "runtime.save_steps=2"])
    first = train_stage(cfg, train_tsv, out, init=init, stage=1)
    assert first.global_step == 2 and (out / "checkpoint-2" / SIGNATURE_FILE).is_file()
    report = json.loads((out / "rank_reports" / "rank0.json").read_text())
    model, _ = load_model_dir(out)
    assert parameter_checksum(model) == report["parameter_checksum"]

    # pretend the run was interrupted after checkpoint-2, and continue to step 4
    (out / EXTRA_FILE).unlink()
    cfg4, _ = _stage1(fast_overrides + ["train.max_steps=4", "runtime.save_steps=2"])
    resumed = train_stage(cfg4, train_tsv, out, init=init, stage=1)
    assert resumed.global_step == 4
    assert [step for step, _ in resumed.losses] == [3, 4]  # steps 1-2 came from the checkpoint
    # the checkpoint's WEIGHTS were restored, not only the optimizer (transformers 5 saves
    # Qwen2.5-VL under legacy key names): the first resumed step sees exactly the weights and the
    # batch of an uninterrupted run's step 3 (with the initial weights its loss is ~7.30)
    straight = train_stage(cfg4, train_tsv, tmp_path / "straight", init=init, stage=1)
    assert dict(straight.losses)[3] == dict(resumed.losses)[3]

    # a checkpoint of another model shape or trainable set is refused with a clear message
    (out / EXTRA_FILE).unlink()
    other, _ = _stage1(fast_overrides + ["train.max_steps=6", "model.tiny={intermediate_size: 96}"])
    with pytest.raises(InputError, match="different model"):
        train_stage(other, train_tsv, out, init=init, stage=1)
    frozen, _ = _stage1(fast_overrides + ["train.max_steps=6", "train.tune_vision=false"])
    with pytest.raises(InputError, match="different model or set of trainable"):
        train_stage(frozen, train_tsv, out, init=init, stage=1)
    for stamp in out.glob(f"checkpoint-*/{SIGNATURE_FILE}"):
        stamp.unlink()  # a foreign checkpoint without our stamp: the weights' shapes are compared
    with pytest.raises(InputError, match="do not fit this model"):
        train_stage(other, train_tsv, out, init=init, stage=1)
    with pytest.raises(InputError, match="no such checkpoint"):
        train_stage(cfg4, train_tsv, out, init=init, stage=1, resume=str(tmp_path / "nope"))

    # --resume none starts over
    fresh = train_stage(cfg, train_tsv, out, init=init, stage=1, resume="none")
    assert fresh.global_step == 2 and [s for s, _ in fresh.losses] == [1, 2]


def test_output_dir_must_differ_from_init(tmp_path, train_tsv, fast_overrides):
    cfg = load_config("tiny", fast_overrides).for_stage(2)
    with pytest.raises(InputError, match="also the model to start from"):
        train_stage(cfg, train_tsv, tmp_path, init=str(tmp_path), stage=2)


def test_epoch_reaches_dataloader_workers(tmp_path, train_tsv, fast_overrides):
    """8 images, batch 4: 2 steps per epoch; 6 steps = epochs 0, 1, 2, seen inside a worker."""
    cfg, init = _stage1(fast_overrides + [
        "train.max_steps=6", "data.max_images=8", "data.num_workers=1", "runtime.gradient_checkpointing=true",
        "data.query_mode=sample", "data.negative_ratio=0.5",
    ])
    result = train_stage(cfg, train_tsv, tmp_path / "e", init=init, stage=1)
    assert result.global_step == 6
    assert result.stats["epochs_seen"] == [0, 1, 2] and result.stats["samples"] == 24
