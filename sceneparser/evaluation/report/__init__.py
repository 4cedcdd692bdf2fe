"""The evaluation report: one self-contained HTML page that explains an eval output folder.

``build_report(results_dir, out)`` (what ``sceneparser report`` and ``sceneparser eval
--report`` run) reads the folder and writes the page: headline metrics with their definitions,
precision / recall / F1 per level, per-category / part / action tables, error types and
confusions, IoU and score plots (matplotlib, the ``report`` extra) and a gallery of the worst and
best samples. Modules: :mod:`.analysis` (one streaming pass with the metric's matching),
:mod:`.gallery` (the pictures), :mod:`.plots`, :mod:`.html` (the page), :mod:`.build`.
"""

from __future__ import annotations

from sceneparser.evaluation.report.analysis import Analysis, analyse_file
from sceneparser.evaluation.report.build import DEFAULT_EXAMPLES, ReportOutcome, build_report

__all__ = ["Analysis", "analyse_file", "build_report", "ReportOutcome", "DEFAULT_EXAMPLES"]
