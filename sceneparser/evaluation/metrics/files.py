"""Answer files: read a JSONL of answer lines and score it in one streaming pass.

Lines are parsed with orjson (about 2.5 times faster than the standard library) and fall back
to ``json.loads`` wherever the two could differ, so results and error messages are those of
the standard library: a line orjson refuses (NaN/Infinity, lone surrogates, numbers beyond
the float range, invalid UTF-8, a BOM...) and a sample whose numbers orjson may have read
differently (integers beyond 64 bits; see :mod:`.reading`) are re-parsed with ``json.loads``.
Lines are split as Python's text mode does (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line);
a line that is only whitespace is skipped.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import orjson

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics.base import MetricBase, NeedsExactParse
from sceneparser.evaluation.metrics.object_level import ObjectLevelMetric
from sceneparser.evaluation.metrics.scene_level import SceneLevelMetric

_BLANK = object()


class UnreadableLine(InputError):
    """A line that is not JSON (or not UTF-8); ``skip_invalid`` skips it like a malformed one."""


def _raw_lines(path) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each line, numbered and split as Python's text mode would."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read answers file {path}: {exc.strerror or exc}") from None
    with f:
        lineno = 0
        for raw in f:
            if b"\r" not in raw:
                lineno += 1
                yield lineno, raw
                continue
            pieces = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            last = pieces.pop()  # b"" when the line ended with a terminator
            for piece in pieces:
                lineno += 1
                yield lineno, piece + b"\n"
            if last:
                lineno += 1
                yield lineno, last


def _exact_loads(raw: bytes, path, lineno: int) -> Any:
    """The standard library's reading of one line (``_BLANK`` for a whitespace-only line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableLine(f"{path}: line {lineno}: not valid UTF-8 ({exc.reason})") from None
    if not text.strip():
        return _BLANK
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, digit-limit errors
        raise UnreadableLine(f"{path}: line {lineno}: not valid JSON ({exc})") from None
    except RecursionError:
        raise UnreadableLine(f"{path}: line {lineno}: JSON nested too deeply") from None


def iter_answer_lines(path) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed JSON)`` for each non-blank line; InputError on a malformed line."""
    for lineno, raw in _raw_lines(path):
        if raw and not raw.isspace():
            value = _exact_loads(raw, path, lineno)
            if value is not _BLANK:
                yield lineno, value


def _update_from_line(metric: MetricBase, raw: bytes, path, lineno: int) -> bool:
    """Score one non-empty line; False when it turned out blank. InputError on a bad line."""
    try:
        sample = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        try:
            metric.update_fast(sample)
            return True
        except NeedsExactParse:
            pass
    sample = _exact_loads(raw, path, lineno)
    if sample is _BLANK:
        return False
    metric.update(sample)
    return True


def evaluate_file(path, level: str = "object", *, skip_invalid: bool = False,
                  on_skip: Callable[[str], None] | None = None, progress: Callable[[int], None] | None = None,
                  stats: dict | None = None, **options) -> dict:
    """Score an answer JSONL file in one streaming pass; returns the reference result dict.

    An unusable line (not UTF-8, not JSON, or a malformed field) raises :class:`InputError`
    naming the line (and the field), unless ``skip_invalid`` is set: the line is then left out
    and ``on_skip(message)`` is called. Raises InputError when the file holds no answer line at
    all. ``stats``, when given, receives ``samples`` (scored), ``skipped``, ``skipped_lines``
    (their line numbers) and ``masks`` (:meth:`MaskReader.report` of the GT masks). A file
    where no line is usable raises InputError, ``skip_invalid`` or not (there is nothing to score).
    """
    if level not in ("object", "scene"):
        raise InputError(f"level must be 'object' or 'scene', got {level!r}")
    metric = SceneLevelMetric(**options) if level == "scene" else ObjectLevelMetric(**options)
    seen = 0
    skipped_lines: list[int] = []
    for lineno, raw in _raw_lines(path):
        if not raw or raw.isspace():  # blank (ASCII whitespace; other blank lines: _exact_loads)
            continue
        try:
            if not _update_from_line(metric, raw, path, lineno):
                continue
        except InputError as exc:
            msg = str(exc) if isinstance(exc, UnreadableLine) else f"{path}: line {lineno}: {exc}"
            if not skip_invalid:
                raise InputError(msg) from None
            skipped_lines.append(lineno)
            if on_skip is not None:
                on_skip(msg)
        seen += 1
        if progress is not None:
            progress(lineno)
    if stats is not None:
        stats["samples"] = metric.num_samples
        stats["skipped"] = len(skipped_lines)
        stats["skipped_lines"] = skipped_lines
        stats["masks"] = metric.mask_report()
    if seen == 0:
        raise InputError(f"{path}: no answer lines (the file is empty)")
    if metric.num_samples == 0:
        raise InputError(f"{path}: all {seen} answer line{'s' if seen != 1 else ''} unusable; nothing to score")
    return metric.result()
