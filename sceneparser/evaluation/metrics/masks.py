"""Affordance masks: ``np.array(Image.open(p))``, max over channels, ``> 0``; LRU-cached.

numpy and Pillow are imported only when a mask is actually read. A mask that is missing or
cannot be read makes the region test fall back to the box (as the reference); :meth:`MaskReader.note`
and :meth:`MaskReader.report` count the GT affordances that fall back so, to make it visible.
"""

from __future__ import annotations

import os
from collections import OrderedDict

MASK_CACHE_SIZE = 32
OK, MISSING, UNREADABLE = "ok", "missing", "unreadable"


def _read_mask(path: str):
    """The binary mask in ``path``, or None when it cannot be read as a 2-D image."""
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


class MaskReader:
    """Loads binary masks relative to ``root`` (or the current directory, as the reference)."""

    def __init__(self, root=None, check_exists: bool = True):
        self.root = None if root is None else os.fspath(root)
        self.check_exists = check_exists
        self._cache: OrderedDict = OrderedDict()
        self._status: dict = {}  # mask_path -> MISSING / UNREADABLE / OK, once read
        self._fallbacks = {MISSING: 0, UNREADABLE: 0}  # GT affordances whose mask is unusable

    def _load(self, mask_path: str):
        path = mask_path if self.root is None or os.path.isabs(mask_path) else os.path.join(self.root, mask_path)
        mask = None
        if not self.check_exists or os.path.exists(path):
            mask = _read_mask(path)
        self._status[mask_path] = OK if mask is not None else UNREADABLE if os.path.exists(path) else MISSING
        return mask

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

    # ------------------------------------------------------------------ the fallback report
    def note(self, mask_paths: list) -> None:
        """Count the GT affordances of one scored sample (their ``mask_path`` values) whose mask
        is missing or unreadable; each distinct path is read once (then cached) to know."""
        status = self._status
        for mask_path in mask_paths:
            state = status.get(mask_path)
            if state is None:
                self.get(mask_path)
                state = status[mask_path]
            if state is not OK:
                self._fallbacks[state] += 1

    def merge(self, other: "MaskReader") -> None:
        """Add the counts of a reader that saw other samples (see :meth:`MetricBase.merge`)."""
        self._status.update(other._status)
        for state, n in other._fallbacks.items():
            self._fallbacks[state] += n

    def __getstate__(self) -> dict:  # pickled without the cached masks
        return dict(self.__dict__, _cache=OrderedDict())

    def report(self) -> dict:
        """GT affordances (and distinct files) whose mask is missing / unreadable, with an example each."""
        out = {}
        for state in (MISSING, UNREADABLE):
            files = sorted(p for p, s in self._status.items() if s == state)
            out[state] = {"affordances": self._fallbacks[state], "files": len(files),
                          "example": files[0] if files else None}
        return out
