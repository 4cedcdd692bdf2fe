"""``sceneparser report``: an HTML page that explains an eval output folder.

    sceneparser report results/default                      # -> results/default/report.html
    sceneparser report results/default --out /tmp/r.html --gt data/val.jsonl --image-root data

Exit status 0 when a report was written (problems with the folder are warnings, on stderr and
in the page), 2 when there is nothing to report.
"""

from __future__ import annotations

import sys

from sceneparser.evaluation.report import DEFAULT_EXAMPLES, build_report


def add_arguments(parser) -> None:
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="an eval output folder (sceneparser eval --out)")
    parser.add_argument("--out", default=None, help="where to write the HTML (default: RESULTS_DIR/report.html)")
    parser.add_argument("--gt", default=None, metavar="DATA.jsonl",
                        help="benchmark JSONL to take ground truth from, for answers written without it")
    parser.add_argument("--image-root", default=None,
                        help="directory the answers' image paths are relative to (default: the eval run's)")
    parser.add_argument("--mask-root", default=None,
                        help="directory relative mask paths resolve against (default: the eval run's)")
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                        help=f"worst and best samples shown in the gallery, each (default {DEFAULT_EXAMPLES})")


def run(args) -> int:
    outcome = build_report(args.results_dir, args.out, gt=args.gt, image_root=args.image_root,
                           mask_root=args.mask_root, num_examples=max(0, args.examples))
    for w in outcome.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {outcome.path}  ({outcome.num_answers} answers, {outcome.seconds:.1f} s)")
    return 0
