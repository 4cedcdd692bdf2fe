"""Batching: right-pad the token tensors, concatenate the image patches.

``input_ids`` are padded with the pad id, ``labels`` with -100, ``attention_mask`` and
``mm_token_type_ids`` with 0 (docs/reference.md, *training*). ``pixel_values`` are concatenated along the patch
axis and ``image_grid_thw`` along the image axis, in sample order, which is the order the model
consumes the images in. Samples that carry uint8 ``pixel_patches`` (the dataset's
``defer_pixels``) are normalised straight into the batch tensor (bit-identical to the
processor), and inside a DataLoader worker that tensor lives in shared memory. The per-sample ``sp_meta`` entries are summed into one ``sp_stats``
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

import torch
from torch.utils.data import get_worker_info

from sceneparser.model import patchify

IGNORE_INDEX = -100


@dataclass
class SceneParserCollator:
    """Collate samples of :class:`~sceneparser.training.dataset.SceneParserTrainDataset`."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    image_processor: Any = None  # needed for samples that carry uint8 ``pixel_patches``
    #: "float": the batch holds ``pixel_values``; "uint8": when every sample carries
    #: ``pixel_patches`` the batch holds them (a quarter of the bytes) and the trainer turns them
    #: into ``pixel_values`` on the training device (:func:`sceneparser.model.patchify.materialise`).
    pixel_format: str = "float"

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
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
            "image_grid_thw": torch.cat([s["image_grid_thw"] for s in samples], dim=0),
        }
        if self.pixel_format == "uint8" and all("pixel_patches" in s for s in samples):
            batch["pixel_patches"] = _cat(
                [s["pixel_patches"] for s in samples], torch.uint8, samples[0]["pixel_patches"].shape[1:]
            )
        else:
            batch["pixel_values"] = self._pixels(samples)
        if all("token_classes" in s for s in samples):  # the auxiliary grounding targets, in token order
            batch["token_classes"] = torch.cat([s["token_classes"] for s in samples], dim=0)
        if all("token_boxes" in s for s in samples):
            batch["token_boxes"] = torch.cat([s["token_boxes"] for s in samples], dim=0)
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

    def _pixels(self, samples: Sequence[dict[str, Any]]):
        """All samples' patches in one (rows, C*2*14*14) float32 tensor, in sample order."""
        widths, rows = set(), []
        for s in samples:
            if "pixel_values" in s:
                rows.append(int(s["pixel_values"].shape[0]))
                widths.add(int(s["pixel_values"].shape[1]))
            else:
                if self.image_processor is None:
                    raise ValueError("samples carry pixel_patches: give the collator the image_processor")
                rows.append(int(s["pixel_patches"].shape[0]))
                widths.add(patchify.row_width(self.image_processor))
        if len(widths) != 1:
            raise ValueError(f"samples have different patch widths {sorted(widths)}")
        width = widths.pop()
        out = _empty((sum(rows), width))
        start = 0
        for s, n in zip(samples, rows):
            dest = out[start : start + n]
            if "pixel_values" in s:
                dest.copy_(s["pixel_values"])
            else:
                ip = self.image_processor
                view = dest.numpy().reshape(n, patchify.channels(ip), ip.temporal_patch_size, -1)
                grid = tuple(int(x) for x in s["image_grid_thw"][0])
                patchify.normalise_into(ip, s["pixel_patches"].numpy(), grid, view)
            start += n
        return out


def _empty(shape, dtype=None):
    """A batch buffer; inside a DataLoader worker in shared memory, so sending the (large) pixel
    batch to the main process needs no second copy (as ``default_collate`` does)."""
    out = torch.empty(tuple(shape), dtype=dtype or torch.float32)
    return out.share_memory_() if get_worker_info() is not None else out


def _cat(tensors, dtype, tail):
    out = _empty((sum(int(t.shape[0]) for t in tensors), *tail), dtype)
    return torch.cat(tensors, dim=0, out=out)


__all__ = ["IGNORE_INDEX", "SceneParserCollator"]
