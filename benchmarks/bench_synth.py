"""Benchmark the synthetic scene generator: images/s in one process (target >= 100 at 640x480).

    python benchmarks/bench_synth.py --num-images 500
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from sceneparser.data.synth import generate_dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-images", type=int, default=500)
    ap.add_argument("--image-size", default="640x480")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    w, h = (int(v) for v in args.image_size.split("x"))
    walls, cpus = [], []
    for _ in range(args.repeat):
        out = tempfile.mkdtemp(prefix="bench_synth_")
        c, t = time.process_time(), time.perf_counter()
        s = generate_dataset(out, args.num_images, seed=0, image_size=(w, h))
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({
        "num_images": args.num_images, "image_size": [w, h], "objects": s.num_objects, "masks": s.num_masks,
        "images_per_s_wall": round(args.num_images / min(walls), 1),
        "images_per_s_cpu": round(args.num_images / min(cpus), 1),
        "target_images_per_s": 100, "load_average_1min": round(os.getloadavg()[0], 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
