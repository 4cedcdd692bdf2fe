"""Images and prompts -> model inputs for Qwen2.5-VL, without torchvision or qwen-vl-utils.

* :func:`smart_resize` is the reference's (docs/reference.md, *resize*): sides rounded to multiples of 28
  with Python's half-to-even ``round``, then scaled into ``[min_pixels, max_pixels]``.
* :class:`ImageProcessor` resizes with PIL (bicubic, as the reference's ``fetch_image``),
  rescales, normalises with the CLIP mean/std and cuts the image into Qwen2.5-VL patches
  (``pixel_values`` of shape ``(patches, C * 2 * 14 * 14)`` and ``image_grid_thw``). With
  ``coord_channels=True`` (a model whose ``vision_config.in_channels == 5``) two more channels hold
  the normalised x and y (0..1) of every pixel of the resized image (CoordConv).
* :class:`SceneParserProcessor` expands each ``<|image_pad|>`` to the image's token count,
  tokenises, pads (left by default) and always returns ``mm_token_type_ids``: without it
  transformers 5 silently gives the model 1D positions instead of M-RoPE (docs/reference.md, *mrope*).
* Images are opened by :func:`sceneparser.images.open_image` (the one loader); a PIL image given
  here is converted with :func:`sceneparser.images.to_rgb`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from sceneparser import prompts
from sceneparser.errors import InputError, ModelLoadError
from sceneparser.images import MAX_ASPECT_RATIO, to_rgb

IMAGE_FACTOR = 28
MIN_PIXELS = 12544  # 16 * 28 * 28
MAX_PIXELS = 2007040  # 2560 * 28 * 28
MAX_RATIO = MAX_ASPECT_RATIO
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

IMAGE_PAD = "<|image_pad|>"


# --------------------------------------------------------------------------------------------
# smart_resize
# --------------------------------------------------------------------------------------------


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """Target ``(height, width)`` of the reference preprocessing (docs/reference.md, *resize*).

    ``round`` is Python's (half to even), exactly as qwen-vl-utils. The only departure: a side
    floored to 0 in the max-pixels branch (possible only with a tiny ``max_pixels`` and an extreme
    aspect ratio, where the reference would crash later) is kept at ``factor``.
    """
    if height <= 0 or width <= 0:
        raise InputError(f"image has zero size ({width}x{height})")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise InputError(
            f"image aspect ratio must be at most {MAX_RATIO}, got {max(height, width) / min(height, width):.1f} "
            f"({width}x{height})"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# --------------------------------------------------------------------------------------------
# Image processor
# --------------------------------------------------------------------------------------------


@dataclass
class ImageProcessor:
    """Qwen2.5-VL image preprocessing in numpy/PIL (no torchvision).

    Saves and loads the standard ``preprocessor_config.json`` so that checkpoints of the reference
    (and HF's ``Qwen2VLImageProcessor``) configure it.
    """

    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD
    coord_channels: bool = False
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @property
    def in_channels(self) -> int:
        return 5 if self.coord_channels else 3

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` the image is resized to."""
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def num_image_tokens(self, width: int, height: int) -> int:
        w, h = self.resized_size(width, height)
        return (h // self.factor) * (w // self.factor)

    def resize(self, image):
        image = to_rgb(image)
        w, h = self.resized_size(*image.size)
        if (w, h) == image.size:
            return image
        return image.resize((w, h), Image.BICUBIC)

    def patchify(self, image) -> tuple[np.ndarray, tuple[int, int, int]]:
        """One RGB image -> ``(patches, (t, h, w))``; patches is float32 ``(t*h*w, C*tp*p*p)``."""
        image = self.resize(image)
        arr = np.asarray(image, dtype=np.float32) * np.float32(1.0 / 255.0)  # (H, W, 3)
        mean = np.asarray(self.image_mean, dtype=np.float32)
        std = np.asarray(self.image_std, dtype=np.float32)
        arr = (arr - mean) / std
        arr = arr.transpose(2, 0, 1)  # (3, H, W)
        height, width = arr.shape[1:]
        if self.coord_channels:
            xs = np.linspace(0.0, 1.0, width, dtype=np.float32) if width > 1 else np.zeros(1, np.float32)
            ys = np.linspace(0.0, 1.0, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)
            xx = np.broadcast_to(xs[None, :], (height, width))
            yy = np.broadcast_to(ys[:, None], (height, width))
            arr = np.concatenate([arr, xx[None], yy[None]], axis=0)
        c = arr.shape[0]
        p, tp, m = self.patch_size, self.temporal_patch_size, self.merge_size
        gh, gw = height // p, width // p
        frames = np.broadcast_to(arr[None], (tp, c, height, width))
        x = frames.reshape(1, tp, c, gh // m, m, p, gw // m, m, p)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        patches = np.ascontiguousarray(x.reshape(gh * gw, c * tp * p * p))
        return patches, (1, gh, gw)

    def __call__(self, images: Sequence[Any]) -> dict:
        import torch

        if not images:
            return {}
        patches, grids = [], []
        for im in images:
            pv, grid = self.patchify(im)
            patches.append(pv)
            grids.append(grid)
        return {
            "pixel_values": torch.from_numpy(np.concatenate(patches, axis=0)),
            "image_grid_thw": torch.tensor(grids, dtype=torch.long),
        }

    # ---- persistence -------------------------------------------------------------------

    def to_dict(self) -> dict:
        d = dict(self.extra)
        d.update(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor",
                "do_resize": True,
                "resample": 3,
                "do_rescale": True,
                "rescale_factor": 1.0 / 255.0,
                "do_normalize": True,
                "do_convert_rgb": True,
                "image_mean": list(self.image_mean),
                "image_std": list(self.image_std),
                "min_pixels": self.min_pixels,
                "max_pixels": self.max_pixels,
                "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
                "patch_size": self.patch_size,
                "temporal_patch_size": self.temporal_patch_size,
                "merge_size": self.merge_size,
                "coord_channels": self.coord_channels,
            }
        )
        return d

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        out = Path(path) / "preprocessor_config.json"
        out.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return out

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "ImageProcessor":
        size = d.get("size") or {}
        kw: dict[str, Any] = {
            "min_pixels": int(d.get("min_pixels") or size.get("shortest_edge") or MIN_PIXELS),
            "max_pixels": int(d.get("max_pixels") or size.get("longest_edge") or MAX_PIXELS),
            "patch_size": int(d.get("patch_size", 14)),
            "temporal_patch_size": int(d.get("temporal_patch_size", 2)),
            "merge_size": int(d.get("merge_size", 2)),
            "image_mean": tuple(d.get("image_mean") or OPENAI_CLIP_MEAN),
            "image_std": tuple(d.get("image_std") or OPENAI_CLIP_STD),
            "coord_channels": bool(d.get("coord_channels", False)),
        }
        kw.update(overrides)
        known = set(kw) | {"size"}
        kw["extra"] = {k: v for k, v in d.items() if k not in known and k not in cls().to_dict()}
        return cls(**kw)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides) -> "ImageProcessor":
        f = Path(path) / "preprocessor_config.json"
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read {f}: {exc}") from exc
        return cls.from_dict(d, **overrides)


# --------------------------------------------------------------------------------------------
# Prompt pieces and the processor
# --------------------------------------------------------------------------------------------


class UserText(str):
    """A piece of prompt text from the user: tokenised with special-token parsing disabled.

    ``"<|im_end|>"`` inside a ``UserText`` becomes ordinary characters, so a query cannot close the
    user turn or inject coordinate tokens.
    """


_SENTINEL = "\x00SCENEPARSER_QUESTION\x00"


def chat_pieces(
    question: str,
    layout: str = "inference",
    answer: str | None = None,
    *,
    system: str | None = None,
) -> list[str]:
    """``prompts.chat_text`` split into trusted template text and the question as :class:`UserText`."""
    text = prompts.chat_text(_SENTINEL, layout=layout, answer=answer, system=system)
    before, _, after = text.partition(_SENTINEL)
    return [before, UserText(question), after]


def split_prefix(pieces: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split prompt pieces after the image placeholder's ``<|vision_end|>``.

    The prefix (system turn + image) is shared by all queries on one image; splitting right
    after a special token leaves the tokenisation unchanged.
    """
    marker = "<|vision_end|>"
    for i, piece in enumerate(pieces):
        if isinstance(piece, UserText):
            continue
        j = piece.find(marker)
        if j >= 0:
            j += len(marker)
            head, tail = piece[:j], piece[j:]
            prefix = list(pieces[:i]) + [head]
            suffix = ([tail] if tail else []) + list(pieces[i + 1 :])
            return prefix, suffix
    raise ValueError("prompt has no <|vision_end|> to split after")


class SceneParserProcessor:
    """Tokeniser + image processor for Qwen2.5-VL SceneParser models.

    ``__call__(texts, images, padding_side="left")`` returns a ``BatchFeature`` with
    ``input_ids``, ``attention_mask``, ``pixel_values``, ``image_grid_thw`` and
    ``mm_token_type_ids`` (0 = text, 1 = image). Each text holds one ``<|image_pad|>`` per image
    (images are consumed in order); a text may also be a list of pieces where :class:`UserText`
    pieces are tokenised without special-token parsing.
    """

    def __init__(self, image_processor: ImageProcessor | None, tokenizer, coord_channels: bool = False):
        if image_processor is None:
            image_processor = ImageProcessor(coord_channels=coord_channels)
        elif coord_channels and not image_processor.coord_channels:
            image_processor = ImageProcessor.from_dict(image_processor.to_dict(), coord_channels=True)
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_token = IMAGE_PAD
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ModelLoadError("the tokenizer has no <|image_pad|> token")
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else tokenizer.convert_tokens_to_ids("<|endoftext|>")

    @property
    def coord_channels(self) -> bool:
        return self.image_processor.coord_channels

    # ---- tokenisation ------------------------------------------------------------------

    def encode(self, text: str | Sequence[str], image_token_counts: Sequence[int] = ()) -> list[int]:
        """Token ids of one text (or list of pieces), with ``<|image_pad|>`` expanded."""
        pieces = [text] if isinstance(text, str) else list(text)
        counts = list(image_token_counts)
        ids: list[int] = []
        for piece in pieces:
            if not piece:
                continue
            if isinstance(piece, UserText):
                ids += self.tokenizer(str(piece), add_special_tokens=False, split_special_tokens=True)["input_ids"]
                continue
            parts = piece.split(IMAGE_PAD)
            for k, part in enumerate(parts):
                if part:
                    ids += self.tokenizer(part, add_special_tokens=False)["input_ids"]
                if k < len(parts) - 1:
                    if not counts:
                        raise InputError("more <|image_pad|> placeholders than images")
                    ids += [self.image_token_id] * counts.pop(0)
        if counts:
            raise InputError("more images than <|image_pad|> placeholders")
        return ids

    def pad(self, sequences: Sequence[Sequence[int]], padding_side: str = "left") -> dict:
        import torch

        n = max((len(s) for s in sequences), default=0)
        ids = torch.full((len(sequences), n), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), n), dtype=torch.long)
        for i, s in enumerate(sequences):
            if not s:
                continue
            t = torch.tensor(list(s), dtype=torch.long)
            if padding_side == "left":
                ids[i, n - len(s) :] = t
                mask[i, n - len(s) :] = 1
            elif padding_side == "right":
                ids[i, : len(s)] = t
                mask[i, : len(s)] = 1
            else:
                raise ValueError("padding_side must be 'left' or 'right'")
        return {"input_ids": ids, "attention_mask": mask}

    def __call__(
        self,
        texts: Sequence[str | Sequence[str]] | str,
        images: Sequence[Any] | Any | None = None,
        padding_side: str = "left",
        return_tensors: str = "pt",
    ):
        from transformers import BatchFeature

        if isinstance(texts, str):
            texts = [texts]
        if images is None:
            images = []
        elif not isinstance(images, (list, tuple)):
            images = [images]
        vision = self.image_processor(list(images)) if images else {}
        merge2 = self.image_processor.merge_size**2
        counts = [int(g.prod()) // merge2 for g in vision["image_grid_thw"]] if vision else []
        seqs = []
        for text in texts:
            pieces = [text] if isinstance(text, str) else list(text)
            n_img = sum(p.count(IMAGE_PAD) for p in pieces if not isinstance(p, UserText))
            mine, counts = counts[:n_img], counts[n_img:]
            if len(mine) < n_img:
                raise InputError("more <|image_pad|> placeholders than images")
            seqs.append(self.encode(pieces, mine))
        if counts:
            raise InputError("more images than <|image_pad|> placeholders")
        batch = self.pad(seqs, padding_side=padding_side)
        batch["mm_token_type_ids"] = (batch["input_ids"] == self.image_token_id).long() * batch["attention_mask"]
        batch.update(vision)
        return BatchFeature(data=dict(batch), tensor_type=return_tensors)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, seqs, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(s, skip_special_tokens) for s in seqs]

    # ---- persistence -------------------------------------------------------------------

    def save_pretrained(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path))
        self.image_processor.save_pretrained(path)


__all__ = [
    "ImageProcessor",
    "SceneParserProcessor",
    "UserText",
    "chat_pieces",
    "smart_resize",
    "split_prefix",
]
