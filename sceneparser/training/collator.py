"""Batching: right-pad the token tensors, concatenate the image patches.

``input_ids`` are padded with the pad id, ``labels`` with -100, ``attention_mask`` and
``mm_token_type_ids`` with 0 (training.md §4.6). ``pixel_values`` are concatenated along the patch
axis and ``image_grid_thw`` along the image axis, in sample order, which is the order the model
consumes the images in. The per-sample ``sp_meta`` entries are summed into one ``sp_stats``
mapping that the trainer pops before the forward pass (sample and skip counts reach the main
process even from DataLoader workers).

Packing (several samples per row) is not offered: without flash-attention's variable-length
kernels a packed row needs a block-diagonal mask, which costs more than the padding it saves at
the reference's micro-batch of 2.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

IGNORE_INDEX = -100

TOKEN_KEYS = ("input_ids", "labels", "mm_token_type_ids")


@dataclass
class SceneParserCollator:
    """Collate samples of :class:`~sceneparser.training.dataset.SceneParserTrainDataset`."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if not samples:
            raise ValueError("cannot collate an empty batch")
        lengths = [int(s["input_ids"].shape[0]) for s in samples]
        width = max(lengths)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        n = len(samples)
        input_ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((n, width), dtype=torch.long)
        mm_types = torch.zeros((n, width), dtype=torch.long)
        for i, (s, length) in enumerate(zip(samples, lengths)):
            input_ids[i, :length] = s["input_ids"]
            labels[i, :length] = s["labels"]
            attention_mask[i, :length] = 1
            mm_types[i, :length] = s["mm_token_type_ids"]
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "mm_token_type_ids": mm_types,
            "pixel_values": torch.cat([s["pixel_values"] for s in samples], dim=0),
            "image_grid_thw": torch.cat([s["image_grid_thw"] for s in samples], dim=0),
        }
        skipped: Counter[str] = Counter()
        epochs: set[int] = set()
        for s in samples:
            meta = s.get("sp_meta") or {}
            skipped.update(meta.get("skipped") or {})
            if "epoch" in meta:
                epochs.add(int(meta["epoch"]))
        batch["sp_stats"] = {
            "samples": n,
            "tokens": sum(lengths),
            "supervised_tokens": int((labels != IGNORE_INDEX).sum()),
            "skipped": dict(skipped),
            "epochs": sorted(epochs),
        }
        return batch


__all__ = ["IGNORE_INDEX", "SceneParserCollator"]
