"""Benchmark training-target building (`sceneparser.data.targets.build_target`), targets/s.

Annotations come from the synthetic generator (converter shape, 640x480). For each image every
category is queried once, under each pseudo policy (drop, keep, mix(0.3)) and as a scene query.

    python benchmarks/bench_targets.py --num-images 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sceneparser.data.records import record_to_annotation
from sceneparser.data.synth import render_scene
from sceneparser.data.targets import build_target, categories, choose_query


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-images", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    W, H = 640, 480
    anns = []
    for i in range(args.num_images):
        _, objects, _ = render_scene(0, i, (W, H))
        anns.append(record_to_annotation({"image_path": f"{i}.jpg", "objects": objects}))
    jobs = [(a, c) for a in anns for c in categories(a)]
    result: dict = {"num_images": args.num_images, "object_queries": len(jobs)}
    for policy in ("drop", "keep", "mix(0.3)"):
        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            for k, (a, c) in enumerate(jobs):
                build_target(a, W, H, c, pseudo=policy, seed=0, epoch=0, index=k)
            best = min(best, time.perf_counter() - t)
        result[f"targets_per_s_{policy}"] = round(len(jobs) / best, 1)
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        for a in anns:
            build_target(a, W, H, None, scene=True)
        best = min(best, time.perf_counter() - t)
    result["scene_targets_per_s"] = round(len(anns) / best, 1)
    best = float("inf")
    for _ in range(args.repeat):
        t = time.perf_counter()
        for k, a in enumerate(anns):
            q = choose_query(a, seed=0, epoch=0, index=k)
            build_target(a, W, H, q.category, pseudo="mix(0.5)", index=k)
        best = min(best, time.perf_counter() - t)
    result["training_samples_per_s"] = round(len(anns) / best, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
