"""Training configuration: a typed, strict (unknown keys rejected) pydantic model.

A config file is YAML with the sections ``model``, ``data``, ``train``, ``lora``, ``runtime``
and ``stages``. ``stages`` maps a stage number to overrides of the other sections; the
curriculum runs the stages in order, each starting from the previous stage's output.

Named presets (``tiny``, ``reference``) ship as package data in
``sceneparser/training/configs/<name>.yaml``; ``load_config`` accepts a preset name or a path.
``--set key=value`` overrides use dotted paths (``train.epochs=1``,
``stages.2.data.pseudo=mix(0.3)``); the value is parsed as YAML (numbers, booleans, lists).

Pure functions only: nothing here imports torch or transformers.
"""

from __future__ import annotations

import copy
import difflib
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sceneparser.errors import InputError

PRESET_PACKAGE = "sceneparser.training"
PRESET_DIR = "configs"
DEEPSPEED_PRESETS = ("zero2", "zero3")

_PSEUDO_RE = re.compile(r"^(drop|keep|mix\(\s*(0(\.\d+)?|1(\.0+)?)\s*\))$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Strict):
    """Where the weights come from and how the model is built."""

    init: str = Field(
        "tiny",
        description="'tiny' (a random model built from model.tiny), a model directory, or a hub id",
    )
    tiny: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword overrides for sceneparser.model.tiny.build_tiny (sizes, in_channels, pixels)",
    )
    seed: int = Field(0, description="seed of the random init when init == 'tiny'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; auto = float32 (mixed precision is runtime.precision)"
    )
    attn_implementation: str | None = Field(None, description="sdpa / eager / flash_attention_2; None = loader default")


class DataSection(_Strict):
    """How one TSV row becomes one training sample."""

    pseudo: str = Field("drop", description="pseudo policy: drop | keep | mix(P)")
    query_mode: Literal["sample", "all"] = Field(
        "sample",
        description="sample: one category per image per epoch (reference); all: every category of every image",
    )
    pseudo_definition: Literal["training", "union"] = Field(
        "training",
        description="what counts as pseudo: training = the reference trainer's name lists; "
        "union = those plus the evaluator's names and the is_pseudo_part flag (docs/reference.md, *known-bugs*)",
    )
    scene_prompt_ratio: float = Field(0.0, ge=0.0, le=1.0, description="share of scene-level (all objects) queries")
    negative_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="share of queries for a category absent from the image (target {\"objects\": []})"
    )
    unknown_name_ratio: float = Field(
        0.0, ge=0.0, le=1.0,
        description="share of queries for a name that is no category of the data (a word of "
        "sceneparser.data.targets.UNKNOWN_NAMES or a random letter string; target {\"objects\": []}). 0: off, as the reference",
    )
    case_insensitive_categories: bool = Field(
        False, description="match query categories case-insensitively (reference: exact strings, docs/reference.md, *known-bugs*)"
    )
    max_length: int = Field(4096, gt=0, description="samples with more tokens are skipped (not truncated)")
    min_image_side: int = Field(28, ge=1, description="images with a smaller side are skipped")
    min_pixels: int | None = Field(None, gt=0, description="image processor min_pixels (None: keep the model's)")
    max_pixels: int | None = Field(None, gt=0, description="image processor max_pixels (None: keep the model's)")
    supervise_trailing_newline: bool = Field(
        True, description="supervise the '\\n' after <|im_end|> (reference: yes, docs/reference.md, *training-data*)"
    )
    max_images: int | None = Field(None, gt=0, description="use only the first N images of the TSV")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    max_skip_retries: int = Field(16, ge=0, description="replacement draws for a skipped sample before giving up")

    @field_validator("pseudo")
    @classmethod
    def _check_pseudo(cls, value: str) -> str:
        value = str(value).strip()
        if not _PSEUDO_RE.match(value):
            raise ValueError(f"pseudo must be 'drop', 'keep' or 'mix(P)' with 0 <= P <= 1, not {value!r}")
        return value

    @model_validator(mode="after")
    def _check_pixels(self) -> "DataSection":
        if self.min_pixels and self.max_pixels and self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) > max_pixels ({self.max_pixels})")
        return self


class TrainSection(_Strict):
    """Optimisation: epochs, batch, the three learning-rate groups, schedule, freezing, loss."""

    epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: run all epochs)")
    per_device_batch_size: int = Field(2, ge=1)
    gradient_accumulation_steps: int = Field(8, ge=1)
    learning_rate: float = Field(2e-5, ge=0, description="language model (and everything not vision)")
    mm_projector_lr: float | None = Field(None, ge=0, description="merger; None = learning_rate")
    vision_tower_lr: float | None = Field(None, ge=0, description="vision tower without merger; None = learning_rate")
    weight_decay: float = Field(0.01, ge=0)
    weight_decay_exclude: Literal["norms_and_biases", "reference"] = Field(
        "norms_and_biases",
        description="norms_and_biases: no decay on any norm weight or bias; "
        "reference: only nn.LayerNorm and '*bias' are excluded, so RMSNorm weights decay (docs/reference.md, *known-bugs*)",
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    lr_scheduler: str = Field("cosine", description="any transformers scheduler name")
    max_grad_norm: float = Field(1.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    optim: str = Field("adamw_torch", description="transformers optimizer name")
    loss_normalisation: Literal["micro_batch", "global_tokens"] = Field(
        "micro_batch",
        description="micro_batch: token mean per micro-batch, averaged over accumulation (reference); "
        "global_tokens: token sum over the global batch / its supervised token count",
    )
    token_class_loss_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the auxiliary token-class loss (a linear head on the merger output predicts the "
        "class under every image token; sceneparser.training.grounding). 0: off, as the reference",
    )
    token_box_loss_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the auxiliary token-box loss (a linear head on the merger output regresses the box "
        "of the object under every image token, L1 on image fractions; sceneparser.training.grounding). 0: off",
    )
    attention_supervision_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the auxiliary attention-supervision loss: head 0 of the last language-model layer "
        "is trained to attend to the image tokens under the object at every object-box coordinate "
        "(sceneparser.training.grounding.attention_targets); needs model.attn_implementation: eager. 0: off",
    )
    attention_supervision_parts: bool = Field(
        False,
        description="attention supervision also at part-box coordinates (the part's tokens, or the cell of its "
        "centre) and affordance points (the cell of the point); sceneparser.training.grounding.attention_targets",
    )
    attention_supervision_part_head: int | None = Field(
        None,
        ge=1,
        description="with attention_supervision_parts: supervise the part-box and affordance-point targets on this "
        "head of the last layer (a mean of their own, added to head 0's object loss) instead of mixing them "
        "into head 0's object targets. None: one head for all (run 6)",
    )
    attention_supervision_gather: bool = Field(
        False,
        description="compute the attention-supervision loss in one gather (same value up to float rounding, "
        "11-32 % faster steps on CPU); off: the per-target form earlier runs were trained with",
    )
    tune_vision: bool = Field(True, description="train the vision tower (without the merger)")
    tune_merger: bool = Field(True, description="train the vision-language merger")
    tune_llm: bool = Field(True, description="train the language model, embeddings and lm_head")
    seed: int = Field(42, description="Trainer seed (sampler order) and the dataset's query/mix draws")


class LoraSection(_Strict):
    """LoRA through peft. The base weights are frozen; only adapters (and modules_to_save) train."""

    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = Field(
        r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
        description="module names or one regex (default: every linear layer of the language model)",
    )
    modules_to_save: list[str] = Field(default_factory=list)
    save: Literal["merged", "adapter"] = Field(
        "merged",
        description="merged: a full model directory (loads with SceneParser.from_pretrained); "
        "adapter: the peft adapter only, plus the processor",
    )


class RuntimeSection(_Strict):
    """Where and how the loop runs: precision, checkpoints, logging, distribution."""

    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 on a GPU that supports it, else fp32"
    )
    gradient_checkpointing: bool = False
    deepspeed: str | None = Field(None, description="zero2 | zero3 | a DeepSpeed JSON path | None")
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    save_total_limit: int | None = Field(5, ge=1)
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    run_name: str | None = None
    num_threads: int | None = Field(None, ge=1, description="torch intra-op threads (None: torch default)")
    ddp_backend: str | None = Field(None, description="nccl / gloo; None: gloo on CPU, nccl on GPU")
    disable_tqdm: bool = False
    use_cpu: bool = Field(False, description="train on the CPU even when a GPU is visible")
    torch_compile: bool = Field(
        False, description="wrap the model in torch.compile (TrainingArguments.torch_compile); off by default"
    )


class TrainingConfig(_Strict):
    """One resolved training configuration (one stage), or a curriculum (with ``stages``)."""

    name: str = "custom"
    description: str = ""
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    train: TrainSection = Field(default_factory=TrainSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    runtime: RuntimeSection = Field(default_factory=RuntimeSection)
    stages: dict[int, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("stages")
    @classmethod
    def _check_stages(cls, stages: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        for number, override in stages.items():
            if number < 1:
                raise ValueError(f"stage numbers start at 1, not {number}")
            if not isinstance(override, dict):
                raise ValueError(f"stage {number} must be a mapping of overrides")
            if "stages" in override:
                raise ValueError(f"stage {number} cannot define nested stages")
        return dict(sorted(stages.items()))

    def stage_numbers(self) -> list[int]:
        return sorted(self.stages)

    def for_stage(self, stage: int | None) -> "TrainingConfig":
        """The config of one stage: the base sections with that stage's overrides merged in."""
        base = self.model_dump(mode="python")
        base.pop("stages")
        if stage is not None:
            if stage not in self.stages:
                known = ", ".join(map(str, self.stage_numbers())) or "none"
                raise InputError(f"config {self.name!r} has no stage {stage} (stages: {known})")
            base = deep_merge(base, self.stages[stage])
        return validate_config(base, source=f"{self.name} stage {stage}" if stage else self.name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------- helpers


def parse_pseudo(value: str) -> tuple[str, float]:
    """``"drop"`` -> ("drop", 0.0), ``"keep"`` -> ("keep", 1.0), ``"mix(0.3)"`` -> ("mix", 0.3)."""
    value = value.strip()
    if value in ("drop", "keep"):
        return value, 0.0 if value == "drop" else 1.0
    match = re.match(r"^mix\(\s*([0-9.]+)\s*\)$", value)
    if not match:
        raise InputError(f"pseudo must be 'drop', 'keep' or 'mix(P)', not {value!r}")
    return "mix", float(match.group(1))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``override`` merged into ``base`` recursively (mappings merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "tiny":
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **copy.deepcopy(value)}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _known_keys(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The field names valid at ``path`` (for 'did you mean' suggestions)."""
    current: Any = model
    for part in path[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = field.annotation
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
    return list(getattr(current, "model_fields", {}))


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"]]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = _known_keys(TrainingConfig, loc)
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = f"unknown key {dotted!r}"
            if hint:
                msg += f" (did you mean {'.'.join([*map(str, loc[:-1]), hint[0]])!r}?)"
            elif known:
                msg += f" (valid keys here: {', '.join(known)})"
        else:
            msg = f"{dotted}: {err['msg']}"
        lines.append(msg)
    return f"invalid training config ({source}): " + "; ".join(lines)


def validate_config(raw: dict[str, Any], source: str = "config") -> TrainingConfig:
    """Validate a raw mapping into a TrainingConfig; errors become one readable InputError."""
    if not isinstance(raw, dict):
        raise InputError(f"invalid training config ({source}): the top level must be a mapping")
    try:
        cfg = TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(_format_validation_error(exc, source)) from None
    # stage overrides must validate too (catches typos inside stages at load time)
    for number, override in cfg.stages.items():
        merged = deep_merge({k: v for k, v in cfg.model_dump(mode="python").items() if k != "stages"}, override)
        try:
            TrainingConfig.model_validate(merged)
        except ValidationError as exc:
            raise InputError(_format_validation_error(exc, f"{source}, stages.{number}")) from None
    return cfg


def preset_names() -> list[str]:
    """Names of the presets shipped with the package."""
    root = resources.files(PRESET_PACKAGE).joinpath(PRESET_DIR)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    return Path(str(resources.files(PRESET_PACKAGE).joinpath(PRESET_DIR, f"{name}.yaml")))


def deepspeed_config_path(value: str) -> Path:
    """``zero2`` / ``zero3`` -> the shipped JSON; anything else must be an existing JSON file."""
    if value in DEEPSPEED_PRESETS:
        return Path(str(resources.files(PRESET_PACKAGE).joinpath(PRESET_DIR, f"{value}.json")))
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(
            f"DeepSpeed config {value!r} is neither a shipped preset ({', '.join(DEEPSPEED_PRESETS)}) nor a file"
        )
    return path


def read_raw_config(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """The raw mapping of a preset name or YAML path, and a label for messages."""
    text_name = str(name_or_path)
    if text_name in preset_names():
        path, label = preset_path(text_name), f"preset {text_name!r}"
    else:
        path, label = Path(text_name).expanduser(), text_name
        if not path.is_file():
            raise InputError(
                f"training config {text_name!r} is neither a preset ({', '.join(preset_names())}) nor a YAML file"
            )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"training config {label} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"training config {label}: the top level must be a mapping")
    return raw, label


def parse_set(item: str) -> tuple[list[str], Any]:
    """``"train.epochs=1"`` -> (["train", "epochs"], 1). The value is parsed as YAML."""
    if "=" not in item:
        raise InputError(f"--set expects key=value (for example train.epochs=1), got {item!r}")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise InputError(f"--set has an empty key in {item!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key.split("."), value


def apply_set(raw: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``raw`` with ``value`` at the dotted ``path`` (stage numbers become ints)."""
    out = copy.deepcopy(raw)
    node = out
    keys: list[Any] = list(path)
    if keys and keys[0] == "stages" and len(keys) > 1:
        try:
            keys[1] = int(keys[1])
        except ValueError:
            raise InputError(f"--set {'.'.join(path)}: stage must be a number") from None
    for key in keys[:-1]:
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        if not isinstance(nxt, dict):
            raise InputError(f"--set {'.'.join(path)}: {key!r} is not a section")
        node = nxt
    node[keys[-1]] = value
    return out


def load_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Load a preset or YAML file and apply ``--set`` overrides.

    Overrides of ``stages.N.*`` edit that stage's overrides; every other override is stored as a
    ``set`` that wins over the stage values too (it is applied to the base and to every stage).
    """
    raw, label = read_raw_config(name_or_path)
    raw.setdefault("name", Path(str(name_or_path)).stem)
    stages = raw.get("stages") or {}
    if not isinstance(stages, dict):
        raise InputError(f"training config {label}: 'stages' must be a mapping of stage number -> overrides")
    try:
        raw["stages"] = {int(k): v for k, v in stages.items()}
    except (TypeError, ValueError):
        raise InputError(f"training config {label}: stage keys must be numbers (1, 2, 3)") from None
    for item in overrides:
        path, value = parse_set(item)
        if path[0] == "stages":
            raw = apply_set(raw, path, value)
        else:
            raw = apply_set(raw, path, value)
            for number in list(raw["stages"]):
                stage = raw["stages"][number] or {}
                if _has_path(stage, path):
                    raw["stages"][number] = apply_set(stage, path, value)
    return validate_config(raw, source=label)


def _has_path(raw: dict[str, Any], path: list[str]) -> bool:
    node: Any = raw
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def resolve_stage(cfg: TrainingConfig, stage: int | None, init: str | None = None) -> tuple[TrainingConfig, str]:
    """``(config of that stage, model to start from)`` for a single-stage run.

    Refuses to start stage 2 or 3 from the base model by accident (pass ``init`` = the previous
    stage's directory).
    """
    numbers = cfg.stage_numbers()
    if stage is None:
        if numbers:
            raise InputError(
                f"config {cfg.name!r} defines stages {', '.join(map(str, numbers))}: pass --stage N, "
                "or --curriculum to run them all"
            )
        return cfg.for_stage(None), init or cfg.model.init
    if not numbers:
        raise InputError(f"config {cfg.name!r} defines no stages; leave out --stage")
    stage_cfg = cfg.for_stage(stage)
    if init is None:
        if stage != numbers[0] and stage_cfg.model.init == cfg.model.init:
            raise InputError(
                f"stage {stage} starts from the stage-{numbers[numbers.index(stage) - 1]} model: pass "
                f"--init DIR (that stage's output directory), or run the whole curriculum with --curriculum"
            )
        init = stage_cfg.model.init
    return stage_cfg, init


__all__ = [
    "DataSection",
    "LoraSection",
    "ModelSection",
    "RuntimeSection",
    "TrainSection",
    "TrainingConfig",
    "apply_set",
    "deep_merge",
    "deepspeed_config_path",
    "load_config",
    "parse_pseudo",
    "parse_set",
    "preset_names",
    "resolve_stage",
    "validate_config",
]
