"""``sceneparser convert``: benchmark JSONL -> training TSV (images.tsv, annotations.tsv, lineidx).

``--from coco|paco`` first imports a COCO / PACO file (:mod:`sceneparser.data.importers`) into
``OUT/records.jsonl`` (and what it left out, with reasons, into ``OUT/import_skipped.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sceneparser.data.convert import convert_jsonl
from sceneparser.data.importers import import_coco, load_category_map, write_import
from sceneparser.errors import InputError
from sceneparser.images import DEFAULT_MAX_IMAGE_PIXELS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json-file", required=True,
                        help="benchmark JSONL (one record per line), or with --from a COCO / PACO JSON file")
    parser.add_argument("--from", dest="source_format", choices=("jsonl", "coco", "paco"), default="jsonl",
                        help="input format: benchmark JSONL (default), COCO detection (objects) or PACO (objects and parts)")
    parser.add_argument("--categories", default=None, metavar="MAP.json",
                        help='with --from: rename categories, {"name in the file": "new name" or null to drop}')
    parser.add_argument("--import-only", action="store_true",
                        help="with --from: only write OUT/records.jsonl, no TSV")
    parser.add_argument("--out-dir", required=True, help="output directory for the three TSV files")
    parser.add_argument("--image-root", default=None,
                        help="directory that relative image_path values resolve against (default: current directory)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="worker processes (default: min(8, CPUs)); output order is the JSONL order")
    parser.add_argument("--reencode-jpeg-quality", type=int, default=None, metavar="Q",
                        help="store PIL RGB JPEG re-encodes at quality Q instead of the original bytes "
                             "(75 reproduces the reference converter)")
    parser.add_argument("--verify-images", action="store_true",
                        help="decode every image fully (slower; default checks headers and end markers)")
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, metavar="N",
                        help="skip images whose header declares more than N pixels, before decoding them "
                             f"(default {DEFAULT_MAX_IMAGE_PIXELS:,}, as every reader; 0: no limit)")
    parser.add_argument("--keep-pseudo-flag", action="store_true",
                        help="also store each part's is_pseudo_part in the annotation (not in the reference layout)")
    parser.add_argument("--validate", action="store_true", help="re-read the written files and check every offset and row")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _print_summary(s, stream) -> None:
    print(f"processed {s.processed} records from {s.json_file}: wrote {s.written}, skipped {s.skipped}, "
          f"warnings {s.warnings} ({s.seconds:.2f} s)", file=stream)
    for reason, n in s.skip_reasons.items():
        print(f"  skipped {n:>6} x {reason}", file=stream)
    for reason, n in s.warning_reasons.items():
        print(f"  warning {n:>6} x {reason}", file=stream)
    if s.skipped:
        print(f"  every skipped record with its reasons: {s.out_dir / 'skipped.jsonl'}", file=stream)
    if s.warnings:
        print(f"  every warning: {s.out_dir / 'warnings.jsonl'}", file=stream)
    if s.removed_temp_dirs:
        print(f"  removed {len(s.removed_temp_dirs)} temporary folder(s) left by an interrupted run", file=stream)
    for f in s.files[:3]:
        print(f"  {f}", file=stream)
    if s.validation is not None:
        print("  validate: OK" if not s.validation else f"  validate: {len(s.validation)} problems", file=stream)
        for p in s.validation:
            print(f"    {p}", file=stream)


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise InputError("--workers must be >= 1")
    if args.image_root is not None and not os.path.isdir(args.image_root):
        raise InputError(f"--image-root is not a directory: {args.image_root}")
    json_file = args.json_file
    if args.source_format != "jsonl":
        report = import_coco(args.json_file, args.source_format, categories=load_category_map(args.categories),
                             image_root=args.image_root, check_images=True)
        json_file = os.path.join(args.out_dir, "records.jsonl")
        write_import(report, json_file, os.path.join(args.out_dir, "import_skipped.jsonl"))
        print(report.summary(), file=sys.stderr)
        if args.import_only:
            return 0
    elif args.categories or args.import_only:
        raise InputError("--categories and --import-only need --from coco or --from paco")
    summary = convert_jsonl(
        json_file, args.out_dir, image_root=args.image_root, workers=args.workers,
        reencode_jpeg_quality=args.reencode_jpeg_quality, verify_images=args.verify_images,
        keep_pseudo_flag=args.keep_pseudo_flag, validate=args.validate, progress=not args.no_progress,
        max_image_pixels=args.max_image_pixels,
    )
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_summary(summary, sys.stdout)
    if summary.validation:
        return 1
    return 0
