"""sceneparser.evaluation: ground truth, the reference metrics, filters and final numbers.

Light to import (no torch, no numpy until a mask is read)::

    from sceneparser.evaluation import build_gt_for_category, ObjectLevelMetric
    gt = build_gt_for_category(record, "mug")
    m = ObjectLevelMetric(ignore_pseudo_part=True, ignore_none_action=True)
    m.update(answer_line); result = m.result()

The runner (``sceneparser eval``) lives in :mod:`sceneparser.evaluation.runner`.
"""

from __future__ import annotations

from sceneparser.evaluation.ground_truth import build_gt_for_category

__all__ = [
    "build_gt_for_category",
    "ObjectLevelMetric",
    "SceneLevelMetric",
    "evaluate_file",
    "filter_sample",
    "extract_final_metrics",
]

_LAZY = {
    "ObjectLevelMetric": ("sceneparser.evaluation.metrics", "ObjectLevelMetric"),
    "SceneLevelMetric": ("sceneparser.evaluation.metrics", "SceneLevelMetric"),
    "evaluate_file": ("sceneparser.evaluation.metrics", "evaluate_file"),
    "filter_sample": ("sceneparser.evaluation.filters", "filter_sample"),
    "extract_final_metrics": ("sceneparser.evaluation.final", "extract_final_metrics"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sceneparser.evaluation' has no attribute {name!r}")
