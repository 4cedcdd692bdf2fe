"""LoRA through peft: wrap the model, and save the result merged or as an adapter.

The default targets are every linear layer of the language model (a regex, because the vision
blocks also have ``gate_proj`` / ``up_proj`` / ``down_proj``). The base weights are frozen;
``tune_vision`` / ``tune_merger`` keep those parts fully trainable next to the adapters
(peft's ``modules_to_save``-free way: their ``requires_grad`` is switched back on).

``lora.save = "merged"`` writes a complete model directory (``SceneParser.from_pretrained``
loads it, and the next curriculum stage starts from it); ``"adapter"`` writes peft's
``adapter_model.safetensors`` + ``adapter_config.json`` with the processor files, and the fully
trained vision tower / merger (``tune_vision`` / ``tune_merger``) in ``trained_base.safetensors``;
:func:`load_adapter_model` puts them into the base before the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sceneparser.errors import InputError, require
from sceneparser.io import write_bytes
from sceneparser.model.loading import load_model_dir, load_processor, read_extra, resolve_model_path
from sceneparser.model.tiny import build_tiny
from sceneparser.training.config import LoraSection, validate_config
from sceneparser.training.params import parameter_parts
from sceneparser.training.saving import TRAINING_CONFIG_FILE, save_processor_parts

#: the fully trained base parameters of an adapter directory (tune_vision / tune_merger with LoRA)
TRAINED_BASE_FILE = "trained_base.safetensors"


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


def merged_lora_state(peft_model, state: dict[str, Any]) -> dict[str, Any]:
    """The base model's state dict with every LoRA update merged in, from the wrapped model's ``state``.

    ``state`` holds the whole (gathered) tensors of ``peft_model``'s state dict (keys
    ``base_model.model.<module>.base_layer.weight``, ``...lora_A.<adapter>.weight``, ...): the merge
    is ``W + scaling * B @ A`` per LoRA layer, what peft's ``merge_and_unload`` computes, but on
    whole tensors (under ZeRO-3 the module's own weights are partitioned and cannot be merged).
    """
    peft = require("peft", "train")

    prefix = "base_model.model."
    out = dict(state)
    for name, module in peft_model.named_modules():
        if not isinstance(module, peft.tuners.lora.LoraLayer):
            continue
        if getattr(module, "fan_in_fan_out", False) or any(getattr(module, "use_dora", {}).values()):
            raise InputError(f"LoRA layer {name}: fan_in_fan_out / DoRA layers are not supported by the merged save")
        weight = out[f"{name}.base_layer.weight"]
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            a = out.pop(f"{name}.lora_A.{adapter}.weight")
            b = out.pop(f"{name}.lora_B.{adapter}.weight")
            weight = weight + module.scaling[adapter] * (b.float() @ a.float()).to(weight.dtype)
        out[f"{name}.base_layer.weight"] = weight
    merged = {}
    for key, value in out.items():
        if ".lora_" in key:
            continue  # an inactive adapter's tensors
        key = key[len(prefix):] if key.startswith(prefix) else key
        merged[key.replace(".base_layer.", ".")] = value
    return merged


def save_lora_adapter(peft_model, processor, output_dir: Path, extra: dict | None = None,
                      state_dict: dict[str, Any] | None = None) -> Path:
    """peft adapter files + the processor (tokenizer, image processor, chat template).

    ``state_dict``: the wrapped model's whole tensors (needed under ZeRO-3, where the module's own
    tensors are partitioned; peft picks the adapter's tensors out of it).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {"state_dict": state_dict} if state_dict is not None else {}
    peft_model.save_pretrained(str(output_dir), **kwargs)
    trained = trained_base_tensors(peft_model, state_dict)
    if trained:  # tune_vision / tune_merger: the fully trained parts go next to the adapter
        write_bytes(output_dir / TRAINED_BASE_FILE, save_safetensors(trained))
    save_processor_parts(processor, output_dir, extra=extra)
    return output_dir


def trained_base_tensors(peft_model, state_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fully trained (non-LoRA) parameters of ``peft_model``, named as in the base model."""
    state = state_dict if state_dict is not None else peft_model.state_dict()
    prefix = "base_model.model."
    out = {}
    for name, p in peft_model.named_parameters():
        if p.requires_grad and "lora_" not in name:
            out[name[len(prefix):] if name.startswith(prefix) else name] = state[name].detach().cpu().contiguous()
    return out


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
    trained_file = adapter_dir / TRAINED_BASE_FILE
    if trained_file.is_file():
        trained = load_safetensors(trained_file.read_bytes())
        own = model.state_dict()
        unknown = sorted(k for k in trained if k not in own)
        if unknown:
            raise InputError(f"{trained_file}: tensors the base model does not have: {', '.join(unknown)}")
        model.load_state_dict(trained, strict=False)
    wrapped = peft.PeftModel.from_pretrained(model, str(adapter_dir))
    return (wrapped.merge_and_unload() if merge else wrapped), processor


def adapter_config(adapter_dir) -> dict[str, Any]:
    return json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))


__all__ = [
    "TRAINED_BASE_FILE",
    "adapter_config",
    "apply_lora",
    "load_adapter_model",
    "lora_summary",
    "merged_lora_state",
    "save_lora_adapter",
    "trained_base_tensors",
]
