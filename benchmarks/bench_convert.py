"""Benchmark `sceneparser convert` against the I/O floor (issue 4).

Builds N synthetic 640x480 JPEG records with `sceneparser.data.synth` (cached in --data-dir),
then times in one run:

* floor: read every image file and base64-encode it, in one process;
* convert: `convert_jsonl(..., workers=W)` (original bytes, the default);
* re-encode: `convert_jsonl(..., workers=W, reencode_jpeg_quality=75)` (the reference's bytes).

Each timing is the best of --repeat runs. Target: convert <= 1.5 x floor.

    python benchmarks/bench_convert.py --num-images 2000 --workers 2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sceneparser.data.convert import convert_jsonl
from sceneparser.data.synth import generate_dataset


def _cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def floor_seconds(jsonl: Path, root: Path) -> float:
    t = time.perf_counter()
    total = 0
    with open(jsonl, "rb") as fh:
        for line in fh:
            path = root / json.loads(line)["image_path"]
            with open(path, "rb") as img:
                total += len(base64.b64encode(img.read()))
    dt = time.perf_counter() - t
    assert total > 0
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-images", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="where the synthetic data is cached (default: a temp dir)")
    ap.add_argument("--skip-reencode", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    data = Path(args.data_dir) if args.data_dir else tmp / "data"
    jsonl = data / "train.jsonl"
    marker = data / f".complete-{args.num_images}"
    if not marker.exists():
        t = time.perf_counter()
        generate_dataset(data, args.num_images, seed=0, image_size=(640, 480), val_fraction=0.0)
        marker.touch()
        print(f"generated {args.num_images} images in {time.perf_counter() - t:.2f} s", file=sys.stderr)
    floor_seconds(jsonl, data)  # warm the page cache

    cpu_of: dict[str, float] = {}

    def timed(name: str, **kw) -> tuple[float, int]:
        best = []
        cpus = []
        written = 0
        for _ in range(args.repeat):
            out = tmp / "tsv"
            shutil.rmtree(out, ignore_errors=True)
            c = _cpu()
            t = time.perf_counter()
            s = convert_jsonl(jsonl, out, image_root=data, workers=args.workers, **kw)
            best.append(time.perf_counter() - t)
            cpus.append(_cpu() - c)
            written = s.written
        cpu_of[name] = min(cpus)
        return min(best), written

    def timed_floor() -> float:
        c = _cpu()
        t = floor_seconds(jsonl, data)
        cpu_of["floor"] = min(cpu_of.get("floor", 1e9), _cpu() - c)
        return t

    floors = [timed_floor() for _ in range(args.repeat)]
    conv, written = timed("convert")
    floors += [timed_floor() for _ in range(args.repeat)]
    floor = min(floors)
    result = {
        "num_images": args.num_images,
        "workers": args.workers,
        "floor_s": round(floor, 4),
        "floor_median_s": round(statistics.median(floors), 4),
        "convert_s": round(conv, 4),
        "convert_over_floor": round(conv / floor, 3),
        "target_over_floor": 1.5,
        "written": written,
        "convert_images_per_s": round(args.num_images / conv, 1),
        # CPU seconds of all processes (the machine may be shared: wall times are noisy)
        "floor_cpu_s": round(cpu_of["floor"], 4),
        "convert_cpu_s": round(cpu_of["convert"], 4),
        "convert_cpu_per_worker_over_floor_cpu": round(cpu_of["convert"] / args.workers / cpu_of["floor"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    if not args.skip_reencode:
        re_s, _ = timed("reencode", reencode_jpeg_quality=75)
        result["reencode_q75_s"] = round(re_s, 4)
        result["reencode_over_floor"] = round(re_s / floor, 3)
        result["reencode_images_per_s"] = round(args.num_images / re_s, 1)
    print(json.dumps(result, indent=2))
    if not args.data_dir:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        shutil.rmtree(tmp / "tsv", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
