"""``sceneparser probe``: does a model look at the image? (coordinate loss, real vs shuffled images)

    sceneparser probe [--model DIR] --data TSV_DIR [--samples 48] [--max-pixels 37632] [--json out.json]

Teacher-forced on a training-layout TSV (``sceneparser convert``), so it needs no decoding and
works on any checkpoint; see :mod:`sceneparser.training.probe`.
"""

from __future__ import annotations

import json

from sceneparser.errors import InputError
from sceneparser.model.loading import load_model_dir, resolve_model_path
from sceneparser.training.config import DataSection


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=None,
                        help="model directory (or a checkpoint-N directory; default: the shipped default model)")
    parser.add_argument("--data", required=True,
                        help="TSV directory written by 'sceneparser convert' (or a folder of Parquet shards)")
    parser.add_argument("--samples", type=int, default=48, help="samples to use (default 48)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--min-pixels", type=int, default=None, help="image processor min_pixels (default: the model's)")
    parser.add_argument("--max-pixels", type=int, default=None, help="image processor max_pixels (default: the model's)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the query draw (as the training config's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the report as JSON here")


def run(args) -> int:
    import torch  # heavy: torch and the training modules that need it load only when probing

    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.probe import format_report, image_dependence
    from sceneparser.training.stage import apply_pixel_limits

    if args.samples < 2:
        raise InputError("--samples must be at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, processor = load_model_dir(resolve_model_path(args.model), device="cpu", dtype=torch.float32)
    apply_pixel_limits(processor, args.min_pixels, args.max_pixels)
    dataset = build_dataset(args.data, processor, DataSection(), seed=args.seed, defer_pixels=True)
    report = image_dependence(model, processor, dataset, num_samples=args.samples, batch_size=args.batch_size)
    print(format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")
    return 0
