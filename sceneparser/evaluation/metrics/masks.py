"""Affordance masks: ``np.array(Image.open(p))``, max over channels, ``> 0``; LRU-cached.

numpy and Pillow are imported only when a mask is actually read.
"""

from __future__ import annotations

import os
from collections import OrderedDict

MASK_CACHE_SIZE = 32


class MaskReader:
    """Loads binary masks relative to ``root`` (or the current directory, as the reference)."""

    def __init__(self, root=None, check_exists: bool = True):
        self.root = None if root is None else os.fspath(root)
        self.check_exists = check_exists
        self._cache: OrderedDict = OrderedDict()

    def _load(self, mask_path: str):
        path = mask_path if self.root is None or os.path.isabs(mask_path) else os.path.join(self.root, mask_path)
        if self.check_exists and not os.path.exists(path):
            return None
        try:
            import numpy as np
            from PIL import Image

            with Image.open(path) as im:
                arr = np.array(im)
            if arr.ndim == 3:
                arr = arr.max(axis=2)
            if arr.ndim != 2:
                return None
            return arr > 0
        except Exception:  # noqa: BLE001 - unreadable mask: fall back to the box, as the reference
            return None

    def get(self, mask_path: str):
        cache = self._cache
        if mask_path in cache:
            cache.move_to_end(mask_path)
            return cache[mask_path]
        mask = self._load(mask_path)
        cache[mask_path] = mask
        if len(cache) > MASK_CACHE_SIZE:
            cache.popitem(last=False)
        return mask

    def lookup(self, point, mask_path):
        """True/False inside the mask, or None when there is no usable mask (or no point)."""
        if point is None or not mask_path:
            return None
        mask = self.get(mask_path)
        if mask is None:
            return None
        try:
            x, y = int(round(point[0])), int(round(point[1]))
        except (ValueError, OverflowError):  # NaN / inf: the reference raises here
            return False
        h, w = mask.shape[:2]
        if x < 0 or y < 0 or x >= w or y >= h:
            return False
        return bool(mask[y, x])
