"""``ObjectLevelMetric``: streaming ``sceneparser_hierarchical_metric.py`` (the published L1/L2/L3
and ParseRate; docs/reference.md, *object-metric*), with the filter wrapper's semantics when a
filter is on (docs/reference.md, *filters*).

Per sample: objects are matched at IoU 0.95 and 0.5 (name-equal pairs only); parts inside
matched objects likewise; affordances inside matched parts by action and point-in-region.
Everything is counted as it streams; :mod:`.results` assembles the reference report.
"""

from __future__ import annotations

from sceneparser.evaluation.metrics.base import MetricBase
from sceneparser.evaluation.metrics.matching import iou_table, multiset_common, part_iou_table
from sceneparser.evaluation.metrics.means import FloatMean, PairMean, small_mean
from sceneparser.evaluation.metrics.records import (
    AFF_ACTION,
    GT_ANY_AFFS,
    GT_PART_AFFS,
    GT_PARTS,
    GT_AFF_MASK,
    GT_AFF_REGION,
    OBJ_N_AFFS,
    OBJ_PARTS,
    PART_AFFS,
    PART_BOX,
    PAIR_BOTH,
    PAIR_GT_ONLY,
    PAIR_NEITHER,
    PAIR_PRED_ONLY,
    PART_NAME,
    PRED_AFF_POINT,
    PRED_ANY_AFFS,
    PRED_PART_AFFS,
    PRED_PARTS,
)
from sceneparser.evaluation.metrics.results import object_result


class ObjectTotals:
    """Micro counters summed over all samples (names as in the reference's own bookkeeping)."""

    __slots__ = (
        "gt_with_parts", "gt_with_affs", "pred_with_parts", "pred_with_affs", "obj_gt", "obj_pred", "part_gt",
        "part_pred", "aff_gt", "aff_pred", "eligible", "obj_tp", "part_tp", "aff_tp", "parse_ok_cond", "parse_ok",
        "hier_em", "psem_m", "psem_gt", "psem_pred", "asem_m", "asem_gt", "asem_pred", "psem_pairs", "pgeom05",
        "pgeom095", "asem_pairs", "apoint_ok", "sum_gt_parts", "sum_pred_parts", "sum_gt_affs", "sum_pred_affs",
    )

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)

    def merge(self, other: "ObjectTotals") -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ObjectLevelMetric(MetricBase):
    """Streaming ``sceneparser_hierarchical_metric.py`` (+ the filter wrapper when filters are on)."""

    level = "object"
    base_script = "sceneparser_hierarchical_metric.py"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.obj05 = PairMean()
        self.obj095 = PairMean()
        self.part05 = PairMean()
        self.part095 = PairMean()
        self.aff = PairMean()
        self.hier = FloatMean()
        self.json_ok = FloatMean()
        self.totals = ObjectTotals()
        self.obj_patterns = [0] * 64  # matched objects at 0.5, by their structure bits
        self.pair_patterns = [0] * 4  # matched part pairs at 0.5, by PAIR_*

    def result(self) -> dict:
        return object_result(self)

    def _merge(self, other: "ObjectLevelMetric") -> None:
        for name in ("obj05", "obj095", "part05", "part095", "aff", "hier", "json_ok", "totals"):
            getattr(self, name).merge(getattr(other, name))
        self.obj_patterns = [a + b for a, b in zip(self.obj_patterns, other.obj_patterns)]
        self.pair_patterns = [a + b for a, b in zip(self.pair_patterns, other.pair_patterns)]

    # ------------------------------------------------------------------ one sample
    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        self.json_ok.add(json_ok)
        self._count_structure(G, P)
        n_g = len(G)
        n_p = len(P)
        if not n_g or not n_p:  # nothing can match
            p, r = (0.0 if n_p else (0.0 if n_g else 1.0)), (0.0 if n_g else 1.0)
            self.obj05.add(p, r)
            self.obj095.add(p, r)
            return
        match = self.matcher.match
        obj_table = iou_table(G, P, False)
        m95 = match(obj_table, 0.95) if obj_table else ()
        m05 = match(obj_table, 0.5)
        self.obj05.add(len(m05) / n_p, len(m05) / n_g)
        self.obj095.add(len(m95) / n_p, len(m95) / n_g)
        part_tables: dict = {}
        if m95:
            self._parts_at_095(G, P, m95, part_tables)
        if m05:
            self._matched_at_05(G, P, m05, part_tables)

    def _count_structure(self, G: list, P: list) -> None:
        """Per-sample totals that need no matching (emission rates, L1-L3 denominators, ParseRate's)."""
        t = self.totals
        gt_with_parts = gt_with_affs = gt_parts = gt_affs = eligible = 0
        for g in G:
            parts = g[OBJ_PARTS]
            n_affs = g[OBJ_N_AFFS]
            if parts:
                gt_with_parts += 1
                gt_parts += len(parts)
                eligible += 1
            if n_affs:
                gt_with_affs += 1
                gt_affs += n_affs
                if not parts:
                    eligible += 1
        pred_with_parts = pred_with_affs = pred_parts = pred_affs = 0
        for p in P:
            parts = p[OBJ_PARTS]
            n_affs = p[OBJ_N_AFFS]
            if parts:
                pred_with_parts += 1
                pred_parts += len(parts)
            if n_affs:
                pred_with_affs += 1
                pred_affs += n_affs
        t.gt_with_parts += gt_with_parts
        t.gt_with_affs += gt_with_affs
        t.pred_with_parts += pred_with_parts
        t.pred_with_affs += pred_with_affs
        t.obj_gt += len(G)
        t.obj_pred += len(P)
        t.part_gt += gt_parts
        t.part_pred += pred_parts
        t.aff_gt += gt_affs
        t.aff_pred += pred_affs
        t.eligible += eligible

    def _parts_at_095(self, G: list, P: list, m95: list, part_tables: dict) -> None:
        """Macro part precision/recall at IoU 0.95 over the objects matched at 0.95."""
        match = self.matcher.match
        pp_p, pp_r = [], []
        for gi, pj in m95:
            gparts = G[gi][OBJ_PARTS]
            pparts = P[pj][OBJ_PARTS]
            gn, pn = len(gparts), len(pparts)
            if gn and pn:
                table = part_tables[(gi, pj)] = part_iou_table(gparts, pparts)
                k = len(match(table, 0.95))
                pp_p.append(k / pn)
                pp_r.append(k / gn)
            elif gn or pn:
                pp_p.append(0.0)
                pp_r.append(0.0)
        if pp_p:
            self.part095.add(small_mean(pp_p), small_mean(pp_r))

    def _matched_at_05(self, G: list, P: list, m05: list, part_tables: dict) -> None:
        """Everything at IoU 0.5: parts, affordances, ParseRate, exact match, the diagnostics.

        Counts are kept in locals and added to ``self.totals`` once per sample (speed).
        """
        obj_patterns = self.obj_patterns
        parts_and_affordances = self._parts_and_affordances
        aff_matches = self.matcher.aff_matches
        part_tp = aff_tp = parse_ok_cond = parse_ok = hier_em = 0
        sum_gt_parts = sum_pred_parts = sum_gt_affs = sum_pred_affs = 0
        pp_p, pp_r, ap_p, ap_r, exact_hits = [], [], [], [], []
        for gi, pj in m05:
            _, _, gparts, g_npa, g_naffs, gaffs, gsem_parts, gsem_actions = G[gi]
            _, _, pparts, p_npa, p_naffs, paffs, psem_parts, psem_actions = P[pj]
            gn, pn = len(gparts), len(pparts)
            obj_patterns[(gn and GT_PARTS) | (g_npa and GT_PART_AFFS) | (g_naffs and GT_ANY_AFFS)
                         | (pn and PRED_PARTS) | (p_npa and PRED_PART_AFFS) | (p_naffs and PRED_ANY_AFFS)] += 1
            sum_gt_parts += gn
            sum_pred_parts += pn
            sum_gt_affs += g_naffs
            sum_pred_affs += p_naffs

            # parts, and affordances inside matched parts
            if gn and pn:
                table = part_tables.get((gi, pj))
                if table is None:
                    table = part_iou_table(gparts, pparts)
                k, m_aff = parts_and_affordances(gparts, pparts, table) if table else (0, 0)
                part_r, part_p = k / gn, k / pn
            else:
                table = ()
                k = m_aff = 0
                part_r = part_p = 0.0 if gn or pn else None
            part_tp += k
            if part_r is not None:
                pp_p.append(part_p)
                pp_r.append(part_r)
            if g_npa or p_npa:
                aff_r = m_aff / g_npa if g_npa else 0.0
                aff_p = m_aff / p_npa if p_npa else 0.0
                ap_p.append(aff_p)
                ap_r.append(aff_r)
            else:
                aff_r = aff_p = None

            # L3 true positives, content-aware parse, end-to-end exact match
            if gn:
                tp, ok, em = _part_level_parse(g_npa, k, m_aff, part_r, part_p, aff_r, aff_p)
            else:  # the object's own affordances, each region falling back to its part box
                tp = aff_matches(gaffs, paffs, None, True) if gaffs and paffs else 0
                ok = g_naffs and tp > 0
                em = g_naffs and tp == g_naffs and tp == p_naffs
            aff_tp += tp
            parse_ok += ok
            hier_em += em
            if k and m_aff:
                parse_ok_cond += 1
            exact_hits.append(1.0 if part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0 else 0.0)

            if gsem_parts or psem_parts or table or gsem_actions or psem_actions:
                self._semantic(gsem_parts, psem_parts, gsem_actions, psem_actions, gparts, table, gaffs, paffs)

        t = self.totals
        t.obj_tp += len(m05)
        t.part_tp += part_tp
        t.aff_tp += aff_tp
        t.parse_ok_cond += parse_ok_cond
        t.parse_ok += parse_ok
        t.hier_em += hier_em
        t.sum_gt_parts += sum_gt_parts
        t.sum_pred_parts += sum_pred_parts
        t.sum_gt_affs += sum_gt_affs
        t.sum_pred_affs += sum_pred_affs
        if pp_p:
            self.part05.add(small_mean(pp_p), small_mean(pp_r))
        if ap_p:
            self.aff.add(small_mean(ap_p), small_mean(ap_r))
            self.hier.add(small_mean(exact_hits))  # (the reference averages it only here)

    def _parts_and_affordances(self, gparts: list, pparts: list, table: list) -> tuple[int, int]:
        """(matched parts at 0.5, affordances matched inside them); counts the part-pair patterns."""
        pairs = self.matcher.match(table, 0.5)
        pair_patterns = self.pair_patterns
        aff_matches = self.matcher.aff_matches
        m_aff = 0
        for gpi, ppi in pairs:
            gpart = gparts[gpi]
            ga = gpart[PART_AFFS]
            pa = pparts[ppi][PART_AFFS]
            if ga:
                if pa:
                    pair_patterns[PAIR_BOTH] += 1
                    m_aff += aff_matches(ga, pa, gpart[PART_BOX])
                else:
                    pair_patterns[PAIR_GT_ONLY] += 1
            else:
                pair_patterns[PAIR_PRED_ONLY if pa else PAIR_NEITHER] += 1
        return len(pairs), m_aff

    def _semantic(self, gsem_parts, psem_parts, gsem_actions, psem_actions, gparts, table, gaffs, paffs) -> None:
        """The semantic diagnostics of a matched pair: part names and actions as multisets, and
        name-only / action-only pairs (box accuracy given the name, point accuracy given the action)."""
        t = self.totals
        if gsem_parts or psem_parts:
            t.psem_gt += len(gsem_parts)
            t.psem_pred += len(psem_parts)
            if gsem_parts and psem_parts:
                t.psem_m += multiset_common(gsem_parts, psem_parts)
        if table:
            n, ok05, ok095 = part_name_pairs(gparts, table)
            t.psem_pairs += n
            t.pgeom05 += ok05
            t.pgeom095 += ok095
        if gsem_actions or psem_actions:
            t.asem_gt += len(gsem_actions)
            t.asem_pred += len(psem_actions)
            if gsem_actions and psem_actions:
                t.asem_m += multiset_common(gsem_actions, psem_actions)
                n, ok = self._action_pairs(gaffs, paffs)
                t.asem_pairs += n
                t.apoint_ok += ok

    def _action_pairs(self, gaffs: list, paffs: list) -> tuple[int, int]:
        """Action-only first-fit affordance pairs -> (pairs, predicted points inside the GT region)."""
        in_region = self.matcher.in_region
        used = 0
        pairs = points_ok = 0
        for ga in gaffs:
            gact = ga[AFF_ACTION]
            if not gact:
                continue
            bit = 1
            for pa in paffs:
                if not used & bit and pa[AFF_ACTION] == gact:
                    used |= bit
                    pairs += 1
                    pt = pa[PRED_AFF_POINT]
                    if ga[GT_AFF_MASK]:  # a mask path: the full region rule
                        points_ok += in_region(pt, ga, None)
                    else:
                        box = ga[GT_AFF_REGION]
                        if pt is not None and box is not None:
                            x, y = pt
                            x1, y1, x2, y2 = box
                            x1, x2 = (x2 if x2 < x1 else x1), (x2 if x2 > x1 else x1)
                            y1, y2 = (y2 if y2 < y1 else y1), (y2 if y2 > y1 else y1)
                            if x1 <= x <= x2 and y1 <= y <= y2:
                                points_ok += 1
                    break
                bit <<= 1
        return pairs, points_ok


def _part_level_parse(g_npa: int, k: int, m_aff: int, part_r, part_p, aff_r, aff_p) -> tuple[int, int, bool]:
    """(L3 true positives, content-aware parse success, exact match) of a matched GT object with parts."""
    if g_npa:
        return m_aff, 1 if k and m_aff else 0, part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0
    return m_aff, 1 if k else 0, part_r == 1.0 and part_p == 1.0


def part_name_pairs(gparts: list, table: list) -> tuple[int, int, int]:
    """Name-only greedy part pairs (any IoU) -> (pairs, pairs with IoU >= 0.5, with IoU >= 0.95)."""
    used = 0
    pairs = geom05 = geom095 = 0
    for gpi, row, _ in table:
        if not gparts[gpi][PART_NAME]:
            continue
        best_j = -1
        best = -1.0
        for j, score in row:
            if score > best and not used & (1 << j):
                best = score
                best_j = j
        if best_j != -1:
            used |= 1 << best_j
            pairs += 1
            if best >= 0.5:
                geom05 += 1
                if best >= 0.95:
                    geom095 += 1
    return pairs, geom05, geom095
