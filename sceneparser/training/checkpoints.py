"""The ``checkpoint-N`` directories of a stage: which one to resume from, and whether it fits the model.

Every checkpoint gets a stamp (:data:`SIGNATURE_FILE`: the model signature, the init and the
training config, written by :class:`~sceneparser.training.callbacks.CheckpointSignatureCallback`),
so a resume with another model or trainable-parameter set is refused with a clear message rather
than failing deep inside the Trainer. The auxiliary token-class head, which lives outside the
model, is saved next to the weights as :data:`TOKEN_HEAD_FILE`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from safetensors import safe_open

from sceneparser.errors import InputError

SIGNATURE_FILE = "sceneparser_checkpoint.json"
TOKEN_HEAD_FILE = "token_class_head.pt"


def iter_checkpoints(output_dir: Path) -> Iterable[Path]:
    """``checkpoint-N`` directories of ``output_dir``, oldest first."""
    found = []
    for p in Path(output_dir).glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


def find_resume_checkpoint(output_dir: Path, resume: str) -> Path | None:
    """The checkpoint to resume from, per ``resume`` (auto / none / a path)."""
    if resume == "none":
        return None
    if resume == "auto":
        found = list(iter_checkpoints(output_dir)) if output_dir.is_dir() else []
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not path.is_dir():
        raise InputError(f"--resume {resume}: no such checkpoint directory")
    return path


def check_checkpoint(checkpoint: Path, signature: str, model) -> None:
    """Refuse a checkpoint that was not written for this model and trainable-parameter set."""
    if not (checkpoint / "trainer_state.json").is_file():
        raise InputError(f"{checkpoint} is not a Trainer checkpoint (no trainer_state.json)")
    stamp = checkpoint / SIGNATURE_FILE
    if stamp.is_file():
        try:
            data = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if data.get("signature") and data["signature"] != signature:
            raise InputError(
                f"cannot resume from {checkpoint}: it was written for a different model or set of trainable "
                f"parameters (checkpoint {data.get('signature')}, now {signature}; it was trained from "
                f"{data.get('init')!r} with lora={data.get('lora')}). Resume with the same config, or start over "
                "with --resume none (or a new --output-dir)"
            )
        return
    weights = [checkpoint / n for n in ("model.safetensors", "adapter_model.safetensors") if (checkpoint / n).is_file()]
    if not weights:
        return  # sharded / DeepSpeed checkpoints: the Trainer checks them itself
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with safe_open(str(weights[0]), framework="pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    bad = [k for k, shape in found.items() if k in expected and expected[k] != shape]
    unknown = [k for k in found if k not in expected]
    if bad or (unknown and len(unknown) == len(found)):
        example = (bad or unknown)[0]
        raise InputError(
            f"cannot resume from {checkpoint}: its weights do not fit this model ({len(bad)} shape mismatches, "
            f"{len(unknown)} unknown tensors, e.g. {example!r}). Resume with the config that wrote it, or "
            "start over with --resume none (or a new --output-dir)"
        )


__all__ = ["SIGNATURE_FILE", "TOKEN_HEAD_FILE", "check_checkpoint", "find_resume_checkpoint", "iter_checkpoints"]
