"""transformers' Trainer with SceneParser's optimizer groups, loss options and bookkeeping.

* Optimizer: the three learning-rate groups of :func:`sceneparser.training.params.parameter_groups`
  (vision tower, merger, language model; each split into decay / no-decay), plus the auxiliary
  token-class head when there is one.
* Loss normalisation: ``micro_batch`` = the model's token mean per micro-batch, divided by the
  accumulation steps (the reference); ``global_tokens`` = token sum over the whole global batch
  divided by its supervised-token count (transformers' ``num_items_in_batch`` path).
* Auxiliary losses (off by default): the token-class / token-box loss of the head and the
  attention supervision of :mod:`sceneparser.training.grounding`.
* Pixels: uint8 ``pixel_patches`` from the collator become ``pixel_values`` on the training device
  (:func:`sceneparser.model.patchify.materialise`).
* Bookkeeping: the collator's ``sp_stats`` (samples, tokens, skips, epochs) are popped before the
  forward pass and summed per process (:class:`RunStats`). The callbacks (epochs, loss history,
  checkpoint files) are in :mod:`sceneparser.training.callbacks`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import Trainer

from sceneparser.model.patchify import materialise
from sceneparser.training.checkpoints import TOKEN_HEAD_FILE
from sceneparser.training.config import TrainSection
from sceneparser.training.grounding import attention_supervision_loss, attention_targets, object_and_part_targets
from sceneparser.training.params import parameter_groups

logger = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------- trainer


def _average_gradients_across_ranks(params) -> None:
    """Under torch.distributed, average these parameters' gradients over ranks (they sit outside DDP)."""
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
        self._part_attention_losses: list[float] = []  # train.attention_supervision_part_head
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
        if self.sp_tokenizer is None or self.sp_image_token_id is None or self.sp_image_processor is None:
            raise ValueError("attention supervision needs sp_tokenizer, sp_image_token_id and sp_image_processor")
        tok = self.sp_tokenizer
        cfg = self.sp_train
        part_head = cfg.attention_supervision_part_head if cfg.attention_supervision_parts else None
        batch = (inputs["input_ids"].cpu(), inputs["labels"].cpu(), inputs["image_grid_thw"].cpu())
        where = dict(image_token_id=self.sp_image_token_id, first_coord_id=tok.convert_tokens_to_ids("<0>"),
                     merge_size=self.sp_image_processor.merge_size, tokenizer=tok)
        if part_head is None:
            targets = attention_targets(*batch, parts=cfg.attention_supervision_parts, **where)
        else:
            objects, parts = object_and_part_targets(*batch, **where)
        inputs["output_attentions"] = True
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        if part_head is None:
            aux = attention_supervision_loss(outputs.attentions, targets, gather=cfg.attention_supervision_gather)
            self._attention_losses.append(float(aux.detach()))
        else:  # objects on head 0, parts and points on a head of their own, each its own mean
            aux = attention_supervision_loss(outputs.attentions, objects, gather=cfg.attention_supervision_gather)
            part_aux = attention_supervision_loss(
                outputs.attentions, parts, head=part_head, gather=cfg.attention_supervision_gather
            )
            self._attention_losses.append(float(aux.detach()))
            self._part_attention_losses.append(float(part_aux.detach()))
            aux = aux + part_aux
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            weight = weight / max(1, self.args.gradient_accumulation_steps)
        loss = loss + weight * aux
        return (loss, outputs) if return_outputs else loss

    def _get_learning_rate(self):
        """The language model's learning rate (the stock Trainer logs the first group's: the vision tower's)."""
        optimizer = self.optimizer
        groups = getattr(optimizer, "param_groups", None) or []
        for g in groups:
            if str(g.get("name", "")).startswith("llm"):
                return g["lr"]
        return super()._get_learning_rate()

    def log(self, logs, *args, **kwargs):
        if "learning_rate" in logs and self.optimizer is not None:
            # the other parts' rates at the same moment: the schedule scales every group alike
            groups = getattr(self.optimizer, "param_groups", None) or []
            base = {str(g.get("name", "")).split(".")[0]: g.get("initial_lr") for g in groups}
            for part in ("vision", "merger"):
                if base.get(part) is not None and base.get("llm"):
                    logs[f"learning_rate_{part}"] = logs["learning_rate"] * base[part] / base["llm"]
        if "loss" in logs:  # the auxiliary losses, each as its mean since the last training log
            for key, values in (("attention_loss", self._attention_losses),
                                ("part_attention_loss", self._part_attention_losses),
                                ("token_class_loss", self._token_class_losses),
                                ("token_box_loss", self._token_box_losses)):
                if values:
                    logs[key] = round(sum(values) / len(values), 4)
                    values.clear()
        return super().log(logs, *args, **kwargs)

    def _materialise_pixels(self, inputs) -> None:
        """uint8 ``pixel_patches`` from the collator -> float ``pixel_values`` on the device."""
        if "pixel_patches" in inputs:
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


__all__ = ["RunStats", "SceneParserTrainer"]
