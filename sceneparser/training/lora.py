"""LoRA through peft: wrap the model, and save the result merged or as an adapter.

The default targets are every linear layer of the language model (a regex, because the vision
blocks also have ``gate_proj`` / ``up_proj`` / ``down_proj``). The base weights are frozen;
``tune_vision`` / ``tune_merger`` keep those parts fully trainable next to the adapters
(peft's ``modules_to_save``-free way: their ``requires_grad`` is switched back on).

``lora.save = "merged"`` writes a complete model directory (``SceneParser.from_pretrained``
loads it, and the next curriculum stage starts from it); ``"adapter"`` writes peft's
``adapter_model.safetensors`` + ``adapter_config.json`` with the processor files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sceneparser.errors import InputError, require
from sceneparser.model.loading import load_model_dir, load_processor, read_extra, resolve_model_path
from sceneparser.model.tiny import build_tiny
from sceneparser.training.config import LoraSection, validate_config
from sceneparser.training.params import parameter_parts
from sceneparser.training.saving import TRAINING_CONFIG_FILE, save_processor_parts


def apply_lora(model, lora: LoraSection, *, tune_vision: bool = False, tune_merger: bool = False):
    """``model`` wrapped by peft with the LoRA settings; returns the ``PeftModel``."""
    peft = require("peft", "train")

    config = peft.LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=list(lora.modules_to_save) or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as exc:
        raise InputError(f"lora.target_modules matched nothing usable in this model: {exc}") from None
    parts = parameter_parts(wrapped)
    for part, flag in (("vision", tune_vision), ("merger", tune_merger)):
        if flag:
            for name, p in parts[part]:
                if "lora_" not in name:
                    p.requires_grad_(True)
    return wrapped


def lora_summary(lora: LoraSection) -> dict[str, Any] | None:
    if not lora.enabled:
        return None
    return {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "target_modules": lora.target_modules}


def save_lora_adapter(peft_model, processor, output_dir: Path, extra: dict | None = None) -> Path:
    """peft adapter files + the processor (tokenizer, image processor, chat template)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(output_dir))
    save_processor_parts(processor, output_dir, extra=extra)
    return output_dir


def load_adapter_model(adapter_dir, base: str | None = None, merge: bool = True):
    """``(model, processor)`` from an adapter directory: the base model plus the adapter.

    ``base`` defaults to the ``init`` recorded at training time; ``"tiny"`` rebuilds the tiny
    random base from the recorded seed, so only real base models are reproducible bit for bit.
    """
    peft = require("peft", "train")

    adapter_dir = Path(adapter_dir)
    record = read_extra(adapter_dir).get("training") or {}
    base = base or record.get("init")
    if not base:
        raise InputError(f"{adapter_dir}: no base model recorded; pass base=")
    if base == "tiny":
        cfg = validate_config(yaml.safe_load((adapter_dir / TRAINING_CONFIG_FILE).read_text(encoding="utf-8")))
        model, _ = build_tiny(seed=cfg.model.seed, **cfg.model.tiny)
    else:
        model, _ = load_model_dir(resolve_model_path(base), device="cpu")
    processor = load_processor(adapter_dir, model.config)
    wrapped = peft.PeftModel.from_pretrained(model, str(adapter_dir))
    return (wrapped.merge_and_unload() if merge else wrapped), processor


def adapter_config(adapter_dir) -> dict[str, Any]:
    return json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))


__all__ = ["adapter_config", "apply_lora", "load_adapter_model", "lora_summary", "save_lora_adapter"]
