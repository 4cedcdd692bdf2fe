"""The reference arithmetic: IoU, point-in-box, F1, the harmonic mean, count summaries.

Every function performs the reference's operations in the reference's order with the same
argument order, so the floats are bit-identical (docs/reference.md, *object-metric*).
"""

from __future__ import annotations

from typing import Any

EPS = 1e-12


def normalize_label(value: Any) -> str:
    """``str(value or "").strip().lower()`` -- the reference label normalisation."""
    return str(value or "").strip().lower()


def iou(box1, box2) -> float:
    """Reference IoU of two ``[x0, y0, x1, y1]`` boxes (0.0 for None, touching or inverted)."""
    if box1 is None or box2 is None:
        return 0.0
    x1 = max(box1[0], box2[0])
    y1 = max(box1[1], box2[1])
    x2 = min(box1[2], box2[2])
    y2 = min(box1[3], box2[3])
    if x2 <= x1 or y2 <= y1:
        return 0.0
    inter = (x2 - x1) * (y2 - y1)
    a1 = max(0.0, box1[2] - box1[0]) * max(0.0, box1[3] - box1[1])
    a2 = max(0.0, box2[2] - box2[0]) * max(0.0, box2[3] - box2[1])
    denom = a1 + a2 - inter
    return inter / denom if denom > 0 else 0.0


def point_in_box(point, bbox) -> bool:
    """Inclusive point-in-box test; the box is reordered so x0 <= x1 and y0 <= y1."""
    if point is None or bbox is None:
        return False
    x, y = point
    x1, y1, x2, y2 = bbox
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    return x1 <= x <= x2 and y1 <= y <= y2


def f1(p, r) -> float:
    return 2 * p * r / (p + r) if (p + r) > 0 else 0.0


def harmonic3(a, b, c, eps: float = EPS) -> float:
    return 3.0 / ((1.0 / (a + eps)) + (1.0 / (b + eps)) + (1.0 / (c + eps)))


def ratio(num, den) -> float:
    return num / den if den else 0.0


def prf_counts(tp: int, pred_total: int, gt_total: int) -> dict:
    """Object-level micro counts: ``{"tp", "fp", "fn", "precision", "recall", "f1"}``."""
    precision = tp / pred_total if pred_total else 0.0
    recall = tp / gt_total if gt_total else 0.0
    return {
        "tp": int(tp),
        "fp": int(max(0, pred_total - tp)),
        "fn": int(max(0, gt_total - tp)),
        "precision": precision,
        "recall": recall,
        "f1": f1(precision, recall),
    }


def scene_counts(tp: int, fp: int, fn: int) -> dict:
    """Scene-level micro counts from tp/fp/fn (the scene script's own F1 expression)."""
    precision = tp / (tp + fp) if (tp + fp) else 0.0
    recall = tp / (tp + fn) if (tp + fn) else 0.0
    f = 2 * precision * recall / (precision + recall) if (precision + recall) else 0.0
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f}
