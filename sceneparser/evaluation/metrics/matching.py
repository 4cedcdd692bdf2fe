"""Matching: IoU tables, greedy (reference) and optimal matching, affordance point matching.

Reference matching is GT-order greedy for objects and parts (each GT takes the free
prediction of highest IoU >= the threshold; first index on ties) and first-fit for
affordances. ``optimal`` is maximum cardinality, then maximum total IoU (scipy's
``linear_sum_assignment``; docs/reference.md, *object-metric*).
"""

from __future__ import annotations

from sceneparser.evaluation.metrics.masks import MaskReader
from sceneparser.evaluation.metrics.records import (
    AFF_ACTION,
    GT_AFF_MASK,
    GT_AFF_PART_BOX,
    GT_AFF_REGION,
    OBJ_BOX,
    OBJ_NAME,
    PRED_AFF_POINT,
)

# objects and parts share these two fields
NAME, BOX = OBJ_NAME, OBJ_BOX

MATCHING_MODES = ("reference", "optimal")


class Matcher:
    """Object/part matching and affordance matching for one metric (its mode and masks)."""

    def __init__(self, optimal: bool, masks: MaskReader):
        self.optimal = optimal
        self.masks = masks

    # ------------------------------------------------------------------ region test
    def in_region(self, point, g, fallback) -> bool:
        """``g`` is a GT aff record: the mask decides alone when readable, else the box (or fallback)."""
        mask = g[GT_AFF_MASK]
        if mask:
            r = self.masks.lookup(point, mask)
            if r is not None:
                return r
        box = g[GT_AFF_REGION]
        if box is None:
            box = fallback
        if point is None or box is None:
            return False
        x, y = point
        x1, y1, x2, y2 = box
        # min/max of two, exactly as the builtins (first argument kept on ties and NaN)
        x1, x2 = (x2 if x2 < x1 else x1), (x2 if x2 > x1 else x1)
        y1, y2 = (y2 if y2 < y1 else y1), (y2 if y2 > y1 else y1)
        return x1 <= x <= x2 and y1 <= y <= y2

    # ------------------------------------------------------------------ objects and parts
    def match(self, table: list, thr: float) -> list:
        """Pairs (gi, pj) in GT order with IoU >= thr from an :func:`iou_table`: greedy or optimal."""
        if not table:
            return []
        if self.optimal:
            return optimal_pairs(table, thr)
        return greedy_pairs(table, thr)

    # ------------------------------------------------------------------ affordances
    def aff_matches(self, gaffs: list, paffs: list, fallback, use_flat_fallback: bool = False) -> int:
        """Affordance matches of GT records vs pred records: first-fit (reference) or max cardinality.

        The region fallback is ``fallback`` or, with ``use_flat_fallback``, each GT record's own
        flat part box.
        """
        if not gaffs or not paffs:
            return 0
        if self.optimal:
            return self._optimal_aff_matches(gaffs, paffs, fallback, use_flat_fallback)
        in_region = self.in_region
        used = 0  # bit set over predicted indices
        matched = 0
        for g in gaffs:
            gact, _, mask, box, part_box = g
            fb = part_box if use_flat_fallback else fallback
            if box is None:
                box = fb
            if box is not None:
                x1, y1, x2, y2 = box
                # min/max of two, exactly as the builtins (first argument kept on ties and NaN)
                x1, x2 = (x2 if x2 < x1 else x1), (x2 if x2 > x1 else x1)
                y1, y2 = (y2 if y2 < y1 else y1), (y2 if y2 > y1 else y1)
            bit = 1
            for p in paffs:
                if not used & bit and p[AFF_ACTION] == gact:
                    pt = p[PRED_AFF_POINT]
                    if mask:
                        ok = in_region(pt, g, fb)
                    else:
                        if pt is None or box is None:
                            ok = False
                        else:
                            x, y = pt
                            ok = x1 <= x <= x2 and y1 <= y <= y2
                    if ok:
                        used |= bit
                        matched += 1
                        break
                bit <<= 1
        return matched

    def _optimal_aff_matches(self, gaffs: list, paffs: list, fallback, use_flat_fallback: bool) -> int:
        in_region = self.in_region
        edges = []
        for gi, g in enumerate(gaffs):
            fb = g[GT_AFF_PART_BOX] if use_flat_fallback else fallback
            gact = g[AFF_ACTION]
            row = [(j, 1.0) for j, p in enumerate(paffs)
                   if p[AFF_ACTION] == gact and in_region(p[PRED_AFF_POINT], g, fb)]
            if row:
                edges.append((gi, row, 1.0))
        return len(optimal_pairs(edges, 0.0)) if edges else 0


def greedy_pairs(table: list, thr: float) -> list:
    """The reference matcher: GT order, each row takes its free prediction of highest IoU >= thr."""
    used = 0  # bit set over predicted indices
    pairs = []
    for gi, row, top in table:
        if top < thr:
            continue
        if len(row) == 1:  # its only IoU is top >= thr > 0
            bit = 1 << row[0][0]
            if not used & bit:
                used |= bit
                pairs.append((gi, row[0][0]))
            continue
        best_j = -1
        best = 0.0
        for pj, s in row:
            if s >= thr and s > best and not used & (1 << pj):
                best = s
                best_j = pj
        if best_j != -1:
            used |= 1 << best_j
            pairs.append((gi, best_j))
    return pairs


def iou_table(G: list, P: list, keep_all: bool = True) -> list:
    """Name-equal pairs with their reference IoU: ``[(gi, [(pj, iou), ...], best_iou), ...]``.

    Works on objects and parts alike (both have NAME and BOX); rows are in GT order and
    predictions in index order, so the greedy matcher sees exactly the reference's scan order.
    Pairs with a null box get IoU 0.0 (kept: the semantic diagnostics allow IoU 0). With
    ``keep_all=False`` only pairs with IoU >= 0.5 are listed (all that matching needs).

    The arithmetic is the reference ``iou(gt_box, pred_box)`` operation for operation, with
    ``b if b > a else a`` standing for ``max(a, b)`` (identical, NaN included) and the two
    areas computed once per box instead of once per pair (same values).
    """
    pinfo = []
    for p in P:
        b = p[BOX]
        if b is None:
            pinfo.append(None)
        else:
            q0, q1, q2, q3 = b
            w = q2 - q0
            h = q3 - q1
            pinfo.append((q0, q1, q2, q3, (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)))
    table = []
    for gi, g in enumerate(G):
        gn = g[NAME]
        b1 = g[BOX]
        if b1 is not None:
            g0, g1, g2, g3 = b1
            w = g2 - g0
            h = g3 - g1
            a1 = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
        row = None
        top = 0.0
        pj = -1
        for p in P:
            pj += 1
            if p[NAME] != gn:
                continue
            s = 0.0
            if b1 is not None:
                info = pinfo[pj]
                if info is not None:
                    q0, q1, q2, q3, a2 = info
                    x1 = q0 if q0 > g0 else g0
                    x2 = q2 if q2 < g2 else g2
                    if x2 > x1:
                        y1 = q1 if q1 > g1 else g1
                        y2 = q3 if q3 < g3 else g3
                        if y2 > y1:
                            inter = (x2 - x1) * (y2 - y1)
                            denom = a1 + a2 - inter
                            if denom > 0:
                                s = inter / denom
                                if s > top:
                                    top = s
            if not keep_all and s < 0.5:
                continue
            if row is None:
                row = [(pj, s)]
            else:
                row.append((pj, s))
        if row is not None:
            table.append((gi, row, top))
    return table


def part_iou_table(G: list, P: list) -> list:
    """:func:`iou_table` for parts: few pairs share a name, so areas are computed per pair."""
    table = []
    for gi, g in enumerate(G):
        gn = g[NAME]
        b1 = g[BOX]
        row = None
        top = 0.0
        pj = -1
        for p in P:
            pj += 1
            if p[NAME] != gn:
                continue
            b2 = p[BOX]
            s = 0.0
            if b1 is not None and b2 is not None:
                g0, g1, g2, g3 = b1
                q0, q1, q2, q3 = b2
                x1 = q0 if q0 > g0 else g0
                x2 = q2 if q2 < g2 else g2
                if x2 > x1:
                    y1 = q1 if q1 > g1 else g1
                    y2 = q3 if q3 < g3 else g3
                    if y2 > y1:
                        inter = (x2 - x1) * (y2 - y1)
                        w = g2 - g0
                        h = g3 - g1
                        a1 = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
                        w = q2 - q0
                        h = q3 - q1
                        a2 = (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)
                        denom = a1 + a2 - inter
                        if denom > 0:
                            s = inter / denom
                            if s > top:
                                top = s
            if row is None:
                row = [(pj, s)]
            else:
                row.append((pj, s))
        if row is not None:
            table.append((gi, row, top))
    return table


def optimal_pairs(table: list, thr: float) -> list:
    """Maximum-cardinality, then maximum-total-score matching over edges with score >= thr (> 0)."""
    rows = []
    cols: dict = {}
    for gi, row, *_ in table:
        kept = [(pj, s) for pj, s in row if s >= thr and s > 0.0]
        if kept:
            rows.append((gi, kept))
            for pj, _ in kept:
                cols.setdefault(pj, len(cols))
    if not rows:
        return []
    if all(len(r) == 1 for _, r in rows) and len(cols) == len(rows):  # already a matching
        return [(gi, r[0][0]) for gi, r in rows]
    import numpy as np  # heavy, and needed only by --matching optimal
    from scipy.optimize import linear_sum_assignment

    big = float(min(len(rows), len(cols)) + 1)
    w = np.zeros((len(rows), len(cols)))
    for ri, (_, row) in enumerate(rows):
        for pj, s in row:
            w[ri, cols[pj]] = big + s
    r_idx, c_idx = linear_sum_assignment(w, maximize=True)
    inv = {v: k for k, v in cols.items()}
    pairs = [(rows[r][0], inv[c]) for r, c in zip(r_idx, c_idx) if w[r, c] > 0]
    pairs.sort()
    return pairs


def multiset_common(a: list, b: list) -> int:
    """Size of the multiset intersection of two short lists."""
    if a == b:
        return len(a)
    counts: dict = {}
    for x in a:
        counts[x] = counts.get(x, 0) + 1
    m = 0
    for y in b:
        k = counts.get(y, 0)
        if k:
            counts[y] = k - 1
            m += 1
    return m


