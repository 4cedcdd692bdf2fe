"""One streaming pass over an ``answer.jsonl``: where the L1 / L2 / L3 errors come from.

:class:`Analysis` scores every line with the filtered object-level metric (the run behind
``final_metrics.json``; docs/reference.md, *object-metric* and *filters*) and, from the same
ground-truth and prediction records, explains each sample with the metric's own matching
functions (:mod:`sceneparser.evaluation.metrics.matching`; IoU from
:func:`sceneparser.evaluation.metrics.primitives.iou` for pairs of different names):

* true positives, ground truth and predictions per object category, part name and action, so
  the per-name tables add up to the metric's L1 / L2 / L3 counts;
* the error type of every miss and every extra prediction at each level -- ``unparsable``
  (the answer could not be parsed), ``parent missed`` (its object or part was not matched),
  ``mislocalised`` (a same-name pair with IoU in [0.1, 0.5), or for affordances a point outside
  the region), ``wrong name`` (a pair with IoU >= 0.5, or a point inside the region, under
  another name), ``missed`` / ``extra`` (nothing close);
* part-name and action confusions (the wrong-name pairs), IoU of every ground-truth object and
  part against its best same-name prediction, confidence scores against correctness;
* a quality per sample (its F1 over all three levels) for the gallery's worst and best samples.

Nothing per sample is kept but one small tuple (quality, line offset) and a few examples, so
35,000 answers take seconds and little memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics.base import NeedsExactParse
from sceneparser.evaluation.metrics.matching import part_iou_table, iou_table
from sceneparser.evaluation.metrics.object_level import ObjectLevelMetric
from sceneparser.evaluation.metrics.primitives import iou, prf_counts
from sceneparser.evaluation.metrics.records import (
    AFF_ACTION,
    GT_AFF_PART_BOX,
    OBJ_AFFS,
    OBJ_BOX,
    OBJ_NAME,
    OBJ_N_AFFS,
    OBJ_PARTS,
    PART_AFFS,
    PART_BOX,
    PART_NAME,
    PRED_AFF_POINT,
)

LEVELS = ("object", "part", "affordance")
#: a same-name pair with IoU in [MISLOCALISED_IOU, 0.5) is "mislocalised"
MISLOCALISED_IOU = 0.1
MATCH_IOU = 0.5
#: error types, in the order the report shows them (FN side, FP side)
MISS_TYPES = ("unparsable", "parent missed", "mislocalised", "wrong name", "missed")
EXTRA_TYPES = ("parent unmatched", "mislocalised", "wrong name", "extra")
#: parse statuses that mean "no usable answer text"
UNPARSABLE = frozenset({"failed"})
MAX_EXAMPLES = 6
IOU_BINS = 20


class _RecordingMetric(ObjectLevelMetric):
    """The object-level metric that also hands each sample's records to the analysis."""

    last: tuple = ((), ())

    def _accumulate(self, G, P, json_ok):
        super()._accumulate(G, P, json_ok)
        self.last = (G, P)


@dataclass
class NameStats:
    """tp / gt / pred of one category, part name or action (and samples, for categories)."""

    gt: int = 0
    pred: int = 0
    tp: int = 0
    samples: int = 0

    def prf(self) -> dict:
        return prf_counts(self.tp, self.pred, self.gt)


@dataclass
class LevelStats:
    """Everything counted at one level."""

    gt: int = 0
    pred: int = 0
    tp: int = 0
    by_name: dict = field(default_factory=dict)  # name -> NameStats
    misses: dict = field(default_factory=lambda: dict.fromkeys(MISS_TYPES, 0))
    extras: dict = field(default_factory=lambda: dict.fromkeys(EXTRA_TYPES, 0))
    examples: dict = field(default_factory=dict)  # ("miss"|"extra", type) -> [example dicts]
    confusions: dict = field(default_factory=dict)  # (gt name, predicted name) -> count
    iou_hist: list = field(default_factory=lambda: [0] * IOU_BINS)  # best same-name IoU per GT item

    def name(self, key) -> NameStats:
        s = self.by_name.get(key)
        if s is None:
            s = self.by_name[key] = NameStats()
        return s

    def prf(self) -> dict:
        return prf_counts(self.tp, self.pred, self.gt)


@dataclass
class SampleRef:
    """Where a sample is in the answer file and how well it went."""

    line: int
    offset: int
    quality: float
    gt: int
    image_path: str | None
    category: str | None
    status: str | None


class Analysis:
    """Stream answer lines in with :meth:`add_line`; read the tables off the attributes."""

    def __init__(self, *, mask_root=None):
        self.metric = _RecordingMetric(ignore_pseudo_part=True, ignore_none_action=True, mask_root=mask_root)
        self.matcher = self.metric.matcher
        self.levels = {lv: LevelStats() for lv in LEVELS}
        self.samples: list[SampleRef] = []
        self.status_counts: dict = {}
        self.status_examples: dict = {}
        self.bad_lines: list[tuple[int, str]] = []
        self.no_gt = 0  # answers without any ground-truth object
        self.score_pairs: dict = {lv: [] for lv in LEVELS}  # (score, correct) of scored predictions
        self.num_lines = 0

    # ------------------------------------------------------------------ reading
    def add_line(self, raw: bytes, lineno: int, offset: int) -> None:
        """Score and explain one answer line (bytes). A malformed line is recorded, not raised."""
        if not raw.strip():
            return
        self.num_lines += 1
        try:
            sample = orjson.loads(raw)
            try:
                self.metric.update_fast(sample)
            except NeedsExactParse:
                sample = json.loads(raw.decode("utf-8"))
                self.metric.update(sample)
        except (ValueError, InputError, RecursionError) as exc:  # orjson/json decode errors are ValueErrors
            self.bad_lines.append((lineno, str(exc).splitlines()[0][:200]))
            return
        G, P = self.metric.last
        self._explain(sample, G, P, lineno, offset)

    def add_sample(self, sample: dict, lineno: int = 0, offset: int = -1) -> None:
        """:meth:`add_line` for an already parsed answer dict."""
        self.num_lines += 1
        try:
            self.metric.update(sample)
        except InputError as exc:
            self.bad_lines.append((lineno, str(exc)[:200]))
            return
        G, P = self.metric.last
        self._explain(sample, G, P, lineno, offset)

    # ------------------------------------------------------------------ one sample
    def _explain(self, sample: dict, G: list, P: list, lineno: int, offset: int) -> None:
        status = sample.get("parse_status")
        category = sample.get("category")
        image_path = sample.get("image_path")
        self.status_counts[status or "unknown"] = self.status_counts.get(status or "unknown", 0) + 1
        if status and status not in ("ok", "repaired"):
            ex = self.status_examples.setdefault(status, [])
            if len(ex) < MAX_EXAMPLES:
                ex.append({"line": lineno, "image_path": image_path, "category": category,
                           "detail": (sample.get("parse_error") or "")[:200]})
        if not G:
            self.no_gt += 1
        unparsable = status in UNPARSABLE
        ctx = (lineno, image_path, category)
        before = [(s.tp, s.gt, s.pred) for s in self.levels.values()]
        obj_pairs = self._objects(G, P, category, unparsable, ctx, sample)
        self._parts_and_affordances(G, P, obj_pairs, unparsable, ctx)
        tp = gt = pred = 0
        for (tp0, gt0, pred0), s in zip(before, self.levels.values()):
            tp += s.tp - tp0
            gt += s.gt - gt0
            pred += s.pred - pred0
        if gt + pred:
            self.samples.append(SampleRef(lineno, offset, 2.0 * tp / (gt + pred), gt, image_path, category, status))

    def _example(self, level: LevelStats, side: str, kind: str, ctx, text: str) -> None:
        ex = level.examples.setdefault((side, kind), [])
        if len(ex) < MAX_EXAMPLES:
            ex.append({"line": ctx[0], "image_path": ctx[1], "category": ctx[2], "detail": text})

    def _objects(self, G, P, category, unparsable, ctx, sample) -> list:
        lv = self.levels["object"]
        lv.gt += len(G)
        lv.pred += len(P)
        cat = lv.name(category if category is not None else (G[0][OBJ_NAME] if G else "(none)"))
        cat.samples += 1
        cat.gt += len(G)
        cat.pred += len(P)
        pairs = []
        table = iou_table(G, P, True) if G and P else []
        if table:
            pairs = self.matcher.match(table, MATCH_IOU)
        lv.tp += len(pairs)
        cat.tp += len(pairs)
        best = {gi: top for gi, _, top in table}
        ious = {gi: dict(row) for gi, row, _ in table}
        for gi in range(len(G)):
            _hist(lv, best.get(gi, 0.0))
        matched_p = {pj for _, pj in pairs}
        free_g = [gi for gi in range(len(G)) if gi not in {g for g, _ in pairs}]
        free_p = [pj for pj in range(len(P)) if pj not in matched_p]
        self._classify(lv, G, P, free_g, free_p, lambda gi, pj: ious.get(gi, {}).get(pj), unparsable, ctx,
                       OBJ_NAME, OBJ_BOX, confusions=False)
        self._scores(sample, P, matched_p)
        return pairs

    def _scores(self, sample, P, matched_p) -> None:
        """(score, correct) of each predicted object that carries a confidence score."""
        pred = sample.get("extracted_predictions")
        objs = pred.get("objects") if isinstance(pred, dict) else None
        if not objs or len(objs) != len(P):
            return
        out = self.score_pairs["object"]
        for pj, o in enumerate(objs):
            s = o.get("score") if isinstance(o, dict) else None
            if isinstance(s, (int, float)) and not isinstance(s, bool):
                out.append((float(s), pj in matched_p))

    def _classify(self, lv, G, P, free_g, free_p, same_iou, unparsable, ctx, name_i, box_i, confusions=True,
                  parent=None) -> None:
        """Pair the unmatched GT and predicted items of one container and count their error types."""
        if unparsable:
            for gi in free_g:
                lv.misses["unparsable"] += 1
                self._example(lv, "miss", "unparsable", ctx, f"{G[gi][name_i]}: answer not parsable")
            return
        used_p: set = set()
        for gi in free_g:
            g = G[gi]
            kind = "missed"
            text = f"{g[name_i]}: no prediction close to it"
            # same name, IoU in [0.1, 0.5)
            best_j, best = -1, 0.0
            for pj in free_p:
                if pj in used_p or P[pj][name_i] != g[name_i]:
                    continue
                s = same_iou(gi, pj)
                if s is None:
                    s = iou(g[box_i], P[pj][box_i])
                if s > best:
                    best_j, best = pj, s
            if best_j >= 0 and best >= MISLOCALISED_IOU:
                kind = "mislocalised"
                text = f"{g[name_i]}: best box IoU {best:.2f}"
            else:  # another name, IoU >= 0.5
                best_j, best = -1, 0.0
                for pj in free_p:
                    if pj in used_p or P[pj][name_i] == g[name_i]:
                        continue
                    s = iou(g[box_i], P[pj][box_i])
                    if s > best:
                        best_j, best = pj, s
                if best_j >= 0 and best >= MATCH_IOU:
                    kind = "wrong name"
                    text = f"{g[name_i]} predicted as {P[best_j][name_i]} (IoU {best:.2f})"
                    if confusions:
                        key = (g[name_i], P[best_j][name_i])
                        lv.confusions[key] = lv.confusions.get(key, 0) + 1
                else:
                    best_j = -1
            if best_j >= 0:
                used_p.add(best_j)
                lv.extras[kind] += 1
                self._example(lv, "extra", kind, ctx, text)
            lv.misses[kind] += 1
            self._example(lv, "miss", kind, ctx, text + (f" (in {parent})" if parent else ""))
        for pj in free_p:
            if pj not in used_p:
                lv.extras["extra"] += 1
                self._example(lv, "extra", "extra", ctx, f"{P[pj][name_i]}: matches no ground truth")

    def _parts_and_affordances(self, G, P, obj_pairs, unparsable, ctx) -> None:
        lp, la = self.levels["part"], self.levels["affordance"]
        matched_g = dict(obj_pairs)
        matched_p = {pj for _, pj in obj_pairs}
        # every GT and predicted part and affordance counts (L2 / L3 denominators)
        for gi, g in enumerate(G):
            lp.gt += len(g[OBJ_PARTS])
            la.gt += g[OBJ_N_AFFS]
            for part in g[OBJ_PARTS]:
                lp.name(part[PART_NAME]).gt += 1
            for a in g[OBJ_AFFS]:
                la.name(a[AFF_ACTION]).gt += 1
            if gi not in matched_g:
                kind = "unparsable" if unparsable else "parent missed"
                for part in g[OBJ_PARTS]:
                    lp.misses[kind] += 1
                    self._example(lp, "miss", kind, ctx, f"{part[PART_NAME]} of {g[OBJ_NAME]}: object not found")
                    _hist(lp, 0.0)
                for a in g[OBJ_AFFS]:
                    la.misses[kind] += 1
                    self._example(la, "miss", kind, ctx, f"{a[AFF_ACTION]} of {g[OBJ_NAME]}: object not found")
        for pj, p in enumerate(P):
            lp.pred += len(p[OBJ_PARTS])
            la.pred += p[OBJ_N_AFFS]
            for part in p[OBJ_PARTS]:
                lp.name(part[PART_NAME]).pred += 1
            for a in p[OBJ_AFFS]:
                la.name(a[AFF_ACTION]).pred += 1
            if pj not in matched_p:
                lp.extras["parent unmatched"] += len(p[OBJ_PARTS])
                la.extras["parent unmatched"] += p[OBJ_N_AFFS]
                if p[OBJ_PARTS]:
                    self._example(lp, "extra", "parent unmatched", ctx,
                                  f"{len(p[OBJ_PARTS])} parts of an unmatched {p[OBJ_NAME]}")
        for gi, pj in obj_pairs:
            self._matched_object(G[gi], P[pj], ctx)

    def _matched_object(self, g, p, ctx) -> None:
        lp, la = self.levels["part"], self.levels["affordance"]
        gparts, pparts = g[OBJ_PARTS], p[OBJ_PARTS]
        oname = g[OBJ_NAME]
        if not gparts:  # the object's own affordances, each region falling back to its part box
            self._affordances(g[OBJ_AFFS], p[OBJ_AFFS], None, True, ctx, oname)
            return
        table = part_iou_table(gparts, pparts) if pparts else []
        pairs = self.matcher.match(table, MATCH_IOU) if table else []
        lp.tp += len(pairs)
        ious = {gi: dict(row) for gi, row, _ in table}
        best = {gi: top for gi, _, top in table}
        for gi in range(len(gparts)):
            _hist(lp, best.get(gi, 0.0))
        for gi, _ in pairs:
            lp.name(gparts[gi][PART_NAME]).tp += 1
        paired_g = dict(pairs)
        paired_p = set(paired_g.values())
        free_g = [gi for gi in range(len(gparts)) if gi not in paired_g]
        free_p = [pj for pj in range(len(pparts)) if pj not in paired_p]
        self._classify(lp, gparts, pparts, free_g, free_p, lambda gi, pj: ious.get(gi, {}).get(pj), False, ctx,
                       PART_NAME, PART_BOX, parent=oname)
        # affordances: inside matched part pairs only; the rest of the object's are parent misses
        n_part_affs = 0
        for gi, gpart in enumerate(gparts):
            n_part_affs += len(gpart[PART_AFFS])
            if gi in paired_g:
                self._affordances(gpart[PART_AFFS], pparts[paired_g[gi]][PART_AFFS], gpart[PART_BOX], False, ctx,
                                  f"{oname}/{gpart[PART_NAME]}")
            else:
                for a in gpart[PART_AFFS]:
                    la.misses["parent missed"] += 1
                    self._example(la, "miss", "parent missed", ctx, f"{a[AFF_ACTION]} of {oname}/{gpart[PART_NAME]}: part not found")
        if not n_part_affs:  # object-level GT affordances of an object with parts: never matched
            for a in g[OBJ_AFFS]:
                la.misses["missed"] += 1
        for pj, ppart in enumerate(pparts):
            if pj not in paired_p:
                la.extras["parent unmatched"] += len(ppart[PART_AFFS])
        if not any(pp[PART_AFFS] for pp in pparts):  # object-level predicted affordances
            la.extras["extra"] += len(p[OBJ_AFFS])

    def _affordances(self, gaffs, paffs, fallback, flat, ctx, where) -> None:
        """First-fit (action, point in region) pairs, as the metric's ``aff_matches``, with error types."""
        la = self.levels["affordance"]
        in_region = self.matcher.in_region
        tp = self.matcher.aff_matches(gaffs, paffs, fallback, flat) if gaffs and paffs else 0
        la.tp += tp
        used: set = set()
        free_g = []
        for gi, g in enumerate(gaffs):
            fb = g[GT_AFF_PART_BOX] if flat else fallback
            for pj, pa in enumerate(paffs):
                if pj not in used and pa[AFF_ACTION] == g[AFF_ACTION] and in_region(pa[PRED_AFF_POINT], g, fb):
                    used.add(pj)
                    la.name(g[AFF_ACTION]).tp += 1
                    break
            else:
                free_g.append(gi)
        free_p = [pj for pj in range(len(paffs)) if pj not in used]
        for gi in free_g:
            g = gaffs[gi]
            fb = g[GT_AFF_PART_BOX] if flat else fallback
            kind, hit = "missed", -1
            for pj in free_p:
                if pj not in used and paffs[pj][AFF_ACTION] == g[AFF_ACTION]:
                    kind, hit = "mislocalised", pj
                    text = f"{g[AFF_ACTION]} on {where}: point outside the region"
                    break
            else:
                for pj in free_p:
                    pa = paffs[pj]
                    if pj not in used and in_region(pa[PRED_AFF_POINT], g, fb):
                        kind, hit = "wrong name", pj
                        text = f"{g[AFF_ACTION]} on {where} predicted as {pa[AFF_ACTION]}"
                        key = (g[AFF_ACTION], pa[AFF_ACTION])
                        la.confusions[key] = la.confusions.get(key, 0) + 1
                        break
            if hit < 0:
                text = f"{g[AFF_ACTION]} on {where}: no prediction"
            else:
                used.add(hit)
                la.extras[kind] += 1
            la.misses[kind] += 1
            self._example(la, "miss", kind, ctx, text)
        for pj in free_p:
            if pj not in used:
                la.extras["extra"] += 1
                self._example(la, "extra", "extra", ctx, f"{paffs[pj][AFF_ACTION]} on {where}: not in any GT region")

    # ------------------------------------------------------------------ results
    def result(self) -> dict:
        """The filtered object-level metric result (the dict behind ``eval_results_filtered.json``)."""
        return self.metric.result()

    def reconcile(self) -> None:
        """Put what the explicit error types do not explain into ``missed`` / ``extra``, so that at
        every level the misses add up to fn and the extras to fp (object-level affordances of objects
        with parts and similar corner cases of the metric)."""
        for lv in self.levels.values():
            fn, fp = lv.gt - lv.tp, lv.pred - lv.tp
            lv.misses["missed"] += fn - sum(lv.misses.values())
            lv.extras["extra"] += fp - sum(lv.extras.values())

    def worst_and_best(self, n: int) -> tuple[list[SampleRef], list[SampleRef]]:
        """The ``n`` worst samples (lowest quality, most ground truth first) and the ``n`` best."""
        worst = sorted(self.samples, key=lambda s: (s.quality, -s.gt, s.line))[:n]
        taken = {s.line for s in worst}
        best = [s for s in sorted(self.samples, key=lambda s: (-s.quality, -s.gt, s.line)) if s.line not in taken][:n]
        return worst, best


def _hist(lv: LevelStats, value: float) -> None:
    b = int(value * IOU_BINS) if value == value and value > 0 else 0
    lv.iou_hist[min(max(b, 0), IOU_BINS - 1)] += 1


def analyse_file(path, *, mask_root=None, analysis: Analysis | None = None) -> Analysis:
    """Stream ``path`` (an answer JSONL) through an :class:`Analysis`."""
    a = analysis or Analysis(mask_root=mask_root)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        offset = 0
        for lineno, raw in enumerate(f, 1):
            a.add_line(raw, lineno, offset)
            offset += len(raw)
    a.reconcile()
    return a


def read_line_at(path, offset: int) -> dict | None:
    """The answer dict that starts at byte ``offset`` of ``path`` (None if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return json.loads(f.readline().decode("utf-8"))
    except (OSError, ValueError):
        return None
