"""DeepSpeed ZeRO in a training stage: the config checked up front, partitioned models, consolidated weights.

* :func:`read_deepspeed_config` reads a ``runtime.deepspeed`` value (``zero2``, ``zero3`` or a
  JSON path) once and refuses, before any model is loaded, a config that cannot work with the
  stage's options (:func:`check_deepspeed_settings`): an unknown ZeRO stage, ZeRO-3 with
  ``stage3_gather_16bit_weights_on_model_save: false`` (its checkpoints would hold no weights),
  the auxiliary losses (their head lives outside the model and outside DeepSpeed's optimizer).
* Under ZeRO-3 every stage builds its model partitioned (first stage or resumed, tiny or loaded):
  transformers' ``from_pretrained`` partitions by itself once the training arguments exist, the
  tiny model is partitioned right after it is built (:func:`partition`). Shapes that identify a
  model use :func:`full_shape` (a partitioned parameter reports its local slice).
* At the end of a stage :func:`consolidated_state_dict` assembles, on every rank, the full
  weights in fp32: DeepSpeed's fp32 master copy of every trained parameter (ZeRO-1/2/3), the
  gathered value of every frozen one. The saved model, the checksum and a LoRA merge are all made
  from it, so nothing depends on DeepSpeed's own 16-bit save and nothing is merged or hashed while
  it is partitioned.
* :func:`release_deepspeed_state` forgets the stage's DeepSpeed config (transformers' global
  ZeRO-3 flag and accelerate's shared state), so the next stage starts clean.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sceneparser.errors import InputError

ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True)
class DeepSpeedPlan:
    """What a ``runtime.deepspeed`` value asks for."""

    path: Path
    stage: int
    gathers_weights: bool
    config: dict[str, Any]


def read_deepspeed_config(path: Path) -> DeepSpeedPlan:
    """The :class:`DeepSpeedPlan` of a DeepSpeed JSON file; a file that cannot work is refused."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the DeepSpeed config {path}: {exc}") from None
    except ValueError as exc:
        raise InputError(f"the DeepSpeed config {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"the DeepSpeed config {path} must be a JSON object")
    zero = data.get("zero_optimization") or {}
    if not isinstance(zero, dict):
        raise InputError(f"the DeepSpeed config {path}: zero_optimization must be an object")
    stage = zero.get("stage", 0)
    if isinstance(stage, bool) or not isinstance(stage, int) or stage not in ZERO_STAGES:
        raise InputError(
            f"the DeepSpeed config {path}: zero_optimization.stage {stage!r} is not a ZeRO stage "
            f"({', '.join(map(str, ZERO_STAGES))})"
        )
    gathers = bool(zero.get("stage3_gather_16bit_weights_on_model_save", False)) if stage == 3 else True
    return DeepSpeedPlan(path=Path(path), stage=stage, gathers_weights=gathers, config=data)


def check_deepspeed_settings(plan: DeepSpeedPlan | None, *, aux_losses: bool, attention_supervision: bool,
                             where: str = "") -> None:
    """Refuse options that cannot work with ``plan`` (before any model is loaded)."""
    if plan is None:
        return
    at = f" ({where})" if where else ""
    if aux_losses:
        raise InputError(
            f"train.token_class_loss_weight / token_box_loss_weight need the plain Trainer (the auxiliary head "
            f"lives outside the model); they are not supported with DeepSpeed{at}"
        )
    if attention_supervision:
        raise InputError(f"train.attention_supervision_weight is not supported with DeepSpeed{at}")
    if plan.stage == 3 and not plan.gathers_weights:
        raise InputError(
            f"the DeepSpeed config {plan.path} is ZeRO-3 with stage3_gather_16bit_weights_on_model_save false: "
            f"its checkpoints would hold no model weights (only DeepSpeed's partitions), so a checkpoint could "
            f"not be evaluated or loaded; set it to true{at}"
        )


def full_shape(param) -> tuple[int, ...]:
    """The shape of the whole parameter (a ZeRO-3 partitioned one reports its local slice as ``shape``)."""
    shape = getattr(param, "ds_shape", None)
    return tuple(shape) if shape is not None else tuple(param.shape)


def is_partitioned(model) -> bool:
    """Whether ``model``'s parameters are partitioned by ZeRO-3."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def init_deepspeed_comm() -> None:
    """DeepSpeed's view of the process group torch.distributed already runs (a partitioned build needs it).

    Without it DeepSpeed sees a world of one and refuses the batch sizes; the first stage of a
    process used to set it up only when its engine started, so a resumed curriculum whose first
    stage was skipped could not load its model partitioned.
    """
    import deepspeed
    import torch.distributed as torch_dist

    if torch_dist.is_available() and torch_dist.is_initialized():
        deepspeed.init_distributed(dist_backend=torch_dist.get_backend())


def partition(model, ds_config: dict[str, Any]):
    """``model`` (built whole) partitioned in place as if it had been built under ``deepspeed.zero.Init``."""
    import deepspeed

    init_deepspeed_comm()
    deepspeed.zero.Init(module=model, config_dict_or_path=ds_config)
    return model


def consolidated_state_dict(model) -> dict[str, Any]:
    """The full fp32 weights of ``model`` on every rank (collective: every rank must call it).

    Keys and tensors as ``model.state_dict()`` would give them unpartitioned (tied weights share
    one tensor); trained parameters come from DeepSpeed's fp32 master copy when there is one.
    """
    import torch

    try:
        from deepspeed.utils import safe_get_full_fp32_param
    except ImportError:  # no DeepSpeed: the parameters are whole
        safe_get_full_fp32_param = None
    done: dict[int, Any] = {}
    out: dict[str, Any] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        key = id(t)
        if key not in done:
            value = None
            if isinstance(t, torch.nn.Parameter) and safe_get_full_fp32_param is not None and t.requires_grad:
                value = safe_get_full_fp32_param(t)
            if value is None:
                value = _gathered(t)
            done[key] = value.detach().to("cpu", torch.float32).clone()
        out[name] = done[key]
    return out


def _gathered(t):
    if not hasattr(t, "ds_id"):
        return t.detach()
    import deepspeed

    with deepspeed.zero.GatheredParameters([t], modifier_rank=None):
        return t.detach().clone()


@contextmanager
def zero3_suspended(hf_deepspeed_config):
    """transformers builds models whole inside this block (its global ZeRO-3 flag is off, then restored).

    ``hf_deepspeed_config``: the training arguments' ``hf_deepspeed_config`` (None: nothing to suspend).
    Needed wherever one rank alone builds a model while the flag is on: a partitioned build is a
    collective, and the other ranks would never join it.
    """
    if hf_deepspeed_config is None:
        yield
        return
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        set_hf_deepspeed_config(hf_deepspeed_config)


def zero_stage_of(trainer) -> int:
    """The ZeRO stage the trainer's accelerator runs (0 without DeepSpeed)."""
    if not getattr(trainer, "is_deepspeed_enabled", False):
        return 0
    plugin = trainer.accelerator.state.deepspeed_plugin
    return int(getattr(plugin, "zero_stage", 0) or 0)


def release_deepspeed_state() -> None:
    """Forget the finished stage's DeepSpeed config (transformers' ZeRO-3 flag, accelerate's shared state)."""
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    except ImportError:  # pragma: no cover - transformers without the integration
        unset_hf_deepspeed_config = None
    if unset_hf_deepspeed_config is not None:
        unset_hf_deepspeed_config()
    try:
        from accelerate.state import AcceleratorState
    except ImportError:  # pragma: no cover - accelerate is a Trainer dependency
        return
    AcceleratorState._reset_state(reset_partial_state=False)


__all__ = [
    "DeepSpeedPlan",
    "ZERO_STAGES",
    "check_deepspeed_settings",
    "consolidated_state_dict",
    "full_shape",
    "init_deepspeed_comm",
    "is_partitioned",
    "partition",
    "read_deepspeed_config",
    "release_deepspeed_state",
    "zero3_suspended",
    "zero_stage_of",
]
