"""LoRA through peft: only adapters train; saved merged (a model dir) or as an adapter."""

import pytest
import torch

from sceneparser.model.loading import load_model_dir, missing_files
from sceneparser.model.tiny import build_tiny
from sceneparser.training.config import load_config
from sceneparser.training.lora import load_adapter_model
from sceneparser.training.stage import stage_is_complete, train_stage

pytestmark = pytest.mark.slow


def _cfg(overrides, save):
    sets = overrides + [
        "lora.enabled=true", "lora.r=4", "lora.alpha=8", f"lora.save={save}",
        "train.tune_vision=false", "train.tune_merger=false", "train.max_steps=2",
    ]
    return load_config("tiny", sets).for_stage(1)


def test_lora_merged_and_adapter(tmp_path, train_tsv, fast_overrides):
    base, _ = build_tiny(seed=0)
    base_sd = base.state_dict()

    merged_dir = tmp_path / "merged"
    train_stage(_cfg(fast_overrides, "merged"), train_tsv, merged_dir, init="tiny", stage=1)
    assert missing_files(merged_dir) == [] and stage_is_complete(merged_dir)
    merged, _ = load_model_dir(merged_dir)
    sd = merged.state_dict()
    assert set(sd) == set(base_sd)  # merged: a plain Qwen2.5-VL again
    changed = [k for k in sd if not torch.equal(sd[k], base_sd[k])]
    assert changed and all("language_model" in k and k.endswith("proj.weight") for k in changed)
    assert not any(".visual." in k for k in changed)

    adapter_dir = tmp_path / "adapter"
    train_stage(_cfg(fast_overrides, "adapter"), train_tsv, adapter_dir, init="tiny", stage=1)
    assert (adapter_dir / "adapter_config.json").is_file() and (adapter_dir / "adapter_model.safetensors").is_file()
    assert stage_is_complete(adapter_dir)
    model, processor = load_adapter_model(adapter_dir)
    # same seed, same data, same steps: the adapter reproduces the merged weights
    for k, v in model.state_dict().items():
        assert torch.allclose(v, sd[k], atol=1e-6), k
    assert processor.image_processor.max_pixels == 12544
