"""SceneParser-Bench JSONL records: loading, validation and the converter's annotation shape.

A record (docs/reference.md, *training-data*) is ``{"image_path": str, "objects": [...]}`` with
objects ``{phrase|name, object_bbox|bbox, parts: [{part_name, part_bbox|bbox, is_pseudo_part,
affordances: [{action, affordance_bbox, sampled_points, mask_path}]}]}``. Boxes are absolute pixel
``[x0, y0, x1, y1]``. The variants of the real data are accepted: ``phrase`` wins over ``name``
and ``object_bbox``/``part_bbox`` over ``bbox`` when truthy (as the reference converter does).

Validation reports every problem with its line number and field path (for example
``objects[2].parts[0].part_bbox``). Two severities:

* ``error``: the record cannot be used (not JSON, not UTF-8, no ``image_path``, ``objects`` not
  a list, unreadable image ...) and is skipped;
* ``warning``: one field was malformed and was neutralised (a box of the wrong length or with
  NaN/inf becomes ``null``; a non-dict entry is dropped), or is suspicious but kept exactly as the
  reference keeps it (inverted or out-of-image boxes, missing names). The record is kept.

:func:`record_to_annotation` gives the converter's annotation (docs/reference.md, *training-data*) with the same
re-shaping and de-duplication as the reference converter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from sceneparser.errors import InputError


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem in the input: 1-based ``line``, a ``field`` path, a ``message``."""

    line: int
    field: str
    message: str
    severity: str = "error"  # "error" (record skipped) | "warning" (record kept)

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Record:
    """One valid record: the cleaned JSON (``data``) and where its image is."""

    line: int
    data: dict
    image_path: str
    resolved_path: Path
    warnings: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def objects(self) -> list[dict]:
        return self.data.get("objects") or []

    def annotation(self, keep_pseudo_flag: bool = False) -> dict:
        return record_to_annotation(self.data, keep_pseudo_flag=keep_pseudo_flag)


@dataclasses.dataclass
class RecordsReport:
    """Result of :func:`load_records`: valid ``records`` and every ``problem`` found."""

    path: Path
    records: list[Record]
    problems: list[Problem]
    num_lines: int

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> str:
        return (
            f"{self.path}: {self.num_lines} non-empty lines, {len(self.records)} valid records, "
            f"{len(self.errors)} skipped, {len(self.warnings)} warnings"
        )


# --------------------------------------------------------------------------------------------
# Field checks
# --------------------------------------------------------------------------------------------


_NUM = (int, float)
_NUM_TYPES = frozenset(_NUM)


def _is_number(v: Any) -> bool:
    return type(v) in _NUM_TYPES or (isinstance(v, _NUM) and not isinstance(v, bool))


def _show(v: Any) -> str:
    return json.dumps(v, default=str)[:80]


def check_box(box: Any) -> tuple[list | None, str | None, bool]:
    """``(clean_box, message, fatal)`` for a box value.

    ``fatal`` problems (not 4 numbers, NaN/inf) turn the box into ``None``; an inverted box is
    reported but kept (the reference keeps it and its targets turn it into ``null``).
    """
    if box is None:
        return None, None, False
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        return None, f"box must be 4 numbers [x0, y0, x1, y1], got {_show(box)}", True
    x0, y0, x1, y1 = box
    if not math.isfinite(x0 + y0 + x1 + y1):
        return None, f"box has a NaN or infinite value: {_show(box)}", True
    if x1 < x0 or y1 < y0:
        return list(box), f"inverted box (x1 < x0 or y1 < y0): {list(box)}", False
    return list(box), None, False


def check_point(point: Any) -> tuple[list | None, str | None]:
    if not isinstance(point, (list, tuple)) or len(point) < 2:
        return None, f"point must be [x, y], got {_show(point)}"
    if not (_is_number(point[0]) and _is_number(point[1])):
        return None, f"point must hold numbers, got {_show(point)}"
    if not math.isfinite(point[0] + point[1]):
        return None, f"point has a NaN or infinite value: {_show(point)}"
    return list(point), None


def _pick(d: Mapping, primary: str, fallback: str) -> tuple[Any, str]:
    """Reference rule ``d.get(primary) or d.get(fallback)`` plus the field actually used."""
    v = d.get(primary)
    if v:
        return v, primary
    if fallback in d:
        fb = d.get(fallback)
        if fb or primary not in d:
            return fb, fallback
    return v, primary


def _path(oi: int, pi: int | None = None, ai: int | None = None, key: str | None = None) -> str:
    out = f"objects[{oi}]"
    if pi is not None:
        out += f".parts[{pi}]"
    if ai is not None:
        out += f".affordances[{ai}]"
    return out + (f".{key}" if key else "")


class _Checker:
    """One pass over a record: validation, repairs and (given the image size) bounds checks."""

    __slots__ = ("line", "size", "problems")

    def __init__(self, line: int, size: tuple[int, int] | None):
        self.line = line
        self.size = size
        self.problems: list[Problem] = []

    def warn(self, field: "str | tuple", msg: str) -> None:
        if type(field) is tuple:
            field = _path(*field)
        self.problems.append(Problem(self.line, field, msg, "warning"))

    def dict_list(self, d: dict, key: str, where: tuple, what: str) -> "list | None":
        """``d[key]`` as a list of JSON objects: a non-list becomes ``[]`` and entries that are
        not objects are dropped, each with a warning (``where`` is the owner's index path)."""
        items = d.get(key)
        if items is not None and type(items) is not list:
            owner = where + (None,) * (3 - len(where))
            self.warn(owner + (key,), f"'{key}' must be a list, got {type(items).__name__}; treated as []")
            d[key] = items = []
        if items and not all(type(x) is dict for x in items):
            for i, x in enumerate(items):
                if type(x) is not dict:
                    self.warn(where + (i,), f"{what} must be a JSON object, got {type(x).__name__}; dropped")
            d[key] = items = [x for x in items if type(x) is dict]
        return items

    def box(self, d: dict, primary: str, fallback: str, where: tuple) -> None:
        b = d.get(primary)
        # fast path: a list of 4 plain finite numbers, in order and inside the image
        if type(b) is list and len(b) == 4:
            x0, y0, x1, y1 = b
            if (type(x0) in _NUM_TYPES and type(y0) in _NUM_TYPES and type(x1) in _NUM_TYPES
                    and type(y1) in _NUM_TYPES and math.isfinite(x0 + y0 + x1 + y1)):
                size = self.size
                if x0 <= x1 and y0 <= y1 and (size is None or (x0 >= 0 and y0 >= 0 and x1 <= size[0] and y1 <= size[1])):
                    return
                if x1 < x0 or y1 < y0:
                    self.warn(where + (primary,), f"inverted box (x1 < x0 or y1 < y0): {b}")
                if size is not None and (
                    min(x0, x1) < 0 or min(y0, y1) < 0 or max(x0, x1) > size[0] or max(y0, y1) > size[1]
                ):
                    self.warn(where + (primary,), f"box {b} reaches outside the {size[0]}x{size[1]} image")
                return
        b, key = _pick(d, primary, fallback)
        if b is None:
            return
        field = _path(*where)
        clean, msg, fatal = check_box(b)
        if msg:
            self.warn(f"{field}.{key}", msg + ("; set to null" if fatal else ""))
        if fatal:
            d[key] = None
        elif clean is not None and self.size is not None:
            x0, y0, x1, y1 = clean
            w, h = self.size
            if min(x0, x1) < 0 or min(y0, y1) < 0 or max(x0, x1) > w or max(y0, y1) > h:
                self.warn(f"{field}.{key}", f"box {clean} reaches outside the {w}x{h} image")

    def points(self, a: dict, where: tuple) -> None:
        sps = a.get("sampled_points")
        if sps is None:
            return
        if type(sps) is not list:
            field = _path(*where)
            self.warn(f"{field}.sampled_points", f"must be a list of [x, y], got {type(sps).__name__}; set to null")
            a["sampled_points"] = None
            return
        bad = False
        size = self.size
        for si, sp in enumerate(sps):
            if type(sp) is list and len(sp) == 2 and type(sp[0]) in _NUM_TYPES and type(sp[1]) in _NUM_TYPES \
                    and math.isfinite(sp[0] + sp[1]):
                pt = sp
            else:
                pt, msg = check_point(sp)
                if msg:
                    self.warn(f"{_path(*where)}.sampled_points[{si}]", msg + "; dropped")
                    bad = True
                    continue
            if size is not None and not (0 <= pt[0] <= size[0] and 0 <= pt[1] <= size[1]):
                self.warn(f"{_path(*where)}.sampled_points[{si}]", f"point {list(pt)[:2]} is outside the {size[0]}x{size[1]} image")
        if bad:
            a["sampled_points"] = [sp for sp in sps if check_point(sp)[1] is None]

    def name(self, d: dict, key: str, field: str, what: str) -> None:
        v = d.get(key)
        if v is not None and type(v) is not str:
            self.warn(f"{field}.{key}", f"{what} must be a string, got {type(v).__name__}; converted")
            d[key] = str(v)


def validate_record(
    obj: Any, line: int = 0, *, size: tuple[int, int] | None = None, copy: bool = True
) -> tuple[dict | None, list[Problem]]:
    """Validate and clean one parsed record. Returns ``(clean_record | None, problems)``.

    The clean record keeps every field of the input; only malformed values are neutralised
    (see the module docstring). ``None`` means the record must be skipped. With ``size=(W, H)``
    boxes and points outside the image are reported too. ``copy=False`` repairs ``obj`` in
    place (faster; for freshly parsed JSON).
    """
    if copy:
        obj = _deepcopy_json(obj)
    rec, problems, _ = _walk(obj, line, size, False, False)
    return rec, problems


def validate_and_annotate(
    obj: Any, line: int = 0, *, size: tuple[int, int] | None = None, keep_pseudo_flag: bool = False
) -> tuple[dict | None, list[Problem], dict | None]:
    """:func:`validate_record` (in place) and :func:`record_to_annotation` in one pass.

    Returns ``(clean_record | None, problems, annotation | None)``; the annotation equals
    ``record_to_annotation(clean_record)``.
    """
    return _walk(obj, line, size, True, keep_pseudo_flag)


def _walk(obj: Any, line: int, size, build: bool, keep_flag: bool) -> tuple[dict | None, list[Problem], dict | None]:
    chk = _Checker(line, size)

    def err(field: str, msg: str) -> tuple[None, list[Problem], None]:
        chk.problems.append(Problem(line, field, msg, "error"))
        return None, chk.problems, None

    if type(obj) is not dict:
        return err("", f"record must be a JSON object, got {type(obj).__name__}")
    image_path = obj.get("image_path")
    if type(image_path) is not str or not image_path.strip():
        return err("image_path", "missing or empty 'image_path' (a string path to the image)")
    objects = obj.get("objects")
    if objects is None:
        return obj, chk.problems, ({"objects": []} if build else None)
    if type(objects) is not list:
        return err("objects", f"'objects' must be a list, got {type(objects).__name__}")
    if not all(type(o) is dict for o in objects):
        for oi, o in enumerate(objects):
            if type(o) is not dict:
                chk.warn(f"objects[{oi}]", f"object must be a JSON object, got {type(o).__name__}; dropped")
        obj["objects"] = objects = [o for o in objects if type(o) is dict]
    ann_objects: list[dict] = []
    seen_objects = _Dedup() if build else None
    for oi, o in enumerate(objects):
        name, nkey = _pick(o, "phrase", "name")
        if not name:
            chk.warn((oi, None, None, "phrase"), "object has no name ('phrase' or 'name'); it is never queried")
        elif type(name) is not str:
            chk.name(o, nkey, _path(oi), "object name")
        chk.box(o, "object_bbox", "bbox", (oi, None, None))
        parts = chk.dict_list(o, "parts", (oi,), "part")
        ann_parts: list[dict] = []
        seen_parts = _Dedup() if build else None
        for pi, p in enumerate(parts or ()):
            pname = p.get("part_name")
            if not pname:
                chk.warn((oi, pi, None, "part_name"), "part has no 'part_name'; it is left out of training targets")
            elif type(pname) is not str:
                chk.name(p, "part_name", _path(oi, pi), "part name")
            chk.box(p, "part_bbox", "bbox", (oi, pi, None))
            flag = p.get("is_pseudo_part")
            if flag is not None and type(flag) is not bool:
                chk.warn((oi, pi, None, "is_pseudo_part"), f"must be true/false, got {flag!r}")
            affs = chk.dict_list(p, "affordances", (oi, pi), "affordance")
            ann_affs: list[dict] = []
            seen_affs: set = set()
            for ai, a in enumerate(affs or ()):
                action = a.get("action")
                if action is not None and type(action) is not str:
                    chk.name(a, "action", _path(oi, pi, ai), "action")
                    action = a["action"]
                if a.get("affordance_bbox") is not None:
                    chk.box(a, "affordance_bbox", "affordance_bbox", (oi, pi, ai))
                chk.points(a, (oi, pi, ai))
                mp = a.get("mask_path")
                if mp is not None and type(mp) is not str:
                    chk.warn((oi, pi, ai, "mask_path"), f"must be a string or null, got {type(mp).__name__}; set to null")
                    a["mask_path"] = None
                if build:
                    sps = a.get("sampled_points")
                    point = None
                    if sps:
                        p0 = sps[0]
                        if isinstance(p0, (list, tuple)) and len(p0) >= 2:
                            point = [p0[0], p0[1]]
                    akey = (_dedup_name(action), _hashable(point))
                    if akey not in seen_affs:
                        seen_affs.add(akey)
                        ann_affs.append({"action": action, "point": point})
            if build:
                pname = p.get("part_name")
                pbox = p.get("part_bbox") or p.get("bbox")
                if seen_parts.first((_dedup_name(pname), _hashable(pbox)), ann_affs):
                    if keep_flag:
                        ann_parts.append({"part_name": pname, "bbox": pbox, "affordances": ann_affs,
                                          "is_pseudo_part": bool(p.get("is_pseudo_part"))})
                    else:
                        ann_parts.append({"part_name": pname, "bbox": pbox, "affordances": ann_affs})
        if build:
            name = o.get("phrase") or o.get("name")
            box = o.get("object_bbox") or o.get("bbox")
            if seen_objects.first((_dedup_name(name), _hashable(box)), ann_parts):
                ann_objects.append({"name": name, "bbox": box, "parts": ann_parts})
    return obj, chk.problems, ({"objects": ann_objects} if build else None)


def _deepcopy_json(v: Any) -> Any:
    if type(v) is dict:
        return {k: _deepcopy_json(x) for k, x in v.items()}
    if type(v) is list:
        return [_deepcopy_json(x) for x in v]
    return v


def check_boxes_in_image(record: Mapping, width: int, height: int, line: int = 0) -> list[Problem]:
    """Warnings for boxes and points of a (validated) record that reach outside the image.

    They are kept unchanged (the reference clamps them when it builds targets).
    """
    _, problems = validate_record(record, line, size=(width, height), copy=True)
    return [p for p in problems if "outside the" in p.message]


# --------------------------------------------------------------------------------------------
# Converter annotation (docs/reference.md, *training-data*)
# --------------------------------------------------------------------------------------------


def _hashable(v: Any) -> Any:
    if type(v) is list:
        try:
            t = tuple(v)
            hash(t)
            return t
        except TypeError:  # nested lists
            return tuple(_hashable(x) for x in v)
    return tuple(_hashable(x) for x in v) if isinstance(v, tuple) else v


class _Dedup:
    """The reference's ``(norm(name), tuple(box), json(children, sort_keys))`` de-duplication.

    The JSON part of the key is computed only when the cheap part collides, so the common
    (duplicate-free) case costs one hash per entry.
    """

    __slots__ = ("_first", "_json")

    def __init__(self) -> None:
        self._first: dict[tuple, Any] = {}
        self._json: dict[tuple, list[str]] = {}

    def first(self, cheap: tuple, children: Any) -> bool:
        prev = self._first.get(cheap, _MISSING)
        if prev is _MISSING:
            self._first[cheap] = children
            return True
        seen = self._json.get(cheap)
        if seen is None:
            seen = self._json[cheap] = [json.dumps(prev, ensure_ascii=False, sort_keys=True)]
        full = json.dumps(children, ensure_ascii=False, sort_keys=True)
        if full in seen:
            return False
        seen.append(full)
        return True


_MISSING = object()


def _dedup_name(v: Any) -> str:
    """A name as the reference's de-duplication key holds it: stripped and lower-cased."""
    return v.strip().lower() if type(v) is str else str(v or "").strip().lower()


def record_to_annotation(record: Mapping, keep_pseudo_flag: bool = False) -> dict:
    """The reference converter's annotation for one (validated) record.

    ``{"objects": [{"name", "bbox", "parts": [{"part_name", "bbox", "affordances": [{"action",
    "point"}]}]}]}`` in pixels, ``point = sampled_points[0]``, de-duplicated at all three levels
    exactly as the reference converter does. ``keep_pseudo_flag`` adds each part's
    ``is_pseudo_part`` (not in the reference layout; the targets ignore unknown keys).
    """
    objects = []
    seen_objects = _Dedup()
    for o in record.get("objects") or ():
        if type(o) is not dict:
            continue
        parts = []
        seen_parts = _Dedup()
        for p in o.get("parts") or ():
            if type(p) is not dict:
                continue
            affs = []
            seen_affs: set = set()
            for a in p.get("affordances") or ():
                if type(a) is not dict:
                    continue
                action = a.get("action")
                sps = a.get("sampled_points")
                point = None
                if sps:
                    p0 = sps[0]
                    if isinstance(p0, (list, tuple)) and len(p0) >= 2:
                        point = [p0[0], p0[1]]
                akey = (_dedup_name(action), _hashable(point))
                if akey in seen_affs:
                    continue
                seen_affs.add(akey)
                affs.append({"action": action, "point": point})
            pname = p.get("part_name")
            pbox = p.get("part_bbox") or p.get("bbox")
            if not seen_parts.first((_dedup_name(pname), _hashable(pbox)), affs):
                continue
            if keep_pseudo_flag:
                parts.append({"part_name": pname, "bbox": pbox, "affordances": affs,
                              "is_pseudo_part": bool(p.get("is_pseudo_part"))})
            else:
                parts.append({"part_name": pname, "bbox": pbox, "affordances": affs})
        name = o.get("phrase") or o.get("name")
        box = o.get("object_bbox") or o.get("bbox")
        if not seen_objects.first((_dedup_name(name), _hashable(box)), parts):
            continue
        objects.append({"name": name, "bbox": box, "parts": parts})
    return {"objects": objects}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def resolve_image_path(image_path: str, image_root: str | os.PathLike | None = None) -> Path:
    """An absolute path stays; a relative one resolves against ``image_root`` (default: CWD)."""
    if os.path.isabs(image_path):
        return Path(image_path)
    return Path(os.path.join(os.fspath(image_root) if image_root is not None else os.getcwd(), image_path))


def parse_line(raw: bytes, line: int) -> tuple[dict | None, list[Problem]]:
    """Decode (strict UTF-8) and parse one JSONL line, then validate it."""
    obj, problems = decode_line(raw, line)
    if obj is None:
        return None, problems
    return validate_record(obj, line, copy=False)


def decode_line(raw: bytes, line: int) -> tuple[Any, list[Problem]]:
    """Decode (strict UTF-8) and ``json.loads`` one JSONL line (no validation)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(line, "", f"line is not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 4]!r})")]
    if line == 1 and text.startswith("\ufeff"):
        text = text[1:]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [Problem(line, "", f"invalid JSON: {exc.msg} at column {exc.colno}")]
    except RecursionError:
        return None, [Problem(line, "", "invalid JSON: nested too deeply")]
    if obj is None:
        return None, [Problem(line, "", "record must be a JSON object, got null")]
    return obj, []


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """``(line_number, raw_bytes)`` for every non-blank line of a JSONL file (binary read)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"JSONL file not found: {p}")
    with open(p, "rb") as fh:
        for n, raw in enumerate(fh, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw.strip():
                yield n, raw


def load_records(
    path: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    *,
    check_images: bool = False,
) -> RecordsReport:
    """Load and validate a benchmark JSONL.

    Every problem is reported (``report.problems``) with its line and field; records with an
    ``error`` are left out of ``report.records``. ``check_images`` also requires that each image
    file exists and is not empty.
    """
    records: list[Record] = []
    problems: list[Problem] = []
    n = 0
    for line, raw in iter_lines(path):
        n += 1
        rec, probs = parse_line(raw, line)
        problems.extend(probs)
        if rec is None:
            continue
        resolved = resolve_image_path(rec["image_path"], image_root)
        if check_images:
            try:
                size = resolved.stat().st_size
            except OSError:
                problems.append(Problem(line, "image_path", f"image not found: {resolved}"))
                continue
            if size == 0:
                problems.append(Problem(line, "image_path", f"image file is empty: {resolved}"))
                continue
        records.append(Record(line, rec, rec["image_path"], resolved, [p for p in probs if p.severity == "warning"]))
    return RecordsReport(Path(path), records, problems, n)


__all__ = [
    "Problem",
    "Record",
    "RecordsReport",
    "check_box",
    "check_boxes_in_image",
    "check_point",
    "decode_line",
    "iter_lines",
    "load_records",
    "parse_line",
    "record_to_annotation",
    "resolve_image_path",
    "validate_and_annotate",
    "validate_record",
]
