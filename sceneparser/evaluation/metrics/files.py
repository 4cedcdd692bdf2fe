"""Answer files: read a JSONL of answer lines and score it in one streaming pass.

At object level lines are first decoded by msgspec into typed structs holding only the fields
the metric reads (:mod:`.typed`); a line it does not take goes the dict way. Lines are parsed
with orjson (about 2.5 times faster than the standard library) and fall back
to ``json.loads`` wherever the two could differ, so results and error messages are those of
the standard library: a line orjson refuses (NaN/Infinity, lone surrogates, numbers beyond
the float range, invalid UTF-8, a BOM...) and a sample whose numbers orjson may have read
differently (integers beyond 64 bits; see :mod:`.reading`) are re-parsed with ``json.loads``.
Lines are split as Python's text mode does (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line);
a line that is only whitespace is skipped. ``workers`` > 1 scores a large file in that many
processes (:mod:`.chunks`); the result is the same to the bit.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import orjson

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics.base import MetricBase, NeedsExactParse
from sceneparser.evaluation.metrics.chunks import Child, line_aligned_starts
from sceneparser.evaluation.metrics.object_level import ObjectLevelMetric
from sceneparser.evaluation.metrics.scene_level import SceneLevelMetric
from sceneparser.evaluation.metrics.typed import DECODE_ERRORS

_BLANK = object()


class UnreadableLine(InputError):
    """A line that is not JSON (or not UTF-8); ``skip_invalid`` skips it like a malformed one."""


class _Stop(Exception):
    """A child met an unusable line and ``skip_invalid`` is off: nothing more to score."""


def _open(path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read answers file {path}: {exc.strerror or exc}") from None


def _raw_lines(path, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each line of bytes ``[start, end)`` (``start`` at a line start),
    numbered from 1 there and split as Python's text mode would."""
    with _open(path) as f:
        if start:
            f.seek(start)
        left = -1 if end is None else end - start
        lineno = 0
        for raw in f:
            if left >= 0:
                if not left:
                    return
                left -= len(raw)
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


def _exact_loads(raw: bytes) -> Any:
    """The standard library's reading of one line (``_BLANK`` for a whitespace-only line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableLine(f"not valid UTF-8 ({exc.reason})") from None
    if not text.strip():
        return _BLANK
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, digit-limit errors
        raise UnreadableLine(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise UnreadableLine("JSON nested too deeply") from None


def iter_answer_lines(path) -> Iterator[tuple[int, Any]]:
    """``(line_number, parsed JSON)`` for each non-blank line; InputError on a malformed line."""
    for lineno, raw in _raw_lines(path):
        if raw and not raw.isspace():
            try:
                value = _exact_loads(raw)
            except UnreadableLine as exc:
                raise InputError(f"{path}: line {lineno}: {exc}") from None
            if value is not _BLANK:
                yield lineno, value


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _update_from_line(metric: MetricBase, raw: bytes) -> bool:
    """Score one non-empty line; False when it turned out blank. InputError on a bad line.

    Tried in turn: msgspec typed decoding (object level), orjson, the standard library.
    """
    decode = metric.decode_typed
    if decode is not None and (raw.isascii() or _is_utf8(raw)):  # msgspec skips unread fields unchecked
        try:
            line = decode(raw)
        except DECODE_ERRORS:
            pass
        else:
            try:
                metric.update_typed(line)
                return True
            except NeedsExactParse:
                pass
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
    sample = _exact_loads(raw)
    if sample is _BLANK:
        return False
    metric.update(sample)
    return True


def _score_lines(metric: MetricBase, lines, on_problem: Callable[[int, str], None],
                 progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Score ``(line number, bytes)`` pairs; ``on_problem(line number, message)`` for each unusable
    line (it may raise to stop). Returns (non-blank lines, the last line number)."""
    seen = lineno = 0
    for lineno, raw in lines:
        if not raw or raw.isspace():  # blank (ASCII whitespace; other blank lines: _exact_loads)
            continue
        try:
            if not _update_from_line(metric, raw):
                continue
        except InputError as exc:
            on_problem(lineno, str(exc))
        seen += 1
        if progress is not None:
            progress(lineno)
    return seen, lineno


def _new_metric(level: str, options: dict) -> MetricBase:
    if level not in ("object", "scene"):
        raise InputError(f"level must be 'object' or 'scene', got {level!r}")
    return SceneLevelMetric(**options) if level == "scene" else ObjectLevelMetric(**options)


def _score_range(level: str, options: dict, path, start: int, end: int, skip_invalid: bool) -> tuple:
    """A child's work: (metric, non-blank lines, lines, problems as (line in the range, message))."""
    metric = _new_metric(level, options)
    problems: list = []

    def on_problem(lineno: int, msg: str) -> None:
        problems.append((lineno, msg))
        if not skip_invalid:
            raise _Stop

    try:
        seen, last = _score_lines(metric, _raw_lines(path, start, end), on_problem)
    except _Stop:
        seen = last = 0
    return metric, seen, last, problems


def evaluate_file(path, level: str = "object", *, skip_invalid: bool = False,
                  on_skip: Callable[[str], None] | None = None, progress: Callable[[int], None] | None = None,
                  stats: dict | None = None, workers: int = 1, **options) -> dict:
    """Score an answer JSONL file in one streaming pass; returns the reference result dict.

    An unusable line (not UTF-8, not JSON, or a malformed field) raises :class:`InputError`
    naming the line (and the field), unless ``skip_invalid`` is set: the line is then left out
    and ``on_skip(message)`` is called. Raises InputError when the file holds no answer line at
    all. ``stats``, when given, receives ``samples`` (scored), ``skipped``, ``skipped_lines``
    (their line numbers) and ``masks`` (:meth:`MaskReader.report` of the GT masks). A file
    where no line is usable raises InputError, ``skip_invalid`` or not (there is nothing to score).
    ``workers`` > 1: a file of at least :data:`.chunks.PARALLEL_MIN_BYTES` is scored in up to
    that many processes (same result; ``progress`` then follows the first part, then jumps to the end).
    """
    metric = _new_metric(level, options)
    skipped_lines: list[int] = []

    def on_problem(lineno: int, msg: str) -> None:
        msg = f"{path}: line {lineno}: {msg}"
        if not skip_invalid:
            raise InputError(msg)
        skipped_lines.append(lineno)
        if on_skip is not None:
            on_skip(msg)

    starts = line_aligned_starts(path, workers)
    ends = starts[1:] + [None]
    children = [Child(lambda s=s, e=e: _score_range(level, options, path, s, e, skip_invalid))
                for s, e in zip(starts[1:], ends[1:])]
    try:
        seen, offset = _score_lines(metric, _raw_lines(path, 0, ends[0]), on_problem, progress)
        for child in children:
            part, part_seen, part_last, problems = child.result()
            for lineno, msg in problems:
                on_problem(offset + lineno, msg)
            metric.merge(part)
            seen += part_seen
            offset += part_last
        if children and progress is not None:
            progress(offset)
    finally:
        for child in children:
            child.cancel()
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
