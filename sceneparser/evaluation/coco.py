"""COCO export and COCO box AP (through pycocotools) for objects and parts.

:class:`CocoBuilder` turns samples -- ground truth and predictions in the answer schema
(``{"objects": [{"name", "bbox", "parts": [{"part_name", "bbox", "affordances": [...]}]}]}``,
pixel ``[x0, y0, x1, y1]`` boxes) -- into a COCO ground-truth dataset and a COCO results list:

* **images**: one per image (answer lines of one image, one per category, share it); ``file_name``
  is the ``image_path``; ``width`` / ``height`` only where known (parse output).
* **categories**: one per object name (``"level": "object"``) and one per ``object:part`` pair
  (``"level": "part"``, ``"object"``, ``"part"``, ``"object_category_id"`` the link to the
  object's category, ``supercategory`` the object name). Object names are kept exactly (the
  object metric compares them exactly); part names are stripped and lower-cased (the part metric
  compares them so). Names only the predictions use get a category too; COCO scores a category
  only where the ground truth has it.
* **annotations**: boxes as COCO ``[x, y, w, h]``, ``area = w * h``, ``iscrowd = 0``; a part
  carries ``obj_ann_id``, the id of its object's annotation (as PACO does). Affordance points
  ride along in an extra field, ``"affordances": [{"action", "point", ("score")}]`` on the part.
* **results**: the same fields plus ``score``, with ``id`` = its 1-based position, the id
  ``COCO.loadRes`` gives it, so a part's ``obj_ann_id`` still names its object after loading.
  The score is the element's confidence (:mod:`sceneparser.scores`) where the input has one,
  else **1.0**: answer.jsonl predictions carry no scores, and with every score equal COCO ranks
  detections in file order. :attr:`CocoBuilder.scored` / ``unscored`` count the two.

Boxes that COCO cannot hold (missing, not 4 finite numbers, zero or negative width or height)
are left out and counted in :attr:`CocoBuilder.skipped` by reason, never silently.

:func:`evaluate` scores with pycocotools' ``COCOeval`` (box IoU), once over the object
categories and once over the part categories: AP, AP50, AP75, AP by size (small < 32² px, medium,
large > 96²) and AR, exactly ``COCOeval.stats``. There is no AP code of our own here.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from sceneparser.data.records import load_records
from sceneparser.errors import InputError, require
from sceneparser.evaluation.filters import is_none_action, is_pseudo_part, norm
from sceneparser.evaluation.ground_truth import build_gt_for_category

__all__ = [
    "STAT_NAMES",
    "CocoBuilder",
    "build",
    "coco_box",
    "evaluate",
    "format_table",
    "iter_answer_rows",
    "read_parse_output",
    "samples_from_answers",
    "scoring_copy",
    "samples_from_parse_output",
]

#: the names of ``COCOeval.stats`` for boxes, in order
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
LEVELS = ("object", "part")


def coco_box(box: Any) -> list | None:
    """``[x0, y0, x1, y1]`` -> COCO ``[x, y, w, h]``; ``None`` for a box COCO cannot hold."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if any(isinstance(v, bool) for v in box) or not math.isfinite(x0 + y0 + x1 + y1):
        return None
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def _point(value: Any) -> list | None:
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        try:
            x, y = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        if math.isfinite(x + y):
            return [x, y]
    return None


def _list(value: Any) -> list:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class CocoBuilder:
    """Collects samples into a COCO ground truth (:meth:`ground_truth`) and results (:meth:`results`).

    ``ignore_pseudo_part`` / ``ignore_none_action`` are the reference filters
    (:mod:`sceneparser.evaluation.filters`), applied to ground truth and predictions alike.
    """

    def __init__(self, *, ignore_pseudo_part: bool = False, ignore_none_action: bool = False):
        self.ignore_pseudo_part = ignore_pseudo_part
        self.ignore_none_action = ignore_none_action
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.detections: list[dict] = []
        self.categories: list[dict] = []
        self._image_ids: dict[Any, int] = {}
        self._cat_ids: dict[tuple, int] = {}
        self.skipped: Counter[str] = Counter()
        self.scored = 0
        self.unscored = 0
        self.samples = 0

    # ---------------------------------------------------------------- ids
    def image_id(self, key: Any, file_name: str | None, size: Any = None) -> int:
        """The id of the image ``key`` (added on first sight)."""
        iid = self._image_ids.get(key)
        if iid is None:
            iid = self._image_ids[key] = len(self.images) + 1
            img = {"id": iid, "file_name": file_name}
            if isinstance(size, (list, tuple)) and len(size) == 2:
                img["width"], img["height"] = int(size[0]), int(size[1])
            self.images.append(img)
        return iid

    def category_id(self, obj_name: Any, part_name: Any = None) -> int:
        """The id of an object category, or of the ``object:part`` category when ``part_name`` is given."""
        obj = obj_name if isinstance(obj_name, str) else str(obj_name)
        key = (obj,) if part_name is None else (obj, norm(part_name))
        cid = self._cat_ids.get(key)
        if cid is not None:
            return cid
        if part_name is None:
            cat = {"id": len(self.categories) + 1, "name": obj, "supercategory": "object", "level": "object"}
        else:
            parent = self.category_id(obj)
            cat = {"id": len(self.categories) + 1, "name": f"{obj}:{key[1]}", "supercategory": obj,
                   "level": "part", "object": obj, "part": key[1], "object_category_id": parent}
        self.categories.append(cat)
        self._cat_ids[key] = cat["id"]
        return cat["id"]

    # ---------------------------------------------------------------- content
    def _parts(self, obj: dict) -> list[dict]:
        parts = _list(obj.get("parts"))
        if self.ignore_pseudo_part:
            parts = [p for p in parts if not is_pseudo_part(p)]
        return parts

    def _affordances(self, part: dict, scored: bool) -> list[dict]:
        out = []
        for a in _list(part.get("affordances")):
            if self.ignore_none_action and is_none_action(a):
                continue
            pt = _point(a.get("point"))
            if pt is None and isinstance(a.get("points"), list) and a["points"]:
                pt = _point(a["points"][0])
            item = {"action": a.get("action"), "point": pt}
            if scored and isinstance(a.get("score"), (int, float)):
                item["score"] = float(a["score"])
            out.append(item)
        return out

    def _score(self, element: dict) -> float:
        s = element.get("score")
        if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s):
            self.scored += 1
            return float(s)
        self.unscored += 1
        return 1.0

    def add_ground_truth(self, image_id: int, objects: Iterable[dict]) -> None:
        for o in objects:
            if not isinstance(o, dict):
                continue
            bbox = coco_box(o.get("bbox"))
            if bbox is None:
                self.skipped["ground-truth object without a usable box"] += 1
                continue
            name = o.get("name")
            oid = len(self.annotations) + 1
            self.annotations.append({"id": oid, "image_id": image_id, "category_id": self.category_id(name),
                                     "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})
            for p in self._parts(o):
                pbox = coco_box(p.get("bbox"))
                if pbox is None or not p.get("part_name"):
                    self.skipped["ground-truth part without a name or a usable box"] += 1
                    continue
                self.annotations.append({
                    "id": len(self.annotations) + 1, "image_id": image_id,
                    "category_id": self.category_id(name, p.get("part_name")), "bbox": pbox,
                    "area": pbox[2] * pbox[3], "iscrowd": 0, "obj_ann_id": oid,
                    "affordances": self._affordances(p, scored=False),
                })

    def add_predictions(self, image_id: int, objects: Iterable[dict]) -> None:
        for o in objects:
            if not isinstance(o, dict):
                continue
            bbox = coco_box(o.get("bbox"))
            if bbox is None:
                self.skipped["predicted object without a usable box"] += 1
                continue
            name = o.get("name")
            oid = len(self.detections) + 1
            self.detections.append({"id": oid, "image_id": image_id, "category_id": self.category_id(name),
                                    "bbox": bbox, "score": self._score(o)})
            for p in self._parts(o):
                pbox = coco_box(p.get("bbox"))
                if pbox is None:
                    self.skipped["predicted part without a usable box"] += 1
                    continue
                self.detections.append({
                    "id": len(self.detections) + 1, "image_id": image_id,
                    "category_id": self.category_id(name, p.get("part_name")), "bbox": pbox,
                    "score": self._score(p), "obj_ann_id": oid,
                    "affordances": self._affordances(p, scored=True),
                })

    def add_sample(self, key: Any, file_name: str | None, gt: Iterable[dict] | None,
                   predictions: Iterable[dict] | None, size: Any = None) -> None:
        """One sample: the ground-truth and predicted objects of image ``key``."""
        iid = self.image_id(key, file_name, size)
        self.samples += 1
        if gt is not None:
            self.add_ground_truth(iid, gt)
        if predictions is not None:
            self.add_predictions(iid, predictions)

    # ---------------------------------------------------------------- output
    @property
    def score_note(self) -> str:
        if self.unscored and not self.scored:
            return "no prediction carries a confidence score: every score is 1.0 (detections ranked in file order)"
        if self.unscored:
            return f"{self.unscored} of {self.scored + self.unscored} detections carry no score: 1.0 used for them"
        return "every detection carries the model's confidence score"

    def ground_truth(self) -> dict:
        return {
            "info": {"description": "sceneparser COCO export (objects and object:part categories)",
                     "score_note": self.score_note},
            "images": self.images,
            "annotations": self.annotations,
            "categories": self.categories,
        }

    def results(self) -> list[dict]:
        return self.detections

    def summary(self) -> dict:
        return {"samples": self.samples, "images": len(self.images),
                "categories": {lv: sum(c["level"] == lv for c in self.categories) for lv in LEVELS},
                "ground_truth": {lv: self._count(self.annotations, lv) for lv in LEVELS},
                "detections": {lv: self._count(self.detections, lv) for lv in LEVELS},
                "scored_detections": self.scored, "unscored_detections": self.unscored,
                "score_note": self.score_note, "skipped": dict(self.skipped)}

    def _count(self, anns: list[dict], level: str) -> int:
        return sum(("obj_ann_id" in a) == (level == "part") for a in anns)


# -------------------------------------------------------------------------------- inputs


def iter_answer_rows(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """``(line, row)`` for every non-blank line of a JSONL file; a bad line is a clear error."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"file not found: {p}")
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{p}: line {n}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise InputError(f"{p}: line {n}: a line must be a JSON object")
            yield n, row


def _objects(d: Any, where: str) -> list:
    if d is None:
        return []
    if not isinstance(d, dict):
        raise InputError(f"{where} must be a JSON object, got {type(d).__name__}")
    objs = d.get("objects") or []
    if not isinstance(objs, list):
        raise InputError(f"{where}.objects must be a list, got {type(objs).__name__}")
    return objs


def samples_from_answers(path: str | os.PathLike, builder: CocoBuilder) -> CocoBuilder:
    """Add every line of an ``answer.jsonl`` (``gt`` + ``extracted_predictions``) to ``builder``.

    Lines of one image (``record_index`` and ``image_path``) share one COCO image.
    """
    for n, row in iter_answer_rows(path):
        if "gt" not in row:
            raise InputError(f"{path}: line {n}: not an answer line (no 'gt'); for `sceneparser parse` "
                             "output give the benchmark JSONL with --data")
        key = (row.get("record_index"), row.get("image_path"))
        builder.add_sample(key, row.get("image_path"), _objects(row.get("gt"), f"line {n}: gt"),
                           _objects(row.get("extracted_predictions"), f"line {n}: extracted_predictions"))
    return builder


def read_parse_output(path: str | os.PathLike) -> list[dict]:
    """The results of ``sceneparser parse --out`` (``.jsonl``: one per line; ``.json``: a list)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        try:
            rows = orjson.loads(p.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise InputError(f"cannot read {p}: {exc}") from None
        if not isinstance(rows, list):
            raise InputError(f"{p}: expected a JSON list of parse results")
        return [r for r in rows if isinstance(r, dict)]
    return [row for _, row in iter_answer_rows(p)]


def _path_key(path: str, root: str | os.PathLike | None) -> str:
    full = path if os.path.isabs(path) else os.path.join(os.fspath(root) if root is not None else os.getcwd(), path)
    return os.path.normpath(os.path.abspath(full))


def samples_from_parse_output(rows: Iterable[dict], records: Iterable[dict], builder: CocoBuilder, *,
                              image_root: str | os.PathLike | None = None) -> CocoBuilder:
    """Add ``sceneparser parse`` results (``image``, ``query``/``scene``, ``objects`` with scores)
    with their ground truth from benchmark ``records`` (matched by image path).

    An image's ground truth is every object of the categories asked about it (all of them for a
    scene query), as ``sceneparser eval`` builds it. Results whose image is not in ``records``
    are counted in ``builder.skipped``.
    """
    by_path: dict[str, dict] = {}
    for rec in records:
        by_path.setdefault(_path_key(rec["image_path"], image_root), rec)
    asked: dict[str, tuple[dict, set, list]] = {}
    for row in rows:
        image = row.get("image")
        rec = by_path.get(_path_key(image, None)) if isinstance(image, str) else None
        if rec is None and isinstance(image, str):
            rec = by_path.get(_path_key(image, image_root))
        if rec is None:
            builder.skipped["parse result whose image is not in the benchmark file"] += 1
            continue
        key = _path_key(rec["image_path"], image_root)
        _, cats, preds = asked.setdefault(key, (rec, set(), []))
        if row.get("scene") or row.get("query") is None:
            cats.update(o.get("phrase") for o in rec.get("objects") or [] if isinstance(o, dict))
        else:
            cats.add(row.get("query"))
        preds.append(row)
    for key, (rec, cats, preds) in asked.items():
        gt = [o for c in sorted(cats, key=str) for o in build_gt_for_category(rec, c)["objects"]]
        size = next((r.get("image_size") for r in preds if r.get("image_size")), None)
        builder.add_sample(key, rec["image_path"], gt, None, size)
        iid = builder.image_id(key, rec["image_path"])
        for r in preds:
            builder.add_predictions(iid, _objects(r, "parse result"))
    return builder


def _first_row(path: Path) -> dict | None:
    if path.suffix.lower() == ".json":
        return None
    return next((row for _, row in iter_answer_rows(path)), None)


def build(source: str | os.PathLike, *, data: str | os.PathLike | None = None,
          image_root: str | os.PathLike | None = None, ignore_pseudo_part: bool = False,
          ignore_none_action: bool = False) -> CocoBuilder:
    """A :class:`CocoBuilder` filled from ``source``: an ``answer.jsonl``, a ``sceneparser eval``
    output directory (its ``answer.jsonl``), or ``sceneparser parse --out`` results together with
    the benchmark JSONL ``data`` they were run on."""
    path = Path(source)
    if path.is_dir():
        path = path / "answer.jsonl"
        if not path.is_file():
            raise InputError(f"{source} holds no answer.jsonl (is it a `sceneparser eval` output directory?)")
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    builder = CocoBuilder(ignore_pseudo_part=ignore_pseudo_part, ignore_none_action=ignore_none_action)
    first = _first_row(path)
    if first is not None and "gt" in first:
        return samples_from_answers(path, builder)
    if data is None:
        raise InputError(f"{path} holds no ground truth ('gt'): for `sceneparser parse` results give the "
                         "benchmark JSONL they were run on with --data (and --image-root)")
    report = load_records(data, image_root)
    if report.errors:
        builder.skipped["unusable benchmark line"] += len(report.errors)
    return samples_from_parse_output(read_parse_output(path), (r.data for r in report.records), builder,
                                     image_root=image_root)


# -------------------------------------------------------------------------------- scoring


def _coco_classes():
    coco = require("pycocotools.coco", "coco")
    cocoeval = require("pycocotools.cocoeval", "coco")
    return coco.COCO, cocoeval.COCOeval


def load_coco(ground_truth: dict):
    """A pycocotools ``COCO`` object over an in-memory ground-truth dict (nothing printed)."""
    COCO, _ = _coco_classes()
    gt = COCO()
    gt.dataset = ground_truth
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


_GT_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
_NO_SEGMENTATION: list = []  # shared and never written: keeps COCO.loadRes from making a polygon per box


def scoring_copy(ground_truth: dict, results: list[dict]) -> tuple[dict, list[dict]]:
    """Slim copies with only what ``COCOeval`` reads (so the full export can be freed before
    scoring; ``COCOeval`` also writes into the ground-truth annotations)."""
    gt = {"images": ground_truth["images"], "categories": ground_truth["categories"],
          "annotations": [{k: a[k] for k in _GT_KEYS} for a in ground_truth["annotations"]]}
    dets = [{"image_id": r["image_id"], "category_id": r["category_id"], "bbox": r["bbox"], "score": r["score"],
             "segmentation": _NO_SEGMENTATION} for r in results]
    return gt, dets


def _level_coco(ground_truth: dict, results: list[dict], cat_ids: set):
    """pycocotools ``COCO`` objects for the ground truth and results of ``cat_ids`` only."""
    COCO, _ = _coco_classes()
    anns = [a for a in ground_truth["annotations"] if a["category_id"] in cat_ids]
    gt = load_coco({"images": ground_truth["images"], "categories": ground_truth["categories"], "annotations": anns})
    dets = [r for r in results if r["category_id"] in cat_ids]
    with contextlib.redirect_stdout(io.StringIO()):
        if dets:
            dt = gt.loadRes(dets)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": list(ground_truth["images"]), "categories": list(ground_truth["categories"]),
                          "annotations": []}
            dt.createIndex()
    return gt, dt, len(anns)


def evaluate(ground_truth: dict, results: list[dict], iou_type: str = "bbox", *, copy: bool = True) -> dict:
    """COCO AP / AR for the object categories and for the part categories, through pycocotools.

    Returns ``{"object": {...}, "part": {...}}``: ``stats`` (``COCOeval.stats``, -1 where COCO has
    no ground truth for a number), the same by name (:data:`STAT_NAMES`, ``None`` for -1),
    ``categories`` and ``ground_truth`` counts. A level without ground truth is ``None``. Each
    level is scored on its own categories (``params.catIds``), exactly as ``COCOeval`` over all
    of them with ``params.catIds`` set to that level's ids. ``copy=False`` scores the given dicts
    themselves (pycocotools adds fields to them): pass :func:`scoring_copy`'s.
    """
    if iou_type != "bbox":
        raise InputError(f"--iou-type {iou_type}: only 'bbox' is supported (the answers hold boxes, not masks)")
    _, COCOeval = _coco_classes()
    if copy:
        ground_truth, results = scoring_copy(ground_truth, results)
    out: dict[str, Any] = {}
    for level in LEVELS:
        cat_ids = [c["id"] for c in ground_truth["categories"] if c.get("level", "object") == level]
        gt, dt, n_gt = _level_coco(ground_truth, results, set(cat_ids))
        if not n_gt:
            out[level] = None
            continue
        ev = COCOeval(gt, dt, iou_type)
        ev.params.catIds = cat_ids
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(s) for s in ev.stats]
        del ev, gt, dt
        out[level] = {
            **{name: (None if s < 0 else s) for name, s in zip(STAT_NAMES, stats)},
            "stats": stats,
            "categories": len(cat_ids),
            "ground_truth": n_gt,
        }
    return out


def format_table(metrics: dict) -> str:
    """The AP numbers as a small text table (objects and parts side by side)."""
    names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
    lines = [f"  {'metric':<8}" + "".join(f"{lv + 's':>10}" for lv in LEVELS)]
    for name in names:
        cells = []
        for lv in LEVELS:
            m = metrics.get(lv)
            v = None if m is None else m.get(name)
            cells.append(f"{'-' if v is None else f'{v:.4f}':>10}")
        lines.append(f"  {name:<8}" + "".join(cells))
    return "\n".join(lines)
