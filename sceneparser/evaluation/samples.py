"""Evaluation samples, built exactly as the reference builds them (docs/reference.md,
*object-metric* and *prompts*).

Object level (the published protocol): one sample per (image, distinct truthy ``phrase``), the
categories of an image in Python string order, ground truth from
``sceneparser.evaluation.ground_truth`` and the question from ``sceneparser.prompts``.
Scene level: one sample per image whose ground truth is every phrased object of the record, in
record order (each object's GT built by the same function), and the scene question.

Mask paths: the metrics open ``mask_path`` relative to the current directory, as the reference
does (its driver runs from the repository root, where the benchmark's relative paths resolve).
When a ``mask_root`` is given (the eval command passes ``--image-root`` unless ``--mask-root``
says otherwise), relative GT mask paths are rewritten to the absolute ``mask_root/mask_path``, so
masks that live next to the images (e.g. synthetic data) are actually used, and ``answer.jsonl``
re-scores to the same numbers (``sceneparser metrics``) from any directory.

Nothing here opens an image; the runner does, with :func:`sceneparser.images.open_image`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from sceneparser import prompts
from sceneparser.evaluation.ground_truth import build_gt_for_category

LEVELS = ("object", "scene")


@dataclass(frozen=True)
class EvalSample:
    """One model query of the evaluation: an image, a question and its ground truth."""

    record_index: int  # position of the record among the valid val records
    image_path: str  # as written in the record (the answer line keeps it verbatim)
    category: str | None  # the phrase asked for; None for a scene-level sample
    question: str
    gt: dict

    @property
    def key(self) -> tuple:
        return (self.record_index, self.image_path, self.category)


@dataclass(frozen=True)
class SampleProblem:
    """A record that yields no samples because the reference would crash on it."""

    record_index: int
    line: int | None
    message: str


def _ground_truth(record: dict, category: str) -> dict:
    return build_gt_for_category(record, category)


def _rebase_masks(gt: dict, mask_root: str | os.PathLike) -> dict:
    """Copy of ``gt`` whose relative affordance ``mask_path`` values are joined to ``mask_root``."""
    root = os.fspath(mask_root)
    objects = []
    for obj in gt.get("objects") or []:
        parts = []
        for part in obj.get("parts") or []:
            affs = []
            for aff in part.get("affordances") or []:
                mp = aff.get("mask_path")
                if isinstance(mp, str) and mp and not os.path.isabs(mp):
                    aff = {**aff, "mask_path": os.path.abspath(os.path.join(root, mp))}
                affs.append(aff)
            parts.append({**part, "affordances": affs})
        objects.append({**obj, "parts": parts})
    return {**gt, "objects": objects}


def record_categories(record: dict) -> list[str]:
    """The distinct truthy phrases of a record, sorted as the reference sorts them."""
    objects = record.get("objects") or []
    return sorted({o.get("phrase") for o in objects if isinstance(o, dict) and o.get("phrase")})


def samples_for_record(
    record: dict,
    record_index: int,
    *,
    level: str = "object",
    question_template: str | None = None,
    mask_root: str | os.PathLike | None = None,
) -> list[EvalSample]:
    """The samples of one val record (raises ``ValueError`` where the reference would crash)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    image_path = record.get("image_path")
    if not isinstance(image_path, str) or not image_path:
        raise ValueError("record has no image_path")
    cats = record_categories(record)
    if not cats:
        return []
    out: list[EvalSample] = []
    if level == "object":
        for cat in cats:
            gt = _ground_truth(record, cat)
            if mask_root is not None:
                gt = _rebase_masks(gt, mask_root)
            out.append(EvalSample(record_index, image_path, cat, prompts.object_question(cat, question_template), gt))
    else:
        objects = []
        for obj in record.get("objects") or []:
            if isinstance(obj, dict) and obj.get("phrase"):
                objects.extend(_ground_truth({**record, "objects": [obj]}, obj["phrase"])["objects"])
        gt = {"objects": objects}
        if mask_root is not None:
            gt = _rebase_masks(gt, mask_root)
        out.append(EvalSample(record_index, image_path, None, prompts.scene_question(question_template), gt))
    return out


def build_samples(
    records: Sequence[dict],
    *,
    level: str = "object",
    question_template: str | None = None,
    mask_root: str | os.PathLike | None = None,
    lines: Sequence[int | None] | None = None,
) -> tuple[list[EvalSample], list[SampleProblem]]:
    """All samples of ``records`` in reference order (record, then sorted category).

    Records the reference would crash on are not evaluated; each is returned as a
    :class:`SampleProblem` (with its val line number when ``lines`` is given).
    """
    samples: list[EvalSample] = []
    problems: list[SampleProblem] = []
    for i, rec in enumerate(records):
        try:
            samples.extend(
                samples_for_record(rec, i, level=level, question_template=question_template, mask_root=mask_root)
            )
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(SampleProblem(i, lines[i] if lines is not None else None, str(exc)))
    return samples, problems


def shard_range(num_items: int, num_shards: int, shard_index: int) -> range:
    """Contiguous shard ``shard_index`` of ``num_items`` records, split as the reference driver.

    ``size = ceil(num_items / num_shards)``; shard k is ``[k*size, min((k+1)*size, num_items))``
    (empty for trailing shards when there are fewer items than shards).
    """
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}")
    size = math.ceil(num_items / num_shards) if num_items else 0
    start = min(shard_index * size, num_items)
    return range(start, min(start + size, num_items))


def resolve_image_path(image_path: str, image_root: str | os.PathLike | None = None) -> Path:
    """Where an image lives: absolute paths as they are, relative ones under ``image_root`` (CWD)."""
    p = Path(image_path)
    if p.is_absolute() or image_root is None:
        return p
    return Path(image_root) / p
