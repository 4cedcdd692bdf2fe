"""Train one stage: build or load the model, run transformers' Trainer, save a model directory.

``train_stage(cfg, data_dir, output_dir, init=...)`` is the whole job of one curriculum stage:

1. the model and processor come from ``init``: ``"tiny"`` (a random model from ``model.tiny``),
   a model directory, or a hub id (resolved through the huggingface_hub cache);
2. the image processor gets ``data.min_pixels`` / ``data.max_pixels`` (saved with the model, as
   the reference does);
3. freezing (:mod:`~sceneparser.training.params`), LoRA (peft), then
   :class:`~sceneparser.training.trainer.SceneParserTrainer` over
   :class:`~sceneparser.training.dataset.SceneParserTrainDataset`;
4. resume: ``"auto"`` continues from the newest ``checkpoint-N`` in ``output_dir`` (the
   reference's behaviour), ``"none"`` starts over, a path resumes from that checkpoint; a
   checkpoint written for another model or trainable-parameter set is refused with a clear message
   (:mod:`~sceneparser.training.checkpoints`);
5. ``output_dir`` becomes a complete model directory (``save_model_dir``: weights, config,
   tokenizer, processor, chat template) with ``sceneparser.json`` (the training record),
   ``training_config.yaml``, the Trainer's ``trainer_state.json``, tensorboard logs under
   ``runs/`` and one ``rank_reports/rank<R>.json`` per process.

:func:`train_stage` runs these as named steps: :func:`prepare_model`, :func:`build_data`,
:func:`prepare_trainable`, :func:`build_trainer`, :func:`run_training` and :func:`save_outputs`.

The same code runs on one CPU, one GPU, or many processes under ``torchrun`` (DDP; gloo on CPU,
nccl on GPU) with an optional DeepSpeed ZeRO-2 / ZeRO-3 config.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, ProgressCallback, TrainingArguments, set_seed

from sceneparser.errors import InputError, require
from sceneparser.model.loading import (
    load_model_dir,
    missing_files,
    read_extra,
    resolve_model_path,
    save_model_dir,
)
from sceneparser.model.processor import ImageProcessor
from sceneparser.model.tiny import build_tiny
from sceneparser.training.callbacks import (
    CheckpointSignatureCallback,
    EpochCallback,
    JsonlLogCallback,
    LossHistoryCallback,
    ProcessorCheckpointCallback,
    StageProgressCallback,
    TokenHeadCheckpointCallback,
)
from sceneparser.training.checkpoints import check_checkpoint, find_resume_checkpoint
from sceneparser.training.collator import SceneParserCollator
from sceneparser.training.config import TrainingConfig, deepspeed_config_path
from sceneparser.training.dataset import SceneParserTrainDataset, build_dataset
from sceneparser.training.grounding import TokenClassHead
from sceneparser.training.lora import apply_lora, lora_summary, merged_lora_state, save_lora_adapter
from sceneparser.training.params import (
    apply_freezing,
    model_signature,
    parameter_groups,
    state_checksum,
    trainable_summary,
)
from sceneparser.training.saving import TRAINING_CONFIG_FILE
from sceneparser.training.trainer import SceneParserTrainer
from sceneparser.training.zero import (
    DeepSpeedPlan,
    check_deepspeed_settings,
    consolidated_state_dict,
    init_deepspeed_comm,
    partition,
    read_deepspeed_config,
    release_deepspeed_state,
    zero3_suspended,
    zero_stage_of,
)

#: every logged dict of a stage, one JSON line each (also in tensorboard)
LOG_FILE = "log.jsonl"

logger = logging.getLogger(__name__)

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


def quiet_distributed_warnings() -> None:
    """Silence the per-step deprecation warnings of DeepSpeed's collectives (once per process is enough)."""
    warnings.filterwarnings("ignore", message=r".*torch\.distributed\.\w+` is deprecated", category=FutureWarning)


def dist_info() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the torchrun environment (0, 0, 1 without it)."""
    return (
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
    )


def _configure_threads(cfg: TrainingConfig, on_cpu: bool) -> None:
    n = cfg.runtime.num_threads
    if n is None and on_cpu:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        if local_world > 1:  # share the cores between the local processes
            n = max(1, (os.cpu_count() or 1) // local_world)
    if n is not None:
        torch.set_num_threads(n)


def _wants_cpu(cfg: TrainingConfig) -> bool:
    return cfg.runtime.use_cpu or not torch.cuda.is_available()


def resolve_precision(cfg: TrainingConfig, on_cpu: bool) -> str:
    """``bf16`` / ``fp16`` / ``fp32``: ``auto`` is bf16 on a GPU that supports it, else fp32."""
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
    source = init or cfg.model.init
    dtype = None if cfg.model.dtype == "auto" else getattr(torch, cfg.model.dtype)
    if source == "tiny":
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


def stage_is_complete(output_dir: Path) -> bool:
    if not output_dir.is_dir():
        return False
    record = read_extra(output_dir).get("training") or {}
    return record.get("status") == "complete" and (record.get("lora_save") == "adapter" or not missing_files(output_dir))


# --------------------------------------------------------------------------- training args


def training_arguments(cfg: TrainingConfig, output_dir: Path, on_cpu: bool):
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
        torch_compile=r.torch_compile,
        eval_strategy="no",
    )


# --------------------------------------------------------------------------- the steps of a stage


@dataclass
class AuxLosses:
    """Which auxiliary targets the stage trains (``train.*_weight`` > 0)."""

    token_classes: bool = False
    token_boxes: bool = False

    @classmethod
    def of(cls, cfg: TrainingConfig) -> "AuxLosses":
        token_boxes = cfg.train.token_box_loss_weight > 0
        return cls(token_classes=cfg.train.token_class_loss_weight > 0 or token_boxes, token_boxes=token_boxes)


@dataclass
class StageRun:
    """What :func:`build_trainer` puts together and the later steps use."""

    trainer: Any
    args: Any
    history: LossHistoryCallback
    token_head: TokenClassHead | None
    signature: str


def _check_output_dir(source: str, output_dir: Path) -> None:
    if source != "tiny" and Path(source).expanduser().resolve() == output_dir.expanduser().resolve():
        raise InputError(f"the output directory {output_dir} is also the model to start from; pick another")


def completed_result(output_dir: Path, source: str, stage: int | None) -> StageResult:
    """The :class:`StageResult` of a stage that ``output_dir`` already holds (from its record)."""
    logger.info("%s already holds a finished stage; skipping it (use --resume none to train it again)", output_dir)
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


def check_stage_settings(cfg: TrainingConfig, where: str = "") -> DeepSpeedPlan | None:
    """Refuse options that cannot work together, before any model is loaded; the DeepSpeed plan (or None).

    The curriculum calls it for every stage before stage 1 starts.
    """
    plan = None
    if cfg.runtime.deepspeed:
        plan = read_deepspeed_config(deepspeed_config_path(cfg.runtime.deepspeed))
    attention = cfg.train.attention_supervision_weight > 0
    if attention and cfg.model.attn_implementation != "eager":
        at = f" ({where})" if where else ""
        raise InputError(
            f"train.attention_supervision_weight needs the attention probabilities: set "
            f"model.attn_implementation=eager{at}"
        )
    if cfg.train.attention_supervision_part_head is not None and not (attention and cfg.train.attention_supervision_parts):
        at = f" ({where})" if where else ""
        raise InputError(
            f"train.attention_supervision_part_head puts the part targets on a head of their own: it needs "
            f"train.attention_supervision_weight > 0 and train.attention_supervision_parts=true{at}"
        )
    check_deepspeed_settings(plan, aux_losses=AuxLosses.of(cfg).token_classes, attention_supervision=attention,
                             where=where)
    return plan


def check_part_head(cfg: TrainingConfig, model) -> None:
    """``train.attention_supervision_part_head`` names a head the language model has."""
    head = cfg.train.attention_supervision_part_head
    if head is None:
        return
    config = getattr(model.config, "text_config", None) or model.config
    heads = int(getattr(config, "num_attention_heads", 0) or 0)
    if heads and head >= heads:
        raise InputError(
            f"train.attention_supervision_part_head={head}: the language model has {heads} attention heads "
            f"(0..{heads - 1}; head 0 holds the object targets)"
        )


def prepare_model(cfg: TrainingConfig, source: str, args=None):
    """Step 1: ``(model, processor)`` from ``source`` with the config's pixel range.

    Call it after :func:`training_arguments` (``args``): under ZeRO-3 the model is then built
    partitioned, whatever it starts from (transformers partitions a loaded model by itself; the
    tiny model is partitioned right after it is built).
    """
    check_stage_settings(cfg)
    ds_config = getattr(args, "hf_deepspeed_config", None) if args is not None else None
    zero3 = ds_config is not None and ds_config.is_zero3()
    if zero3:
        _ = args.device  # sets up torch.distributed: the partitions need the world size
        init_deepspeed_comm()
    if zero3 and source == "tiny":
        # built whole from its seed (the same weights as without DeepSpeed), then partitioned
        with zero3_suspended(ds_config):
            model, processor = load_initial_model(cfg, source)
        model = partition(model, ds_config.config)
    else:
        model, processor = load_initial_model(cfg, source)
    check_part_head(cfg, model)
    apply_pixel_limits(processor, cfg.data.min_pixels, cfg.data.max_pixels)
    return model, processor


def build_data(cfg: TrainingConfig, data_dir: Path, processor) -> SceneParserTrainDataset:
    """Step 2: the training dataset (uint8 patches; token-class targets when an aux loss wants them)."""
    return build_dataset(
        data_dir, processor, cfg.data, seed=cfg.train.seed, defer_pixels=True,
        token_classes=AuxLosses.of(cfg).token_classes,
    )


def prepare_trainable(cfg: TrainingConfig, model, dataset: SceneParserTrainDataset):
    """Step 3: LoRA or freezing; returns ``(model, signature)`` (what a checkpoint must match)."""
    t = cfg.train
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
    aux = AuxLosses.of(cfg)
    if aux.token_classes:  # the optimizer holds the auxiliary head too
        layout += f";token_head:{len(dataset.class_index)}" + (":boxes" if aux.token_boxes else "")
    signature = model_signature(model) + "-" + hashlib.sha256(layout.encode()).hexdigest()[:8]
    return model, signature


def build_trainer(
    cfg: TrainingConfig, model, processor, dataset: SceneParserTrainDataset, output_dir: Path, *,
    on_cpu: bool, signature: str, source: str, stage: int | None, args=None,
) -> StageRun:
    """Step 4: training arguments (unless given), callbacks, the auxiliary head (if any) and the Trainer."""
    t = cfg.train
    aux = AuxLosses.of(cfg)
    if args is None:
        args = training_arguments(cfg, output_dir, on_cpu)
    history = LossHistoryCallback()
    info = {"init": source, "stage": stage, "lora": cfg.lora.enabled, "config": cfg.name}
    callbacks = [
        EpochCallback(dataset), CheckpointSignatureCallback(signature, info), ProcessorCheckpointCallback(processor),
        history,
    ]
    token_head = None
    if aux.token_classes:
        token_head = TokenClassHead(
            model.config.vision_config.out_hidden_size, len(dataset.class_index), seed=t.seed, boxes=aux.token_boxes
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
    # our own terminal view replaces transformers' bar and the log dict it prints at every logging step
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    desc = f"stage {stage}" if stage is not None else "train"
    trainer.add_callback(StageProgressCallback(desc, disable=bool(cfg.runtime.disable_tqdm)))
    trainer.add_callback(JsonlLogCallback(output_dir / LOG_FILE))
    return StageRun(trainer=trainer, args=args, history=history, token_head=token_head, signature=signature)


def run_training(run: StageRun, model, dataset: SceneParserTrainDataset, output_dir: Path, *,
                 resume: str, source: str, stage: int | None) -> None:
    """Step 5: resume check, ``trainer.train``, the Trainer state; the head's hook removed afterwards."""
    trainer = run.trainer
    checkpoint = find_resume_checkpoint(output_dir, resume)
    if checkpoint is not None:
        check_checkpoint(checkpoint, run.signature, model)
        logger.info("resuming from %s", checkpoint)
    if trainer.is_world_process_zero():
        logger.info(
            "stage %s: %d training items, init %s, trainable %s",
            stage, len(dataset), source, json.dumps(trainable_summary(model)),
        )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_state()
    if run.token_head is not None:
        run.token_head.detach()  # the saved model must not keep the training-only hook


def save_outputs(
    cfg: TrainingConfig, run: StageRun, processor, dataset: SceneParserTrainDataset, *,
    data_dir: Path, output_dir: Path, source: str, stage: int | None,
) -> dict[str, Any]:
    """Step 6: the model directory (rank 0), this process's rank report; returns this process's stats.

    Every rank assembles the whole fp32 weights (:func:`~sceneparser.training.zero.consolidated_state_dict`:
    DeepSpeed's fp32 master copy, gathered from ZeRO-3 partitions), merges LoRA into them if asked,
    and hashes what is saved; rank 0 writes it.
    """
    trainer = run.trainer
    rank, _local_rank, world_size = dist_info()
    stats = trainer.sp_stats.to_dict()
    stats["dataset_skips_this_process"] = dict(dataset.skip_counts)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    _set_use_cache(unwrapped, True)
    state = consolidated_state_dict(unwrapped)
    saved = merged_lora_state(unwrapped, state) if cfg.lora.enabled else state
    checksum = state_checksum(saved)
    record = _training_record(
        cfg, run, dataset, stats, checksum, data_dir=data_dir, source=source, stage=stage, world_size=world_size
    )
    record["zero_stage"] = zero_stage_of(trainer)
    if trainer.is_world_process_zero():
        with zero3_suspended(getattr(run.args, "hf_deepspeed_config", None)):  # rank 0 alone builds the copy
            _save_model(cfg, unwrapped, processor, output_dir, record, state=state, saved=saved)
    del state, saved
    report = {
        "rank": rank,
        "world_size": world_size,
        "global_step": int(trainer.state.global_step),
        "parameter_checksum": checksum,
        "stats": stats,
        "device": str(run.args.device),
    }
    reports = output_dir / RANK_REPORTS
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"rank{rank}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    trainer.accelerator.wait_for_everyone()
    return stats


def _training_record(
    cfg: TrainingConfig, run: StageRun, dataset: SceneParserTrainDataset, stats: dict[str, Any], checksum: str, *,
    data_dir: Path, source: str, stage: int | None, world_size: int,
) -> dict[str, Any]:
    """The ``training`` entry of the model directory's ``sceneparser.json``."""
    t = cfg.train
    return {
        "status": "complete",
        "stage": stage,
        "init": source,
        "data_dir": str(data_dir),
        "config_name": cfg.name,
        "pseudo": cfg.data.pseudo,
        "global_step": int(run.trainer.state.global_step),
        "epochs": t.epochs,
        "world_size": world_size,
        "losses": run.history.losses,
        "stats_rank0": stats,
        "parameter_checksum": checksum,
        "lora": lora_summary(cfg.lora),
        "lora_save": cfg.lora.save if cfg.lora.enabled else None,
        "token_class_loss": (
            {"weight": t.token_class_loss_weight, "box_weight": t.token_box_loss_weight, "classes": dataset.class_index}
            if AuxLosses.of(cfg).token_classes
            else None
        ),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _save_model(cfg: TrainingConfig, unwrapped, processor, output_dir: Path, record: dict[str, Any], *,
                state: dict[str, Any], saved: dict[str, Any]) -> None:
    """Rank 0: weights (whole model, LoRA merged, or adapter), processor, record and config.

    ``state`` is the trained (wrapped) model's whole fp32 state dict, ``saved`` the model directory's
    (LoRA merged in); the model written is a fresh unpartitioned copy holding ``saved``.
    """
    if cfg.lora.enabled and cfg.lora.save == "adapter":
        save_lora_adapter(unwrapped, processor, output_dir, extra={"training": record}, state_dict=state)
    else:
        base = unwrapped.get_base_model() if cfg.lora.enabled else unwrapped
        save_model_dir(_whole_copy(base, saved), processor, output_dir, extra={"training": record})
    (output_dir / TRAINING_CONFIG_FILE).write_text(cfg.to_yaml(), encoding="utf-8")


def _whole_copy(model, state: dict[str, Any]):
    """A new model of ``model``'s class and config holding ``state`` (fp32, strict: every key must fit)."""
    config = copy.deepcopy(model.config)
    config.dtype = torch.float32
    with torch.device("meta"):
        fresh = type(model)(config)
    try:
        fresh.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # a bug of ours, never bad input: name the keys
        raise RuntimeError(f"the trained weights do not fit a fresh {type(model).__name__}: {exc}") from None
    fresh.tie_weights()
    return fresh


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
    started = time.time()
    output_dir = Path(output_dir)
    data_dir = Path(data_dir)
    source = init or cfg.model.init
    _check_output_dir(source, output_dir)
    check_stage_settings(cfg, where=f"stage {stage}" if stage is not None else "")
    if resume != "none" and stage_is_complete(output_dir):
        return completed_result(output_dir, source, stage)
    if not data_dir.exists():
        raise InputError(f"training data directory not found: {data_dir}")

    on_cpu = _wants_cpu(cfg)
    _configure_threads(cfg, on_cpu)
    quiet_distributed_warnings()
    try:
        # the arguments first: with ZeRO-3 they make transformers build the model partitioned
        args = training_arguments(cfg, output_dir, on_cpu)
        model, processor = prepare_model(cfg, source, args)
        dataset = build_data(cfg, data_dir, processor)
        model, signature = prepare_trainable(cfg, model, dataset)
        run = build_trainer(
            cfg, model, processor, dataset, output_dir, on_cpu=on_cpu, signature=signature, source=source,
            stage=stage, args=args,
        )
        run_training(run, model, dataset, output_dir, resume=resume, source=source, stage=stage)
        stats = save_outputs(
            cfg, run, processor, dataset, data_dir=data_dir, output_dir=output_dir, source=source, stage=stage
        )
    finally:
        release_deepspeed_state()  # the next stage (or a rerun in this process) starts without it
    result = StageResult(
        stage=stage,
        output_dir=output_dir,
        init=source,
        global_step=int(run.trainer.state.global_step),
        losses=run.history.losses,
        stats=stats,
        seconds=time.time() - started,
    )
    del run, model, dataset
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


__all__ = [
    "RANK_REPORTS",
    "StageResult",
    "apply_pixel_limits",
    "build_data",
    "build_trainer",
    "check_stage_settings",
    "dist_info",
    "load_initial_model",
    "prepare_model",
    "prepare_trainable",
    "resolve_precision",
    "run_training",
    "save_outputs",
    "stage_is_complete",
    "train_stage",
    "training_arguments",
]
