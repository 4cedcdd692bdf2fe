"""Rex-Omni coordinate codec: pixels <-> the 1,000 bins ``<0>``..``<999>``.

Quantisation floors (as the SceneParser training converter does) and dequantisation is
``bin / 999.0 * size`` -- exactly this operation order, so decoded floats are bit-identical
to the reference evaluation. The round trip is therefore biased by about half a bin towards
the origin, and bin 999 decodes to exactly ``size`` (reference behaviour, kept on purpose).
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

NUM_BINS = 1000
MAX_BIN = NUM_BINS - 1

# The same pattern the reference uses (note: ``\d`` also matches non-ASCII digits).
_TOKEN_RE = re.compile(r"<(\d+)>")


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def quantize(value: float, size: float) -> int:
    """Pixel coordinate -> bin: ``clamp(int(clamp(value / size, 0, 1) * 999), 0, 999)``.

    Non-finite input is handled without raising: NaN maps to bin 0, +inf to 999, -inf to 0.
    ``size`` must be positive.
    """
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size!r}")
    ratio = float(value) / float(size)
    if math.isnan(ratio):
        return 0
    return int(_clamp(int(_clamp(ratio, 0.0, 1.0) * MAX_BIN), 0, MAX_BIN))


def dequantize(bin: int, size: float) -> float:  # noqa: A002 - name fixed by the contract
    """Bin -> pixel coordinate: ``bin / 999.0 * size`` (no clamping; bins > 999 land outside)."""
    return bin / 999.0 * size


def coord_token(bin: int) -> str:  # noqa: A002
    """The coordinate token for a bin, e.g. ``coord_token(7) == "<7>"``."""
    b = int(bin)
    if not 0 <= b <= MAX_BIN:
        raise ValueError(f"coordinate bin must be in 0..{MAX_BIN}, got {bin!r}")
    return f"<{b}>"


def box_to_tokens(box: Sequence[float], width: float, height: float) -> str:
    """``[x0, y0, x1, y1]`` in pixels -> ``"<x0><y0><x1><y1>"`` (x by width, y by height)."""
    if len(box) != 4:
        raise ValueError(f"a box needs 4 numbers [x0, y0, x1, y1], got {len(box)}")
    x0, y0, x1, y1 = box
    return "".join(
        coord_token(quantize(v, s)) for v, s in ((x0, width), (y0, height), (x1, width), (y1, height))
    )


def point_to_tokens(point: Sequence[float], width: float, height: float) -> str:
    """``[x, y]`` in pixels -> ``"<x><y>"``."""
    if len(point) != 2:
        raise ValueError(f"a point needs 2 numbers [x, y], got {len(point)}")
    x, y = point
    return coord_token(quantize(x, width)) + coord_token(quantize(y, height))


def tokens_to_bins(text: str) -> list[int]:
    """Every ``<n>`` in ``text`` as an int, in order (no range check, as the reference)."""
    return [int(n) for n in _TOKEN_RE.findall(text)]


def bins_to_pixels(bins: Iterable[int], width: float, height: float) -> list[float]:
    """Alternate x/y bins -> pixels with :func:`dequantize` (x by width, y by height)."""
    return [dequantize(b, width if i % 2 == 0 else height) for i, b in enumerate(bins)]


def tokens_to_box(text: str, width: float, height: float) -> list[float] | None:
    """``"<x0><y0><x1><y1>"`` -> pixel box, or None unless exactly 4 tokens are present."""
    bins = tokens_to_bins(text)
    return bins_to_pixels(bins, width, height) if len(bins) == 4 else None


def tokens_to_point(text: str, width: float, height: float) -> list[float] | None:
    """``"<x><y>"`` -> pixel point, or None unless exactly 2 tokens are present."""
    bins = tokens_to_bins(text)
    return bins_to_pixels(bins, width, height) if len(bins) == 2 else None
