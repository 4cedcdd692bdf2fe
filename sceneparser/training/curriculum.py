"""The curriculum: run a config's stages in order, each starting from the previous stage's output.

``run_curriculum(cfg, data_dir, out)`` writes ``out/stage1``, ``out/stage2``, ``out/stage3`` (one
per stage of ``cfg.stages``). Stage 1 starts from ``init`` (or ``model.init``); every later stage
loads the model directory the stage before it wrote, with a fresh optimizer and schedule (the
reference runs a new Trainer per stage, training.md §4.7). A stage whose directory already holds
a finished model is skipped, so re-running the same command continues an interrupted curriculum
(inside a stage, from its newest checkpoint).

``resolve_stage(cfg, stage, init)`` is the single-stage entry: it refuses to start stage 2 or 3
from the base model by accident (pass ``init`` = the previous stage's directory).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sceneparser.errors import InputError
from sceneparser.training.config import TrainingConfig

logger = logging.getLogger(__name__)


def stage_dir(output_dir: str | os.PathLike, stage: int) -> Path:
    return Path(output_dir) / f"stage{stage}"


def resolve_stage(cfg: TrainingConfig, stage: int | None, init: str | None = None) -> tuple[TrainingConfig, str]:
    """``(config of that stage, model to start from)`` for a single-stage run."""
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


def run_curriculum(
    cfg: TrainingConfig,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    init: str | None = None,
    resume: str = "auto",
    stages: list[int] | None = None,
):
    """Train every stage of ``cfg`` (or the listed ones) in order; returns their ``StageResult``s."""
    from sceneparser.training.stage import train_stage

    numbers = cfg.stage_numbers()
    if not numbers:
        raise InputError(f"config {cfg.name!r} defines no stages; use --config with --stage instead of --curriculum")
    if stages:
        unknown = [s for s in stages if s not in numbers]
        if unknown:
            raise InputError(f"config {cfg.name!r} has no stage {unknown[0]} (stages: {numbers})")
        numbers = [s for s in numbers if s in stages]
    if resume not in ("auto", "none"):
        raise InputError("--curriculum resumes per stage: --resume must be auto or none")
    for n in numbers:
        sc = cfg.for_stage(n)
        if sc.lora.enabled and sc.lora.save == "adapter" and n != numbers[-1]:
            raise InputError(
                "a stage saved as a LoRA adapter cannot start the next stage: set lora.save=merged for the curriculum"
            )
    results = []
    previous: str | None = None
    first = cfg.stage_numbers()[0]
    for n in numbers:
        stage_cfg = cfg.for_stage(n)
        if previous is not None:
            start = previous
        elif n == first:
            start = init or stage_cfg.model.init
        else:  # a partial curriculum that begins after the first stage
            prev_dir = stage_dir(output_dir, cfg.stage_numbers()[cfg.stage_numbers().index(n) - 1])
            start = init or str(prev_dir)
        out = stage_dir(output_dir, n)
        logger.info("curriculum stage %d: %s -> %s (pseudo %s)", n, start, out, stage_cfg.data.pseudo)
        result = train_stage(stage_cfg, data_dir, out, init=start, stage=n, resume=resume)
        results.append(result)
        previous = str(out)
    return results


__all__ = ["resolve_stage", "run_curriculum", "stage_dir"]
