"""Object-level and scene-level SceneParser metrics, streaming and exact to the reference.

``ObjectLevelMetric`` reproduces ``sceneparser_hierarchical_metric.py`` (the published L1/L2/L3
and ParseRate; docs/reference.md, *object-metric*) and ``SceneLevelMetric`` reproduces
``sceneparser_scene_hierarchical_metric.py`` (docs/reference.md, *scene-metric*): every output
key, diagnostics included, in the reference key order, with bit-identical floats. Means are
exact (``statistics.mean`` semantics: exact rational sum, one correct rounding, an int when the
mean of ints is whole).

Usage::

    metric = ObjectLevelMetric(ignore_pseudo_part=True, ignore_none_action=True)
    for sample in answers:          # dicts in the answer schema
        metric.update(sample)       # O(size of the sample); nothing per-sample is kept
    result = metric.result()        # the dict the reference writes to its --output_path

or ``evaluate_file(path, "object", ignore_pseudo_part=True, ...)`` for an answer JSONL.

``update`` never modifies the sample. The filters (``ignore_pseudo_part``,
``ignore_none_action``) are applied while reading, with the exact semantics of the reference
``*_with_filters.py`` wrapper (docs/reference.md, *filters*); when either is on, the result
also carries the wrapper's three diagnostics keys (``ignore_pseudo_part``,
``ignore_none_action``, ``base_metric_script``).

Options that change numbers (never on by default):

* ``matching="optimal"`` -- objects and parts are matched by maximum cardinality, then maximum
  total IoU, and affordances inside matched parts by maximum cardinality (scipy's
  ``linear_sum_assignment``), instead of the reference's GT-order greedy / first-fit matching.
  The name-only semantic diagnostics (``part_box_acc_given_semantic_*``,
  ``aff_point_acc_given_action``) keep their reference definitions.
* ``normalize_object_names=True`` -- object-level metric compares object names after
  ``strip().lower()`` (the scene-level metric always does).

Handling of inputs on which the reference crashes (documented, never a traceback):

* ``gt``, ``extracted_predictions``, ``objects``, ``parts``, ``affordances`` that are null are
  read as empty (what the reference filter wrapper does). In an unfiltered run a null or
  missing ``extracted_predictions`` counts as a JSON-parse failure in
  ``diagnostics.json_parse_success_rate``.
* Structurally malformed input raises :class:`~sceneparser.errors.InputError` naming the field
  (``gt.objects[2].parts[0].bbox: ...``), before anything is counted, so a caller can skip
  the sample: non-object items, non-list containers, boxes that are not ``null`` or 4 numbers,
  points that are not ``null`` or 2 numbers, strings or booleans where numbers belong,
  integers beyond the float range, a ``mask_path`` that is not a string.
* NaN and infinite coordinates are scored with the reference's own arithmetic (they can give
  odd IoUs, as there); only a mask lookup -- where the reference raises -- treats a
  non-finite point as outside the mask. A null predicted point is never inside a region.
* ``mask_path`` is opened relative to the current directory, as the reference does, or to
  ``mask_root`` when given. Masks that are missing or unreadable fall back to boxes (counted:
  ``metric.mask_report()``).

Modules: :mod:`.primitives` (reference arithmetic), :mod:`.means` (exact means),
:mod:`.labels`, :mod:`.masks`, :mod:`.records` (what the reader builds), :mod:`.reading` (fast
reader), :mod:`.typed` (msgspec typed reading, object level), :mod:`.validation` (names the bad
field), :mod:`.matching`, :mod:`.base`, :mod:`.object_level`, :mod:`.scene_level`,
:mod:`.results` (the reports), :mod:`.files`, :mod:`.chunks` (several processes; metrics merge
exactly: ``metric.merge(other)``).
"""

from __future__ import annotations

from sceneparser.evaluation.metrics.files import evaluate_file, iter_answer_lines
from sceneparser.evaluation.metrics.labels import load_alias_map
from sceneparser.evaluation.metrics.matching import MATCHING_MODES
from sceneparser.evaluation.metrics.means import small_mean
from sceneparser.evaluation.metrics.object_level import ObjectLevelMetric
from sceneparser.evaluation.metrics.primitives import EPS, f1, harmonic3, iou, normalize_label, point_in_box
from sceneparser.evaluation.metrics.results import result_text
from sceneparser.evaluation.metrics.scene_level import SceneLevelMetric

__all__ = [
    "ObjectLevelMetric",
    "SceneLevelMetric",
    "iou",
    "point_in_box",
    "f1",
    "harmonic3",
    "normalize_label",
    "load_alias_map",
    "iter_answer_lines",
    "evaluate_file",
    "result_text",
    "MATCHING_MODES",
    "EPS",
    "small_mean",
]
