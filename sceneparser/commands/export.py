"""``sceneparser export --format coco SOURCE --out DIR``: ground truth and predictions as COCO JSON.

SOURCE is an ``answer.jsonl`` (or the ``sceneparser eval`` directory holding it), or the output of
``sceneparser parse --out`` with ``--data`` (the benchmark JSONL it was run on). Writes
``DIR/ground_truth.json`` (COCO dataset) and ``DIR/predictions.json`` (COCO results); see
:mod:`sceneparser.evaluation.coco` for the layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sceneparser.evaluation.coco import build
from sceneparser.io import write_json

GT_FILE = "ground_truth.json"
PRED_FILE = "predictions.json"


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The input options shared with ``sceneparser coco``."""
    parser.add_argument("source", help="answer.jsonl, a `sceneparser eval` output directory, or "
                                       "`sceneparser parse --out` results (.jsonl/.json, with --data)")
    parser.add_argument("--data", default=None, help="benchmark JSONL the parse results were run on (their ground truth)")
    parser.add_argument("--image-root", default=None, help="what relative image paths of --data resolve against")
    parser.add_argument("--ignore-pseudo-part", action="store_true",
                        help="drop __placeholder_part__ parts (ground truth and predictions), as the filtered metric")
    parser.add_argument("--ignore-none-action", action="store_true",
                        help="drop __none__ / __placeholder_action__ affordances, as the filtered metric")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--format", choices=("coco",), default="coco", help="output format (default: coco)")
    parser.add_argument("--out", required=True, help=f"output directory ({GT_FILE}, {PRED_FILE})")


def build_from_args(args: argparse.Namespace):
    return build(args.source, data=args.data, image_root=args.image_root,
                 ignore_pseudo_part=args.ignore_pseudo_part, ignore_none_action=args.ignore_none_action)


def write_coco(builder, out_dir) -> tuple[Path, Path]:
    out = Path(out_dir)
    gt_path, pred_path = out / GT_FILE, out / PRED_FILE
    write_json(gt_path, builder.ground_truth(), indent=None)
    write_json(pred_path, builder.results(), indent=None)
    return gt_path, pred_path


def print_summary(summary: dict, stream) -> None:
    gt, dt = summary["ground_truth"], summary["detections"]
    print(f"  {summary['samples']} samples, {summary['images']} images; categories: "
          f"{summary['categories']['object']} objects, {summary['categories']['part']} object:part", file=stream)
    print(f"  ground truth: {gt['object']} objects, {gt['part']} parts; "
          f"predictions: {dt['object']} objects, {dt['part']} parts", file=stream)
    print(f"  scores: {summary['score_note']}", file=stream)
    for reason, n in summary["skipped"].items():
        print(f"  left out {n:>7} x {reason}", file=stream)


def run(args: argparse.Namespace) -> int:
    builder = build_from_args(args)
    gt_path, pred_path = write_coco(builder, args.out)
    print(f"sceneparser export --format coco -> {gt_path}, {pred_path}", file=sys.stderr)
    print_summary(builder.summary(), sys.stderr)
    return 0
