"""Build the evaluation report of an eval output folder (what ``sceneparser report`` runs).

Reads what is there -- ``answer.jsonl`` (streamed once), ``final_metrics.json``,
``eval_results_filtered.json``, ``eval_summary.json``, ``manifest.json`` -- and writes one
self-contained HTML file. Whatever is missing or broken becomes a warning (returned, and shown
in the report where the missing part would have been); only a folder with nothing to report
raises :class:`~sceneparser.errors.InputError`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from sceneparser import io
from sceneparser.errors import InputError
from sceneparser.evaluation.ground_truth import build_gt_for_category
from sceneparser.evaluation.report import gallery, html, plots
from sceneparser.evaluation.report.analysis import EXTRA_TYPES, MISS_TYPES, Analysis, analyse_file

DEFAULT_EXAMPLES = 8
#: a recomputed number may differ from the file's by float noise only
TOLERANCE = 1e-9


@dataclass
class ReportOutcome:
    path: Path
    warnings: list = field(default_factory=list)
    num_answers: int = 0
    seconds: float = 0.0


def _read_json(path: Path, warnings: list, what: str):
    if not path.is_file():
        warnings.append(f"{path.name} is missing: {what}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.append(f"{path.name} cannot be read ({type(exc).__name__}: {str(exc)[:120]}): {what}")
        return None


def _gt_index(data_path, warnings: list) -> dict:
    """image_path -> benchmark record, from ``--gt DATA.jsonl``."""
    index: dict = {}
    try:
        with open(data_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    warnings.append(f"--gt {data_path}: line {lineno} is not JSON (skipped)")
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("image_path"), str):
                    index.setdefault(rec["image_path"], rec)
    except OSError as exc:
        raise InputError(f"--gt {data_path}: cannot read it ({exc.strerror or exc})") from None
    return index


def _gt_for(index: dict, row: dict):
    rec = index.get(row.get("image_path"))
    if rec is None:
        return None
    try:
        return build_gt_for_category(rec, row.get("category"))
    except InputError:
        return None


def _analyse_with_gt(answers: Path, index: dict, mask_root, warnings: list) -> tuple[Analysis, int]:
    """Stream the answers, filling a missing ``gt`` from the benchmark records."""
    a = Analysis(mask_root=mask_root)
    filled = 0
    with open(answers, "rb") as f:
        offset = 0
        for lineno, raw in enumerate(f, 1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except ValueError as exc:
                a.num_lines += 1
                a.bad_lines.append((lineno, f"not valid JSON ({str(exc)[:120]})"))
                continue
            if isinstance(row, dict) and row.get("gt") is None:
                gt = _gt_for(index, row)
                if gt is not None:
                    row["gt"] = gt
                    filled += 1
            a.add_sample(row, lineno, start)
    a.reconcile()
    return a, filled


def _compare(file_result: dict | None, final: dict | None, computed: dict, warnings: list) -> None:
    """Warn when the numbers recomputed from answer.jsonl differ from the metric files."""
    if file_result:
        for key in ("L1", "L2", "L3"):
            a, b = (file_result.get(key) or {}).get("f1"), computed[key]["f1"]
            if isinstance(a, (int, float)) and abs(a - b) > TOLERANCE:
                warnings.append(
                    f"{key} F1 recomputed from answer.jsonl ({b:.4f}) differs from eval_results_filtered.json "
                    f"({a:.4f}): masks moved, or the answers changed after scoring; the tables use the recomputed counts")
                break
    if final and isinstance(final.get("L1"), (int, float)) and abs(final["L1"] - computed["L1"]["f1"]) > TOLERANCE:
        warnings.append("final_metrics.json does not match answer.jsonl (re-run sceneparser eval to re-score)")


def build_report(results_dir, out=None, *, gt=None, image_root=None, mask_root=None,
                 num_examples: int = DEFAULT_EXAMPLES, title: str | None = None) -> ReportOutcome:
    """Write the HTML report of ``results_dir`` to ``out`` (default ``results_dir/report.html``)."""
    t0 = time.perf_counter()
    results = Path(results_dir)
    if not results.is_dir():
        raise InputError(f"results folder not found: {results}")
    out_path = Path(out) if out else results / "report.html"
    warnings: list = []
    manifest = _read_json(results / "manifest.json", warnings, "model and data are not named")
    final = _read_json(results / "final_metrics.json", warnings, "headline numbers recomputed from answer.jsonl")
    filtered = _read_json(results / "eval_results_filtered.json", warnings,
                          "precision / recall recomputed from answer.jsonl")
    summary = _read_json(results / "eval_summary.json", warnings, "no run summary (timings, skipped lines)")
    settings = (manifest or {}).get("settings") or {}
    if settings.get("level") == "scene":
        warnings.append("a scene-level run: the breakdown below re-scores the answers with the object-level metric")
    root = gallery.image_root_for(results, manifest, image_root)
    if mask_root is None:  # where the eval run resolved relative mask paths
        mask_root = settings.get("mask_root") or root
        if not (isinstance(mask_root, str) and Path(mask_root).is_dir()):
            mask_root = None

    answers = results / "answer.jsonl"
    analysis = None
    gt_index = None
    if not answers.is_file():
        warnings.append("answer.jsonl is missing: no per-category tables, error types or gallery")
    else:
        if gt:
            gt_index = _gt_index(gt, warnings)
            analysis, filled = _analyse_with_gt(answers, gt_index, mask_root, warnings)
            if filled:
                warnings.append(f"ground truth of {filled} answers taken from {gt}")
        else:
            analysis = analyse_file(answers, mask_root=mask_root)
        if analysis.bad_lines:
            ln, msg = analysis.bad_lines[0]
            warnings.append(f"{len(analysis.bad_lines)} answer lines could not be read and are left out "
                            f"(first: line {ln}: {msg})")
        if analysis.num_lines == len(analysis.bad_lines):
            warnings.append("answer.jsonl holds no usable answers")
            analysis = None
        elif analysis.no_gt:
            warnings.append(f"{analysis.no_gt} of {analysis.num_lines - len(analysis.bad_lines)} answers have no "
                            "ground-truth object (their predictions all count as extra)"
                            + ("" if gt else "; pass --gt DATA.jsonl if the answers were written without it"))
    if analysis is None and final is None and filtered is None:
        raise InputError(f"nothing to report in {results}: no answer.jsonl, final_metrics.json or "
                         "eval_results_filtered.json")
    computed = analysis.result() if analysis else None
    if computed is not None:
        _compare(filtered, final, computed, warnings)

    cards_worst, cards_best = [], []
    if analysis is not None and num_examples > 0:
        worst, best = analysis.worst_and_best(num_examples)
        index = gt_index or {}
        for refs, cards in ((worst, cards_worst), (best, cards_best)):
            for ref in refs:
                override = None
                if index:
                    row = {"image_path": ref.image_path, "category": ref.category}
                    override = _gt_for(index, row)
                cards.append(gallery.make_card(answers, ref, root, gt_override=override))
        bad = [c for c in cards_worst + cards_best if c.problem]
        if bad:
            warnings.append(f"{len(bad)} gallery images could not be shown (first: {bad[0].problem})")

    figures: dict = {}
    plot_problem = plots.available() if analysis is not None else None
    if analysis is not None and plot_problem is None:
        figures["iou"] = plots.iou_histograms(analysis.levels)
        figures["errors"] = plots.error_bars(analysis.levels, MISS_TYPES, EXTRA_TYPES)
        if analysis.score_pairs["object"]:
            figures["calibration"] = plots.calibration(analysis.score_pairs["object"])
    elif plot_problem:
        warnings.append(f"no plots: {plot_problem}")

    page = html.render(
        title=title or f"SceneParser evaluation report: {results.name}",
        results_dir=results, manifest=manifest, final=final, filtered=filtered, summary=summary,
        analysis=analysis, computed=computed, cards_worst=cards_worst, cards_best=cards_best,
        figures=figures, plot_problem=plot_problem, warnings=warnings, image_root=root,
    )
    try:
        os.makedirs(out_path.parent, exist_ok=True)
        io.write_text(out_path, page)
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    return ReportOutcome(out_path, warnings, analysis.num_lines if analysis else 0, time.perf_counter() - t0)
