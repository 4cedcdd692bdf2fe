"""transformers ``TrainerCallback``s of a training stage: epochs, loss history, checkpoint files.

* :class:`EpochCallback` hands the epoch to the dataset (its query draw depends on it);
* :class:`LossHistoryCallback` keeps every logged loss (the stage record and the curriculum
  report the first and last loss);
* :class:`StageProgressCallback` is the terminal view: one progress bar per stage with loss,
  learning rate and speed (instead of transformers' bar and its printed log dicts), and
  :class:`JsonlLogCallback` appends every logged dict to ``OUTPUT_DIR/log.jsonl`` (tensorboard
  gets them too, through ``report_to``);
* the checkpoint writers add files to each ``checkpoint-N`` after the Trainer's own save (rank 0):
  :class:`CheckpointSignatureCallback` stamps it so an incompatible resume is refused
  (:mod:`sceneparser.training.checkpoints`), :class:`ProcessorCheckpointCallback` makes it a
  complete model directory, :class:`TokenHeadCheckpointCallback` saves the auxiliary head.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import TrainerCallback

from sceneparser.model.loading import save_processor_files
from sceneparser.training.checkpoints import SIGNATURE_FILE, TOKEN_HEAD_FILE


class EpochCallback(TrainerCallback):
    """Give the dataset the epoch before each epoch's DataLoader iterator is created.

    accelerate forwards ``set_epoch`` to the dataset only when the sampler has none, so the
    trainer's own call is not enough (and workers are re-created per epoch, so they see it).
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(math.floor((state.epoch or 0.0) + 1e-6))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return control


class LossHistoryCallback(TrainerCallback):
    """Keep every logged loss in memory (the curriculum reports first/last loss per stage)."""

    def __init__(self):
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((int(state.global_step), float(logs["loss"])))
        return control


class StageProgressCallback(TrainerCallback):
    """One progress bar per stage on rank 0: steps done, loss, learning rate, steps/s."""

    def __init__(self, desc: str, *, disable: bool = False):
        self.desc = desc
        self.disable = disable
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not self.disable:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step",
                            file=sys.stderr, dynamic_ncols=True)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            shown = {}
            if "loss" in logs:
                shown["loss"] = f"{float(logs['loss']):.4f}"
            if "learning_rate" in logs:
                shown["lr"] = f"{float(logs['learning_rate']):.2e}"
            if shown:
                self.bar.set_postfix(shown, refresh=False)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return control


class JsonlLogCallback(TrainerCallback):
    """Append every logged dict (with its step) to ``path`` as one JSON line (rank 0)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": int(state.global_step), **logs}, default=float) + "\n")
        return control


class _CheckpointWriter(TrainerCallback):
    """Base of the callbacks that add files to each ``checkpoint-N`` (rank 0, after the Trainer's save)."""

    def write(self, ckpt: Path) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.write(ckpt)
        return control


class CheckpointSignatureCallback(_CheckpointWriter):
    """Stamp each checkpoint with the model signature and the training config."""

    def __init__(self, signature: str, info: dict[str, Any]):
        self.signature = signature
        self.info = info

    def write(self, ckpt: Path) -> None:
        data = {"signature": self.signature, **self.info}
        (ckpt / SIGNATURE_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


class ProcessorCheckpointCallback(_CheckpointWriter):
    """Write the tokenizer and image processor into each ``checkpoint-N``.

    A checkpoint then is a complete model directory: ``sceneparser probe``, ``eval`` and ``parse``
    run on it directly, e.g. to follow a learning curve while training goes on.
    """

    def __init__(self, processor):
        self.processor = processor

    def write(self, ckpt: Path) -> None:
        save_processor_files(self.processor, ckpt)


class TokenHeadCheckpointCallback(_CheckpointWriter):
    """Save the auxiliary token-class head (not part of the model) into each checkpoint, for resume."""

    def __init__(self, head):
        self.head = head

    def write(self, ckpt: Path) -> None:
        torch.save(self.head.state_dict(), ckpt / TOKEN_HEAD_FILE)


__all__ = [
    "CheckpointSignatureCallback",
    "EpochCallback",
    "LossHistoryCallback",
    "ProcessorCheckpointCallback",
    "TokenHeadCheckpointCallback",
]
