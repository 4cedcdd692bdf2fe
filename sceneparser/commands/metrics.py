"""``sceneparser metrics``: score an answer JSONL exactly as the reference metric scripts.

    sceneparser metrics --data-path answer.jsonl --output-path eval_results_filtered.json \\
        --ignore-pseudo-part --ignore-none-action --final-metrics-path final_metrics.json

Writes RESULT.json with the keys, nesting and values of the reference script (object level:
``sceneparser_hierarchical_metric.py``, through its filter wrapper when a filter flag is given;
scene level: ``sceneparser_scene_hierarchical_metric.py``), as ``json.dump(indent=2,
ensure_ascii=False)`` without a trailing newline. Files are replaced atomically: a reader never
sees half a result. A short table goes to stderr. The reference's underscore spellings
(``--data_path`` ...) are accepted too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sceneparser import io
from sceneparser.errors import InputError
from sceneparser.evaluation import final as final_mod
from sceneparser.evaluation import metrics
from sceneparser.evaluation.metrics.chunks import available_cpus


def add_arguments(parser) -> None:
    parser.add_argument("--data-path", "--data_path", dest="data_path", required=True,
                        help="answer JSONL (one line per sample, the reference answer schema)")
    parser.add_argument("--output-path", "--output_path", dest="output_path", required=True,
                        help="where to write the full results JSON")
    parser.add_argument("--level", choices=("object", "scene"), default="object",
                        help="object-level metric (the published one, default) or scene-level metric")
    parser.add_argument("--ignore-pseudo-part", "--ignore_pseudo_part", dest="ignore_pseudo_part",
                        action="store_true", help="drop parts named __placeholder_part__ (GT and prediction)")
    parser.add_argument("--ignore-none-action", "--ignore_none_action", dest="ignore_none_action",
                        action="store_true", help="drop affordances with action __none__/__placeholder_action__")
    parser.add_argument("--canonical-eval", "--canonical_eval", dest="canonical_eval", action="store_true",
                        help="map part names and actions through the alias maps below")
    parser.add_argument("--part-mapping-path", "--part_mapping_path", dest="part_mapping_path", default=None,
                        help='JSON {"alias_map": {alias: canonical}} for part names (with --canonical-eval)')
    parser.add_argument("--action-mapping-path", "--action_mapping_path", dest="action_mapping_path",
                        default=None, help="the same for actions (with --canonical-eval)")
    parser.add_argument("--final-metrics-path", "--final_metrics_path", dest="final_metrics_path", default=None,
                        help="also write final_metrics.json ({L1, L2, L3, ParseRate})")
    parser.add_argument("--matching", choices=("reference", "optimal"), default="reference",
                        help="reference: greedy/first-fit as the reference (default); optimal: maximum "
                        "cardinality then maximum IoU (changes numbers)")
    parser.add_argument("--normalize-object-names", dest="normalize_object_names", action="store_true",
                        help="object level: compare object names case- and space-insensitively (changes numbers)")
    parser.add_argument("--mask-root", dest="mask_root", default=None,
                        help="directory that relative mask_path values resolve against (default: the "
                        "current directory, as the reference)")
    parser.add_argument("--skip-invalid", dest="skip_invalid", action="store_true",
                        help="leave out unusable lines (not UTF-8, not JSON, malformed fields; counted and "
                        "reported by line number) instead of stopping at the first")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that score a large file (default: 2 where 2 CPUs are available; "
                        "1: one process). The result is the same to the bit")


def _write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`sceneparser.io.write_text`); InputError if it cannot."""
    try:
        io.write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write {Path(path)}: {exc.strerror or exc}") from None


def format_table(result: dict, final: dict, level: str, num_samples: int | None = None) -> str:
    """The short human-readable summary printed to stderr."""
    head = f"{level}-level metrics" + (f" over {num_samples} samples" if num_samples is not None else "")
    lines = [head, f"{'':10}{'precision':>10}{'recall':>10}{'F1':>10}"]
    for key in ("L1", "L2", "L3"):
        v = result.get(key) or {}
        lines.append(f"{key:<10}{v.get('precision', 0.0):>10.4f}{v.get('recall', 0.0):>10.4f}{v.get('f1', 0.0):>10.4f}")
    lines.append(f"{'ParseRate':<10}{final['ParseRate']:>10.4f}")
    return "\n".join(lines)


class _ProgressBar:
    """``progress(lineno)`` for a terminal: a tqdm bar, created at the first call (after the
    worker processes are forked, so that they never inherit its monitor thread)."""

    def __init__(self):
        self.bar = None
        self.last = 0

    def __call__(self, lineno: int) -> None:
        if lineno - self.last < 1000:
            return
        if self.bar is None:
            from tqdm import tqdm  # only for a terminal: keeps the command's start-up light (benchmarked)

            self.bar = tqdm(desc="scoring", unit=" lines", file=sys.stderr, mininterval=0.5)
        self.bar.update(lineno - self.last)
        self.last = lineno

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def skipped_summary(lines: list[int], show: int = 50) -> str:
    """``skipped N unusable lines: 3, 7, 12-15`` (the first ``show`` line numbers, runs joined)."""
    runs: list[list[int]] = []
    for n in lines[:show]:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    more = f", ... ({len(lines) - show} more)" if len(lines) > show else ""
    return f"skipped {len(lines)} unusable line{'s' if len(lines) != 1 else ''}: {text}{more}"


def mask_fallback_warning(report: dict) -> str | None:
    """One warning line when GT affordance masks were missing or unreadable (their region then
    falls back to the box, as in the reference), else None."""
    parts = []
    for state, label in (("missing", "missing"), ("unreadable", "present but unreadable")):
        r = report[state]
        if r["affordances"]:
            parts.append(f"{r['affordances']} with a {label} mask ({r['files']} file{'s' if r['files'] != 1 else ''},"
                         f" e.g. {r['example']})")
    if not parts:
        return None
    return "warning: GT affordances scored with their box instead of the mask: " + "; ".join(parts)


def run(args) -> int:
    if not os.path.isfile(args.data_path):
        raise InputError(f"answers file not found: {args.data_path}")
    options = dict(
        ignore_pseudo_part=args.ignore_pseudo_part,
        ignore_none_action=args.ignore_none_action,
        canonical_eval=args.canonical_eval,
        part_mapping_path=args.part_mapping_path,
        action_mapping_path=args.action_mapping_path,
        matching=args.matching,
        mask_root=args.mask_root,
    )
    if args.level == "object":
        options["normalize_object_names"] = args.normalize_object_names
    elif args.normalize_object_names:
        print("note: --normalize-object-names has no effect at scene level (names are always normalised)",
              file=sys.stderr)

    skipped = []

    def on_skip(msg: str) -> None:
        skipped.append(msg)
        if len(skipped) <= 20:
            print(f"skipped: {msg}", file=sys.stderr)

    workers = min(2, available_cpus()) if args.workers is None else args.workers
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    bar = _ProgressBar() if sys.stderr.isatty() else None
    try:
        stats: dict = {}
        result = metrics.evaluate_file(args.data_path, level=args.level, skip_invalid=args.skip_invalid,
                                       on_skip=on_skip, progress=bar, stats=stats, workers=workers,
                                       **options)
    finally:
        if bar is not None:
            bar.close()
    if skipped:
        print(skipped_summary(stats["skipped_lines"]), file=sys.stderr)
    mask_warning = mask_fallback_warning(stats["masks"])
    if mask_warning:
        print(mask_warning, file=sys.stderr)

    final = final_mod.extract_final_metrics(result)
    _write_atomic(args.output_path, metrics.result_text(result))
    if args.final_metrics_path:
        _write_atomic(args.final_metrics_path, final_mod.final_metrics_text(final))
    print(format_table(result, final, args.level, stats.get("samples")), file=sys.stderr)
    print(f"wrote {args.output_path}" + (f" and {args.final_metrics_path}" if args.final_metrics_path else ""),
          file=sys.stderr)
    return 0
