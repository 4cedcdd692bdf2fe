"""Import COCO-style detection files as benchmark JSONL records (``sceneparser convert --from coco|paco``).

* ``coco``: a COCO detection file (``images``, ``annotations``, ``categories``) becomes one record
  per image with its objects (``phrase`` = the category name, ``object_bbox`` = the box as
  ``[x0, y0, x1, y1]``) and no parts.
* ``paco``: a PACO file (the same layout; an object annotation has ``obj_ann_id`` equal to its
  own ``id``, a part annotation the ``id`` of its object, and part categories are named
  ``object:part``) becomes records with objects and their parts (``part_name`` = the name after
  the last ``:``, ``part_bbox``, ``is_pseudo_part: false``, no affordances).

``image_path`` is the image's ``file_name``: pass the image folder as ``--image-root``. Records
keep the order of ``images`` and of ``annotations`` and validate with
:func:`sceneparser.data.records.validate_record`. Images left without objects get no record.

A category map (``--categories MAP.json``, ``{"name in the file": "new name" | null}``) renames
categories by their name in the file (a part category by its full ``object:part`` name; the
new name's part after the last ``:`` is the part name); ``null`` drops the category.

Nothing is dropped silently: every annotation (or image) left out is in
:attr:`ImportReport.skipped` with its reason -- annotations of images not in ``images`` or not on
disk, unknown category ids, crowd regions, boxes that are not 4 finite numbers, of zero area or
outside the image (a box over the edge by at most 1 px is clipped), parts whose object is missing
or was itself left out, and (``coco``) part annotations.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import orjson

from sceneparser.data.records import resolve_image_path
from sceneparser.errors import InputError
from sceneparser.io import write_jsonl

__all__ = ["FORMATS", "ImportReport", "import_coco", "load_category_map", "read_json", "write_import"]

FORMATS = ("coco", "paco")
EDGE_TOLERANCE = 1.0  # pixels a box may reach past the image edge before it is "outside the image"


@dataclasses.dataclass
class ImportReport:
    """The records built and every annotation or image left out (``{"reason", ...ids}``)."""

    source: str
    records: list[dict]
    skipped: list[dict]
    images: int = 0
    images_without_objects: int = 0

    def reasons(self) -> Counter:
        return Counter(s["reason"] for s in self.skipped)

    def summary(self) -> str:
        n_obj = sum(len(r["objects"]) for r in self.records)
        n_part = sum(len(o["parts"]) for r in self.records for o in r["objects"])
        lines = [f"imported {self.source}: {len(self.records)} records from {self.images} images "
                 f"({n_obj} objects, {n_part} parts); {len(self.skipped)} left out, "
                 f"{self.images_without_objects} images without objects"]
        lines += [f"  left out {n:>7} x {reason}" for reason, n in self.reasons().most_common()]
        return "\n".join(lines)


def read_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    try:
        return orjson.loads(p.read_bytes())
    except FileNotFoundError:
        raise InputError(f"file not found: {p}") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise InputError(f"cannot read {p} as JSON: {exc}") from None


def load_category_map(path: str | os.PathLike | None) -> dict:
    """``{"old": "new" | null}`` from a JSON file (``None``: no renaming)."""
    if path is None:
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) or v is None for v in data.values()):
        raise InputError(f"{path}: a category map is a JSON object {{\"old name\": \"new name\" or null}}")
    return data


def _box(bbox: Any, size: tuple[float, float] | None) -> tuple[list | None, str | None]:
    """COCO ``[x, y, w, h]`` -> ``[x0, y0, x1, y1]`` inside the image, or the reason it cannot be used."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in bbox):
        return None, "box is not 4 numbers [x, y, w, h]"
    x, y, w, h = (float(v) for v in bbox)
    if not math.isfinite(x + y + w + h):
        return None, "box has a NaN or infinite value"
    if w <= 0 or h <= 0:
        return None, "zero-area box"
    x0, y0, x1, y1 = x, y, x + w, y + h
    if size is not None:
        width, height = size
        if x0 < -EDGE_TOLERANCE or y0 < -EDGE_TOLERANCE or x1 > width + EDGE_TOLERANCE or y1 > height + EDGE_TOLERANCE:
            return None, "box outside the image"
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if x1 <= x0 or y1 <= y0:
            return None, "box outside the image"
    return [x0, y0, x1, y1], None


def _size(img: Mapping) -> tuple[float, float] | None:
    w, h = img.get("width"), img.get("height")
    if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
        return float(w), float(h)
    return None


def import_coco(source: str | os.PathLike | Mapping, fmt: str = "coco", *, categories: Mapping | None = None,
                image_root: str | os.PathLike | None = None, check_images: bool = False) -> ImportReport:
    """Records from a COCO (``fmt="coco"``) or PACO (``fmt="paco"``) file or dict (see the module doc).

    ``check_images`` also leaves out the images whose file is not under ``image_root``.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown import format {fmt!r}; choose one of {', '.join(FORMATS)}")
    data = read_json(source) if not isinstance(source, Mapping) else source
    name = str(source) if not isinstance(source, Mapping) else "<dict>"
    if not isinstance(data, Mapping) or not isinstance(data.get("annotations"), list) \
            or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise InputError(f"{name}: not a COCO file (needs the lists 'images', 'annotations' and 'categories')")
    rename = dict(categories or {})
    skipped: list[dict] = []

    cats: dict[Any, str | None] = {}
    for c in data["categories"]:
        if isinstance(c, Mapping) and "id" in c and isinstance(c.get("name"), str):
            cats[c["id"]] = rename.get(c["name"], c["name"])

    images: dict[Any, dict] = {}
    order: list[Any] = []
    for img in data["images"]:
        if not isinstance(img, Mapping) or "id" not in img or not isinstance(img.get("file_name"), str):
            skipped.append({"reason": "image entry without an id or a file_name", "image": str(img)[:80]})
            continue
        if check_images and not resolve_image_path(img["file_name"], image_root).is_file():
            skipped.append({"reason": "image file not found", "image_id": img["id"], "file_name": img["file_name"]})
            continue
        images[img["id"]] = img
        order.append(img["id"])
    missing_images = {s["image_id"] for s in skipped if s["reason"] == "image file not found"}

    objects: dict[Any, dict] = {}  # object annotation id -> object entry
    by_image: dict[Any, list[dict]] = {}
    parts: list[Mapping] = []
    for ann in data["annotations"]:
        if not isinstance(ann, Mapping):
            skipped.append({"reason": "annotation is not a JSON object"})
            continue
        aid = ann.get("id")
        where = {"annotation_id": aid, "image_id": ann.get("image_id")}
        is_part = "obj_ann_id" in ann and ann.get("obj_ann_id") != aid
        if is_part and fmt == "coco":
            skipped.append({"reason": "part annotation (import with --from paco to keep parts)", **where})
            continue
        reason = _annotation_problem(ann, images, missing_images, cats)
        if reason is None:
            box, reason = _box(ann.get("bbox"), _size(images[ann["image_id"]]))
        if reason is not None:
            skipped.append({"reason": reason, **where})
            continue
        if is_part:
            parts.append(ann)
            continue
        entry = {"phrase": cats[ann["category_id"]], "object_bbox": box, "parts": []}
        if aid is not None:
            objects[aid] = entry
        by_image.setdefault(ann["image_id"], []).append(entry)

    known_objects = {a.get("id") for a in data["annotations"] if isinstance(a, Mapping)
                     and ("obj_ann_id" not in a or a.get("obj_ann_id") == a.get("id"))}
    for ann in parts:
        where = {"annotation_id": ann.get("id"), "image_id": ann.get("image_id"), "obj_ann_id": ann.get("obj_ann_id")}
        parent = objects.get(ann["obj_ann_id"])
        if parent is None:
            reason = ("part whose object was left out" if ann["obj_ann_id"] in known_objects
                      else "part whose object annotation is missing")
            skipped.append({"reason": reason, **where})
            continue
        box, _ = _box(ann.get("bbox"), _size(images[ann["image_id"]]))
        parent["parts"].append({"part_name": cats[ann["category_id"]].rsplit(":", 1)[-1], "part_bbox": box,
                                "is_pseudo_part": False, "affordances": []})

    records = [{"image_path": images[i]["file_name"], "objects": by_image[i]} for i in order if i in by_image]
    return ImportReport(name, records, skipped, images=len(order), images_without_objects=len(order) - len(records))


def _annotation_problem(ann: Mapping, images: Mapping, missing_images: set, cats: Mapping) -> str | None:
    if ann.get("image_id") in missing_images:
        return "image file not found"
    if ann.get("image_id") not in images:
        return "image id not in 'images'"
    cid = ann.get("category_id")
    if cid not in cats:
        return "unknown category id"
    if cats[cid] is None:
        return "category dropped by the category map"
    if ann.get("iscrowd"):
        return "crowd region (iscrowd=1)"
    return None


def write_import(report: ImportReport, records_path: str | os.PathLike,
                 skipped_path: str | os.PathLike | None = None) -> int:
    """Write the records as benchmark JSONL (and the left-out list as JSONL); returns the record count."""
    n = write_jsonl(records_path, report.records)
    if skipped_path is not None:
        write_jsonl(skipped_path, report.skipped)
    return n
