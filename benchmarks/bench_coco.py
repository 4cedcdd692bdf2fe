"""Benchmark: COCO export and pycocotools scoring of a 35k-sample answer file.

    python benchmarks/bench_coco.py [--images 5000] [--keep DIR]

Writes the synthetic answer file of ``bench_metrics.py`` (``images`` x 7 categories = 35,000
samples by default, 1-5 objects per sample with 0-4 parts each), then runs, each in a fresh
process (interpreter start and imports included):

  (a) ``sceneparser export --format coco`` (read, build, write ground_truth.json + predictions.json),
  (b) ``sceneparser coco --out`` (the same, plus pycocotools COCOeval for objects and for parts),

and reports wall time, CPU time (user + sys) and peak resident memory of each, the COCO sizes and
the AP numbers. Not part of the test-suite.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import write_answers  # noqa: E402  (the shared synthetic answer generator)


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--keep", default=None, help="keep (and reuse) the answer file and outputs in this folder")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_coco_"))
    work.mkdir(parents=True, exist_ok=True)
    answers = work / "answer.jsonl"
    if not answers.exists():
        t0 = time.perf_counter()
        n = write_answers(answers, args.images)
        print(f"wrote {n} samples ({answers.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    cli = [sys.executable, "-m", "sceneparser.cli"]
    rows = {
        "export --format coco": timed(cli + ["export", "--format", "coco", str(answers), "--out", str(work / "export")]),
        "coco (export + COCOeval)": timed(cli + ["coco", str(answers), "--out", str(work / "coco")]),
    }
    print(f"{'command':<28}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}")
    for name, (wall, cpu, rss) in rows.items():
        print(f"{name:<28}{wall:>9.1f}{cpu:>9.1f}{rss:>9.0f}")
    report = json.loads((work / "coco" / "coco_metrics.json").read_text())
    s = report["summary"]
    print(f"images {s['images']}, categories {s['categories']}, ground truth {s['ground_truth']}, "
          f"detections {s['detections']}")
    for level in ("object", "part"):
        m = report["metrics"][level]
        print(f"{level:<7} AP {m['AP']:.4f}  AP50 {m['AP50']:.4f}  AP75 {m['AP75']:.4f}")
    sizes = {f.name: f.stat().st_size / 1e6 for f in (work / "coco").iterdir()}
    print("files (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(sizes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
