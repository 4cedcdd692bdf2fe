"""transformers' Trainer with SceneParser's optimizer groups, loss options and bookkeeping.

* Three learning-rate groups (training.md §4.3): the vision tower without its merger
  (``vision_tower_lr``), the merger (``mm_projector_lr``) and everything else, i.e. the language
  model, embeddings and lm_head (``learning_rate``); each split into decay / no-decay. No decay
  on biases and on every norm weight (LayerNorm and RMSNorm), or, with
  ``weight_decay_exclude="reference"``, only on ``nn.LayerNorm`` and ``*bias`` as the reference's
  patch does (so its RMSNorm weights decay, training.md §6.19).
* Loss normalisation: ``micro_batch`` = the model's token mean per micro-batch, divided by the
  accumulation steps (the reference); ``global_tokens`` = token sum over the whole global batch
  divided by its supervised-token count (transformers' ``num_items_in_batch`` path).
* Freezing: ``tune_vision`` / ``tune_merger`` / ``tune_llm`` switch ``requires_grad`` of the
  three groups (the reference's lm_head switch had no effect; ours freezes the parameters).
* Bookkeeping: the collator's ``sp_stats`` (samples, tokens, skips, epochs) are popped before the
  forward pass and summed per process; ``EpochCallback`` hands the epoch to the dataset;
  ``CheckpointSignatureCallback`` stamps every checkpoint so an incompatible resume is refused
  with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from sceneparser.training.config import TrainSection

logger = logging.getLogger(__name__)

SIGNATURE_FILE = "sceneparser_checkpoint.json"


# --------------------------------------------------------------------------- model parts


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
        counts[part] = sum(p.numel() for _, p in params if p.requires_grad)
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


def model_signature(model: nn.Module) -> str:
    """A hash of every parameter's name, shape and trainability (what a checkpoint must match)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}|{tuple(p.shape)}|{int(p.requires_grad)}\n".encode())
    return h.hexdigest()[:16]


def parameter_checksum(model: nn.Module) -> str:
    """A hash of the parameter values (to compare ranks and saved models)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- stats


@dataclass
class RunStats:
    """What this process trained on (summed from the collator's ``sp_stats``)."""

    micro_batches: int = 0
    samples: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    skipped: Counter = field(default_factory=Counter)
    epochs: set = field(default_factory=set)

    def update(self, stats: dict[str, Any]) -> None:
        self.micro_batches += 1
        self.samples += int(stats.get("samples", 0))
        self.tokens += int(stats.get("tokens", 0))
        self.supervised_tokens += int(stats.get("supervised_tokens", 0))
        self.skipped.update(stats.get("skipped") or {})
        self.epochs.update(int(e) for e in stats.get("epochs") or ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "micro_batches": self.micro_batches,
            "samples": self.samples,
            "tokens": self.tokens,
            "supervised_tokens": self.supervised_tokens,
            "skipped": dict(self.skipped),
            "epochs_seen": sorted(self.epochs),
        }


# --------------------------------------------------------------------------- callbacks


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
        from sceneparser.model.loading import save_processor_files

        save_processor_files(self.processor, ckpt)


TOKEN_HEAD_FILE = "token_class_head.pt"


class TokenHeadCheckpointCallback(_CheckpointWriter):
    """Save the auxiliary token-class head (not part of the model) into each checkpoint, for resume."""

    def __init__(self, head):
        self.head = head

    def write(self, ckpt: Path) -> None:
        import torch

        torch.save(self.head.state_dict(), ckpt / TOKEN_HEAD_FILE)


def _average_gradients_across_ranks(params) -> None:
    """Under torch.distributed, average these parameters' gradients over ranks (they sit outside DDP)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    world = dist.get_world_size()

    def hook(grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad / world

    for p in params:
        if isinstance(p, torch.Tensor) and p.requires_grad:
            p.register_hook(hook)


class LossHistoryCallback(TrainerCallback):
    """Keep every logged loss in memory (the curriculum reports first/last loss per stage)."""

    def __init__(self):
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((int(state.global_step), float(logs["loss"])))
        return control


# --------------------------------------------------------------------------- trainer


class SceneParserTrainer(Trainer):
    """A small :class:`transformers.Trainer` subclass (see the module docstring)."""

    def __init__(
        self,
        *args,
        sp_train: TrainSection | None = None,
        sp_image_processor=None,
        sp_token_head=None,
        sp_tokenizer=None,
        sp_image_token_id: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        #: for train.attention_supervision_weight: the roles of the coordinate tokens need the text
        self.sp_tokenizer = sp_tokenizer
        self.sp_image_token_id = sp_image_token_id
        self._attention_losses: list[float] = []
        self.sp_train = sp_train or TrainSection()
        self.sp_image_processor = sp_image_processor
        #: sceneparser.training.grounding.TokenClassHead when train.token_class_loss_weight > 0
        self.sp_token_head = sp_token_head
        self._token_class_losses: list[float] = []
        self._token_box_losses: list[float] = []
        if sp_token_head is not None:
            sp_token_head.to(self.args.device)
            _average_gradients_across_ranks(sp_token_head.parameters())
        global_tokens = self.sp_train.loss_normalisation == "global_tokens"
        # micro_batch: the model's own per-micro-batch mean, which the Trainer divides by the
        # accumulation steps; global_tokens: transformers counts the global batch's supervised
        # tokens and the model sums its token losses over that count.
        self.model_accepts_loss_kwargs = global_tokens
        self.loss_is_scaled_for_ga = None
        self.sp_stats = RunStats()

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Restore the weights of a ``checkpoint-N`` directory on resume.

        transformers 5 saves Qwen2.5-VL checkpoints under the original key names
        (``visual.*``, ``model.layers.*``) and converts them back only in ``from_pretrained``;
        the stock Trainer loads the file with a plain non-strict ``load_state_dict``, so every
        key is "missing" and training would silently resume from the *initial* weights. We load
        through ``from_pretrained`` (key conversion included) and copy the tensors strictly.
        PEFT adapters, FSDP and sharded checkpoints keep the stock path.
        """
        model = self.model if model is None else model
        weights = Path(resume_from_checkpoint) / "model.safetensors"
        head_file = Path(resume_from_checkpoint) / TOKEN_HEAD_FILE
        if self.sp_token_head is not None and head_file.is_file():
            import torch

            self.sp_token_head.load_state_dict(torch.load(head_file, map_location="cpu", weights_only=True))
        if not weights.is_file() or not hasattr(model, "config") or type(model).__name__.startswith("Peft"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)
        del loaded

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if self.optimizer is None:
            t = self.sp_train
            groups = parameter_groups(
                opt_model,
                learning_rate=self.args.learning_rate,
                mm_projector_lr=t.mm_projector_lr,
                vision_tower_lr=t.vision_tower_lr,
                weight_decay=self.args.weight_decay,
                weight_decay_exclude=t.weight_decay_exclude,
            )
            if not groups:
                raise ValueError("nothing to train: every parameter is frozen")
            if self.sp_token_head is not None:
                groups.append(
                    {"params": list(self.sp_token_head.parameters()), "lr": self.args.learning_rate,
                     "weight_decay": 0.0, "name": "token_head"}
                )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k not in ("params", "model")}
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            for g in self.optimizer.param_groups:
                logger.info(
                    "param group %-16s lr %.3g wd %.3g tensors %d params %d",
                    g.get("name"), g["lr"], g["weight_decay"], len(g["params"]), sum(p.numel() for p in g["params"]),
                )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        stats = inputs.pop("sp_stats", None)
        if stats is not None and model.training:
            self.sp_stats.update(stats)
        token_classes = inputs.pop("token_classes", None)
        token_boxes = inputs.pop("token_boxes", None)
        self._materialise_pixels(inputs)
        attn_weight = self.sp_train.attention_supervision_weight
        if attn_weight > 0 and model.training:
            result = self._with_attention_supervision(model, inputs, return_outputs, num_items_in_batch, attn_weight)
        else:
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if self.sp_token_head is None or token_classes is None:
            return result
        box_weight = self.sp_train.token_box_loss_weight
        class_loss, box_loss = self.sp_token_head.losses(token_classes, token_boxes if box_weight > 0 else None)
        self._token_class_losses.append(float(class_loss.detach()))
        aux = self.sp_train.token_class_loss_weight * class_loss
        if box_loss is not None:
            self._token_box_losses.append(float(box_loss.detach()))
            aux = aux + box_weight * box_loss
        weight = 1.0
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            weight = weight / max(1, self.args.gradient_accumulation_steps)  # the LM loss is already scaled for GA
        if return_outputs:
            loss, outputs = result
            return loss + weight * aux, outputs
        return result + weight * aux

    def _with_attention_supervision(self, model, inputs, return_outputs, num_items_in_batch, weight):
        """The language-model loss plus ``weight`` x the attention-supervision loss of this batch."""
        from sceneparser.training.grounding import attention_supervision_loss, attention_targets

        if self.sp_tokenizer is None or self.sp_image_token_id is None or self.sp_image_processor is None:
            raise ValueError("attention supervision needs sp_tokenizer, sp_image_token_id and sp_image_processor")
        tok = self.sp_tokenizer
        targets = attention_targets(
            inputs["input_ids"].cpu(), inputs["labels"].cpu(), inputs["image_grid_thw"].cpu(),
            image_token_id=self.sp_image_token_id, first_coord_id=tok.convert_tokens_to_ids("<0>"),
            merge_size=self.sp_image_processor.merge_size, tokenizer=tok,
        )
        inputs["output_attentions"] = True
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        aux = attention_supervision_loss(outputs.attentions, targets)
        self._attention_losses.append(float(aux.detach()))
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            weight = weight / max(1, self.args.gradient_accumulation_steps)
        loss = loss + weight * aux
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, *args, **kwargs):
        if self._attention_losses and "loss" in logs:
            logs["attention_loss"] = round(sum(self._attention_losses) / len(self._attention_losses), 4)
            self._attention_losses.clear()
        if self._token_class_losses and "loss" in logs:
            logs["token_class_loss"] = round(sum(self._token_class_losses) / len(self._token_class_losses), 4)
            self._token_class_losses.clear()
        if self._token_box_losses and "loss" in logs:
            logs["token_box_loss"] = round(sum(self._token_box_losses) / len(self._token_box_losses), 4)
            self._token_box_losses.clear()
        return super().log(logs, *args, **kwargs)

    def _materialise_pixels(self, inputs) -> None:
        """uint8 ``pixel_patches`` from the collator -> float ``pixel_values`` on the device."""
        if "pixel_patches" in inputs:
            from sceneparser.training.patches import materialise

            if self.sp_image_processor is None:
                raise ValueError("the batch carries pixel_patches: pass sp_image_processor to the trainer")
            inputs["pixel_values"] = materialise(
                self.sp_image_processor, inputs.pop("pixel_patches"), inputs["image_grid_thw"]
            )

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs.pop("sp_stats", None)
        inputs.pop("token_classes", None)
        inputs.pop("token_boxes", None)
        self._materialise_pixels(inputs)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)


def trainable_summary(model: nn.Module) -> dict[str, Any]:
    parts = parameter_parts(model)
    return {
        part: {
            "params": sum(p.numel() for _, p in params),
            "trainable": sum(p.numel() for _, p in params if p.requires_grad),
        }
        for part, params in parts.items()
    }


def iter_checkpoints(output_dir: Path) -> Iterable[Path]:
    """``checkpoint-N`` directories of ``output_dir``, oldest first."""
    found = []
    for p in Path(output_dir).glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


__all__ = [
    "CheckpointSignatureCallback",
    "EpochCallback",
    "LossHistoryCallback",
    "ProcessorCheckpointCallback",
    "RunStats",
    "SIGNATURE_FILE",
    "SceneParserTrainer",
    "TOKEN_HEAD_FILE",
    "TokenHeadCheckpointCallback",
    "apply_freezing",
    "find_vision_modules",
    "iter_checkpoints",
    "model_signature",
    "no_decay_ids",
    "parameter_checksum",
    "parameter_groups",
    "parameter_parts",
    "trainable_summary",
]
