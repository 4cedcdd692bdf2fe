"""Raw model text -> prediction in the reference answer schema (docs/reference.md, *parser*).

``parse_prediction(text, width, height, mode="reference")`` never raises. It returns a
:class:`ParsedPrediction`: a plain ``dict`` equal to what the reference
``parse_structured_prediction`` returns (``{"objects": [...]}``), plus ``.status``
(``"ok" | "repaired" | "failed"``) and ``.reason``.

Modes
-----
``reference``
    Bit-exact with the reference: cut at the first ``<|im_end|>``, take the first fenced
    ```` ```json ```` block (even if invalid), else the first-``{``-to-last-``}`` span; no repair;
    ``<n>`` tokens decode to ``n / 999.0 * size``; numeric lists go through the reference's
    ambiguous heuristic (max <= 1 normalised, <= 999 bins, else pixels; boxes use the signed
    max, points the absolute max); object-level affordances are ignored. Where the reference
    *crashes* -- a fenced top-level value that is not an object, an integer too large for a
    float (``OverflowError``), a token with more digits than Python's int parser accepts,
    nesting too deep for ``json`` (``RecursionError``) -- this returns an empty prediction with
    ``status="failed"`` instead. Status is ``"failed"`` whenever the result is empty because
    nothing usable was found (no JSON span, invalid JSON, ``objects`` not a list), and ``"ok"``
    otherwise (an honest ``{"objects": []}`` is ``ok``).

    NaN / Infinity: ``json.loads`` accepts ``NaN``, ``Infinity`` and ``-Infinity`` and the
    reference passes them into coordinates unchanged. We do the same (the numbers the
    reference would score are kept, status stays ``"ok"``); the metrics treat a non-finite
    coordinate as matching nothing (IoU 0, never inside a box or a mask) instead of crashing.

``repair``
    First tries ``reference``; if that gives ``ok`` the result is identical. Otherwise it also
    recovers unterminated fences, prose-wrapped and truncated output: the JSON span runs from
    the first ``{`` to the end of the fenced block or text; if the span is truncated (open
    brackets at its end), the innermost unclosed element below the top level (the affordance,
    part or object that was being written when the text was cut) is dropped, and json-repair
    closes what is left. Other syntax damage (trailing commas, single quotes, missing commas)
    is fixed by json-repair. A top-level list is read as the ``objects`` list. Recovered
    results have ``status="repaired"``.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "ParsedPrediction",
    "parse_prediction",
    "extract_json_string",
    "box_to_pixels",
    "point_to_pixels",
    "convert_objects",
    "STATUS_OK",
    "STATUS_REPAIRED",
    "STATUS_FAILED",
]

STATUS_OK = "ok"
STATUS_REPAIRED = "repaired"
STATUS_FAILED = "failed"
MODES = ("reference", "repair")

_IM_END = "<|im_end|>"
_FENCE_RE = re.compile(r"```json\s*(.*?)\s*```", re.DOTALL)
_TOKEN_RE = re.compile(r"<(\d+)>")


class ParsedPrediction(dict):
    """``{"objects": [...]}`` (the reference answer schema) with a parse ``status`` and ``reason``."""

    __slots__ = ("status", "reason")

    def __init__(self, objects: list | None = None, status: str = STATUS_OK, reason: str | None = None):
        super().__init__(objects=[] if objects is None else objects)
        self.status = status
        self.reason = reason

    @property
    def ok(self) -> bool:
        return self.status != STATUS_FAILED

    def __repr__(self) -> str:
        return f"ParsedPrediction({dict.__repr__(self)}, status={self.status!r}, reason={self.reason!r})"

    def __reduce__(self):
        return (ParsedPrediction, (self["objects"], self.status, self.reason))


class _ReferenceCrash(Exception):
    """An input on which the reference parser raises; we turn it into a failed parse."""


# --------------------------------------------------------------------------------------------
# JSON span extraction
# --------------------------------------------------------------------------------------------


def extract_json_string(text: str) -> str:
    """The reference ``extract_json_string``: fenced block first, else first-``{``..last-``}``."""
    text = text.split(_IM_END)[0]
    blocks = _FENCE_RE.findall(text)
    if blocks:
        return blocks[0]
    start = text.find("{")
    end = text.rfind("}")
    if start != -1 and end != -1 and end > start:
        return text[start : end + 1]
    return ""


# --------------------------------------------------------------------------------------------
# Coordinates (reference heuristics, exact operation order)
# --------------------------------------------------------------------------------------------


def box_to_pixels(value: Any, width: float, height: float) -> list[float] | None:
    """Reference ``token_box_to_abs``: a ``"<x0><y0><x1><y1>"`` string or a numeric list of 4."""
    w, h = width, height
    if isinstance(value, str):
        nums = _TOKEN_RE.findall(value)
        if len(nums) == 4:
            x0, y0, x1, y1 = [int(n) for n in nums]
            return [x0 / 999.0 * w, y0 / 999.0 * h, x1 / 999.0 * w, y1 / 999.0 * h]
        return None
    if isinstance(value, (list, tuple)) and len(value) == 4:
        try:
            vals = [float(v) for v in value]
        except (TypeError, ValueError):
            return None
        m = max(vals)
        x0, y0, x1, y1 = vals
        if m <= 1.0:
            return [x0 * w, y0 * h, x1 * w, y1 * h]
        if m <= 999.0:
            return [x0 / 999.0 * w, y0 / 999.0 * h, x1 / 999.0 * w, y1 / 999.0 * h]
        return vals
    return None


def point_to_pixels(value: Any, width: float, height: float) -> list[float] | None:
    """Reference ``token_point_to_abs``: a ``"<x><y>"`` string or a numeric list of 2."""
    w, h = width, height
    if isinstance(value, str):
        nums = _TOKEN_RE.findall(value)
        if len(nums) == 2:
            x, y = [int(n) for n in nums]
            return [x / 999.0 * w, y / 999.0 * h]
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            x, y = float(value[0]), float(value[1])
        except (TypeError, ValueError):
            return None
        m = max(abs(x), abs(y))
        if m <= 1.0:
            return [x * w, y * h]
        if m <= 999.0:
            return [x / 999.0 * w, y / 999.0 * h]
        return [x, y]
    return None


def convert_objects(raw_objects: list, width: float, height: float) -> list[dict]:
    """The reference object loop: token JSON objects -> answer-schema objects in pixels."""
    objects = []
    for obj in raw_objects:
        if not isinstance(obj, dict):
            continue
        pred_obj = {
            "name": obj.get("name"),
            "bbox": box_to_pixels(obj.get("bbox"), width, height),
            "has_part": obj.get("has_part"),
            "has_affordance": obj.get("has_affordance"),
            "parts": [],
            "affordances": [],
        }
        raw_parts = obj.get("parts", [])
        if isinstance(raw_parts, list):
            for part in raw_parts:
                if not isinstance(part, dict):
                    continue
                pred_part = {
                    "part_name": part.get("part_name"),
                    "bbox": box_to_pixels(part.get("bbox"), width, height),
                    "affordances": [],
                }
                raw_affs = part.get("affordances", [])
                if isinstance(raw_affs, list):
                    for aff in raw_affs:
                        if not isinstance(aff, dict):
                            continue
                        pred_part["affordances"].append(
                            {"action": aff.get("action"), "point": point_to_pixels(aff.get("point"), width, height)}
                        )
                pred_obj["parts"].append(pred_part)
        # object-level "affordances" in the output are ignored on purpose (strict schema)
        objects.append(pred_obj)
    return objects


def _objects_from_data(data: Any, width: float, height: float) -> tuple[list[dict] | None, str | None]:
    """(objects, None) or (None, reason) for the reference's treatment of a decoded value."""
    if not isinstance(data, dict):
        raise _ReferenceCrash(
            f"top-level JSON is a {type(data).__name__}, not an object (the reference parser crashes here)"
        )
    raw = data.get("objects", [])
    if not isinstance(raw, list):
        return None, f"'objects' is a {type(raw).__name__}, not a list"
    return convert_objects(raw, width, height), None


# --------------------------------------------------------------------------------------------
# Reference mode
# --------------------------------------------------------------------------------------------


def _parse_reference(text: str, width: float, height: float) -> ParsedPrediction:
    json_str = extract_json_string(text)
    if not json_str:
        return ParsedPrediction([], STATUS_FAILED, "no JSON object found in the text")
    try:
        data = json.loads(json_str)
    except json.JSONDecodeError as exc:
        return ParsedPrediction([], STATUS_FAILED, f"invalid JSON: {exc}")
    except RecursionError:
        return ParsedPrediction([], STATUS_FAILED, "JSON nested too deeply (the reference parser crashes here)")
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        return ParsedPrediction([], STATUS_FAILED, f"unreadable JSON number ({exc}; the reference parser crashes here)")
    try:
        objects, reason = _objects_from_data(data, width, height)
    except _ReferenceCrash as exc:
        return ParsedPrediction([], STATUS_FAILED, str(exc))
    except OverflowError:
        return ParsedPrediction(
            [], STATUS_FAILED, "a coordinate is too large for a float (the reference parser crashes here)"
        )
    except ValueError as exc:  # int() of a token with thousands of digits
        return ParsedPrediction([], STATUS_FAILED, f"unreadable coordinate token ({exc}; the reference crashes here)")
    if objects is None:
        return ParsedPrediction([], STATUS_FAILED, reason)
    return ParsedPrediction(objects, STATUS_OK, None)


# --------------------------------------------------------------------------------------------
# Repair mode
# --------------------------------------------------------------------------------------------

_UNTERMINATED_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*)", re.DOTALL)


def _repair_span(text: str) -> str:
    """The JSON-ish span for repair: fenced content (closing fence optional), from the first '{'."""
    text = text.split(_IM_END)[0]
    blocks = _FENCE_RE.findall(text)
    if blocks:
        candidate = blocks[0]
    else:
        m = _UNTERMINATED_FENCE_RE.search(text)
        candidate = m.group(1) if m else text
    start = candidate.find("{")
    bracket = candidate.find("[")
    if bracket != -1 and (start == -1 or (bracket < start and not candidate[bracket + 1 : start].strip())):
        start = bracket  # a top-level list of objects
    if start == -1:
        return ""
    span = candidate[start:]
    # drop prose after a complete top-level value, if any
    end = _end_of_first_value(span)
    return span[:end] if end is not None else span


def _scan(span: str) -> tuple[list[tuple[str, int]], int | None]:
    """Bracket stack at the end of ``span`` (strings respected) and where the first value closed."""
    stack: list[tuple[str, int]] = []
    in_str = False
    esc = False
    for i, ch in enumerate(span):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append((ch, i))
        elif ch in "}]":
            if stack and stack[-1][0] == ("{" if ch == "}" else "["):
                stack.pop()
                if not stack:
                    return [], i + 1
    return stack, None


def _end_of_first_value(span: str) -> int | None:
    return _scan(span)[1]


def _drop_truncated_tail(span: str) -> tuple[str, bool]:
    """Cut a truncated span before its innermost unclosed object below the top level."""
    stack, closed_at = _scan(span)
    if closed_at is not None or not stack:
        return span, False
    dicts = [pos for ch, pos in stack[1:] if ch == "{"]
    if not dicts:
        return span, True
    cut = span[: dicts[-1]].rstrip()
    if cut.endswith(","):
        cut = cut[:-1]
    return cut, True


def _parse_repair(text: str, width: float, height: float) -> ParsedPrediction:
    first = _parse_reference(text, width, height)
    if first.status == STATUS_OK:
        return first
    span = _repair_span(text)
    if not span:
        return first
    span, truncated = _drop_truncated_tail(span)
    import json_repair  # lazy: only repair mode needs it

    try:
        data = json_repair.loads(span)
    except RecursionError:
        return ParsedPrediction([], STATUS_FAILED, "JSON nested too deeply")
    if isinstance(data, list):
        if data and all(isinstance(o, dict) and "objects" not in o for o in data):
            data = {"objects": data}
        elif len(data) == 1 and isinstance(data[0], dict):
            data = data[0]
    if not isinstance(data, dict) or not data:
        return ParsedPrediction([], STATUS_FAILED, first.reason or "nothing recoverable")
    try:
        objects, reason = _objects_from_data(data, width, height)
    except (_ReferenceCrash, OverflowError, ValueError) as exc:
        return ParsedPrediction([], STATUS_FAILED, f"unrecoverable: {exc}")
    if objects is None:
        return ParsedPrediction([], STATUS_FAILED, reason)
    why = "truncated output: incomplete tail element dropped" if truncated else "malformed JSON repaired"
    return ParsedPrediction(objects, STATUS_REPAIRED, f"{why} (reference parse failed: {first.reason})")


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def parse_prediction(text: Any, width: float, height: float, mode: str = "reference") -> ParsedPrediction:
    """Parse raw model text into ``{"objects": [...]}`` (pixels). Never raises.

    ``width``/``height`` are the original image size used to decode ``<n>`` tokens.
    """
    if mode not in MODES:
        return ParsedPrediction([], STATUS_FAILED, f"unknown parse mode {mode!r} (use one of {MODES})")
    if not isinstance(text, str):
        return ParsedPrediction([], STATUS_FAILED, f"model output is a {type(text).__name__}, not text")
    try:
        if mode == "reference":
            return _parse_reference(text, width, height)
        return _parse_repair(text, width, height)
    except Exception as exc:  # noqa: BLE001 - the contract is "never raises"
        return ParsedPrediction([], STATUS_FAILED, f"parser error: {type(exc).__name__}: {exc}")
