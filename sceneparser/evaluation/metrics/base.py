"""What both metrics share: options, reading (fast reader + slow validator), the filter diagnostics."""

from __future__ import annotations

import os

from sceneparser.errors import InputError
from sceneparser.evaluation.metrics.labels import LabelMap, load_alias_map
from sceneparser.evaluation.metrics.masks import MaskReader
from sceneparser.evaluation.metrics.matching import MATCHING_MODES, Matcher
from sceneparser.evaluation.metrics.reading import Malformed, SampleReader, WideNumber
from sceneparser.evaluation.metrics.typed import AnswerLine, TypedReader, answer_decoder
from sceneparser.evaluation.metrics.validation import BadField, explain

# what the fast reader raises on malformed input (the validator then names the field)
_READ_ERRORS = (Malformed, TypeError, AttributeError, ValueError, KeyError, IndexError, OverflowError)


class NeedsExactParse(Exception):
    """:meth:`MetricBase.update_fast` could not take this sample: re-parse it with the standard
    library and call :meth:`MetricBase.update` (which scores it or names the bad field)."""


class MetricBase:
    """Options, reading and the public ``update``; subclasses define ``_accumulate`` and ``result``."""

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
        part_alias = action_alias = None
        if self.canonical_eval:
            part_alias = dict(part_alias_map) if part_alias_map is not None else load_alias_map(part_mapping_path)
            action_alias = (
                dict(action_alias_map) if action_alias_map is not None else load_alias_map(action_mapping_path)
            )
        self.matching = matching
        self.normalize_object_names = bool(normalize_object_names)
        self.matcher = Matcher(matching == "optimal", MaskReader(mask_root, check_exists=self.level == "object"))
        labels = dict(part_labels=LabelMap(part_alias), action_labels=LabelMap(action_alias),
                      ignore_pseudo_part=self.ignore_pseudo_part, ignore_none_action=self.ignore_none_action,
                      normalize_object_names=self.normalize_object_names)
        self.reader = SampleReader(scene=self.level == "scene", **labels)
        # the typed fast path (object level): decode_typed(bytes) -> AnswerLine for update_typed
        self.typed_reader = TypedReader(**labels) if self.level == "object" else None
        self.decode_typed = answer_decoder().decode if self.level == "object" else None
        self.num_samples = 0

    def __getstate__(self) -> dict:  # pickled (by the worker processes) without the decoder
        return dict(self.__dict__, decode_typed=None)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.typed_reader is not None:
            self.decode_typed = answer_decoder().decode

    def update(self, sample: dict) -> None:
        """Add one answer line (a dict). Raises InputError (nothing counted) on malformed input."""
        try:
            G, P, json_ok = self.reader.read(sample)
        except _READ_ERRORS as exc:
            try:
                explain(sample, scene=self.level == "scene", ignore_none_action=self.ignore_none_action)
            except BadField as bad:
                raise InputError(str(bad)) from None
            raise InputError(f"malformed answer line ({type(exc).__name__}: {exc})") from None
        self._add(G, P, json_ok, self.reader.masks)

    def update_fast(self, sample: dict) -> None:
        """:meth:`update` for a sample parsed by orjson: raises :class:`NeedsExactParse` (nothing
        counted) where the sample is malformed or holds a number orjson may have read differently."""
        try:
            G, P, json_ok = self.reader.read(sample, check_wide=True)
        except (WideNumber,) + _READ_ERRORS:
            raise NeedsExactParse from None
        self._add(G, P, json_ok, self.reader.masks)

    def update_typed(self, line: AnswerLine) -> None:
        """:meth:`update` for a line decoded by :attr:`decode_typed` (object level; fields checked
        there); raises :class:`NeedsExactParse` (nothing counted) if it cannot take it."""
        try:
            G, P, json_ok = self.typed_reader.read(line)
        except _READ_ERRORS:
            raise NeedsExactParse from None
        self._add(G, P, json_ok, self.typed_reader.masks)

    def _add(self, G: list, P: list, json_ok: float, masks: list) -> None:
        """Count one read sample (``masks``: its GT affordances' mask paths)."""
        if masks:
            self.matcher.masks.note(masks)
        if self.filter_wrapper:
            json_ok = 1.0
        self._accumulate(G, P, json_ok)
        self.num_samples += 1

    def merge(self, other: "MetricBase") -> None:
        """Add the samples ``other`` (same class and options) has scored: the result is exactly
        that of one metric fed both streams, in any order (every accumulator is a count)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        self.num_samples += other.num_samples
        self.matcher.masks.merge(other.matcher.masks)
        self._merge(other)

    def _merge(self, other: "MetricBase") -> None:
        raise NotImplementedError

    def mask_report(self) -> dict:
        """The GT affordances scored so far whose mask is missing or unreadable (their region
        falls back to the box): ``{"missing"|"unreadable": {"affordances", "files", "example"}}``."""
        return self.matcher.masks.report()

    def _accumulate(self, G: list, P: list, json_ok: float) -> None:
        raise NotImplementedError

    def result(self) -> dict:
        raise NotImplementedError

    def _filter_diagnostics(self, diag: dict) -> None:
        """The three keys the reference filter wrapper adds to ``diagnostics``."""
        if self.filter_wrapper:
            diag["ignore_pseudo_part"] = self.ignore_pseudo_part
            diag["ignore_none_action"] = self.ignore_none_action
            diag["base_metric_script"] = self.base_script
