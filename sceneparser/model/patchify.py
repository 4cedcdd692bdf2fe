"""A faster, bit-identical ``ImageProcessor.patchify`` for the training data pipeline.

Lives next to :mod:`sceneparser.model.processor`, whose patch layout it reproduces; the
training dataset, collator and trainer use it.

``sceneparser.model.processor.ImageProcessor.patchify`` normalises the whole resized image in
float32 and then rearranges a temporally duplicated float copy with one 9-axis strided copy; the
collator then copies every sample's patches once more into the batch. Here:

* :func:`patch_bytes` rearranges the *uint8* pixels into patch order (a quarter of the bytes);
* :func:`normalise_into` writes the float32 values ``(x * (1/255) - mean) / std`` (the same
  float32 operations, so the same bits) and the temporal copy straight into a destination, which
  can be the batch tensor itself (:class:`~sceneparser.training.collator.SceneParserCollator`
  does that for samples that carry ``pixel_patches``): no per-sample float buffer, no extra copy;
* :func:`patchify` = both, for one image;
* :func:`materialise` does the float step with torch for a whole batch of uint8 patches, on the
  training device (the collator's ``pixel_format="uint8"``: a quarter of the bytes cross from the
  DataLoader workers and to the GPU).

``tests/training/test_patchify.py`` checks bit equality with the processor for RGB and CoordConv
(5-channel) processors. Processors this module does not know fall back to their own ``patchify``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sceneparser.model.processor import ImageProcessor


def supports(image_processor) -> bool:
    return type(image_processor) is ImageProcessor


def patch_bytes(image_processor, image) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """``(uint8 patches (n, 3, p*p), (1, gh, gw))`` of the resized image, or None (unsupported)."""
    if not supports(image_processor):
        return None
    ip = image_processor
    u8 = np.asarray(ip.resize(image))
    if u8.dtype != np.uint8 or u8.ndim != 3 or u8.shape[2] != 3:
        return None
    height, width, _ = u8.shape
    p, m = ip.patch_size, ip.merge_size
    gh, gw = height // p, width // p
    if gh * p != height or gw * p != width or gh % m or gw % m:
        return None
    return _to_patches(u8, gh, gw, p, m), (1, gh, gw)


def _to_patches(hwc: np.ndarray, gh: int, gw: int, p: int, m: int) -> np.ndarray:
    c = hwc.shape[2]
    v = hwc.reshape(gh // m, m, p, gw // m, m, p, c).transpose(0, 3, 1, 4, 6, 2, 5)
    return np.ascontiguousarray(v).reshape(gh * gw, c, p * p)


def channels(image_processor) -> int:
    return 5 if image_processor.coord_channels else 3


def row_width(image_processor) -> int:
    ip = image_processor
    return channels(ip) * ip.temporal_patch_size * ip.patch_size * ip.patch_size


def normalise_into(image_processor, u8: np.ndarray, grid: tuple[int, int, int], out: np.ndarray) -> None:
    """Write the float patches of ``u8`` (from :func:`patch_bytes`) into ``out`` (n, C, tp, p*p)."""
    ip = image_processor
    mean = np.asarray(ip.image_mean, dtype=np.float32)[None, :, None]
    std = np.asarray(ip.image_std, dtype=np.float32)[None, :, None]
    first = out[:, :3, 0, :]
    np.multiply(u8, np.float32(1.0 / 255.0), out=first, dtype=np.float32)
    first -= mean
    first /= std
    out[:, :3, 1:, :] = first[:, :, None, :]
    if ip.coord_channels:
        out[:, 3:, :, :] = _coord_patches(ip, grid)[:, :, None, :]


def patchify(image_processor, image) -> tuple[Any, tuple[int, int, int]]:
    """``(patches, (t, h, w))`` exactly as ``image_processor.patchify(image)`` returns them."""
    got = patch_bytes(image_processor, image)
    if got is None:
        return image_processor.patchify(image)
    u8, grid = got
    ip = image_processor
    out = np.empty((u8.shape[0], channels(ip), ip.temporal_patch_size, u8.shape[2]), dtype=np.float32)
    normalise_into(ip, u8, grid, out)
    return out.reshape(u8.shape[0], row_width(ip)), grid


def _coord_patches(image_processor, grid: tuple[int, int, int]) -> np.ndarray:
    """The CoordConv x/y channels of one image in patch order: (n, 2, p*p) float32."""
    ip = image_processor
    _, gh, gw = grid
    p, m = ip.patch_size, ip.merge_size
    height, width = gh * p, gw * p
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32) if width > 1 else np.zeros(1, np.float32)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32) if height > 1 else np.zeros(1, np.float32)
    coords = np.empty((height, width, 2), dtype=np.float32)
    coords[:, :, 0] = xs[None, :]
    coords[:, :, 1] = ys[:, None]
    return _to_patches(coords, gh, gw, p, m)


def materialise(image_processor, pixel_patches, image_grid_thw, dtype=None):
    """uint8 ``pixel_patches`` (rows, 3, p*p) of a batch -> ``pixel_values`` (rows, C*tp*p*p).

    Runs with torch on the patches' device (the trainer does this on the GPU, after a 4x smaller
    host-to-device copy). The float32 operations are the processor's, so on the CPU the values
    are bit-identical to ``ImageProcessor.patchify``.
    """
    import torch

    ip = image_processor
    device = pixel_patches.device
    rows, _, pp = pixel_patches.shape
    tp = ip.temporal_patch_size
    mean = torch.tensor(ip.image_mean, dtype=torch.float32, device=device)[None, :, None]
    std = torch.tensor(ip.image_std, dtype=torch.float32, device=device)[None, :, None]
    rgb = pixel_patches.to(torch.float32)  # contiguous; the three steps below work in place
    rgb.mul_(torch.tensor(1.0 / 255.0, dtype=torch.float32)).sub_(mean).div_(std)
    out = torch.empty((rows, channels(ip), tp, pp), dtype=torch.float32, device=device)
    out[:, :3] = rgb[:, :, None, :]
    if ip.coord_channels:
        start = 0
        for grid in image_grid_thw.tolist():
            n = int(grid[0] * grid[1] * grid[2])
            coords = torch.from_numpy(_coord_patches(ip, tuple(grid))).to(device)
            out[start : start + n, 3:] = coords[:, :, None, :]
            start += n
    out = out.reshape(rows, channels(ip) * tp * pp)
    return out if dtype is None else out.to(dtype)


__all__ = ["channels", "materialise", "normalise_into", "patch_bytes", "patchify", "row_width", "supports"]
