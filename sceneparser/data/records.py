"""SceneParser-Bench JSONL records: loading, validation and the converter's annotation shape.

A record (evaluation.md §2, training.md §1.1) is ``{"image_path": str, "objects": [...]}`` with
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

:func:`record_to_annotation` gives the converter's annotation (training.md §2.1) with the same
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


def _norm(v: Any) -> str:
    return str(v or "").strip().lower()


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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_box(box: Any) -> tuple[list | None, str | None, bool]:
    """``(clean_box, message, fatal)`` for a box value.

    ``fatal`` problems (not 4 numbers, NaN/inf) turn the box into ``None``; an inverted box is
    reported but kept (the reference keeps it and its targets turn it into ``null``).
    """
    if box is None:
        return None, None, False
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_number(v) for v in box):
        return None, f"box must be 4 numbers [x0, y0, x1, y1], got {json.dumps(box, default=str)[:80]}", True
    if not all(math.isfinite(v) for v in box):
        return None, f"box has a NaN or infinite value: {box}", True
    if box[2] < box[0] or box[3] < box[1]:
        return list(box), f"inverted box (x1 < x0 or y1 < y0): {list(box)}", False
    return list(box), None, False


def check_point(point: Any) -> tuple[list | None, str | None]:
    if not isinstance(point, (list, tuple)) or len(point) < 2:
        return None, f"point must be [x, y], got {json.dumps(point, default=str)[:80]}"
    if not (_is_number(point[0]) and _is_number(point[1])):
        return None, f"point must hold numbers, got {json.dumps(point, default=str)[:80]}"
    if not (math.isfinite(point[0]) and math.isfinite(point[1])):
        return None, f"point has a NaN or infinite value: {list(point)}"
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


def validate_record(obj: Any, line: int = 0) -> tuple[dict | None, list[Problem]]:
    """Validate and clean one parsed record. Returns ``(clean_record | None, problems)``.

    The clean record keeps every field of the input; only malformed values are neutralised
    (see the module docstring). ``None`` means the record must be skipped.
    """
    problems: list[Problem] = []

    def warn(field: str, msg: str) -> None:
        problems.append(Problem(line, field, msg, "warning"))

    def err(field: str, msg: str) -> tuple[None, list[Problem]]:
        problems.append(Problem(line, field, msg, "error"))
        return None, problems

    if not isinstance(obj, dict):
        return err("", f"record must be a JSON object, got {type(obj).__name__}")
    image_path = obj.get("image_path")
    if not isinstance(image_path, str) or not image_path.strip():
        return err("image_path", "missing or empty 'image_path' (a string path to the image)")
    objects = obj.get("objects")
    if objects is not None and not isinstance(objects, list):
        return err("objects", f"'objects' must be a list, got {type(objects).__name__}")

    rec = dict(obj)
    clean_objects = []
    for oi, o in enumerate(objects or []):
        of = f"objects[{oi}]"
        if not isinstance(o, dict):
            warn(of, f"object must be a JSON object, got {type(o).__name__}; dropped")
            continue
        o = dict(o)
        name, nkey = _pick(o, "phrase", "name")
        if not name:
            warn(f"{of}.phrase", "object has no name ('phrase' or 'name'); it is never queried")
        elif not isinstance(name, str):
            warn(f"{of}.{nkey}", f"object name must be a string, got {type(name).__name__}; converted")
            o[nkey] = str(name)
        box, bkey = _pick(o, "object_bbox", "bbox")
        clean, msg, fatal = check_box(box)
        if msg:
            warn(f"{of}.{bkey}", msg + ("; set to null" if fatal else ""))
        if fatal:
            o[bkey] = None
        parts = o.get("parts")
        if parts is not None and not isinstance(parts, list):
            warn(f"{of}.parts", f"'parts' must be a list, got {type(parts).__name__}; treated as []")
            o["parts"] = parts = []
        clean_parts = []
        for pi, p in enumerate(parts or []):
            pf = f"{of}.parts[{pi}]"
            if not isinstance(p, dict):
                warn(pf, f"part must be a JSON object, got {type(p).__name__}; dropped")
                continue
            p = dict(p)
            pname = p.get("part_name")
            if not pname:
                warn(f"{pf}.part_name", "part has no 'part_name'; it is left out of training targets")
            elif not isinstance(pname, str):
                warn(f"{pf}.part_name", f"part name must be a string, got {type(pname).__name__}; converted")
                p["part_name"] = str(pname)
            pbox, pkey = _pick(p, "part_bbox", "bbox")
            clean, msg, fatal = check_box(pbox)
            if msg:
                warn(f"{pf}.{pkey}", msg + ("; set to null" if fatal else ""))
            if fatal:
                p[pkey] = None
            if "is_pseudo_part" in p and p["is_pseudo_part"] is not None and not isinstance(p["is_pseudo_part"], bool):
                warn(f"{pf}.is_pseudo_part", f"must be true/false, got {p['is_pseudo_part']!r}")
            affs = p.get("affordances")
            if affs is not None and not isinstance(affs, list):
                warn(f"{pf}.affordances", f"'affordances' must be a list, got {type(affs).__name__}; treated as []")
                p["affordances"] = affs = []
            clean_affs = []
            for ai, a in enumerate(affs or []):
                af = f"{pf}.affordances[{ai}]"
                if not isinstance(a, dict):
                    warn(af, f"affordance must be a JSON object, got {type(a).__name__}; dropped")
                    continue
                a = dict(a)
                action = a.get("action")
                if action is not None and not isinstance(action, str):
                    warn(f"{af}.action", f"action must be a string, got {type(action).__name__}; converted")
                    a["action"] = str(action)
                if "affordance_bbox" in a:
                    clean, msg, fatal = check_box(a["affordance_bbox"])
                    if msg:
                        warn(f"{af}.affordance_bbox", msg + ("; set to null" if fatal else ""))
                    if fatal:
                        a["affordance_bbox"] = None
                sps = a.get("sampled_points")
                if sps is not None:
                    if not isinstance(sps, list):
                        warn(f"{af}.sampled_points", f"must be a list of [x, y], got {type(sps).__name__}; set to null")
                        a["sampled_points"] = None
                    else:
                        good = []
                        for si, sp in enumerate(sps):
                            pt, msg = check_point(sp)
                            if msg:
                                warn(f"{af}.sampled_points[{si}]", msg + "; dropped")
                            else:
                                good.append(sp)
                        if len(good) != len(sps):
                            a["sampled_points"] = good
                mp = a.get("mask_path")
                if mp is not None and not isinstance(mp, str):
                    warn(f"{af}.mask_path", f"must be a string or null, got {type(mp).__name__}; set to null")
                    a["mask_path"] = None
                clean_affs.append(a)
            if affs is not None:
                p["affordances"] = clean_affs
            clean_parts.append(p)
        if parts is not None:
            o["parts"] = clean_parts
        clean_objects.append(o)
    if objects is not None:
        rec["objects"] = clean_objects
    return rec, problems


def check_boxes_in_image(record: Mapping, width: int, height: int, line: int = 0) -> list[Problem]:
    """Warnings for boxes and points that reach outside a ``width`` x ``height`` image.

    They are kept unchanged (the reference clamps them when it builds targets).
    """
    out: list[Problem] = []

    def outside_box(b: Any) -> bool:
        return (
            isinstance(b, (list, tuple)) and len(b) == 4 and all(_is_number(v) for v in b)
            and (min(b[0], b[2]) < 0 or min(b[1], b[3]) < 0 or max(b[0], b[2]) > width or max(b[1], b[3]) > height)
        )

    for oi, o in enumerate(record.get("objects") or []):
        if not isinstance(o, Mapping):
            continue
        box, key = _pick(o, "object_bbox", "bbox")
        if outside_box(box):
            out.append(Problem(line, f"objects[{oi}].{key}", f"box {list(box)} reaches outside the {width}x{height} image", "warning"))
        for pi, p in enumerate(o.get("parts") or []):
            if not isinstance(p, Mapping):
                continue
            box, key = _pick(p, "part_bbox", "bbox")
            if outside_box(box):
                out.append(Problem(line, f"objects[{oi}].parts[{pi}].{key}", f"box {list(box)} reaches outside the {width}x{height} image", "warning"))
            for ai, a in enumerate(p.get("affordances") or []):
                if not isinstance(a, Mapping):
                    continue
                sps = a.get("sampled_points") or []
                for si, sp in enumerate(sps):
                    if isinstance(sp, (list, tuple)) and len(sp) >= 2 and _is_number(sp[0]) and _is_number(sp[1]):
                        if not (0 <= sp[0] <= width and 0 <= sp[1] <= height):
                            out.append(Problem(line, f"objects[{oi}].parts[{pi}].affordances[{ai}].sampled_points[{si}]",
                                               f"point {list(sp)[:2]} is outside the {width}x{height} image", "warning"))
    return out


# --------------------------------------------------------------------------------------------
# Converter annotation (training.md §2.1)
# --------------------------------------------------------------------------------------------


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, (list, tuple)) else v


def _first_point(aff: Mapping) -> list | None:
    sps = aff.get("sampled_points") or []
    if sps and isinstance(sps[0], (list, tuple)) and len(sps[0]) >= 2:
        return [sps[0][0], sps[0][1]]
    return None


def record_to_annotation(record: Mapping, keep_pseudo_flag: bool = False) -> dict:
    """The reference converter's annotation for one (validated) record.

    ``{"objects": [{"name", "bbox", "parts": [{"part_name", "bbox", "affordances": [{"action",
    "point"}]}]}]}`` in pixels, ``point = sampled_points[0]``, de-duplicated at all three levels
    exactly as the reference converter does. ``keep_pseudo_flag`` adds each part's
    ``is_pseudo_part`` (not in the reference layout; the targets ignore unknown keys).
    """
    objects = []
    seen_objects: set = set()
    for o in record.get("objects") or []:
        if not isinstance(o, Mapping):
            continue
        parts = []
        seen_parts: set = set()
        for p in o.get("parts") or []:
            if not isinstance(p, Mapping):
                continue
            affs = []
            seen_affs: set = set()
            for a in p.get("affordances") or []:
                if not isinstance(a, Mapping):
                    continue
                entry = {"action": a.get("action"), "point": _first_point(a)}
                akey = (_norm(entry["action"]), _hashable(entry["point"]))
                if akey in seen_affs:
                    continue
                seen_affs.add(akey)
                affs.append(entry)
            part = {"part_name": p.get("part_name"), "bbox": p.get("part_bbox") or p.get("bbox"), "affordances": affs}
            if keep_pseudo_flag:
                part["is_pseudo_part"] = bool(p.get("is_pseudo_part"))
            pkey = (_norm(part["part_name"]), _hashable(part["bbox"]), json.dumps(affs, ensure_ascii=False, sort_keys=True))
            if pkey in seen_parts:
                continue
            seen_parts.add(pkey)
            parts.append(part)
        obj = {"name": o.get("phrase") or o.get("name"), "bbox": o.get("object_bbox") or o.get("bbox"), "parts": parts}
        okey = (_norm(obj["name"]), _hashable(obj["bbox"]), json.dumps(parts, ensure_ascii=False, sort_keys=True))
        if okey in seen_objects:
            continue
        seen_objects.add(okey)
        objects.append(obj)
    return {"objects": objects}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def resolve_image_path(image_path: str, image_root: str | os.PathLike | None = None) -> Path:
    """An absolute path stays; a relative one resolves against ``image_root`` (default: CWD)."""
    p = Path(image_path)
    if p.is_absolute():
        return p
    return Path(image_root) / p if image_root is not None else Path.cwd() / p


def parse_line(raw: bytes, line: int) -> tuple[dict | None, list[Problem]]:
    """Decode (strict UTF-8) and parse one JSONL line, then validate it."""
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
    return validate_record(obj, line)


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
    "iter_lines",
    "load_records",
    "parse_line",
    "record_to_annotation",
    "resolve_image_path",
    "validate_record",
]
