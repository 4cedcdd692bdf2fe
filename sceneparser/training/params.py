"""The model's trainable parts: vision tower, merger and language model; freezing and optimizer groups.

* Every parameter belongs to exactly one part: the vision tower without its merger (``vision``),
  the merger (``merger``) and everything else, i.e. the language model, embeddings and lm_head
  (``llm``); :func:`parameter_parts` also finds them inside a peft wrapper.
* Three learning rates (docs/reference.md, *training*): ``vision_tower_lr``, ``mm_projector_lr``
  and ``learning_rate``; each part split into decay / no-decay. No decay on biases and on every
  norm weight (LayerNorm and RMSNorm), or, with ``weight_decay_exclude="reference"``, only on
  ``nn.LayerNorm`` and ``*bias`` as the reference's patch does (so its RMSNorm weights decay,
  docs/reference.md, *known-bugs*).
* Freezing: ``tune_vision`` / ``tune_merger`` / ``tune_llm`` switch ``requires_grad`` of the
  three parts (the reference's lm_head switch had no effect; ours freezes the parameters).
* Fingerprints: :func:`model_signature` (names, shapes, trainability: what a checkpoint must
  match) and :func:`parameter_checksum` (the values: to compare ranks and saved models).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from sceneparser.training.zero import consolidated_state_dict, full_shape, is_partitioned


def find_vision_modules(model: nn.Module) -> tuple[nn.Module | None, nn.Module | None]:
    """``(vision_tower, merger)`` of a Qwen2.5-VL model (also inside a peft wrapper)."""
    tower = None
    for name, module in model.named_modules():
        if name == "visual" or name.endswith(".visual"):
            tower = module
            break
    merger = getattr(tower, "merger", None) if tower is not None else None
    return tower, merger


def parameter_parts(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Every named parameter in exactly one of ``vision``, ``merger`` and ``llm``."""
    tower, merger = find_vision_modules(model)
    merger_ids = {id(p) for p in merger.parameters()} if merger is not None else set()
    tower_ids = {id(p) for p in tower.parameters()} - merger_ids if tower is not None else set()
    parts: dict[str, list[tuple[str, nn.Parameter]]] = {"vision": [], "merger": [], "llm": []}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        key = "merger" if id(p) in merger_ids else "vision" if id(p) in tower_ids else "llm"
        parts[key].append((name, p))
    return parts


def no_decay_ids(model: nn.Module, mode: str = "norms_and_biases") -> set[int]:
    """Ids of parameters that get no weight decay."""
    out: set[int] = set()
    for module in model.modules():
        is_norm = isinstance(module, nn.LayerNorm) if mode == "reference" else _is_norm(module)
        for pname, p in module.named_parameters(recurse=False):
            if is_norm or "bias" in pname:
                out.add(id(p))
    return out


def _is_norm(module: nn.Module) -> bool:
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)):
        return True
    return "norm" in type(module).__name__.lower()


def apply_freezing(model: nn.Module, *, tune_vision: bool, tune_merger: bool, tune_llm: bool) -> dict[str, int]:
    """Set ``requires_grad`` per part; returns the trainable parameter count of each part."""
    flags = {"vision": tune_vision, "merger": tune_merger, "llm": tune_llm}
    counts = {}
    for part, params in parameter_parts(model).items():
        for _, p in params:
            p.requires_grad_(flags[part])
        counts[part] = sum(_numel(p) for _, p in params if p.requires_grad)
    return counts


def parameter_groups(
    model: nn.Module,
    *,
    learning_rate: float,
    mm_projector_lr: float | None = None,
    vision_tower_lr: float | None = None,
    weight_decay: float = 0.0,
    weight_decay_exclude: str = "norms_and_biases",
) -> list[dict[str, Any]]:
    """Optimizer param groups: (llm, vision, merger) x (decay, no decay), empty groups left out."""
    lrs = {
        "llm": learning_rate,
        "vision": learning_rate if vision_tower_lr is None else vision_tower_lr,
        "merger": learning_rate if mm_projector_lr is None else mm_projector_lr,
    }
    skip = no_decay_ids(model, weight_decay_exclude)
    groups = []
    for part, params in parameter_parts(model).items():
        trainable = [(n, p) for n, p in params if p.requires_grad]
        decay = [p for n, p in trainable if id(p) not in skip]
        plain = [p for n, p in trainable if id(p) in skip]
        if decay:
            groups.append({"params": decay, "lr": lrs[part], "weight_decay": weight_decay, "name": f"{part}.decay"})
        if plain:
            groups.append({"params": plain, "lr": lrs[part], "weight_decay": 0.0, "name": f"{part}.no_decay"})
    return groups


def trainable_summary(model: nn.Module) -> dict[str, Any]:
    """``{part: {"params": n, "trainable": n}}`` (for the log)."""
    parts = parameter_parts(model)
    return {
        part: {
            "params": sum(_numel(p) for _, p in params),
            "trainable": sum(_numel(p) for _, p in params if p.requires_grad),
        }
        for part, params in parts.items()
    }


def _numel(p: nn.Parameter) -> int:
    """Elements of the whole parameter (a ZeRO-3 partitioned one holds only its slice)."""
    return int(getattr(p, "ds_numel", None) or p.numel())


def model_signature(model: nn.Module) -> str:
    """A hash of every parameter's name, shape and trainability (what a checkpoint must match).

    The shape is the whole parameter's, so a ZeRO-3 partitioned model and the same model built
    whole have one signature.
    """
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}|{full_shape(p)}|{int(p.requires_grad)}\n".encode())
    return h.hexdigest()[:16]


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names and values (as fp32), in name order."""
    h = hashlib.sha256()
    for name, t in sorted(state.items(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def parameter_checksum(model: nn.Module) -> str:
    """A hash of the parameter values (to compare ranks and saved models).

    A ZeRO-3 partitioned model is hashed over its gathered parameters (collective: every rank
    must call it then), never over the local slices.
    """
    state = consolidated_state_dict(model) if is_partitioned(model) else model.state_dict()
    return state_checksum(state)


__all__ = [
    "apply_freezing",
    "find_vision_modules",
    "model_signature",
    "no_decay_ids",
    "parameter_checksum",
    "parameter_groups",
    "parameter_parts",
    "state_checksum",
    "trainable_summary",
]
