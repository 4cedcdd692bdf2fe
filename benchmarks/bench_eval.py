"""End-to-end speed of ``sceneparser eval`` and the share of its time spent outside the model.

Builds a synthetic val set (default 200 images, 640x480) and the tiny random test model, runs the
real command in a subprocess (exactly what a user runs), and reports:

* end-to-end samples/s: samples / wall time of the whole process (Python start, imports, model
  load, answering, merging, scoring);
* samples/s of the answering loop;
* the share of the run spent outside the model: everything except loading the model and the
  backend's ``generate`` calls (sample building, manifest hashing, image decoding, parsing,
  writing + fsync, the running L1, merging and scoring), over the run without the model load.
  Target: under 10 %.

Usage::

    python benchmarks/bench_eval.py                      # 200 images, reference settings
    python benchmarks/bench_eval.py --images 50 --max-new-tokens 16 --batch-size 8

Not part of the test-suite (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--image-size", default="640x480", help="WxH of the synthetic images")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--level", choices=("object", "scene"), default="object")
    ap.add_argument("--extra", default="", help="extra flags for sceneparser eval, e.g. '--no-fsync'")
    ap.add_argument("--workdir", default=None, help="keep data, model and outputs here (default: a temp dir)")
    args = ap.parse_args(argv)

    from sceneparser.data.synth import generate_dataset
    from sceneparser.model.loading import save_model_dir
    from sceneparser.model.tiny import build_tiny

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_eval_"))
    work.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    data = work / "data"
    if not (data / "val.jsonl").is_file():
        generate_dataset(data, num_images=args.images, seed=7, image_size=(w, h), val_fraction=1.0)
    model_dir = work / "tiny_model"
    if not (model_dir / "config.json").is_file():
        model, processor = build_tiny(seed=0)
        save_model_dir(model, processor, model_dir)

    out = work / f"out_{args.level}"
    cmd = [
        sys.executable, "-m", "sceneparser.cli", "eval",
        "--model", str(model_dir), "--data", str(data / "val.jsonl"), "--out", str(out),
        "--image-root", str(data), "--level", args.level,
        "--batch-size", str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens),
        "--overwrite", "--no-progress", *args.extra.split(),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        return proc.returncode
    summary = json.loads((out / "eval_summary.json").read_text())
    t = summary["timing"]
    n = summary["samples_scored"]
    report = {
        "images": args.images,
        "image_size": f"{w}x{h}",
        "level": args.level,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "samples": n,
        "process_wall_s": round(wall, 3),
        "e2e_samples_per_s": round(n / wall, 3),
        "loop_samples_per_s": t.get("samples_per_s_loop"),
        "timing_s": {k: v for k, v in t.items() if k.endswith("_s")},
        "outside_model_share": t.get("outside_model_share"),
        "outside_model_share_of_loop": t.get("outside_model_share_of_loop"),
        "import_and_startup_s": round(wall - t.get("total_s", 0.0), 3),
        "cpu_threads": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))
    share = report["outside_model_share"]
    if share is not None:
        verdict = "meets" if share < 0.10 else "misses"
        print(f"outside-model share {100 * share:.1f} % ({verdict} the < 10 % target); "
              f"end-to-end {report['e2e_samples_per_s']} samples/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
