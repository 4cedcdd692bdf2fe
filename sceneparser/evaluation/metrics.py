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
import os
from collections import Counter, OrderedDict
from fractions import Fraction
from pathlib import Path
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
    """``statistics.mean`` of a short list of floats, exactly (one correctly rounded division)."""
    first = values[0]
    n = len(values)
    if n == 1:
        return first
    for v in values:
        if v != first:
            break
    else:
        return first
    ratios = [v.as_integer_ratio() for v in values]
    den = max(d for _, d in ratios)  # all powers of two
    num = sum(a * (den // d) for a, d in ratios)
    return num / (den * n)  # int / int true division is correctly rounded


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
        ratios = [(v.as_integer_ratio(), c) for v, c in self.counts.items()]
        den = max(d for (_, d), _ in ratios)
        num = sum(a * (den // d) * c for (a, d), c in ratios)
        return num / (den * self.n)


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
    """Macro (precision, recall) pairs -> ``{"precision", "recall", "f1"}`` (F1 of the means).

    Counts each distinct (p, r) pair in ``counts`` (callers may update it directly); the exact
    means are taken once, at the end.
    """

    __slots__ = ("counts",)

    def __init__(self):
        self.counts: dict = {}

    def add(self, p, r) -> None:
        key = (p, r)
        c = self.counts
        c[key] = c.get(key, 0) + 1

    def summary(self) -> dict:
        n = sum(self.counts.values())
        if not n:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        ps, rs = _FloatMean(), _FloatMean()
        for (p, r), k in self.counts.items():
            ps.counts[p] = ps.counts.get(p, 0) + k
            rs.counts[r] = rs.counts.get(r, 0) + k
        ps.n = rs.n = n
        p = ps.mean()
        r = rs.mean()
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
# input: a fast reader that builds light records, and a slow one that explains what is wrong
# ---------------------------------------------------------------------------------------------
#
# Records (plain tuples, built once per sample; the input dicts are never modified):
#   object  (name, bbox, parts, n_part_affs, flat_len, flat_affs, semantic_part_names, semantic_actions)
#           flat_affs: object level = part-level affordances, else object-level ones (reference
#           ``get_object_affordances``); scene level = part-level + object-level.
#           semantic_*: canonical labels of the entries with a truthy raw label (object level).
#   part    (canon_name, bbox, affs, raw_name)
#   GT aff  (canon_action, raw_action, mask_path, region_box, flat_part_box)
#   pred aff(canon_action, raw_action, point)
# Objects and parts keep name and box at indices 0 and 1, so one matcher serves both.


class _Invalid(Exception):
    """Raised by the fast reader; the slow validator then finds and names the bad field."""


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


_SEQ = frozenset({list, tuple})


def _coords_ok(v, n: int) -> bool:
    """A list of exactly ``n`` real numbers (bools count, as in Python; non-finite floats too)."""
    if v.__class__ not in _SEQ or len(v) != n:
        return False
    for x in v:
        if type(x) is float:
            continue
        if isinstance(x, int) and -_MAX_FLOAT <= x <= _MAX_FLOAT:
            continue
        return False
    return True


def _explain_coords(v, n: int, what: str) -> str:
    if not isinstance(v, (list, tuple)):
        return f"a {what} must be null or a list of {n} numbers, got {type(v).__name__}"
    if len(v) != n:
        return f"a {what} needs exactly {n} numbers, got {len(v)}"
    for x in v:
        if isinstance(x, (int, float)) and not (isinstance(x, int) and not -_MAX_FLOAT <= x <= _MAX_FLOAT):
            continue
        if isinstance(x, int):
            return f"coordinate {str(x)[:20]}... is too large for a float"
        return f"a {what} must hold numbers, found {type(x).__name__} {str(x)[:30]!r}"
    return f"malformed {what}"


_PSEUDO = "__placeholder_part__"
_NONE_ACTIONS = frozenset({"__none__", "__placeholder_action__"})
_CACHE_LIMIT = 50_000


def _scene_point(aff: dict):
    """Scene-level predicted point: ``point`` if a list of >= 2, else ``points``/``sampled_points``[0]."""
    p = aff.get("point")
    if isinstance(p, list) and len(p) >= 2:
        return [p[0], p[1]]
    points = aff.get("points") or aff.get("sampled_points") or []
    if isinstance(points, list) and points and isinstance(points[0], list) and len(points[0]) >= 2:
        return [points[0][0], points[0][1]]
    return None


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
        self.optimal = matching == "optimal"
        self.normalize_object_names = bool(normalize_object_names)
        self.masks = _MaskReader(mask_root, check_exists=self.level == "object")
        self.num_samples = 0
        self._part_cache: dict = {}
        self._action_cache: dict = {}

    # ------------------------------------------------------------------ labels
    def canon_part(self, value) -> str:
        name = str(value or "").strip().lower()
        return self.part_alias.get(name, name) if self.canonical_eval else name

    def canon_action(self, value) -> str:
        action = str(value or "").strip().lower()
        return self.action_alias.get(action, action) if self.canonical_eval else action

    def _label(self, value, cache: dict, alias: dict) -> tuple:
        """(normalised, canonical) for a raw label; str labels are cached."""
        if type(value) is str:
            hit = cache.get(value)
            if hit is not None:
                return hit
        n = str(value or "").strip().lower()
        out = (n, alias.get(n, n) if self.canonical_eval else n)
        if type(value) is str and len(cache) < _CACHE_LIMIT:
            cache[value] = out
        return out

    # ------------------------------------------------------------------ fast reader
    def _containers(self, sample):
        """(gt objects, pred objects, json_ok) with null -> empty; _Invalid on wrong types."""
        gt = sample.get("gt")
        if isinstance(gt, dict):
            gobjs = gt.get("objects") or []
            if type(gobjs) is not list:
                raise _Invalid
        elif not gt:
            gobjs = []
        else:
            raise _Invalid
        pred = sample.get("extracted_predictions")
        if isinstance(pred, dict):
            json_ok = 1.0 if "objects" in pred else 0.0
            pobjs = pred.get("objects") or []
            if type(pobjs) is not list:
                raise _Invalid
        elif not pred:
            pobjs = []
            json_ok = 0.0
        else:
            raise _Invalid
        return gobjs, pobjs, json_ok

    def _affs(self, affs, is_gt: bool, part_box) -> list:
        if type(affs) is not list:
            raise _Invalid
        out = []
        scene = self.level == "scene"
        none_filter = self.ignore_none_action
        cache, alias = self._action_cache, self.action_alias
        for a in affs:
            if not isinstance(a, dict):
                if scene and not none_filter:
                    continue  # the scene metric ignores non-dict entries
                raise _Invalid
            act = a.get("action")
            if act.__class__ is str:
                lab = cache.get(act) or self._label(act, cache, alias)
            else:
                lab = self._label(act, cache, alias)
            if none_filter and lab[0] in _NONE_ACTIONS:
                continue
            if is_gt:
                region = a["affordance_bbox"] if "affordance_bbox" in a else a.get("bbox")
                if region is not None:
                    if region.__class__ not in _SEQ or len(region) != 4:
                        raise _Invalid
                    sum(region) + 0.0  # TypeError on non-numbers, OverflowError on huge ints
                if "part_bbox" in a:
                    fb = a["part_bbox"]
                    if fb is not None and not _coords_ok(fb, 4):
                        raise _Invalid
                else:
                    fb = part_box
                mask = a.get("mask_path")
                if mask and type(mask) is not str:
                    raise _Invalid
                rec = (lab[1], act, mask, region, fb)
            else:
                if scene:
                    pt = _scene_point(a)
                    if pt is not None and not _coords_ok(pt, 2):
                        raise _Invalid
                else:
                    pt = a["point"] if "point" in a else a.get("affordance_point")
                    if pt is not None:
                        if pt.__class__ not in _SEQ or len(pt) != 2:
                            raise _Invalid
                        sum(pt) + 0.0
                rec = (lab[1], act, pt)
            if scene and not act:
                continue  # the scene metric counts only affordances with an action
            out.append(rec)
        return out

    def _objects(self, objs: list, is_gt: bool) -> list:
        records = []
        pseudo = self.ignore_pseudo_part
        cache, alias = self._part_cache, self.part_alias
        scene = self.level == "scene"
        norm_names = scene or self.normalize_object_names
        for o in objs:
            if not isinstance(o, dict):
                raise _Invalid
            bbox = o.get("bbox")
            if bbox is not None:
                if bbox.__class__ not in _SEQ or len(bbox) != 4:
                    raise _Invalid
                sum(bbox) + 0.0  # TypeError on non-numbers, OverflowError on huge ints
            raw_parts = o.get("parts")
            parts = []
            n_part_affs = 0
            if raw_parts:
                if type(raw_parts) is not list:
                    raise _Invalid
                for p in raw_parts:
                    if not isinstance(p, dict):
                        raise _Invalid
                    pname = p.get("part_name")
                    lab = (cache.get(pname) if pname.__class__ is str else None) or self._label(pname, cache, alias)
                    if pseudo and (p.get("is_pseudo_part", False) or lab[0] == _PSEUDO):
                        continue
                    pbox = p.get("bbox")
                    if pbox is not None:
                        if pbox.__class__ not in _SEQ or len(pbox) != 4:
                            raise _Invalid
                        sum(pbox) + 0.0
                    raw_affs = p.get("affordances")
                    affs = self._affs(raw_affs, is_gt, pbox) if raw_affs else []
                    n_part_affs += len(affs)
                    parts.append((lab[1], pbox, affs, pname))
            obj_affs = []
            if "affordances" in o:
                raw = o["affordances"]
                if raw:
                    obj_affs = self._affs(raw, is_gt, None)
            name = o.get("name")
            if norm_names:
                name = normalize_label(name)
            if scene:
                flat = [a for part in parts for a in part[2]] + obj_affs if n_part_affs else obj_affs
                records.append((name, bbox, parts, n_part_affs, len(flat), flat, None, None))
            else:
                flat = [a for part in parts for a in part[2]] if n_part_affs else obj_affs
                records.append((name, bbox, parts, n_part_affs, len(flat), flat,
                                [pt[0] for pt in parts if pt[3]] if parts else (),
                                [a[0] for a in flat if a[1]] if flat else ()))
        return records

    # ------------------------------------------------------------------ slow validator (messages)
    def _explain(self, sample) -> None:
        """Raise _Bad naming the first malformed field of ``sample`` (the fast reader refused it)."""
        if not isinstance(sample, dict):
            raise _Bad((), f"an answer line must be a JSON object, got {type(sample).__name__}")
        scene = self.level == "scene"
        for key in ("gt", "extracted_predictions"):
            cont = sample.get(key)
            if not cont:
                continue
            if not isinstance(cont, dict):
                raise _Bad((key,), f"must be a JSON object or null, got {type(cont).__name__}")
            objs = cont.get("objects")
            if not objs:
                continue
            if not isinstance(objs, list):
                raise _Bad((key, "objects"), f"must be a list or null, got {type(objs).__name__}")
            for oi, o in enumerate(objs):
                op = (key, "objects", oi)
                if not isinstance(o, dict):
                    raise _Bad(op, f"must be a JSON object, got {type(o).__name__}")
                self._explain_coords(o.get("bbox"), 4, op + ("bbox",), "box")
                holders = []
                parts = o.get("parts") or []
                if not isinstance(parts, list):
                    raise _Bad(op + ("parts",), f"must be a list or null, got {type(parts).__name__}")
                for pi, p in enumerate(parts or []):
                    pp = op + ("parts", pi)
                    if not isinstance(p, dict):
                        raise _Bad(pp, f"must be a JSON object, got {type(p).__name__}")
                    self._explain_coords(p.get("bbox"), 4, pp + ("bbox",), "box")
                    holders.append((p.get("affordances"), pp + ("affordances",)))
                if "affordances" in o:
                    holders.append((o["affordances"], op + ("affordances",)))
                for affs, ap in holders:
                    if not affs:
                        continue
                    if not isinstance(affs, list):
                        raise _Bad(ap, f"must be a list or null, got {type(affs).__name__}")
                    for ai, a in enumerate(affs):
                        if not isinstance(a, dict):
                            if scene and not self.ignore_none_action:
                                continue
                            raise _Bad(ap + (ai,), f"must be a JSON object, got {type(a).__name__}")
                        if key == "gt":
                            rk = "affordance_bbox" if "affordance_bbox" in a else "bbox"
                            self._explain_coords(a.get(rk), 4, ap + (ai, rk), "box")
                            self._explain_coords(a.get("part_bbox"), 4, ap + (ai, "part_bbox"), "box")
                            mp = a.get("mask_path")
                            if mp and not isinstance(mp, str):
                                raise _Bad(ap + (ai, "mask_path"), f"must be a string or null, got {type(mp).__name__}")
                        elif scene:
                            self._explain_coords(_scene_point(a), 2, ap + (ai, "point"), "point")
                        else:
                            pk = "point" if "point" in a else "affordance_point"
                            self._explain_coords(a.get(pk), 2, ap + (ai, pk), "point")

    @staticmethod
    def _explain_coords(v, n, path, what) -> None:
        if v is not None and not _coords_ok(v, n):
            raise _Bad(path, _explain_coords(v, n, what))

    # ------------------------------------------------------------------ public API
    def update(self, sample: dict) -> None:
        """Add one answer line (a dict). Raises InputError (nothing counted) on malformed input."""
        try:
            if not isinstance(sample, dict):
                raise _Invalid
            gobjs, pobjs, json_ok = self._containers(sample)
            G = self._objects(gobjs, True)
            P = self._objects(pobjs, False)
        except (_Invalid, TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            try:
                self._explain(sample)
            except _Bad as bad:
                raise InputError(f"{_fmt_path(bad.path) or 'line'}: {bad.message}") from None
            raise InputError(f"malformed answer line ({type(exc).__name__}: {exc})") from None
        if self.filter_wrapper:
            json_ok = 1.0
        self._accumulate(G, P, json_ok)
        self.num_samples += 1

    def update_many(self, samples: Iterable[dict]) -> None:
        for s in samples:
            self.update(s)

    def _filter_diagnostics(self, diag: dict) -> None:
        if self.filter_wrapper:
            diag["ignore_pseudo_part"] = self.ignore_pseudo_part
            diag["ignore_none_action"] = self.ignore_none_action
            diag["base_metric_script"] = self.base_script

    # ------------------------------------------------------------------ region test
    def in_region(self, point, g, fallback) -> bool:
        """``g`` is a GT aff record: the mask decides alone when readable, else the box (or fallback)."""
        mask = g[2]
        if mask:
            r = self.masks.lookup(point, mask)
            if r is not None:
                return r
        box = g[3]
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

    # ------------------------------------------------------------------ matching
    def _match(self, table: list, thr: float) -> list:
        """Pairs (gi, pj) in GT order with IoU >= thr from an :func:`_iou_table`: greedy or optimal."""
        if not table:
            return []
        if self.optimal:
            return _optimal_pairs(table, thr)
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

    def _aff_matches(self, gaffs: list, paffs: list, fallback, use_flat_fallback: bool = False) -> int:
        """Affordance matches of GT records vs pred records: first-fit (reference) or max cardinality.

        The region fallback is ``fallback`` or, with ``use_flat_fallback``, each GT record's own
        flat part box.
        """
        if not gaffs or not paffs:
            return 0
        in_region = self.in_region
        if self.optimal:
            edges = []
            for gi, g in enumerate(gaffs):
                fb = g[4] if use_flat_fallback else fallback
                gact = g[0]
                row = [(j, 1.0) for j, p in enumerate(paffs) if p[0] == gact and in_region(p[2], g, fb)]
                if row:
                    edges.append((gi, row, 1.0))
            return len(_optimal_pairs(edges, 0.0)) if edges else 0
        used = 0  # bit set over predicted indices
        matched = 0
        for g in gaffs:
            gact = g[0]
            fb = g[4] if use_flat_fallback else fallback
            mask = g[2]
            box = g[3]
            if box is None:
                box = fb
            if box is not None:
                x1, y1, x2, y2 = box
                # min/max of two, exactly as the builtins (first argument kept on ties and NaN)
                x1, x2 = (x2 if x2 < x1 else x1), (x2 if x2 > x1 else x1)
                y1, y2 = (y2 if y2 < y1 else y1), (y2 if y2 > y1 else y1)
            bit = 1
            for p in paffs:
                if not used & bit and p[0] == gact:
                    if mask:
                        ok = in_region(p[2], g, fb)
                    else:
                        pt = p[2]
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


def _iou_table(G: list, P: list, keep_all: bool = True) -> list:
    """Name-equal pairs with their reference IoU: ``[(gi, [(pj, iou), ...], best_iou), ...]``.

    Works on objects and parts alike (name at [0], box at [1]); rows are in GT order and
    predictions in index order, so the greedy matcher sees exactly the reference's scan order.
    Pairs with a null box get IoU 0.0 (kept: the semantic diagnostics allow IoU 0). With
    ``keep_all=False`` only pairs with IoU >= 0.5 are listed (all that matching needs).

    The arithmetic is the reference ``iou(gt_box, pred_box)`` operation for operation, with
    ``b if b > a else a`` standing for ``max(a, b)`` (identical, NaN included) and the two
    areas computed once per box instead of once per pair (same values).
    """
    pinfo = []
    for p in P:
        b = p[1]
        if b is None:
            pinfo.append(None)
        else:
            q0, q1, q2, q3 = b
            w = q2 - q0
            h = q3 - q1
            pinfo.append((q0, q1, q2, q3, (w if w > 0.0 else 0.0) * (h if h > 0.0 else 0.0)))
    table = []
    for gi, g in enumerate(G):
        gn = g[0]
        b1 = g[1]
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
            if p[0] != gn:
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


def _part_iou_table(G: list, P: list) -> list:
    """:func:`_iou_table` for parts: few pairs share a name, so areas are computed per pair."""
    table = []
    for gi, g in enumerate(G):
        gn = g[0]
        b1 = g[1]
        row = None
        top = 0.0
        pj = -1
        for p in P:
            pj += 1
            if p[0] != gn:
                continue
            b2 = p[1]
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


def _optimal_pairs(table: list, thr: float) -> list:
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


def _multiset_common(a: list, b: list) -> int:
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


# =============================================================================================
# object-level metric
# =============================================================================================

# per-sample counters, committed once per sample
_OBJ_KEYS = (
    "gt_with_parts", "gt_with_affs", "pred_with_parts", "pred_with_affs", "obj_gt", "obj_pred", "part_gt",
    "part_pred", "aff_gt", "aff_pred", "eligible", "obj_tp", "part_tp", "aff_tp", "parse_ok_cond", "parse_ok",
    "hier_em", "psem_m", "psem_gt", "psem_pred", "asem_m", "asem_gt", "asem_pred", "psem_pairs", "pgeom05",
    "pgeom095", "asem_pairs", "apoint_ok", "sum_gt_parts", "sum_pred_parts", "sum_gt_affs", "sum_pred_affs",
)
_K = {k: i for i, k in enumerate(_OBJ_KEYS)}

# matched-object pattern bits
_GHP, _GHA, _GANY, _PHP, _PHA, _PANY = 1, 2, 4, 8, 16, 32


def _loose_strict(key: int) -> tuple[bool, bool]:
    ghp, gha, gany = key & _GHP, key & _GHA, key & _GANY
    php, pha, pany = key & _PHP, key & _PHA, key & _PANY
    if ghp and gha:
        ok = bool(php and pha)
        return ok, ok
    if ghp:
        return bool(php), bool(php and not pany)
    if gany:
        return bool(pany), bool(pany and not php)
    return False, False


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
        self.acc = [0] * len(_OBJ_KEYS)
        self.obj_patterns = [0] * 64  # matched objects at 0.5, by structure bits
        self.pair_patterns = [0] * 4  # matched part pairs at 0.5: bit0 GT part has affs, bit1 pred part has

    def _objects(self, objs: list, is_gt: bool) -> list:
        """Object-level reader: the generic one, specialised and inlined for speed (same records)."""
        records = []
        pseudo = self.ignore_pseudo_part
        none_filter = self.ignore_none_action
        pcache, palias = self._part_cache, self.part_alias
        acache, aalias = self._action_cache, self.action_alias
        label = self._label
        norm_names = self.normalize_object_names
        for o in objs:
            if not isinstance(o, dict):
                raise _Invalid
            bbox = o.get("bbox")
            if bbox is not None:
                if bbox.__class__ not in _SEQ or len(bbox) != 4:
                    raise _Invalid
                sum(bbox) + 0.0  # TypeError on non-numbers, OverflowError on huge ints
            raw_parts = o.get("parts")
            parts = []
            flat = []
            if raw_parts:
                if raw_parts.__class__ is not list:
                    raise _Invalid
                for p in raw_parts:
                    if not isinstance(p, dict):
                        raise _Invalid
                    pname = p.get("part_name")
                    lab = (pcache.get(pname) if pname.__class__ is str else None) or label(pname, pcache, palias)
                    if pseudo and (p.get("is_pseudo_part", False) or lab[0] == _PSEUDO):
                        continue
                    pbox = p.get("bbox")
                    if pbox is not None:
                        if pbox.__class__ not in _SEQ or len(pbox) != 4:
                            raise _Invalid
                        sum(pbox) + 0.0
                    raw_affs = p.get("affordances")
                    affs = []
                    if raw_affs:
                        if raw_affs.__class__ is not list:
                            raise _Invalid
                        for a in raw_affs:
                            if not isinstance(a, dict):
                                raise _Invalid
                            act = a.get("action")
                            alab = (acache.get(act) if act.__class__ is str else None) or label(act, acache, aalias)
                            if none_filter and alab[0] in _NONE_ACTIONS:
                                continue
                            if is_gt:
                                region = a["affordance_bbox"] if "affordance_bbox" in a else a.get("bbox")
                                if region is not None:
                                    if region.__class__ not in _SEQ or len(region) != 4:
                                        raise _Invalid
                                    sum(region) + 0.0
                                if "part_bbox" in a:
                                    fb = a["part_bbox"]
                                    if fb is not None and not _coords_ok(fb, 4):
                                        raise _Invalid
                                else:
                                    fb = pbox
                                mask = a.get("mask_path")
                                if mask and mask.__class__ is not str:
                                    raise _Invalid
                                affs.append((alab[1], act, mask, region, fb))
                            else:
                                pt = a["point"] if "point" in a else a.get("affordance_point")
                                if pt is not None:
                                    if pt.__class__ not in _SEQ or len(pt) != 2:
                                        raise _Invalid
                                    sum(pt) + 0.0
                                affs.append((alab[1], act, pt))
                        if affs:
                            flat += affs
                    parts.append((lab[1], pbox, affs, pname))
            n_part_affs = len(flat)
            raw = o.get("affordances")  # legacy object-level list: used only without part-level ones
            if raw:
                obj_affs = self._affs(raw, is_gt, None)
                if not n_part_affs:
                    flat = obj_affs
            name = o.get("name")
            if norm_names:
                name = normalize_label(name)
            records.append((name, bbox, parts, n_part_affs, len(flat), flat,
                            [pt[0] for pt in parts if pt[3]] if parts else (),
                            [a[0] for a in flat if a[1]] if flat else ()))
        return records

    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        acc = self.acc
        jc = self.json_ok.counts
        jc[json_ok] = jc.get(json_ok, 0) + 1
        self.json_ok.n += 1
        n_g = len(G)
        n_p = len(P)
        s_gwp = s_gwa = s_pg = s_ag = s_el = 0
        for g in G:
            if g[2]:
                s_gwp += 1
                s_pg += len(g[2])
                s_el += 1
            if g[4]:
                s_gwa += 1
                s_ag += g[4]
                if not g[2]:
                    s_el += 1
        s_pwp = s_pwa = s_pp = s_ap = 0
        for p in P:
            if p[2]:
                s_pwp += 1
                s_pp += len(p[2])
            if p[4]:
                s_pwa += 1
                s_ap += p[4]
        acc[0] += s_gwp
        acc[1] += s_gwa
        acc[2] += s_pwp
        acc[3] += s_pwa
        acc[4] += n_g
        acc[5] += n_p
        acc[6] += s_pg
        acc[7] += s_pp
        acc[8] += s_ag
        acc[9] += s_ap
        acc[10] += s_el

        if not n_g or not n_p:  # nothing can match
            key = (0.0 if n_p else (0.0 if n_g else 1.0), 0.0 if n_g else 1.0)
            c = self.obj05.counts
            c[key] = c.get(key, 0) + 1
            c = self.obj095.counts
            c[key] = c.get(key, 0) + 1
            return

        match = self._match
        obj_table = _iou_table(G, P, False)
        part_tables: dict = {}
        m95 = match(obj_table, 0.95) if obj_table else ()
        m05 = match(obj_table, 0.5)
        m = len(m05)
        key = (m / n_p, m / n_g)
        c = self.obj05.counts
        c[key] = c.get(key, 0) + 1
        m9 = len(m95)
        key = (m9 / n_p, m9 / n_g)
        c = self.obj095.counts
        c[key] = c.get(key, 0) + 1

        # ---------------- parts at IoU 0.95 (objects matched at 0.95)
        if m95:
            pp_p, pp_r = [], []
            for gi, pj in m95:
                gparts = G[gi][2]
                pparts = P[pj][2]
                gn, pn = len(gparts), len(pparts)
                if gn and pn:
                    table = part_tables[(gi, pj)] = _part_iou_table(gparts, pparts)
                    k = len(match(table, 0.95))
                    pp_p.append(k / pn)
                    pp_r.append(k / gn)
                elif gn or pn:
                    pp_p.append(0.0)
                    pp_r.append(0.0)
            if pp_p:
                key = (pp_p[0] if len(pp_p) == 1 else _small_mean(pp_p),
                       pp_r[0] if len(pp_r) == 1 else _small_mean(pp_r))
                c = self.part095.counts
                c[key] = c.get(key, 0) + 1
        if not m05:
            return

        # ---------------- everything at IoU 0.5
        obj_patterns = self.obj_patterns
        pair_patterns = self.pair_patterns
        in_region = self.in_region
        aff_matches = self._aff_matches
        part_tp = aff_tp = parse_ok_cond = parse_ok = hier_em = 0
        psem_m = psem_g = psem_p = asem_m = asem_g = asem_p = 0
        psem_pairs = pgeom05 = pgeom095 = asem_pairs = apoint_ok = 0
        sum_gpart = sum_ppart = sum_gaff = sum_paff = 0
        pp_p, pp_r, ap_p, ap_r, exact_hits = [], [], [], [], []
        for gi, pj in m05:
            g = G[gi]
            p = P[pj]
            gparts = g[2]
            pparts = p[2]
            gn, pn = len(gparts), len(pparts)
            g_npa, p_npa = g[3], p[3]
            g_flatn, p_flatn = g[4], p[4]
            obj_patterns[(gn and _GHP) | (g_npa and _GHA) | (g_flatn and _GANY)
                         | (pn and _PHP) | (p_npa and _PHA) | (p_flatn and _PANY)] += 1
            sum_gpart += gn
            sum_ppart += pn
            sum_gaff += g_flatn
            sum_paff += p_flatn

            # parts, and affordances inside matched parts
            m_aff = 0
            if gn and pn:
                table = part_tables.get((gi, pj))
                if table is None:
                    table = _part_iou_table(gparts, pparts)
                pairs = match(table, 0.5)
                k = len(pairs)
                part_r = k / gn
                part_p = k / pn
                for gpi, ppi in pairs:
                    ga = gparts[gpi][2]
                    pa = pparts[ppi][2]
                    if ga:
                        if pa:
                            pair_patterns[3] += 1
                            m_aff += aff_matches(ga, pa, gparts[gpi][1])
                        else:
                            pair_patterns[1] += 1
                    else:
                        pair_patterns[2 if pa else 0] += 1
            else:
                table = ()
                k = 0
                if gn or pn:
                    part_r = part_p = 0.0
                else:
                    part_r = part_p = None
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
            part_tp += k

            gflat = g[5]
            pflat = p[5]
            if gn:
                aff_tp += m_aff
                if g_npa:
                    if k and m_aff:
                        parse_ok += 1
                    hier_em += part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0
                else:
                    if k:
                        parse_ok += 1
                    hier_em += part_r == 1.0 and part_p == 1.0
            else:
                root = aff_matches(gflat, pflat, None, True) if gflat and pflat else 0
                aff_tp += root
                if g_flatn:
                    parse_ok += root > 0
                    hier_em += root == g_flatn and root == p_flatn
            if k and m_aff:
                parse_ok_cond += 1
            exact_hits.append(1.0 if part_r == 1.0 and part_p == 1.0 and aff_r == 1.0 and aff_p == 1.0 else 0.0)

            # semantic part names (multiset), and name-only greedy pairs -> box accuracy
            gv = g[6]
            pv = p[6]
            if gv or pv:
                psem_g += len(gv)
                psem_p += len(pv)
                if gv and pv:
                    psem_m += _multiset_common(gv, pv)
            if table:
                used = 0
                for gpi, row, _ in table:
                    if not gparts[gpi][0]:
                        continue
                    best_j = -1
                    best = -1.0
                    for j, sc in row:
                        if sc > best and not used & (1 << j):
                            best = sc
                            best_j = j
                    if best_j != -1:
                        used |= 1 << best_j
                        psem_pairs += 1
                        if best >= 0.5:
                            pgeom05 += 1
                            if best >= 0.95:
                                pgeom095 += 1

            # semantic actions (multiset), and action-only greedy pairs -> point accuracy
            gv = g[7]
            pv = p[7]
            if gv or pv:
                asem_g += len(gv)
                asem_p += len(pv)
                if gv and pv:
                    asem_m += _multiset_common(gv, pv)
                    used = 0
                    for ga in gflat:
                        gact = ga[0]
                        if not gact:
                            continue
                        bit = 1
                        for pa in pflat:
                            if not used & bit and pa[0] == gact:
                                used |= bit
                                asem_pairs += 1
                                if ga[2]:  # a mask path: the full region rule
                                    apoint_ok += in_region(pa[2], ga, None)
                                else:
                                    pt = pa[2]
                                    box = ga[3]
                                    if pt is not None and box is not None:
                                        x, y = pt
                                        x1, y1, x2, y2 = box
                                        x1, x2 = (x2 if x2 < x1 else x1), (x2 if x2 > x1 else x1)
                                        y1, y2 = (y2 if y2 < y1 else y1), (y2 if y2 > y1 else y1)
                                        if x1 <= x <= x2 and y1 <= y <= y2:
                                            apoint_ok += 1
                                break
                            bit <<= 1

        if pp_p:
            key = (pp_p[0] if len(pp_p) == 1 else _small_mean(pp_p), pp_r[0] if len(pp_r) == 1 else _small_mean(pp_r))
            c = self.part05.counts
            c[key] = c.get(key, 0) + 1
        if ap_p:
            key = (ap_p[0] if len(ap_p) == 1 else _small_mean(ap_p), ap_r[0] if len(ap_r) == 1 else _small_mean(ap_r))
            c = self.aff.counts
            c[key] = c.get(key, 0) + 1
            v = exact_hits[0] if len(exact_hits) == 1 else _small_mean(exact_hits)
            c = self.hier.counts
            c[v] = c.get(v, 0) + 1
            self.hier.n += 1
        acc[11] += m
        acc[12] += part_tp
        acc[13] += aff_tp
        acc[14] += parse_ok_cond
        acc[15] += parse_ok
        acc[16] += hier_em
        acc[17] += psem_m
        acc[18] += psem_g
        acc[19] += psem_p
        acc[20] += asem_m
        acc[21] += asem_g
        acc[22] += asem_p
        acc[23] += psem_pairs
        acc[24] += pgeom05
        acc[25] += pgeom095
        acc[26] += asem_pairs
        acc[27] += apoint_ok
        acc[28] += sum_gpart
        acc[29] += sum_ppart
        acc[30] += sum_gaff
        acc[31] += sum_paff

    def result(self) -> dict:
        c = dict(zip(_OBJ_KEYS, self.acc))
        # matched-object structure counts from the pattern histogram
        pat = self.obj_patterns
        matched = sum(pat)

        def count(pred) -> int:
            return sum(n for key, n in enumerate(pat) if n and pred(key))

        m_gt_parts = count(lambda k: k & _GHP)
        m_gt_affs = count(lambda k: k & _GHA)
        m_pred_parts = count(lambda k: k & _PHP)
        m_pred_affs = count(lambda k: k & _PHA)
        part_mismatch = count(lambda k: k & _GHP and not k & _PHP)
        aff_mismatch = count(lambda k: k & _GHA and not k & _PHA)
        pexp_tp = count(lambda k: k & _GHP and k & _PHP)
        pover_base = matched - m_gt_parts
        pover = count(lambda k: not k & _GHP and k & _PHP)
        loose = count(lambda k: _loose_strict(k)[0])
        strict = count(lambda k: _loose_strict(k)[1])
        pp = self.pair_patterns
        aexp_gt = pp[1] + pp[3]
        aexp_pred = pp[2] + pp[3]
        aexp_tp = pp[3]
        aover_base = pp[0] + pp[2]
        aover = pp[2]
        aunder_base = aexp_gt
        aunder = pp[1]

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
        pexp_p = _ratio(pexp_tp, m_pred_parts)
        pexp_r = _ratio(pexp_tp, m_gt_parts)
        aexp_p = _ratio(aexp_tp, aexp_pred)
        aexp_r = _ratio(aexp_tp, aexp_gt)
        psem_p = _ratio(c["psem_m"], c["psem_pred"])
        psem_r = _ratio(c["psem_m"], c["psem_gt"])
        asem_p = _ratio(c["asem_m"], c["asem_pred"])
        asem_r = _ratio(c["asem_m"], c["asem_gt"])
        avg_gt_parts = _int_mean(c["sum_gt_parts"], matched)
        avg_pred_parts = _int_mean(c["sum_pred_parts"], matched)
        avg_gt_affs = _int_mean(c["sum_gt_affs"], matched)
        avg_pred_affs = _int_mean(c["sum_pred_affs"], matched)
        diagnostics = {
            "json_parse_success_rate": self.json_ok.mean(),
            "part_field_emission_rate": _ratio(c["pred_with_parts"], c["gt_with_parts"]),
            "affordance_field_emission_rate": _ratio(c["pred_with_affs"], c["gt_with_affs"]),
            "matched_object_part_emission_rate": _ratio(m_pred_parts, m_gt_parts),
            "matched_object_affordance_emission_rate": _ratio(m_pred_affs, m_gt_affs),
            "part_mismatch_rate": _ratio(part_mismatch, m_gt_parts),
            "affordance_mismatch_rate": _ratio(aff_mismatch, m_gt_affs),
            "matched_objects_at_0.5": matched,
            "loose_parse_success_count_0.5": loose,
            "strict_parse_success_count_0.5": strict,
            "parse_success_count_0.5": c["parse_ok"],
            "hier_em_e2e_success_count_0.5": c["hier_em"],
            "parse_eligible_gt_objects_0.5": elig,
            "parse_rate_given_matched_object_0.5": _ratio(c["parse_ok_cond"], matched),
            "part_expansion_tp": pexp_tp,
            "part_expansion_gt_positive": m_gt_parts,
            "part_expansion_pred_positive": m_pred_parts,
            "aff_expansion_tp": aexp_tp,
            "aff_expansion_gt_positive": aexp_gt,
            "aff_expansion_pred_positive": aexp_pred,
            "part_overexpansion_rate": _ratio(pover, pover_base),
            "part_underexpansion_rate": _ratio(part_mismatch, m_gt_parts),
            "aff_overexpansion_rate": _ratio(aover, aover_base),
            "aff_underexpansion_rate": _ratio(aunder, aunder_base),
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
            "ParseRate": _ratio(loose, elig),
            "strict_parse_rate_0.5": _ratio(strict, elig),
            "hier_em_e2e_0.5": _ratio(c["hier_em"], elig),
            "parse_rate_0.5": _ratio(c["parse_ok"], elig),
            "hierarchical_exact_match": self.hier.mean(),
            "part_expansion": {"precision": pexp_p, "recall": pexp_r, "f1": f1(pexp_p, pexp_r)},
            "aff_expansion": {"precision": aexp_p, "recall": aexp_r, "f1": f1(aexp_p, aexp_r)},
            "diagnostics": diagnostics,
        }


def _int_mean(total: int, n: int):
    """``statistics.mean`` of n ints summing to ``total`` (0.0 when empty)."""
    if not n:
        return 0.0
    q = Fraction(total, n)
    return int(q) if q.denominator == 1 else float(q)


# =============================================================================================
# scene-level metric
# =============================================================================================


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

    def _aff_in_pairs(self, gparts, pparts, part_pairs) -> int:
        m = 0
        for gpi, ppi in part_pairs:
            gpart = gparts[gpi]
            m += self._aff_matches(gpart[2], pparts[ppi][2], gpart[1])
        return m

    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        c = self.c
        n_g = len(G)
        n_p = len(P)
        gpart_all = sum(len(g[2]) for g in G)
        ppart_all = sum(len(p[2]) for p in P)
        gaff_all = sum(g[3] for g in G)
        paff_all = sum(p[3] for p in P)
        obj_table = _iou_table(G, P, False) if n_g and n_p else []
        part_tables: dict = {}
        matches05 = []
        part_rec_img = aff_rec_img = 1.0
        for thr in (0.5, 0.95):
            matches = self._match(obj_table, thr)
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
                if gparts and pparts:
                    table = part_tables.get((gi, pj))
                    if table is None:
                        table = part_tables[(gi, pj)] = _part_iou_table(gparts, pparts)
                    pairs = self._match(table, thr)
                else:
                    pairs = []
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
            if gparts and pparts:
                table = part_tables.get((gi, pj))
                if table is None:
                    table = part_tables[(gi, pj)] = _part_iou_table(gparts, pparts)
                pairs = self._match(table, 0.5)
            else:
                pairs = []
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
                gflat = g[5]
                pflat = p[5]
                root = self._aff_matches(gflat, pflat, None, True)
                em = root == len(gflat) and root == len(pflat)
            else:
                em = False
            c["hier_em"] += em

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
            "scene_exact_success_count_0.5": int(self.exact.counts.get(1.0, 0)),
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
                  stats: dict | None = None, **options) -> dict:
    """Score an answer JSONL file in one streaming pass; returns the reference result dict.

    A malformed line raises :class:`InputError` naming the line and the field, unless
    ``skip_invalid`` is set (the line is then left out, and ``on_skip(message)`` is called).
    Raises InputError when the file holds no answer line at all. ``stats``, when given, receives
    ``samples`` (scored) and ``skipped`` counts.
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
    if stats is not None:
        stats["samples"] = metric.num_samples
        stats["skipped"] = seen - metric.num_samples
    if seen == 0:
        raise InputError(f"{path}: no answer lines (the file is empty)")
    if metric.num_samples == 0:
        raise InputError(f"{path}: every line was malformed; nothing to score")
    return metric.result()


def result_text(result: dict) -> str:
    """The text the reference writes: ``json.dump(indent=2, ensure_ascii=False)``, no trailing newline."""
    return json.dumps(result, ensure_ascii=False, indent=2)
