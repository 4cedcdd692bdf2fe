"""Object-level and scene-level SceneParser metrics, streaming and exact to the reference.

``ObjectLevelMetric`` reproduces ``sceneparser_hierarchical_metric.py`` (the published L1/L2/L3
and ParseRate, evaluation.md §5) and ``SceneLevelMetric`` reproduces
``sceneparser_scene_hierarchical_metric.py`` (§7): every output key, diagnostics included, in the
reference key order, with bit-identical floats. Means are exact (``statistics.mean``
semantics: exact rational sum, one correct rounding, an int when the mean of ints is whole).

Usage::

    metric = ObjectLevelMetric(ignore_pseudo_part=True, ignore_none_action=True)
    for sample in answers:          # dicts in the answer schema (evaluation.md §3.6)
        metric.update(sample)       # O(size of the sample); nothing per-sample is kept
    result = metric.result()        # the dict the reference writes to its --output_path

``update`` never modifies the sample. The filters (``ignore_pseudo_part``,
``ignore_none_action``) are applied while reading, with the exact semantics of the reference
``*_with_filters.py`` wrapper; when either is on, the result also carries the wrapper's three
diagnostics keys (``ignore_pseudo_part``, ``ignore_none_action``, ``base_metric_script``).

Options that change numbers (never on by default):

* ``matching="optimal"`` -- objects and parts are matched by maximum cardinality, then maximum
  total IoU, and affordances inside matched parts by maximum cardinality (scipy's
  ``linear_sum_assignment``), instead of the reference's GT-order greedy / first-fit matching.
  The name-only semantic diagnostics (``part_box_acc_given_semantic_*``,
  ``aff_point_acc_given_action``) keep their reference definitions.
* ``normalize_object_names=True`` -- object-level metric compares object names after
  ``strip().lower()`` (the scene-level metric always does).

Handling of inputs on which the reference crashes (documented, never a traceback):

* ``gt``, ``extracted_predictions``, ``objects``, ``parts``, ``affordances`` that are null are
  read as empty (what the reference filter wrapper does). In an unfiltered run a null or
  missing ``extracted_predictions`` counts as a JSON-parse failure in
  ``diagnostics.json_parse_success_rate``.
* Structurally malformed input raises :class:`~sceneparser.errors.InputError` naming the field
  (``gt.objects[2].parts[0].bbox: ...``), before anything is counted, so a caller can skip
  the sample: non-object items, non-list containers, boxes that are not ``null`` or 4 numbers,
  points that are not ``null`` or 2 numbers, strings or booleans where numbers belong,
  integers beyond the float range, a ``mask_path`` that is not a string.
* NaN and infinite coordinates are scored with the reference's own arithmetic (they can give
  odd IoUs, as there); only a mask lookup -- where the reference raises -- treats a
  non-finite point as outside the mask. A null predicted point is never inside a region.
* ``mask_path`` is opened relative to the current directory, as the reference does, or to
  ``mask_root`` when given. Masks that are missing or unreadable fall back to boxes.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, OrderedDict
from fractions import Fraction
from pathlib import Path
from statistics import mean as _statistics_mean
from typing import Any, Callable, Iterable, Iterator

from sceneparser.errors import InputError

__all__ = [
    "ObjectLevelMetric",
    "SceneLevelMetric",
    "iou",
    "point_in_box",
    "f1",
    "harmonic3",
    "normalize_label",
    "load_alias_map",
    "iter_answer_lines",
    "evaluate_file",
    "result_text",
    "MATCHING_MODES",
]

MATCHING_MODES = ("reference", "optimal")
EPS = 1e-12
_MAX_FLOAT = 1.7976931348623157e308
_MASK_CACHE_SIZE = 32


# =============================================================================================
# primitives (exact reference arithmetic: same operations, same order, same argument order)
# =============================================================================================


def normalize_label(value: Any) -> str:
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


def _counts(tp: int, pred_total: int, gt_total: int) -> dict:
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


def _scene_counts(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if (tp + fp) else 0.0
    recall = tp / (tp + fn) if (tp + fn) else 0.0
    f = 2 * precision * recall / (precision + recall) if (precision + recall) else 0.0
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f}


def _ratio(num, den) -> float:
    return num / den if den else 0.0


def load_alias_map(path) -> dict:
    """``{"alias_map": {alias: canonical}}`` JSON -> normalised map (missing file: InputError)."""
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise InputError(f"mapping file not found: {path}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        items = data.get("alias_map", {}).items()
        return {normalize_label(k): normalize_label(v) for k, v in items}
    except (ValueError, AttributeError) as exc:
        raise InputError(f"{path}: expected a JSON object {{\"alias_map\": {{alias: canonical}}}} ({exc})") from exc


# ---------------------------------------------------------------------------------------------
# exact means
# ---------------------------------------------------------------------------------------------


def _small_mean(values: list):
    """``statistics.mean`` of a short list of floats, with fast exact paths."""
    first = values[0]
    if len(values) == 1:
        return first
    for v in values:
        if v != first:
            return _statistics_mean(values)
    return first


class _FloatMean:
    """Streaming ``statistics.mean`` of floats: counts each distinct value, sums exactly at the end."""

    __slots__ = ("counts", "n")

    def __init__(self):
        self.counts: dict = {}
        self.n = 0

    def add(self, v) -> None:
        c = self.counts
        c[v] = c.get(v, 0) + 1
        self.n += 1

    def mean(self, empty=0.0):
        if not self.n:
            return empty
        if len(self.counts) == 1:
            return next(iter(self.counts))
        total = sum(Fraction(v) * c for v, c in self.counts.items())
        return float(total / self.n)


class _IntMean:
    """Streaming ``statistics.mean`` of ints (an int when the mean is whole, else a float)."""

    __slots__ = ("total", "n")

    def __init__(self):
        self.total = 0
        self.n = 0

    def add(self, v: int) -> None:
        self.total += v
        self.n += 1

    def mean(self, empty=0.0):
        if not self.n:
            return empty
        q = Fraction(self.total, self.n)
        return int(q) if q.denominator == 1 else float(q)


class _PairMean:
    """Macro (precision, recall) pairs -> ``{"precision", "recall", "f1"}`` (F1 of the means)."""

    __slots__ = ("p", "r")

    def __init__(self):
        self.p = _FloatMean()
        self.r = _FloatMean()

    def add(self, p, r) -> None:
        self.p.add(p)
        self.r.add(r)

    def summary(self) -> dict:
        if not self.p.n:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        p = self.p.mean()
        r = self.r.mean()
        return {"precision": p, "recall": r, "f1": f1(p, r)}


# ---------------------------------------------------------------------------------------------
# masks
# ---------------------------------------------------------------------------------------------


class _MaskReader:
    """Loads binary masks (``np.array(Image.open(p))``, max over channels, ``> 0``), LRU-cached."""

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
        if len(cache) > _MASK_CACHE_SIZE:
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


# ---------------------------------------------------------------------------------------------
# input validation -> light internal records
# ---------------------------------------------------------------------------------------------


class _Bad(Exception):
    """A malformed field; ``path`` is a tuple of keys/indices, formatted only when reported."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _fmt_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _check_numbers(value, n: int, path: tuple, what: str):
    """``None`` or a list of ``n`` real numbers (non-finite floats allowed); returns value."""
    if value is None:
        return None
    if type(value) is not list or len(value) != n:
        if isinstance(value, (list, tuple)):
            raise _Bad(path, f"a {what} needs exactly {n} numbers, got {len(value)}")
        raise _Bad(path, f"a {what} must be null or a list of {n} numbers, got {type(value).__name__}")
    for v in value:
        t = type(v)
        if t is float:
            continue
        if t is int:
            if -_MAX_FLOAT <= v <= _MAX_FLOAT:
                continue
            raise _Bad(path, f"coordinate {str(v)[:20]}... is too large")
        raise _Bad(path, f"a {what} must hold numbers, found {type(v).__name__} {str(v)[:30]!r}")
    return value


def _as_list(value, path: tuple) -> list:
    if value is None:
        return []
    if type(value) is not list:
        raise _Bad(path, f"must be a list or null, got {type(value).__name__}")
    return value


def _check_dict(value, path: tuple) -> dict:
    if type(value) is not dict:
        raise _Bad(path, f"must be a JSON object, got {type(value).__name__}")
    return value


_PSEUDO = "__placeholder_part__"
_NONE_ACTIONS = ("__none__", "__placeholder_action__")

# internal part record: (raw_name, canon_name, bbox, affs)
# internal object record: (name, bbox, parts, n_part_affs, flat_len, obj_affs, raw_obj)


class _Base:
    """Shared reading, filtering and matching machinery of both metrics."""

    level = "object"
    base_script = "sceneparser_hierarchical_metric.py"

    def __init__(
        self,
        *,
        ignore_pseudo_part: bool = False,
        ignore_none_action: bool = False,
        filter_wrapper: bool | None = None,
        canonical_eval: bool = False,
        part_mapping_path: str | None = None,
        action_mapping_path: str | None = None,
        part_alias_map: dict | None = None,
        action_alias_map: dict | None = None,
        matching: str = "reference",
        normalize_object_names: bool = False,
        mask_root: str | os.PathLike | None = None,
    ):
        if matching not in MATCHING_MODES:
            raise InputError(f"matching must be one of {MATCHING_MODES}, got {matching!r}")
        self.ignore_pseudo_part = bool(ignore_pseudo_part)
        self.ignore_none_action = bool(ignore_none_action)
        self.filter_wrapper = (
            (self.ignore_pseudo_part or self.ignore_none_action) if filter_wrapper is None else bool(filter_wrapper)
        )
        self.canonical_eval = bool(canonical_eval)
        self.part_mapping_path = part_mapping_path
        self.action_mapping_path = action_mapping_path
        if self.canonical_eval:
            self.part_alias = dict(part_alias_map) if part_alias_map is not None else load_alias_map(part_mapping_path)
            self.action_alias = (
                dict(action_alias_map) if action_alias_map is not None else load_alias_map(action_mapping_path)
            )
        else:
            self.part_alias = {}
            self.action_alias = {}
        self.matching = matching
        self.normalize_object_names = bool(normalize_object_names)
        self.masks = _MaskReader(mask_root, check_exists=self.level == "object")
        self.num_samples = 0

    # ------------------------------------------------------------------ labels
    def canon_part(self, value) -> str:
        name = str(value or "").strip().lower()
        return self.part_alias.get(name, name) if self.canonical_eval else name

    def canon_action(self, value) -> str:
        action = str(value or "").strip().lower()
        return self.action_alias.get(action, action) if self.canonical_eval else action

    # ------------------------------------------------------------------ reading one side
    def _side(self, sample: dict, key: str):
        """(objects list, json_ok) for ``gt`` / ``extracted_predictions`` with null -> empty."""
        if key in sample:
            container = sample[key]
            present = True
        else:
            container, present = {}, False
        if container is None:
            container = {}
            present = False
        _check_dict(container, (key,))
        json_ok = 1.0 if (present and "objects" in container) else 0.0
        objs = _as_list(container.get("objects", []), (key, "objects"))
        return objs, json_ok

    def _affs(self, value, path: tuple, side: str) -> list:
        """Validated affordance list of one part (or object), none-actions dropped if asked."""
        affs = _as_list(value, path)
        if not affs:
            return affs
        out = affs
        none_filter = self.ignore_none_action
        skip_non_dict = self.level == "scene" and not none_filter  # the scene metric ignores them
        check = self._check_gt_aff if side == "gt" else self._check_pred_aff
        for i, a in enumerate(affs):
            drop = False
            if type(a) is not dict:
                if not skip_non_dict:
                    raise _Bad(path + (i,), f"must be a JSON object, got {type(a).__name__}")
                drop = True
            elif none_filter:
                act = a.get("action")
                drop = bool(act) and str(act).strip().lower() in _NONE_ACTIONS
            if drop:
                if out is affs:
                    out = affs[:i]
                continue
            check(a, path + (i,))
            if out is not affs:
                out.append(a)
        return out

    def _prepare(self, objs: list, side: str) -> list:
        """Validate one side and turn it into internal records (no copies of the input)."""
        records = []
        pseudo = self.ignore_pseudo_part
        canon_part = self.canon_part
        for oi, o in enumerate(objs):
            opath = (side, "objects", oi)
            if type(o) is not dict:
                raise _Bad(opath, f"must be a JSON object, got {type(o).__name__}")
            bbox = _check_numbers(o.get("bbox"), 4, opath + ("bbox",), "box")
            raw_parts = _as_list(o.get("parts"), opath + ("parts",))
            parts = []
            n_part_affs = 0
            for pi, p in enumerate(raw_parts):
                ppath = opath + ("parts", pi)
                if type(p) is not dict:
                    raise _Bad(ppath, f"must be a JSON object, got {type(p).__name__}")
                pname = p.get("part_name")
                if pseudo and (p.get("is_pseudo_part", False) or (pname and str(pname).strip().lower() == _PSEUDO)):
                    continue
                pbox = _check_numbers(p.get("bbox"), 4, ppath + ("bbox",), "box")
                affs = self._affs(p.get("affordances"), ppath + ("affordances",), side)
                n_part_affs += len(affs)
                parts.append((pname, canon_part(pname), pbox, affs))
            if "affordances" in o:
                obj_affs = self._affs(o["affordances"], opath + ("affordances",), side)
            else:
                obj_affs = []
            records.append(self._object_record(o, bbox, parts, n_part_affs, obj_affs))
        return records

    def _check_gt_aff(self, a: dict, path: tuple) -> None:
        """The GT fields the metrics read: the region (mask path, affordance box, part box)."""
        if "affordance_bbox" in a:
            _check_numbers(a["affordance_bbox"], 4, path + ("affordance_bbox",), "box")
        elif "bbox" in a:
            _check_numbers(a["bbox"], 4, path + ("bbox",), "box")
        if "part_bbox" in a:
            _check_numbers(a["part_bbox"], 4, path + ("part_bbox",), "box")
        mp = a.get("mask_path")
        if mp and type(mp) is not str:
            raise _Bad(path + ("mask_path",), f"must be a string or null, got {type(mp).__name__}")

    def _check_pred_aff(self, a: dict, path: tuple) -> None:
        """The predicted fields the object metric reads: the point."""
        if "point" in a:
            _check_numbers(a["point"], 2, path + ("point",), "point")
        elif "affordance_point" in a:
            _check_numbers(a["affordance_point"], 2, path + ("affordance_point",), "point")

    # ------------------------------------------------------------------ public API
    def update(self, sample: dict) -> None:
        """Add one answer line (a dict). Raises InputError (nothing counted) on malformed input."""
        try:
            if type(sample) is not dict:
                raise _Bad((), f"an answer line must be a JSON object, got {type(sample).__name__}")
            state = self._read(sample)
        except _Bad as exc:
            where = _fmt_path(exc.path) or "line"
            raise InputError(f"{where}: {exc.message}") from None
        self._accumulate(*state)
        self.num_samples += 1

    def update_many(self, samples: Iterable[dict]) -> None:
        for s in samples:
            self.update(s)

    def _filter_diagnostics(self, diag: dict) -> None:
        if self.filter_wrapper:
            diag["ignore_pseudo_part"] = self.ignore_pseudo_part
            diag["ignore_none_action"] = self.ignore_none_action
            diag["base_metric_script"] = self.base_script

    # ------------------------------------------------------------------ region tests
    def in_region(self, point, gt_aff: dict, fallback_bbox) -> bool:
        mask_path = gt_aff.get("mask_path")
        if mask_path:
            r = self.masks.lookup(point, mask_path)
            if r is not None:
                return r
        bbox = gt_aff["affordance_bbox"] if "affordance_bbox" in gt_aff else gt_aff.get("bbox")
        if bbox is None:
            bbox = fallback_bbox
        return point_in_box(point, bbox)

    # ------------------------------------------------------------------ matching
    def _match_boxes(self, gitems, pitems, thr: float, gname: Callable, pname: Callable, gbox: Callable,
                     pbox: Callable, cache: dict | None = None) -> list:
        """Pairs (gi, pj) in GT order: greedy (reference) or optimal; name-equal and IoU >= thr."""
        if not gitems or not pitems:
            return []
        if cache is not None and "cands" in cache:
            cands = cache["cands"]
        else:
            cands = []
            pnames = [pname(p) for p in pitems]
            for gi, g in enumerate(gitems):
                gn = gname(g)
                gb = gbox(g)
                row = None
                for pj, pn in enumerate(pnames):
                    if pn != gn:
                        continue
                    s = iou(gb, pbox(pitems[pj]))
                    if s >= 0.5 and s > 0.0:
                        if row is None:
                            row = []
                            cands.append((gi, row))
                        row.append((pj, s))
            if cache is not None:
                cache["cands"] = cands
        if not cands:
            return []
        if self.matching == "optimal":
            return _optimal_pairs(cands, thr)
        used = set()
        pairs = []
        for gi, row in cands:
            best_j = -1
            best = 0.0
            for pj, s in row:
                if s >= thr and s > best and pj not in used:
                    best = s
                    best_j = pj
            if best_j != -1:
                used.add(best_j)
                pairs.append((gi, best_j))
        return pairs

    def _match_parts(self, gparts, pparts, thr, cache=None) -> list:
        return self._match_boxes(gparts, pparts, thr, _p_canon, _p_canon, _p_box, _p_box, cache)

    def _aff_first_fit(self, gaffs, paffs, fallback, point_of, canon_gt, canon_pred, fallback_of=None) -> int:
        """Affordance matches in one GT/pred list pair: first-fit (reference) or max cardinality."""
        if not gaffs or not paffs:
            return 0
        canon_action = self.canon_action
        pacts = [canon_action(canon_pred(a)) for a in paffs]
        ppts = [point_of(a) for a in paffs]
        in_region = self.in_region
        if self.matching == "optimal":
            edges = []
            for gi, ga in enumerate(gaffs):
                gact = canon_action(canon_gt(ga))
                gaff = ga if fallback_of is None else ga[0]
                fb = fallback if fallback_of is None else fallback_of(ga)
                row = [j for j in range(len(paffs)) if pacts[j] == gact and in_region(ppts[j], gaff, fb)]
                if row:
                    edges.append((gi, [(j, 1.0) for j in row]))
            return len(_optimal_pairs(edges, 0.0)) if edges else 0
        used = set()
        matched = 0
        for ga in gaffs:
            gact = canon_action(canon_gt(ga))
            gaff = ga if fallback_of is None else ga[0]
            fb = fallback if fallback_of is None else fallback_of(ga)
            for j in range(len(paffs)):
                if j in used or pacts[j] != gact:
                    continue
                if in_region(ppts[j], gaff, fb):
                    used.add(j)
                    matched += 1
                    break
        return matched


def _p_canon(part):
    return part[1]


def _p_box(part):
    return part[2]


def _optimal_pairs(cands: list, thr: float) -> list:
    """Maximum-cardinality, then maximum-total-score matching over edges with score >= thr."""
    rows = []
    cols = {}
    for gi, row in cands:
        kept = [(pj, s) for pj, s in row if s >= thr]
        if kept:
            rows.append((gi, kept))
            for pj, _ in kept:
                cols.setdefault(pj, len(cols))
    if not rows:
        return []
    # trivial: every row has one edge and no column is shared
    if all(len(r) == 1 for _, r in rows) and len(cols) == len(rows):
        return [(gi, r[0][0]) for gi, r in rows]
    import numpy as np
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


# =============================================================================================
# object-level metric
# =============================================================================================


def _obj_point(aff: dict):
    return aff["point"] if "point" in aff else aff.get("affordance_point")


def _action(aff: dict):
    return aff.get("action")


class ObjectLevelMetric(_Base):
    """Streaming ``sceneparser_hierarchical_metric.py`` (+ the filter wrapper when filters are on)."""

    level = "object"
    base_script = "sceneparser_hierarchical_metric.py"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.obj05 = _PairMean()
        self.obj095 = _PairMean()
        self.part05 = _PairMean()
        self.part095 = _PairMean()
        self.aff = _PairMean()
        self.hier = _FloatMean()
        self.json_ok = _FloatMean()
        self.gt_parts_pm = _IntMean()
        self.pred_parts_pm = _IntMean()
        self.gt_affs_pm = _IntMean()
        self.pred_affs_pm = _IntMean()
        self.c = Counter()

    def _object_record(self, o, bbox, parts, n_part_affs, obj_affs):
        name = o.get("name")
        if self.normalize_object_names:
            name = normalize_label(name)
        flat_len = n_part_affs if n_part_affs else len(obj_affs)
        return (name, bbox, parts, n_part_affs, flat_len, obj_affs)

    def _read(self, sample):
        gobjs, _ = self._side(sample, "gt")
        pobjs, json_ok = self._side(sample, "extracted_predictions")
        if self.filter_wrapper:
            json_ok = 1.0
        return self._prepare(gobjs, "gt"), self._prepare(pobjs, "extracted_predictions"), json_ok

    @staticmethod
    def _flat(obj) -> list:
        """Flat affordances as (aff, part_bbox fallback) -- part-level, else object-level."""
        if obj[3]:
            out = []
            for _, _, pbox, affs in obj[2]:
                for a in affs:
                    out.append((a, a["part_bbox"] if "part_bbox" in a else pbox))
            return out
        return [(a, a.get("part_bbox")) for a in obj[5]]

    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        c = self.c
        self.json_ok.add(json_ok)
        n_g = len(G)
        n_p = len(P)
        for g in G:
            has_parts = bool(g[2])
            c["gt_with_parts"] += has_parts
            c["gt_with_affs"] += g[4] > 0
            c["part_gt"] += len(g[2])
            c["aff_gt"] += g[4]
            c["eligible"] += has_parts or g[4] > 0
        for p in P:
            c["pred_with_parts"] += bool(p[2])
            c["pred_with_affs"] += p[4] > 0
            c["part_pred"] += len(p[2])
            c["aff_pred"] += p[4]
        c["obj_gt"] += n_g
        c["obj_pred"] += n_p

        obj_cache: dict = {}
        part_caches: dict = {}
        for thr in (0.5, 0.95):
            matches = self._match_boxes(G, P, thr, _o_name, _o_name, _o_box, _o_box, obj_cache)
            m = len(matches)
            obj_r = m / n_g if n_g else 1.0
            obj_p = m / n_p if n_p else (1.0 if n_g == 0 else 0.0)
            if thr == 0.5:
                self.obj05.add(obj_p, obj_r)
                c["obj_tp"] += m
            else:
                self.obj095.add(obj_p, obj_r)
            if not matches:
                if thr == 0.5:
                    pass
                continue
            part_prs_p = []
            part_prs_r = []
            aff_prs_p = []
            aff_prs_r = []
            exact_hits = []
            for gi, pj in matches:
                g = G[gi]
                p = P[pj]
                gparts = g[2]
                pparts = p[2]
                cache = part_caches.setdefault((gi, pj), {})
                part_pairs = self._match_parts(gparts, pparts, thr, cache)
                gn = len(gparts)
                pn = len(pparts)
                if gn or pn:
                    part_r = len(part_pairs) / gn if gn else 0.0
                    part_p = len(part_pairs) / pn if pn else 0.0
                    part_prs_p.append(part_p)
                    part_prs_r.append(part_r)
                else:
                    part_r = part_p = None
                if thr != 0.5:
                    continue
                self._matched_diagnostics(g, p, part_pairs, part_r, part_p, aff_prs_p, aff_prs_r, exact_hits)
            if part_prs_p:
                (self.part05 if thr == 0.5 else self.part095).add(_small_mean(part_prs_p), _small_mean(part_prs_r))
            if thr == 0.5 and aff_prs_p:
                self.aff.add(_small_mean(aff_prs_p), _small_mean(aff_prs_r))
                self.hier.add(_small_mean(exact_hits) if exact_hits else 0.0)

    def _matched_diagnostics(self, g, p, part_pairs, part_r, part_p, aff_prs_p, aff_prs_r, exact_hits) -> None:
        c = self.c
        gparts = g[2]
        pparts = p[2]
        c["matched"] += 1
        gt_has_parts = bool(gparts)
        gt_has_affs = g[3] > 0
        pred_has_parts = bool(pparts)
        pred_has_affs = p[3] > 0
        c["m_gt_parts"] += gt_has_parts
        c["m_gt_affs"] += gt_has_affs
        c["m_pred_parts"] += pred_has_parts
        c["m_pred_affs"] += pred_has_affs
        c["part_mismatch"] += gt_has_parts and not pred_has_parts
        c["aff_mismatch"] += gt_has_affs and not pred_has_affs
        c["pexp_gt"] += gt_has_parts
        c["pexp_pred"] += pred_has_parts
        c["pexp_tp"] += gt_has_parts and pred_has_parts
        for gpi, ppi in part_pairs:
            ga = bool(gparts[gpi][3])
            pa = bool(pparts[ppi][3])
            c["aexp_gt"] += ga
            c["aexp_pred"] += pa
            c["aexp_tp"] += ga and pa
            c["aover_base"] += not ga
            c["aover"] += (not ga) and pa
            c["aunder_base"] += ga
            c["aunder"] += ga and not pa
        c["pover_base"] += not gt_has_parts
        c["pover"] += (not gt_has_parts) and pred_has_parts
        c["punder_base"] += gt_has_parts
        c["punder"] += gt_has_parts and not pred_has_parts

        # affordances inside matched parts
        m_aff = 0
        for gpi, ppi in part_pairs:
            gpart = gparts[gpi]
            m_aff += self._aff_first_fit(gpart[3], pparts[ppi][3], gpart[2], _obj_point, _action, _action)
        gt_total = g[3]
        pred_total = p[3]
        if gt_total or pred_total:
            aff_r = m_aff / gt_total if gt_total else 0.0
            aff_p = m_aff / pred_total if pred_total else 0.0
            aff_prs_p.append(aff_p)
            aff_prs_r.append(aff_r)
        else:
            aff_r = aff_p = None
        has_correct_part = len(part_pairs) > 0
        has_correct_aff = m_aff > 0
        c["part_tp"] += len(part_pairs)

        gt_flat = self._flat(g) if g[4] else []
        pred_flat = self._flat(p) if p[4] else []
        root = None
        if gt_has_parts:
            c["aff_tp"] += m_aff
        else:
            root = self._root_matches(gt_flat, pred_flat)
            c["aff_tp"] += root
        c["parse_ok_cond"] += has_correct_part and has_correct_aff

        gt_has_any = g[4] > 0
        pred_has_any = p[4] > 0
        if gt_has_parts and gt_has_affs:
            loose = pred_has_parts and pred_has_affs
            strict = loose
        elif gt_has_parts:
            loose = pred_has_parts
            strict = pred_has_parts and not pred_has_any
        elif gt_has_any:
            loose = pred_has_any
            strict = pred_has_any and not pred_has_parts
        else:
            loose = strict = False
        c["loose"] += loose
        c["strict"] += strict

        if gt_has_parts and gt_has_affs:
            parse_success = has_correct_part and has_correct_aff
            em = part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0
        elif gt_has_parts:
            parse_success = has_correct_part
            em = part_r == 1.0 and part_p == 1.0
        elif gt_has_any:
            parse_success = root > 0
            em = root == len(gt_flat) and root == len(pred_flat)
        else:
            parse_success = em = False
        c["parse_ok"] += parse_success
        c["hier_em"] += em
        exact_hits.append(1.0 if part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0 else 0.0)

        # semantic multisets
        canon_part = self.canon_part
        canon_action = self.canon_action
        if gparts or pparts:
            gv = [pt[1] for pt in gparts if pt[0]]
            pv = [pt[1] for pt in pparts if pt[0]]
            c["psem_gt"] += len(gv)
            c["psem_pred"] += len(pv)
            if gv and pv:
                c["psem_m"] += sum((Counter(gv) & Counter(pv)).values())
        if gt_flat or pred_flat:
            gv = [canon_action(a.get("action")) for a, _ in gt_flat if a.get("action")]
            pv = [canon_action(a.get("action")) for a, _ in pred_flat if a.get("action")]
            c["asem_gt"] += len(gv)
            c["asem_pred"] += len(pv)
            if gv and pv:
                c["asem_m"] += sum((Counter(gv) & Counter(pv)).values())

        # name-only greedy part pairs (IoU 0 allowed) -> box accuracy
        if gparts and pparts:
            used = set()
            for gpart in gparts:
                gname = gpart[1]
                if not gname:
                    continue
                best_j = -1
                best = -1.0
                gb = gpart[2]
                for pj, ppart in enumerate(pparts):
                    if pj in used or ppart[1] != gname:
                        continue
                    s = iou(gb, ppart[2])
                    if s > best:
                        best = s
                        best_j = pj
                if best_j != -1:
                    used.add(best_j)
                    c["psem_pairs"] += 1
                    c["pgeom05"] += best >= 0.5
                    c["pgeom095"] += best >= 0.95

        # action-only greedy pairs over flat lists -> point accuracy (no part-box fallback)
        if gt_flat and pred_flat:
            pacts = [canon_action(a.get("action")) for a, _ in pred_flat]
            used = set()
            for ga, _ in gt_flat:
                gact = canon_action(ga.get("action"))
                if not gact:
                    continue
                for pj, pact in enumerate(pacts):
                    if pj in used or pact != gact:
                        continue
                    used.add(pj)
                    c["asem_pairs"] += 1
                    c["apoint_ok"] += self.in_region(_obj_point(pred_flat[pj][0]), ga, None)
                    break

        self.gt_parts_pm.add(len(gparts))
        self.pred_parts_pm.add(len(pparts))
        self.gt_affs_pm.add(len(gt_flat))
        self.pred_affs_pm.add(len(pred_flat))

    def _root_matches(self, gt_flat, pred_flat) -> int:
        """``count_affordance_matches`` over flat lists (fallback: each GT item's part box)."""
        if not gt_flat or not pred_flat:
            return 0
        return self._aff_first_fit(
            gt_flat, [a for a, _ in pred_flat], None, _obj_point,
            lambda item: item[0].get("action"), _action, fallback_of=lambda item: item[1],
        )

    def result(self) -> dict:
        c = self.c
        obj05 = self.obj05.summary()
        obj095 = self.obj095.summary()
        part05 = self.part05.summary()
        part095 = self.part095.summary()
        aff = self.aff.summary()
        f_obj, f_part, f_aff = obj05["f1"], part05["f1"], aff["f1"]
        f_hier_h = 3.0 / ((1.0 / (f_obj + EPS)) + (1.0 / (f_part + EPS)) + (1.0 / (f_aff + EPS)))
        L1 = _counts(c["obj_tp"], c["obj_pred"], c["obj_gt"])
        L2 = _counts(c["part_tp"], c["part_pred"], c["part_gt"])
        L3 = _counts(c["aff_tp"], c["aff_pred"], c["aff_gt"])
        f_e2e = 3.0 / ((1.0 / (L1["f1"] + EPS)) + (1.0 / (L2["f1"] + EPS)) + (1.0 / (L3["f1"] + EPS)))
        elig = c["eligible"]
        pexp_p = _ratio(c["pexp_tp"], c["pexp_pred"])
        pexp_r = _ratio(c["pexp_tp"], c["pexp_gt"])
        aexp_p = _ratio(c["aexp_tp"], c["aexp_pred"])
        aexp_r = _ratio(c["aexp_tp"], c["aexp_gt"])
        psem_p = _ratio(c["psem_m"], c["psem_pred"])
        psem_r = _ratio(c["psem_m"], c["psem_gt"])
        asem_p = _ratio(c["asem_m"], c["asem_pred"])
        asem_r = _ratio(c["asem_m"], c["asem_gt"])
        avg_gt_parts = self.gt_parts_pm.mean()
        avg_pred_parts = self.pred_parts_pm.mean()
        avg_gt_affs = self.gt_affs_pm.mean()
        avg_pred_affs = self.pred_affs_pm.mean()
        diagnostics = {
            "json_parse_success_rate": self.json_ok.mean(),
            "part_field_emission_rate": _ratio(c["pred_with_parts"], c["gt_with_parts"]),
            "affordance_field_emission_rate": _ratio(c["pred_with_affs"], c["gt_with_affs"]),
            "matched_object_part_emission_rate": _ratio(c["m_pred_parts"], c["m_gt_parts"]),
            "matched_object_affordance_emission_rate": _ratio(c["m_pred_affs"], c["m_gt_affs"]),
            "part_mismatch_rate": _ratio(c["part_mismatch"], c["m_gt_parts"]),
            "affordance_mismatch_rate": _ratio(c["aff_mismatch"], c["m_gt_affs"]),
            "matched_objects_at_0.5": c["matched"],
            "loose_parse_success_count_0.5": c["loose"],
            "strict_parse_success_count_0.5": c["strict"],
            "parse_success_count_0.5": c["parse_ok"],
            "hier_em_e2e_success_count_0.5": c["hier_em"],
            "parse_eligible_gt_objects_0.5": elig,
            "parse_rate_given_matched_object_0.5": _ratio(c["parse_ok_cond"], c["matched"]),
            "part_expansion_tp": c["pexp_tp"],
            "part_expansion_gt_positive": c["pexp_gt"],
            "part_expansion_pred_positive": c["pexp_pred"],
            "aff_expansion_tp": c["aexp_tp"],
            "aff_expansion_gt_positive": c["aexp_gt"],
            "aff_expansion_pred_positive": c["aexp_pred"],
            "part_overexpansion_rate": _ratio(c["pover"], c["pover_base"]),
            "part_underexpansion_rate": _ratio(c["punder"], c["punder_base"]),
            "aff_overexpansion_rate": _ratio(c["aover"], c["aover_base"]),
            "aff_underexpansion_rate": _ratio(c["aunder"], c["aunder_base"]),
            "part_semantic_precision": psem_p,
            "part_semantic_recall": psem_r,
            "part_semantic_f1": f1(psem_p, psem_r),
            "aff_action_precision": asem_p,
            "aff_action_recall": asem_r,
            "aff_action_f1": f1(asem_p, asem_r),
            "part_box_acc_given_semantic_0.5": _ratio(c["pgeom05"], c["psem_pairs"]),
            "part_box_acc_given_semantic_0.95": _ratio(c["pgeom095"], c["psem_pairs"]),
            "aff_point_acc_given_action": _ratio(c["apoint_ok"], c["asem_pairs"]),
            "avg_gt_parts_per_matched_object": avg_gt_parts,
            "avg_pred_parts_per_matched_object": avg_pred_parts,
            "part_overprediction_ratio": avg_pred_parts / avg_gt_parts if avg_gt_parts > 0 else 0.0,
            "avg_gt_affs_per_matched_object": avg_gt_affs,
            "avg_pred_affs_per_matched_object": avg_pred_affs,
            "aff_overprediction_ratio": avg_pred_affs / avg_gt_affs if avg_gt_affs > 0 else 0.0,
            "canonical_eval_enabled": self.canonical_eval,
            "part_mapping_path": self.part_mapping_path,
            "action_mapping_path": self.action_mapping_path,
        }
        self._filter_diagnostics(diagnostics)
        return {
            "object_0.5": obj05,
            "object_0.95": obj095,
            "part_0.5": part05,
            "part_0.95": part095,
            "affordance_point_in_bbox": aff,
            "f_hier": {"f_obj": f_obj, "f_part_obj": f_part, "f_aff_part": f_aff, "f_hier_h": f_hier_h,
                       "f_hier": f_hier_h},
            "L1": L1,
            "L2": L2,
            "L3": L3,
            "hier_f1_e2e_0.5": f_e2e,
            "ParseRate": _ratio(c["loose"], elig),
            "strict_parse_rate_0.5": _ratio(c["strict"], elig),
            "hier_em_e2e_0.5": _ratio(c["hier_em"], elig),
            "parse_rate_0.5": _ratio(c["parse_ok"], elig),
            "hierarchical_exact_match": self.hier.mean(),
            "part_expansion": {"precision": pexp_p, "recall": pexp_r, "f1": f1(pexp_p, pexp_r)},
            "aff_expansion": {"precision": aexp_p, "recall": aexp_r, "f1": f1(aexp_p, aexp_r)},
            "diagnostics": diagnostics,
        }


def _o_name(obj):
    return obj[0]


def _o_box(obj):
    return obj[1]


# =============================================================================================
# scene-level metric
# =============================================================================================


def _scene_point(aff: dict):
    p = aff.get("point")
    if isinstance(p, list) and len(p) >= 2:
        return [p[0], p[1]]
    points = aff.get("points") or aff.get("sampled_points") or []
    if isinstance(points, list) and points and isinstance(points[0], list) and len(points[0]) >= 2:
        return [points[0][0], points[0][1]]
    return None


class SceneLevelMetric(_Base):
    """Streaming ``sceneparser_scene_hierarchical_metric.py`` (+ filter wrapper when filters are on).

    Object names are compared after ``strip().lower()``; only affordances with a truthy action
    count; L3 and the affordance macro are also reported at IoU 0.95.
    """

    level = "scene"
    base_script = "sceneparser_scene_hierarchical_metric.py"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.obj = {0.5: _PairMean(), 0.95: _PairMean()}
        self.part = {0.5: _PairMean(), 0.95: _PairMean()}
        self.aff = {0.5: _PairMean(), 0.95: _PairMean()}
        self.rec_obj = _FloatMean()
        self.rec_part = _FloatMean()
        self.rec_aff = _FloatMean()
        self.exact = _FloatMean()
        self.c = Counter()

    def _check_pred_aff(self, a: dict, path: tuple) -> None:
        """The predicted point the scene metric reads: ``point``, else ``points[0]``/``sampled_points[0]``."""
        p = a.get("point")
        if isinstance(p, list) and len(p) >= 2:
            _check_numbers(p[:2], 2, path + ("point",), "point")
            return
        pts = a.get("points") or a.get("sampled_points") or []
        if isinstance(pts, list) and pts and isinstance(pts[0], list) and len(pts[0]) >= 2:
            _check_numbers(pts[0][:2], 2, path + ("points", 0), "point")

    def _object_record(self, o, bbox, parts, n_part_affs, obj_affs):
        # scene: only dict affordances with a truthy action count
        parts = [(n, cn, b, [a for a in affs if a.get("action")]) for n, cn, b, affs in parts]
        n_part_affs = sum(len(p[3]) for p in parts)
        obj_affs = [a for a in obj_affs if a.get("action")]
        return (normalize_label(o.get("name")), bbox, parts, n_part_affs, n_part_affs + len(obj_affs), obj_affs)

    def _read(self, sample):
        gobjs, _ = self._side(sample, "gt")
        pobjs, _ = self._side(sample, "extracted_predictions")
        return self._prepare(gobjs, "gt"), self._prepare(pobjs, "extracted_predictions")

    def _aff_in_pairs(self, gparts, pparts, part_pairs) -> int:
        m = 0
        for gpi, ppi in part_pairs:
            gpart = gparts[gpi]
            m += self._aff_first_fit(gpart[3], pparts[ppi][3], gpart[2], _scene_point, _action, _action)
        return m

    def _accumulate(self, G: list, P: list) -> None:
        c = self.c
        n_g = len(G)
        n_p = len(P)
        gpart_all = sum(len(g[2]) for g in G)
        ppart_all = sum(len(p[2]) for p in P)
        gaff_all = sum(g[3] for g in G)
        paff_all = sum(p[3] for p in P)
        obj_cache: dict = {}
        part_caches: dict = {}
        matches05 = []
        part_rec_img = aff_rec_img = 1.0
        for thr in (0.5, 0.95):
            matches = self._match_boxes(G, P, thr, _o_name, _o_name, _o_box, _o_box, obj_cache)
            tp = len(matches)
            obj_p = tp / n_p if n_p else (1.0 if n_g == 0 else 0.0)
            obj_r = tp / n_g if n_g else 1.0
            self.obj[thr].add(obj_p, obj_r)
            c[("obj_tp", thr)] += tp
            c[("obj_fp", thr)] += max(0, n_p - tp)
            c[("obj_fn", thr)] += max(0, n_g - tp)
            part_tp = 0
            aff_tp = 0
            pp_p, pp_r, ap_p, ap_r = [], [], [], []
            for gi, pj in matches:
                gparts = G[gi][2]
                pparts = P[pj][2]
                cache = part_caches.setdefault((gi, pj), {})
                pairs = self._match_parts(gparts, pparts, thr, cache)
                part_tp += len(pairs)
                gn, pn = len(gparts), len(pparts)
                if gn or pn:
                    pp_p.append(len(pairs) / pn if pn else 0.0)
                    pp_r.append(len(pairs) / gn if gn else 0.0)
                m = self._aff_in_pairs(gparts, pparts, pairs)
                aff_tp += m
                ga, pa = G[gi][3], P[pj][3]
                if ga or pa:
                    ap_p.append(m / pa if pa else 0.0)
                    ap_r.append(m / ga if ga else 0.0)
            if pp_p:
                self.part[thr].add(_small_mean(pp_p), _small_mean(pp_r))
            if ap_p:
                self.aff[thr].add(_small_mean(ap_p), _small_mean(ap_r))
            c[("part_tp", thr)] += part_tp
            c[("part_fp", thr)] += max(0, ppart_all - part_tp)
            c[("part_fn", thr)] += max(0, gpart_all - part_tp)
            c[("aff_tp", thr)] += aff_tp
            c[("aff_fp", thr)] += max(0, paff_all - aff_tp)
            c[("aff_fn", thr)] += max(0, gaff_all - aff_tp)
            if thr == 0.5:
                matches05 = matches
                part_rec_img = part_tp / gpart_all if gpart_all else 1.0
                aff_rec_img = aff_tp / gaff_all if gaff_all else 1.0
        obj_rec_img = len(matches05) / n_g if n_g else 1.0
        self.rec_obj.add(obj_rec_img)
        self.rec_part.add(part_rec_img)
        self.rec_aff.add(aff_rec_img)
        self.exact.add(1.0 if (obj_rec_img == 1.0 and part_rec_img == 1.0 and aff_rec_img == 1.0) else 0.0)

        matched = dict(matches05)
        for gi, g in enumerate(G):
            gt_has_parts = bool(g[2])
            gt_has_any = g[4] > 0
            if not (gt_has_parts or gt_has_any):
                continue
            c["eligible"] += 1
            pj = matched.get(gi)
            if pj is None:
                continue
            p = P[pj]
            gt_has_part_affs = g[3] > 0
            pred_has_parts = bool(p[2])
            pred_has_part_affs = p[3] > 0
            pred_has_any = p[4] > 0
            if gt_has_parts and gt_has_part_affs:
                loose = strict = pred_has_parts and pred_has_part_affs
            elif gt_has_parts:
                loose = pred_has_parts
                strict = pred_has_parts and not pred_has_any
            elif gt_has_any:
                loose = pred_has_any
                strict = pred_has_any and not pred_has_parts
            else:
                loose = strict = False
            c["loose"] += loose
            c["strict"] += strict
            gparts, pparts = g[2], p[2]
            pairs = self._match_parts(gparts, pparts, 0.5, part_caches.setdefault((gi, pj), {}))
            part_tp = len(pairs)
            gn, pn = len(gparts), len(pparts)
            if gt_has_parts and gt_has_part_affs:
                m = self._aff_in_pairs(gparts, pparts, pairs)
                ga, pa = g[3], p[3]
                em = ((part_tp / gn if gn else 0.0) == 1.0 and (part_tp / pn if pn else 0.0) == 1.0
                      and (m / ga if ga else 0.0) == 1.0 and (m / pa if pa else 0.0) == 1.0)
            elif gt_has_parts:
                em = (part_tp / gn if gn else 0.0) == 1.0 and (part_tp / pn if pn else 0.0) == 1.0
            elif gt_has_any:
                gflat = self._flat(g)
                pflat = [a for a, _ in self._flat(p)]
                root = self._aff_first_fit(
                    gflat, pflat, None, _scene_point, lambda item: item[0].get("action"), _action,
                    fallback_of=lambda item: item[1],
                ) if gflat and pflat else 0
                em = root == len(gflat) and root == len(pflat)
            else:
                em = False
            c["hier_em"] += em

    @staticmethod
    def _flat(obj) -> list:
        """Scene flat affordances: part-level (with part box fallback) plus object-level."""
        out = []
        for _, _, pbox, affs in obj[2]:
            for a in affs:
                out.append((a, a["part_bbox"] if "part_bbox" in a else pbox))
        for a in obj[5]:
            out.append((a, a.get("part_bbox")))
        return out

    def result(self) -> dict:
        c = self.c

        def counts(kind, thr):
            return _scene_counts(c[(kind + "_tp", thr)], c[(kind + "_fp", thr)], c[(kind + "_fn", thr)])

        o05, o095 = counts("obj", 0.5), counts("obj", 0.95)
        p05, p095 = counts("part", 0.5), counts("part", 0.95)
        a05, a095 = counts("aff", 0.5), counts("aff", 0.95)
        obj05, obj095 = self.obj[0.5].summary(), self.obj[0.95].summary()
        part05, part095 = self.part[0.5].summary(), self.part[0.95].summary()
        aff05, aff095 = self.aff[0.5].summary(), self.aff[0.95].summary()
        elig = c["eligible"]
        h = harmonic3(obj05["f1"], part05["f1"], aff05["f1"])
        diagnostics = {
            "num_samples": self.num_samples,
            "parse_eligible_gt_objects_0.5": elig,
            "scene_exact_success_count_0.5": int(sum(v * k for v, k in self.exact.counts.items())),
            "scene_hier_em_success_count_0.5": c["hier_em"],
            "scene_loose_parse_success_count_0.5": c["loose"],
            "scene_strict_parse_success_count_0.5": c["strict"],
            "canonical_eval_enabled": self.canonical_eval,
        }
        self._filter_diagnostics(diagnostics)
        return {
            "object_0.5": obj05,
            "object_0.95": obj095,
            "part_0.5": part05,
            "part_0.95": part095,
            "affordance_point_in_bbox": aff05,
            "affordance_point_in_bbox_0.95": aff095,
            "f_hier": {"f_obj": obj05["f1"], "f_part_obj": part05["f1"], "f_aff_part": aff05["f1"],
                       "f_hier_h": h, "f_hier": h},
            "L1": o05,
            "L1_0.95": o095,
            "L2": p05,
            "L2_0.95": p095,
            "L3": a05,
            "L3_0.95": a095,
            "f_hier_scene_e2e": {
                "f_obj_e2e_0.5": o05["f1"],
                "f_part_e2e_0.5": p05["f1"],
                "f_aff_e2e_0.5": a05["f1"],
                "f_hier_e2e_0.5": harmonic3(o05["f1"], p05["f1"], a05["f1"]),
            },
            "scene_recall_0.5": {"object": o05["recall"], "part": p05["recall"], "affordance": a05["recall"]},
            "scene_exact_success_rate_0.5": self.exact.mean(),
            "scene_hier_em_0.5": _ratio(c["hier_em"], elig),
            "ParseRate": _ratio(c["loose"], elig),
            "scene_strict_parse_rate_0.5": _ratio(c["strict"], elig),
            "scene_average_recall_0.5": {
                "object": self.rec_obj.mean(),
                "part": self.rec_part.mean(),
                "affordance": self.rec_aff.mean(),
            },
            "diagnostics": diagnostics,
        }


# =============================================================================================
# files
# =============================================================================================


def iter_answer_lines(path) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed JSON)`` for each non-blank line; InputError on a malformed line."""
    loads = json.loads
    try:
        f = open(path, "r", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read answers file {path}: {exc.strerror or exc}") from None
    with f:
        lineno = 0
        try:
            for line in f:
                lineno += 1
                if not line.strip():
                    continue
                try:
                    yield lineno, loads(line)
                except ValueError as exc:  # JSONDecodeError, digit-limit errors
                    raise InputError(f"{path}: line {lineno}: not valid JSON ({exc})") from None
                except RecursionError:
                    raise InputError(f"{path}: line {lineno}: JSON nested too deeply") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: line {lineno + 1}: not valid UTF-8 ({exc.reason})") from None


def evaluate_file(path, level: str = "object", *, skip_invalid: bool = False,
                  on_skip: Callable[[str], None] | None = None, progress: Callable[[int], None] | None = None,
                  **options) -> dict:
    """Score an answer JSONL file in one streaming pass; returns the reference result dict.

    A malformed line raises :class:`InputError` naming the line and the field, unless
    ``skip_invalid`` is set (the line is then left out, and ``on_skip(message)`` is called).
    Raises InputError when the file holds no answer line at all.
    """
    if level not in ("object", "scene"):
        raise InputError(f"level must be 'object' or 'scene', got {level!r}")
    metric = SceneLevelMetric(**options) if level == "scene" else ObjectLevelMetric(**options)
    seen = 0
    for lineno, sample in iter_answer_lines(path):
        seen += 1
        try:
            metric.update(sample)
        except InputError as exc:
            msg = f"{path}: line {lineno}: {exc}"
            if not skip_invalid:
                raise InputError(msg) from None
            if on_skip is not None:
                on_skip(msg)
        if progress is not None:
            progress(lineno)
    if seen == 0:
        raise InputError(f"{path}: no answer lines (the file is empty)")
    return metric.result()


def result_text(result: dict) -> str:
    """The text the reference writes: ``json.dump(indent=2, ensure_ascii=False)``, no trailing newline."""
    return json.dumps(result, ensure_ascii=False, indent=2)
