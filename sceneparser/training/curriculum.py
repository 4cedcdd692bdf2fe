"""The curriculum: run a config's stages in order, each starting from the previous stage's output.

``run_curriculum(cfg, data_dir, out)`` writes ``out/stage1``, ``out/stage2``, ``out/stage3`` (one
per stage of ``cfg.stages``). Stage 1 starts from ``init`` (or ``model.init``); every later stage
loads the model directory the stage before it wrote, with a fresh optimizer and schedule (the
reference runs a new Trainer per stage, docs/reference.md, *training*). A stage whose directory
already holds a finished model is skipped, so re-running the same command continues an
interrupted curriculum (inside a stage, from its newest checkpoint).

The single-stage entry is :func:`sceneparser.training.config.resolve_stage` + ``train_stage``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sceneparser.errors import InputError
from sceneparser.training.config import TrainingConfig
from sceneparser.training.stage import check_stage_settings, train_stage

logger = logging.getLogger(__name__)


def stage_dir(output_dir: str | os.PathLike, stage: int) -> Path:
    return Path(output_dir) / f"stage{stage}"


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
        check_stage_settings(sc, where=f"stage {n}")  # every stage's options, before stage 1 loads a model
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


__all__ = ["run_curriculum", "stage_dir"]
