"""Confidence scores from the model's own token probabilities.

The score of an object is the **geometric-mean probability of the tokens that spell its name and
its box** in the answer: ``exp(mean(log p(token)))`` over every generated token that overlaps the
characters of its ``"name"`` value or its ``"bbox"`` value (``<x0><y0><x1><y1>``). A part uses its
``"part_name"`` and ``"bbox"``, an affordance its ``"action"`` and ``"point"``. ``p`` is the
probability the model gave the token it produced, under its own distribution (before the
repetition penalty; for greedy decoding the most likely token after the penalty). A score is in
[0, 1]; 1 means the model was certain of every one of those tokens. It is ``None`` where the
backend gives no token probabilities (a remote server that does not return ``logprobs``) or
where the element has no such tokens.

This is a ranking signal, not a calibrated probability of being correct: thresholding it
(``min_score``) trades recall for precision, and it orders detections for COCO-style AP.

The scores follow the answer text, not the parser: :func:`element_spans` reads the same JSON span
the reference parser reads (:func:`sceneparser.parsing.extract_json_string`) with a small
position-keeping reader, and every dict in ``objects`` (in ``parts``, in ``affordances``) is one
element, in order, exactly as the parser keeps them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from sceneparser.parsing import extract_json_string

__all__ = ["ElementSpans", "element_spans", "span_score", "answer_scores"]

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_LITERAL = re.compile(r"[^\s,:\[\]{}\"]+")


@dataclass
class ElementSpans:
    """Character spans (in the answer text) of one object, part or affordance, and its children."""

    spans: list[tuple[int, int]] = field(default_factory=list)
    children: list["ElementSpans"] = field(default_factory=list)


class _Reader:
    """A tolerant JSON reader that keeps the position of every value (truncated input ends early)."""

    def __init__(self, text: str, offset: int):
        self.text, self.pos, self.offset = text, 0, offset

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def value(self) -> Any:
        """``(kind, payload, (start, end))``; ``None`` at the end of the text."""
        self._ws()
        if self.pos >= len(self.text):
            return None
        c, start = self.text[self.pos], self.pos
        if c == "{":
            self.pos += 1
            items: dict[str, Any] = {}
            while True:
                self._ws()
                if self.pos >= len(self.text):
                    break
                if self.text[self.pos] == "}":
                    self.pos += 1
                    break
                if self.text[self.pos] == ",":
                    self.pos += 1
                    continue
                key = self.value()
                if key is None or key[0] != "str":
                    break
                self._ws()
                if self.pos < len(self.text) and self.text[self.pos] == ":":
                    self.pos += 1
                val = self.value()
                if val is None:
                    break
                items[key[1]] = val
            return ("dict", items, (start + self.offset, self.pos + self.offset))
        if c == "[":
            self.pos += 1
            elems: list[Any] = []
            while True:
                self._ws()
                if self.pos >= len(self.text):
                    break
                if self.text[self.pos] == "]":
                    self.pos += 1
                    break
                if self.text[self.pos] == ",":
                    self.pos += 1
                    continue
                val = self.value()
                if val is None:
                    break
                elems.append(val)
            return ("list", elems, (start + self.offset, self.pos + self.offset))
        if c == '"':
            m = _STRING.match(self.text, self.pos)
            if m is None:  # unterminated string: up to the end
                self.pos = len(self.text)
                return ("str", self.text[start + 1 :], (start + 1 + self.offset, self.pos + self.offset))
            self.pos = m.end()
            # the characters inside the quotes
            return ("str", m.group()[1:-1], (start + 1 + self.offset, m.end() - 1 + self.offset))
        m = _LITERAL.match(self.text, self.pos)
        if m is None:  # a stray character: skip it
            self.pos += 1
            return ("other", c, (start + self.offset, self.pos + self.offset))
        self.pos = m.end()
        return ("other", m.group(), (start + self.offset, self.pos + self.offset))


_LEVELS = (("name", "bbox", "parts"), ("part_name", "bbox", "affordances"), ("action", "point", None))


def _elements(node: Any, level: int) -> list[ElementSpans]:
    if node is None or node[0] != "list":
        return []
    name_key, coord_key, child_key = _LEVELS[level]
    out = []
    for item in node[1]:
        if item[0] != "dict":
            continue  # the parser skips non-dict entries too
        d = item[1]
        spans = [d[k][2] for k in (name_key, coord_key) if k in d and d[k][0] != "list" and d[k][0] != "dict"]
        el = ElementSpans(spans=spans)
        if child_key is not None:
            el.children = _elements(d.get(child_key), level + 1)
        out.append(el)
    return out


def element_spans(text: str) -> list[ElementSpans]:
    """The objects of ``text`` (their parts, their affordances) with the character spans of their
    name and coordinate values, in answer order."""
    span = extract_json_string(text)
    if not span:
        return []
    start = text.find(span)
    root = _Reader(span, max(start, 0)).value()
    if root is None:
        return []
    if root[0] == "dict":
        return _elements(root[1].get("objects"), 0)
    return _elements(root, 0)  # a bare list of objects


def span_score(spans: Sequence[tuple[int, int]], offsets: Sequence[int], logprobs: Sequence[float], text_len: int) -> float | None:
    """``exp(mean log p)`` of the tokens overlapping any of ``spans``; ``None`` when there are none."""
    if not spans:
        return None
    ends = list(offsets[1:]) + [max(text_len, offsets[-1] + 1 if offsets else 0)]
    picked = [
        lp
        for start, end, lp in zip(offsets, ends, logprobs)
        if end > start and any(s < end and start < e for s, e in spans)
    ]
    if not picked:
        return None
    return round(math.exp(sum(picked) / len(picked)), 6)


def answer_scores(text: str, offsets: Sequence[int] | None, logprobs: Sequence[float] | None) -> list[dict] | None:
    """Scores of every element of the answer, nested like the answer:
    ``[{"score": s, "parts": [{"score": s, "affordances": [s, ...]}, ...]}, ...]``; ``None`` when
    the backend gave no token probabilities."""
    if offsets is None or logprobs is None or len(offsets) != len(logprobs):
        return None
    n = len(text)

    def sc(el: ElementSpans) -> float | None:
        return span_score(el.spans, offsets, logprobs, n)

    return [
        {
            "score": sc(o),
            "parts": [{"score": sc(p), "affordances": [sc(a) for a in p.children]} for p in o.children],
        }
        for o in element_spans(text)
    ]
