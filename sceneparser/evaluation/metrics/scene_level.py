"""``SceneLevelMetric``: streaming ``sceneparser_scene_hierarchical_metric.py`` (docs/reference.md,
*scene-metric*), with the filter wrapper's semantics when a filter is on.

Object names are compared after ``strip().lower()``; only affordances with a truthy action
count; L3 and the affordance macro are also reported at IoU 0.95.
"""

from __future__ import annotations

from collections import Counter

from sceneparser.evaluation.metrics.base import MetricBase
from sceneparser.evaluation.metrics.matching import iou_table, part_iou_table
from sceneparser.evaluation.metrics.means import FloatMean, PairMean, small_mean
from sceneparser.evaluation.metrics.records import OBJ_AFFS, OBJ_N_AFFS, OBJ_N_PART_AFFS, OBJ_PARTS, PART_AFFS, PART_BOX
from sceneparser.evaluation.metrics.results import scene_result

THRESHOLDS = (0.5, 0.95)


class SceneLevelMetric(MetricBase):
    """Streaming ``sceneparser_scene_hierarchical_metric.py`` (+ filter wrapper when filters are on)."""

    level = "scene"
    base_script = "sceneparser_scene_hierarchical_metric.py"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.obj = {thr: PairMean() for thr in THRESHOLDS}
        self.part = {thr: PairMean() for thr in THRESHOLDS}
        self.aff = {thr: PairMean() for thr in THRESHOLDS}
        self.rec_obj = FloatMean()
        self.rec_part = FloatMean()
        self.rec_aff = FloatMean()
        self.exact = FloatMean()
        self.counts = Counter()  # micro counts: (kind_tp|fp|fn, thr), and eligible/loose/strict/hier_em

    def result(self) -> dict:
        return scene_result(self)

    def _merge(self, other: "SceneLevelMetric") -> None:
        for name in ("obj", "part", "aff"):
            for thr, mean in getattr(self, name).items():
                mean.merge(getattr(other, name)[thr])
        for name in ("rec_obj", "rec_part", "rec_aff", "exact"):
            getattr(self, name).merge(getattr(other, name))
        self.counts.update(other.counts)

    def _part_pairs(self, G: list, P: list, gi: int, pj: int, part_tables: dict, thr: float) -> list:
        gparts = G[gi][OBJ_PARTS]
        pparts = P[pj][OBJ_PARTS]
        if not (gparts and pparts):
            return []
        table = part_tables.get((gi, pj))
        if table is None:
            table = part_tables[(gi, pj)] = part_iou_table(gparts, pparts)
        return self.matcher.match(table, thr)

    def _aff_in_pairs(self, gparts: list, pparts: list, part_pairs: list) -> int:
        m = 0
        for gpi, ppi in part_pairs:
            gpart = gparts[gpi]
            m += self.matcher.aff_matches(gpart[PART_AFFS], pparts[ppi][PART_AFFS], gpart[PART_BOX])
        return m

    # ------------------------------------------------------------------ one sample
    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        obj_table = iou_table(G, P, False) if G and P else []
        part_tables: dict = {}
        recalls = {}
        for thr in THRESHOLDS:
            recalls[thr] = self._at_threshold(G, P, obj_table, part_tables, thr)
        matches05, part_rec_img, aff_rec_img = recalls[0.5]
        obj_rec_img = len(matches05) / len(G) if G else 1.0
        self.rec_obj.add(obj_rec_img)
        self.rec_part.add(part_rec_img)
        self.rec_aff.add(aff_rec_img)
        self.exact.add(1.0 if (obj_rec_img == 1.0 and part_rec_img == 1.0 and aff_rec_img == 1.0) else 0.0)
        matched = dict(matches05)
        for gi, g in enumerate(G):
            if g[OBJ_PARTS] or g[OBJ_N_AFFS] > 0:
                self.counts["eligible"] += 1
                pj = matched.get(gi)
                if pj is not None:
                    self._parse_and_exact_match(G, P, gi, pj, part_tables)

    def _at_threshold(self, G: list, P: list, obj_table: list, part_tables: dict, thr: float) -> tuple:
        """Objects, parts and affordances at one IoU threshold -> (object matches, part recall, aff recall)."""
        c = self.counts
        n_g, n_p = len(G), len(P)
        matches = self.matcher.match(obj_table, thr)
        tp = len(matches)
        self.obj[thr].add(tp / n_p if n_p else (1.0 if n_g == 0 else 0.0), tp / n_g if n_g else 1.0)
        c[("obj_tp", thr)] += tp
        c[("obj_fp", thr)] += max(0, n_p - tp)
        c[("obj_fn", thr)] += max(0, n_g - tp)
        part_tp = aff_tp = 0
        pp_p, pp_r, ap_p, ap_r = [], [], [], []
        for gi, pj in matches:
            gparts = G[gi][OBJ_PARTS]
            pparts = P[pj][OBJ_PARTS]
            pairs = self._part_pairs(G, P, gi, pj, part_tables, thr)
            part_tp += len(pairs)
            gn, pn = len(gparts), len(pparts)
            if gn or pn:
                pp_p.append(len(pairs) / pn if pn else 0.0)
                pp_r.append(len(pairs) / gn if gn else 0.0)
            m = self._aff_in_pairs(gparts, pparts, pairs)
            aff_tp += m
            ga, pa = G[gi][OBJ_N_PART_AFFS], P[pj][OBJ_N_PART_AFFS]
            if ga or pa:
                ap_p.append(m / pa if pa else 0.0)
                ap_r.append(m / ga if ga else 0.0)
        if pp_p:
            self.part[thr].add(small_mean(pp_p), small_mean(pp_r))
        if ap_p:
            self.aff[thr].add(small_mean(ap_p), small_mean(ap_r))
        gpart_all = sum(len(g[OBJ_PARTS]) for g in G)
        ppart_all = sum(len(p[OBJ_PARTS]) for p in P)
        gaff_all = sum(g[OBJ_N_PART_AFFS] for g in G)
        paff_all = sum(p[OBJ_N_PART_AFFS] for p in P)
        c[("part_tp", thr)] += part_tp
        c[("part_fp", thr)] += max(0, ppart_all - part_tp)
        c[("part_fn", thr)] += max(0, gpart_all - part_tp)
        c[("aff_tp", thr)] += aff_tp
        c[("aff_fp", thr)] += max(0, paff_all - aff_tp)
        c[("aff_fn", thr)] += max(0, gaff_all - aff_tp)
        part_rec = part_tp / gpart_all if gpart_all else 1.0
        aff_rec = aff_tp / gaff_all if gaff_all else 1.0
        return matches, part_rec, aff_rec

    def _parse_and_exact_match(self, G: list, P: list, gi: int, pj: int, part_tables: dict) -> None:
        """Loose/strict structural parse and hierarchical exact match of one eligible matched GT object."""
        c = self.counts
        g, p = G[gi], P[pj]
        gparts, pparts = g[OBJ_PARTS], p[OBJ_PARTS]
        gt_has_parts = bool(gparts)
        gt_has_part_affs = g[OBJ_N_PART_AFFS] > 0
        pred_has_parts = bool(pparts)
        pred_has_part_affs = p[OBJ_N_PART_AFFS] > 0
        pred_has_any = p[OBJ_N_AFFS] > 0
        if gt_has_parts and gt_has_part_affs:
            loose = strict = pred_has_parts and pred_has_part_affs
        elif gt_has_parts:
            loose = pred_has_parts
            strict = pred_has_parts and not pred_has_any
        else:  # eligible without parts: it has affordances
            loose = pred_has_any
            strict = pred_has_any and not pred_has_parts
        c["loose"] += loose
        c["strict"] += strict
        pairs = self._part_pairs(G, P, gi, pj, part_tables, 0.5)
        part_tp = len(pairs)
        gn, pn = len(gparts), len(pparts)
        if gt_has_parts and gt_has_part_affs:
            m = self._aff_in_pairs(gparts, pparts, pairs)
            ga, pa = g[OBJ_N_PART_AFFS], p[OBJ_N_PART_AFFS]
            em = ((part_tp / gn if gn else 0.0) == 1.0 and (part_tp / pn if pn else 0.0) == 1.0
                  and (m / ga if ga else 0.0) == 1.0 and (m / pa if pa else 0.0) == 1.0)
        elif gt_has_parts:
            em = (part_tp / gn if gn else 0.0) == 1.0 and (part_tp / pn if pn else 0.0) == 1.0
        else:
            gaffs, paffs = g[OBJ_AFFS], p[OBJ_AFFS]
            root = self.matcher.aff_matches(gaffs, paffs, None, True)
            em = root == len(gaffs) and root == len(paffs)
        c["hier_em"] += em
