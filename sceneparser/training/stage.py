"""Train one stage: build or load the model, run transformers' Trainer, save a model directory.

``train_stage(cfg, data_dir, output_dir, init=...)`` is the whole job of one curriculum stage:

1. the model and processor come from ``init``: ``"tiny"`` (a random model from ``model.tiny``),
   a model directory, or a hub id (resolved through the huggingface_hub cache);
2. the image processor gets ``data.min_pixels`` / ``data.max_pixels`` (saved with the model, as
   the reference does);
3. freezing, LoRA (peft), then :class:`~sceneparser.training.trainer.SceneParserTrainer` over
   :class:`~sceneparser.training.dataset.SceneParserTrainDataset`;
4. resume: ``"auto"`` continues from the newest ``checkpoint-N`` in ``output_dir`` (the
   reference's behaviour), ``"none"`` starts over, a path resumes from that checkpoint; a
   checkpoint written for another model or trainable-parameter set is refused with a clear message;
5. ``output_dir`` becomes a complete model directory (``save_model_dir``: weights, config,
   tokenizer, processor, chat template) with ``sceneparser.json`` (the training record),
   ``training_config.yaml``, the Trainer's ``trainer_state.json``, tensorboard logs under
   ``runs/`` and one ``rank_reports/rank<R>.json`` per process.

The same code runs on one CPU, one GPU, or many processes under ``torchrun`` (DDP; gloo on CPU,
nccl on GPU) with an optional DeepSpeed ZeRO-2 / ZeRO-3 config.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sceneparser.errors import InputError, ModelLoadError
from sceneparser.training.config import TrainingConfig, deepspeed_config_path

logger = logging.getLogger(__name__)

TRAINING_CONFIG_FILE = "training_config.yaml"
RANK_REPORTS = "rank_reports"


@dataclass
class StageResult:
    """What one stage did (also written, per process, to ``rank_reports/rank<R>.json``)."""

    stage: int | None
    output_dir: Path
    init: str
    global_step: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    already_complete: bool = False
    seconds: float = 0.0

    @property
    def first_loss(self) -> float | None:
        return self.losses[0][1] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None


# --------------------------------------------------------------------------- environment


def dist_info() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the torchrun environment (0, 0, 1 without it)."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
    )


def _configure_threads(cfg: TrainingConfig, on_cpu: bool) -> None:
    import torch

    n = cfg.runtime.num_threads
    if n is None and on_cpu:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        if local_world > 1:  # share the cores between the local processes
            n = max(1, (os.cpu_count() or 1) // local_world)
    if n is not None:
        torch.set_num_threads(n)


def _wants_cpu(cfg: TrainingConfig) -> bool:
    import torch

    return cfg.runtime.use_cpu or not torch.cuda.is_available()


def resolve_precision(cfg: TrainingConfig, on_cpu: bool) -> str:
    """``bf16`` / ``fp16`` / ``fp32``: ``auto`` is bf16 on a GPU that supports it, else fp32."""
    import torch

    p = cfg.runtime.precision
    if p != "auto":
        if on_cpu and p == "fp16":
            raise InputError("runtime.precision=fp16 needs a GPU; use fp32 or bf16 on the CPU")
        return p
    if not on_cpu and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


# --------------------------------------------------------------------------- model


def load_initial_model(cfg: TrainingConfig, init: str | None = None):
    """``(model, processor)`` to train, from ``init`` (or ``cfg.model.init``)."""
    import torch

    from sceneparser.model.loading import load_model_dir, resolve_model_path

    source = init or cfg.model.init
    dtype = None if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    if source == "tiny":
        from sceneparser.model.tiny import build_tiny

        overrides = dict(cfg.model.tiny)
        if cfg.model.attn_implementation:
            overrides.setdefault("attn_implementation", cfg.model.attn_implementation)
        try:
            model, processor = build_tiny(seed=cfg.model.seed, **overrides)
        except (TypeError, ValueError) as exc:
            raise InputError(f"model.tiny: {exc}") from None
        if dtype is not None:
            model = model.to(dtype)
        return model, processor
    path = resolve_model_path(source)
    kwargs = {"attn_implementation": cfg.model.attn_implementation} if cfg.model.attn_implementation else {}
    model, processor = load_model_dir(path, device="cpu", dtype=dtype or torch.float32, **kwargs)
    return model, processor


def apply_pixel_limits(processor, min_pixels: int | None, max_pixels: int | None) -> None:
    """Set the image processor's pixel range (a new object: the loaded one is never mutated)."""
    from sceneparser.model.processor import ImageProcessor

    if min_pixels is None and max_pixels is None:
        return
    ip = processor.image_processor
    lo = min_pixels if min_pixels is not None else ip.min_pixels
    hi = max_pixels if max_pixels is not None else ip.max_pixels
    if lo > hi:
        raise InputError(f"data.min_pixels ({lo}) is larger than data.max_pixels ({hi})")
    processor.image_processor = ImageProcessor.from_dict(ip.to_dict(), min_pixels=lo, max_pixels=hi)


def _set_use_cache(model, value: bool) -> None:
    for cfg in (getattr(model, "config", None), getattr(getattr(model, "config", None), "text_config", None)):
        if cfg is not None and hasattr(cfg, "use_cache"):
            cfg.use_cache = value


# --------------------------------------------------------------------------- checkpoints


def find_resume_checkpoint(output_dir: Path, resume: str) -> Path | None:
    """The checkpoint to resume from, per ``resume`` (auto / none / a path)."""
    from sceneparser.training.trainer import iter_checkpoints

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
    from sceneparser.training.trainer import SIGNATURE_FILE

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
    from safetensors import safe_open

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


def stage_is_complete(output_dir: Path) -> bool:
    from sceneparser.model.loading import missing_files, read_extra

    if not output_dir.is_dir():
        return False
    record = read_extra(output_dir).get("training") or {}
    return record.get("status") == "complete" and (record.get("lora_save") == "adapter" or not missing_files(output_dir))


# --------------------------------------------------------------------------- training args


def training_arguments(cfg: TrainingConfig, output_dir: Path, on_cpu: bool):
    from transformers import TrainingArguments

    t, r = cfg.train, cfg.runtime
    precision = resolve_precision(cfg, on_cpu)
    report_to = list(r.report_to)
    if "tensorboard" in report_to:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            logger.warning("tensorboard is not installed (pip install 'sceneparser[train]'): no tensorboard logs")
            report_to.remove("tensorboard")
    deepspeed = None
    if r.deepspeed:
        from sceneparser.errors import require

        require("deepspeed", "train")
        deepspeed = str(deepspeed_config_path(r.deepspeed))
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    ddp_backend = (r.ddp_backend or ("gloo" if on_cpu else None)) if distributed else None
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    ckpt_key = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    checkpointing = {
        ckpt_key: r.gradient_checkpointing,
        f"{ckpt_key}_kwargs": {"use_reentrant": False} if r.gradient_checkpointing else None,
    }
    return TrainingArguments(
        **checkpointing,
        output_dir=str(output_dir),
        run_name=r.run_name or cfg.name,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_epsilon=t.adam_epsilon,
        optim=t.optim,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_strategy="steps",
        logging_steps=r.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=r.save_steps,
        save_total_limit=r.save_total_limit,
        report_to=report_to or "none",
        disable_tqdm=r.disable_tqdm,
        dataloader_num_workers=cfg.data.num_workers,
        dataloader_persistent_workers=False,
        dataloader_pin_memory=not on_cpu,
        remove_unused_columns=False,
        label_names=["labels"],
        use_cpu=on_cpu,
        ddp_backend=ddp_backend,
        ddp_find_unused_parameters=False,
        deepspeed=deepspeed,
        eval_strategy="no",
    )


# --------------------------------------------------------------------------- the stage


def train_stage(
    cfg: TrainingConfig,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    init: str | None = None,
    stage: int | None = None,
    resume: str = "auto",
) -> StageResult:
    """Train one stage (``cfg`` already resolved for it) and write ``output_dir`` (module docstring)."""
    import torch

    from sceneparser.model.loading import save_model_dir
    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.lora import apply_lora, lora_summary, save_lora_adapter
    from sceneparser.training.trainer import (
        CheckpointSignatureCallback,
        EpochCallback,
        LossHistoryCallback,
        ProcessorCheckpointCallback,
        SceneParserTrainer,
        TokenHeadCheckpointCallback,
        apply_freezing,
        model_signature,
        parameter_checksum,
        parameter_groups,
        trainable_summary,
    )

    started = time.time()
    output_dir = Path(output_dir)
    data_dir = Path(data_dir)
    source = init or cfg.model.init
    rank, _local_rank, world_size = dist_info()
    if source != "tiny" and Path(source).expanduser().resolve() == output_dir.expanduser().resolve():
        raise InputError(f"the output directory {output_dir} is also the model to start from; pick another")
    if resume != "none" and stage_is_complete(output_dir):
        logger.info("%s already holds a finished stage; skipping it (use --resume none to train it again)", output_dir)
        from sceneparser.model.loading import read_extra

        record = read_extra(output_dir).get("training") or {}
        return StageResult(
            stage=stage,
            output_dir=output_dir,
            init=str(record.get("init", source)),
            global_step=int(record.get("global_step", 0)),
            losses=[tuple(x) for x in record.get("losses", [])],
            stats=record.get("stats", {}),
            already_complete=True,
        )
    if not data_dir.exists():
        raise InputError(f"training data directory not found: {data_dir}")

    on_cpu = _wants_cpu(cfg)
    _configure_threads(cfg, on_cpu)
    model, processor = load_initial_model(cfg, source)
    apply_pixel_limits(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    token_boxes = cfg.train.token_box_loss_weight > 0
    token_classes = cfg.train.token_class_loss_weight > 0 or token_boxes
    if token_classes and cfg.runtime.deepspeed:
        raise InputError(
            "train.token_class_loss_weight / token_box_loss_weight need the plain Trainer (the auxiliary head "
            "lives outside the model); they are not supported with DeepSpeed"
        )
    if cfg.train.attention_supervision_weight > 0:
        if cfg.model.attn_implementation != "eager":
            raise InputError(
                "train.attention_supervision_weight needs the attention probabilities: set "
                "model.attn_implementation=eager"
            )
        if cfg.runtime.deepspeed:
            raise InputError("train.attention_supervision_weight is not supported with DeepSpeed")
    dataset = build_dataset(
        data_dir, processor, cfg.data, seed=cfg.train.seed, defer_pixels=True, token_classes=token_classes
    )

    t = cfg.train
    from transformers import set_seed

    set_seed(t.seed)  # LoRA's random init (and anything else drawn before the Trainer) is reproducible
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, tune_vision=t.tune_vision, tune_merger=t.tune_merger)
    else:
        apply_freezing(model, tune_vision=t.tune_vision, tune_merger=t.tune_merger, tune_llm=t.tune_llm)
    _set_use_cache(model, False)
    groups = parameter_groups(
        model,
        learning_rate=t.learning_rate,
        mm_projector_lr=t.mm_projector_lr,
        vision_tower_lr=t.vision_tower_lr,
        weight_decay=t.weight_decay,
        weight_decay_exclude=t.weight_decay_exclude,
    )
    if not groups:
        raise InputError("nothing to train: tune_vision, tune_merger and tune_llm are all false (and no LoRA)")
    layout = ";".join(f"{g['name']}:{len(g['params'])}" for g in groups)
    if token_classes:  # the optimizer holds the auxiliary head too
        layout += f";token_head:{len(dataset.class_index)}" + (":boxes" if token_boxes else "")
    signature = model_signature(model) + "-" + __import__("hashlib").sha256(layout.encode()).hexdigest()[:8]

    args = training_arguments(cfg, output_dir, on_cpu)
    history = LossHistoryCallback()
    info = {"init": source, "stage": stage, "lora": cfg.lora.enabled, "config": cfg.name}
    callbacks = [
        EpochCallback(dataset), CheckpointSignatureCallback(signature, info), ProcessorCheckpointCallback(processor),
        history,
    ]
    token_head = None
    if token_classes:
        from sceneparser.training.grounding import TokenClassHead

        token_head = TokenClassHead(
            model.config.vision_config.out_hidden_size, len(dataset.class_index), seed=t.seed, boxes=token_boxes
        )
        token_head.attach(model)
        callbacks.append(TokenHeadCheckpointCallback(token_head))
    trainer = SceneParserTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=SceneParserCollator(
            pad_token_id=processor.pad_token_id, image_processor=processor.image_processor, pixel_format="uint8"
        ),
        callbacks=callbacks,
        sp_train=t,
        sp_image_processor=processor.image_processor,
        sp_token_head=token_head,
        sp_tokenizer=processor.tokenizer,
        sp_image_token_id=processor.image_token_id,
    )
    checkpoint = find_resume_checkpoint(output_dir, resume)
    if checkpoint is not None:
        check_checkpoint(checkpoint, signature, model)
        logger.info("resuming from %s", checkpoint)
    if trainer.is_world_process_zero():
        logger.info(
            "stage %s: %d training items, init %s, trainable %s",
            stage, len(dataset), source, json.dumps(trainable_summary(model)),
        )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_state()
    if token_head is not None:
        token_head.detach()  # the saved model must not keep the training-only hook

    # ---- final save ------------------------------------------------------------------------
    stats = trainer.sp_stats.to_dict()
    stats["dataset_skips_this_process"] = dict(dataset.skip_counts)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    _set_use_cache(unwrapped, True)
    checksum = parameter_checksum(unwrapped)
    record = {
        "status": "complete",
        "stage": stage,
        "init": source,
        "data_dir": str(data_dir),
        "config_name": cfg.name,
        "pseudo": cfg.data.pseudo,
        "global_step": int(trainer.state.global_step),
        "epochs": cfg.train.epochs,
        "world_size": world_size,
        "losses": history.losses,
        "stats_rank0": stats,
        "parameter_checksum": checksum,
        "lora": lora_summary(cfg.lora),
        "lora_save": cfg.lora.save if cfg.lora.enabled else None,
        "token_class_loss": (
            {"weight": t.token_class_loss_weight, "box_weight": t.token_box_loss_weight, "classes": dataset.class_index}
            if token_classes
            else None
        ),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    zero3 = trainer.is_deepspeed_enabled and _zero_stage(cfg) == 3
    if zero3 and not cfg.lora.enabled:
        # partitioned weights: the Trainer gathers them (every rank takes part) and rank 0 writes
        trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        if cfg.lora.enabled and cfg.lora.save == "adapter":
            save_lora_adapter(unwrapped, processor, output_dir, extra={"training": record})
        elif zero3 and not cfg.lora.enabled:
            save_processor_parts(processor, output_dir, extra={"training": record})
        else:
            to_save = unwrapped.merge_and_unload() if cfg.lora.enabled else unwrapped
            save_model_dir(to_save, processor, output_dir, extra={"training": record})
        (output_dir / TRAINING_CONFIG_FILE).write_text(cfg.to_yaml(), encoding="utf-8")
    reports = output_dir / RANK_REPORTS
    reports.mkdir(parents=True, exist_ok=True)
    report = {
        "rank": rank,
        "world_size": world_size,
        "global_step": int(trainer.state.global_step),
        "parameter_checksum": checksum,
        "stats": stats,
        "device": str(args.device),
    }
    (reports / f"rank{rank}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    trainer.accelerator.wait_for_everyone()

    result = StageResult(
        stage=stage,
        output_dir=output_dir,
        init=source,
        global_step=int(trainer.state.global_step),
        losses=history.losses,
        stats=stats,
        seconds=time.time() - started,
    )
    del trainer, model, unwrapped, dataset
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def save_processor_parts(processor, output_dir: Path, extra: dict | None = None) -> None:
    """The non-weight part of a model directory (what ``save_model_dir`` adds to the weights)."""
    from sceneparser.model.loading import EXTRA_FILE

    processor.save_pretrained(output_dir)
    template = getattr(processor.tokenizer, "chat_template", None)
    if template and not (output_dir / "chat_template.jinja").is_file():
        (output_dir / "chat_template.jinja").write_text(template, encoding="utf-8")
    if extra is not None:
        (output_dir / EXTRA_FILE).write_text(json.dumps(extra, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def _zero_stage(cfg: TrainingConfig) -> int:
    if not cfg.runtime.deepspeed:
        return 0
    try:
        data = json.loads(deepspeed_config_path(cfg.runtime.deepspeed).read_text(encoding="utf-8"))
        return int((data.get("zero_optimization") or {}).get("stage", 0))
    except (OSError, ValueError, TypeError):
        return 0


__all__ = [
    "RANK_REPORTS",
    "StageResult",
    "TRAINING_CONFIG_FILE",
    "apply_pixel_limits",
    "check_checkpoint",
    "dist_info",
    "find_resume_checkpoint",
    "load_initial_model",
    "resolve_precision",
    "stage_is_complete",
    "train_stage",
    "training_arguments",
]
