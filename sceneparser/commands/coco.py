"""``sceneparser coco SOURCE``: COCO box AP for objects and parts, through pycocotools.

SOURCE as for ``sceneparser export``. Prints AP, AP50, AP75, AP by size and AR@100 for objects
and for ``object:part`` categories; ``--out DIR`` also writes the COCO files and
``coco_metrics.json``; ``--json`` prints the metrics as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sceneparser.commands.export import add_source_arguments, build_from_args, print_summary, write_coco
from sceneparser.evaluation.coco import evaluate, format_table, scoring_copy
from sceneparser.io import write_json

METRICS_FILE = "coco_metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser)
    parser.add_argument("--iou-type", choices=("bbox",), default="bbox", help="COCO IoU type (boxes only)")
    parser.add_argument("--out", default=None, help=f"also write the COCO files and {METRICS_FILE} here")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    builder = build_from_args(args)
    summary = builder.summary()
    if args.out:
        write_coco(builder, args.out)
    gt, results = scoring_copy(builder.ground_truth(), builder.results())
    del builder  # the full export (affordances and all) is not needed to score
    metrics = evaluate(gt, results, args.iou_type, copy=False)
    report = {"metrics": metrics, "summary": summary, "iou_type": args.iou_type, "scorer": "pycocotools COCOeval"}
    if args.out:
        write_json(Path(args.out) / METRICS_FILE, report)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"sceneparser coco {args.source}  (pycocotools COCOeval, iou {args.iou_type})")
    print_summary(summary, sys.stdout)
    print(format_table(metrics))
    return 0
