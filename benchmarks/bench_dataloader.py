"""Benchmark the training data pipeline (dataset + collator) against its floor (issue 6).

Builds N synthetic 640x480 scenes with ``sceneparser.data.synth`` and converts them to the TSV
layout (cached in --data-dir), then, in one run and with the same DataLoader settings
(--workers processes, --batch-size):

* floor: read the TSV row, JPEG-decode the image and resize it to its smart_resize size (the
  work no pipeline can avoid);
* pipeline: ``SceneParserTrainDataset`` + ``SceneParserCollator`` (query draw, target text,
  tokenisation, labels, resize, patches, padding) and, in the main process as the trainer does
  it, the float normalisation of the uint8 patch batch (``--pixel-format float`` does it in the
  workers instead).

Each figure is the best of --repeat passes over the data, in samples per wall-clock second and
in CPU milliseconds per sample (main process + workers; robust to other load on a shared
machine). ``ratio_cpu_without_main_normalise`` leaves out the float normalisation the trainer
does in the main process (on a GPU trainer it runs on the device). Target: pipeline >= 0.6 x
floor.

    python benchmarks/bench_dataloader.py --num-images 256 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def make_tsv(data_dir: Path, num_images: int) -> Path:
    from sceneparser.data.convert import convert_jsonl
    from sceneparser.data.synth import generate_dataset

    tsv = data_dir / f"tsv_{num_images}"
    if (tsv / "annotations.tsv.lineidx").is_file():
        return tsv
    synth = data_dir / f"synth_{num_images}"
    generate_dataset(synth, num_images=num_images, seed=0, image_size=(640, 480), val_fraction=0.0, workers=2)
    convert_jsonl(synth / "train.jsonl", tsv, image_root=synth, workers=2)
    return tsv


class FloorDataset:
    """JPEG decode + smart_resize only (what the pipeline cannot avoid)."""

    def __init__(self, tsv: Path, image_processor):
        from sceneparser.data.tsv import TSVReader

        self.reader = TSVReader(tsv)
        self.image_processor = image_processor

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int):
        from PIL import Image

        data = self.reader.read(i).image_bytes
        img = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = self.image_processor.resized_size(*img.size)
        return img.resize((w, h), Image.BICUBIC).size


def _floor_collate(items):
    return items


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader workers)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def measure(dataset, batch_size: int, workers: int, collate, repeat: int, finish=None) -> dict:
    """Best of ``repeat`` passes: samples per wall second, CPU ms per sample (all processes) and
    the part of it spent in ``finish`` (the main-process step the trainer does per batch)."""
    import torch

    best: dict = {}
    for _ in range(repeat):
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate, shuffle=False
        )
        n = 0
        finish_cpu = 0.0
        c = _cpu_seconds()
        t = time.perf_counter()
        it = iter(loader)
        for batch in it:
            if finish is not None:
                f = time.process_time()
                finish(batch)
                finish_cpu += time.process_time() - f
            n += len(batch) if isinstance(batch, list) else int(batch["input_ids"].shape[0])
        wall = time.perf_counter() - t
        del it  # joins the workers, so their CPU time is counted
        cpu = _cpu_seconds() - c
        if n / wall > best.get("samples_per_s", 0.0):
            best["samples_per_s"] = n / wall
        if cpu / n * 1000 < best.get("cpu_ms_per_sample", 1e18):
            best["cpu_ms_per_sample"] = cpu / n * 1000
            best["main_finish_cpu_ms_per_sample"] = finish_cpu / n * 1000
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-images", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2, help="per-device batch (reference: 2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-pixels", type=int, default=16 * 28 * 28, help="reference: 12544")
    ap.add_argument("--max-pixels", type=int, default=2560 * 28 * 28, help="reference: 2007040")
    ap.add_argument("--pseudo", default="mix(0.5)")
    ap.add_argument("--pixel-format", choices=("uint8", "float"), default="uint8",
                    help="uint8 (what training uses: float pixels made in the main process) or float (made in the workers)")
    ap.add_argument("--data-dir", default=None, help="where the synthetic TSV is cached (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the main process (default 1, as the tiny preset)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(args.threads)
    from sceneparser.model.tiny import build_tiny
    from sceneparser.training.collator import SceneParserCollator
    from sceneparser.training.config import DataSection
    from sceneparser.training.dataset import build_dataset
    from sceneparser.training.stage import apply_pixel_limits

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="bench_dataloader_"))
    data_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    tsv = make_tsv(data_dir, args.num_images)
    prep = time.perf_counter() - t

    _, processor = build_tiny(seed=0)
    apply_pixel_limits(processor, args.min_pixels, args.max_pixels)
    dataset = build_dataset(tsv, processor, DataSection(pseudo=args.pseudo, max_length=8192), seed=0, defer_pixels=True)
    collator = SceneParserCollator(
        pad_token_id=processor.pad_token_id, image_processor=processor.image_processor, pixel_format=args.pixel_format
    )
    floor = FloorDataset(tsv, processor.image_processor)

    sample = dataset[0]
    floor = measure(floor, args.batch_size, args.workers, _floor_collate, args.repeat)
    from sceneparser.model.patchify import materialise

    def finish(batch):  # what the trainer does in the main process before the forward pass
        if "pixel_patches" in batch:
            batch["pixel_values"] = materialise(processor.image_processor, batch.pop("pixel_patches"), batch["image_grid_thw"])

    pipe = measure(dataset, args.batch_size, args.workers, collator, args.repeat, finish)
    pipe_workers_cpu = pipe["cpu_ms_per_sample"] - pipe["main_finish_cpu_ms_per_sample"]
    result = {
        "images": len(dataset),
        "image_size": "640x480",
        "resized_to": "x".join(map(str, processor.image_processor.resized_size(640, 480))),
        "tokens_per_sample_example": int(sample["input_ids"].shape[0]),
        "workers": args.workers,
        "batch_size": args.batch_size,
        "pixel_format": args.pixel_format,
        "floor_samples_per_s": round(floor["samples_per_s"], 1),
        "pipeline_samples_per_s": round(pipe["samples_per_s"], 1),
        "ratio": round(pipe["samples_per_s"] / floor["samples_per_s"], 3),
        "floor_cpu_ms_per_sample": round(floor["cpu_ms_per_sample"], 2),
        "pipeline_cpu_ms_per_sample": round(pipe["cpu_ms_per_sample"], 2),
        "pipeline_main_normalise_cpu_ms": round(pipe["main_finish_cpu_ms_per_sample"], 2),
        "ratio_cpu": round(floor["cpu_ms_per_sample"] / pipe["cpu_ms_per_sample"], 3),
        "ratio_cpu_without_main_normalise": round(floor["cpu_ms_per_sample"] / pipe_workers_cpu, 3),
        "target_ratio": 0.6,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch_threads_main": __import__("torch").get_num_threads(),
        "data_prep_s": round(prep, 1),
        "cpu_count": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28s} {v}")
        print("PASS" if result["ratio"] >= 0.6 else "BELOW TARGET", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
