"""``sceneparser synth``: write a synthetic dataset in the SceneParser-Bench format."""

from __future__ import annotations

import argparse
import json
import sys
import time

from sceneparser.data.synth import SceneOptions, generate_dataset
from sceneparser.errors import InputError


def _image_size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        size = int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if size[0] < 32 or size[1] < 32:
        raise argparse.ArgumentTypeError(f"image size must be at least 32x32, got {text!r}")
    return size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--num-images", type=int, required=True, help="number of images to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same dataset)")
    parser.add_argument("--image-size", type=_image_size, default=(640, 480), metavar="WxH",
                        help="image size (default 640x480)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of images written to val.jsonl (default 0.1)")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the images (default 90)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    parser.add_argument("--multi-instance-rate", type=float, default=0.0,
                        help="share of images with 2-4 instances of one class (default 0: the original scenes)")
    parser.add_argument("--rotate-rate", type=float, default=0.0,
                        help="share of objects drawn rotated by 90/180/270 degrees or mirrored (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.num_images < 0:
        raise InputError("--num-images must be >= 0")
    if not 0.0 <= args.val_fraction <= 1.0:
        raise InputError("--val-fraction must be between 0 and 1")
    if not 1 <= args.jpeg_quality <= 100:
        raise InputError("--jpeg-quality must be between 1 and 100")
    for flag, value in (("--multi-instance-rate", args.multi_instance_rate), ("--rotate-rate", args.rotate_rate)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"{flag} must be between 0 and 1")
    options = SceneOptions(multi_instance_rate=args.multi_instance_rate, rotate_rate=args.rotate_rate)
    t0 = time.perf_counter()
    try:
        summary = generate_dataset(
            args.out, args.num_images, args.seed, image_size=args.image_size, val_fraction=args.val_fraction,
            jpeg_quality=args.jpeg_quality, workers=max(1, args.workers), progress=not args.no_progress,
            options=options,
        )
    except OSError as exc:
        raise InputError(f"cannot write the dataset to {args.out}: {exc}") from exc
    dt = time.perf_counter() - t0
    info = summary.to_dict()
    info["seconds"] = round(dt, 3)
    print(json.dumps(info, indent=2), file=sys.stdout)
    return 0
