"""The slow validator: names the first malformed field of an answer line the fast reader refused.

Messages look like ``gt.objects[2].parts[0].bbox: a box needs exactly 4 numbers, got 3``.
"""

from __future__ import annotations

from sceneparser.evaluation.metrics.reading import MAX_FLOAT, coords_ok, scene_point


class BadField(Exception):
    """A malformed field; ``path`` is a tuple of keys/indices, formatted only when reported."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{format_path(self.path) or 'line'}: {self.message}"


def format_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def coords_problem(v, n: int, what: str) -> str:
    """Why ``v`` is not a list of ``n`` numbers (``what`` is "box" or "point")."""
    if not isinstance(v, (list, tuple)):
        return f"a {what} must be null or a list of {n} numbers, got {type(v).__name__}"
    if len(v) != n:
        return f"a {what} needs exactly {n} numbers, got {len(v)}"
    for x in v:
        if isinstance(x, (int, float)) and not (isinstance(x, int) and not -MAX_FLOAT <= x <= MAX_FLOAT):
            continue
        if isinstance(x, int):
            return f"coordinate {str(x)[:20]}... is too large for a float"
        return f"a {what} must hold numbers, found {type(x).__name__} {str(x)[:30]!r}"
    return f"malformed {what}"


def _check_coords(v, n: int, path: tuple, what: str) -> None:
    if v is not None and not coords_ok(v, n):
        raise BadField(path, coords_problem(v, n, what))


def explain(sample, *, scene: bool, ignore_none_action: bool) -> None:
    """Raise :class:`BadField` naming the first malformed field of ``sample`` (else return)."""
    if not isinstance(sample, dict):
        raise BadField((), f"an answer line must be a JSON object, got {type(sample).__name__}")
    for key in ("gt", "extracted_predictions"):
        cont = sample.get(key)
        if not cont:
            continue
        if not isinstance(cont, dict):
            raise BadField((key,), f"must be a JSON object or null, got {type(cont).__name__}")
        objs = cont.get("objects")
        if not objs:
            continue
        if not isinstance(objs, list):
            raise BadField((key, "objects"), f"must be a list or null, got {type(objs).__name__}")
        for oi, o in enumerate(objs):
            _explain_object(o, (key, "objects", oi), key == "gt", scene, ignore_none_action)


def _explain_object(o, op: tuple, is_gt: bool, scene: bool, ignore_none_action: bool) -> None:
    if not isinstance(o, dict):
        raise BadField(op, f"must be a JSON object, got {type(o).__name__}")
    _check_coords(o.get("bbox"), 4, op + ("bbox",), "box")
    holders = []
    parts = o.get("parts") or []
    if not isinstance(parts, list):
        raise BadField(op + ("parts",), f"must be a list or null, got {type(parts).__name__}")
    for pi, p in enumerate(parts or []):
        pp = op + ("parts", pi)
        if not isinstance(p, dict):
            raise BadField(pp, f"must be a JSON object, got {type(p).__name__}")
        _check_coords(p.get("bbox"), 4, pp + ("bbox",), "box")
        holders.append((p.get("affordances"), pp + ("affordances",)))
    if "affordances" in o:
        holders.append((o["affordances"], op + ("affordances",)))
    for affs, ap in holders:
        if not affs:
            continue
        if not isinstance(affs, list):
            raise BadField(ap, f"must be a list or null, got {type(affs).__name__}")
        for ai, a in enumerate(affs):
            if not isinstance(a, dict):
                if scene and not ignore_none_action:
                    continue
                raise BadField(ap + (ai,), f"must be a JSON object, got {type(a).__name__}")
            _explain_affordance(a, ap + (ai,), is_gt, scene)


def _explain_affordance(a: dict, path: tuple, is_gt: bool, scene: bool) -> None:
    if is_gt:
        rk = "affordance_bbox" if "affordance_bbox" in a else "bbox"
        _check_coords(a.get(rk), 4, path + (rk,), "box")
        _check_coords(a.get("part_bbox"), 4, path + ("part_bbox",), "box")
        mp = a.get("mask_path")
        if mp and not isinstance(mp, str):
            raise BadField(path + ("mask_path",), f"must be a string or null, got {type(mp).__name__}")
    elif scene:
        _check_coords(scene_point(a), 2, path + ("point",), "point")
    else:
        pk = "point" if "point" in a else "affordance_point"
        _check_coords(a.get(pk), 2, path + (pk,), "point")
