"""``sceneparser export-serving OUT [--model SRC]``: a checkpoint folder for ``vllm serve`` / SGLang
(the converted tokenizer with the original ids and the reference generation config); a thin layer
over :func:`sceneparser.model.serving.export_for_serving`."""

from __future__ import annotations

import argparse
import sys

from sceneparser.model.serving import export_for_serving


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="folder to write (must be new or empty)")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped default model)")
    p.add_argument("--copy-weights", action="store_true", help="copy the weights instead of linking them")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    record = export_for_serving(args.model, args.out, copy_weights=args.copy_weights, overwrite=args.overwrite)
    ids = record["token_ids"]
    print(f"wrote {args.out}: weights {record['weights']}, tokenizer ids <0>={ids['<0>']} "
          f"<|image_pad|>={ids['<|image_pad|>']}, reference generation_config.json", file=sys.stderr)
    print("serve it with:")
    for name, cmd in record["commands"].items():
        print(f"  # {name}\n  {cmd}")
    return 0
