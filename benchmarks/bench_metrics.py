"""Benchmark: ``sceneparser metrics`` end to end vs merely json-parsing the same answer file.

    python benchmarks/bench_metrics.py [--images 5000] [--repeat 3] [--keep DIR] [--src DIR] [--workers N]

Writes a synthetic answer file in the reference answer schema (``images`` x 7 categories =
35,000 samples by default; 1-5 GT objects per sample, 0-4 parts each, 0-3 affordances per part,
with pseudo parts and ``__none__`` actions; about 30 % of predictions perturbed, missing or
extra), then times, in one run and on the same machine:

  (a) ``sceneparser metrics --ignore-pseudo-part --ignore-none-action`` end to end (a fresh
      process: interpreter start, imports, reading, scoring, writing RESULT.json), and
  (b) a fresh process that only reads the file and ``json.loads`` every line (stdlib).

It reports the best wall and CPU (user + sys, the worker processes of (a) included) time of
``--repeat`` runs of each, the ratios (a)/(b) (target <= 1.2), and the peak resident memory of
(a) (target <= 200 MB; the largest single process: with ``--workers 2`` two such processes run
at once), with the machine's load average before and after. The machine may be shared: run it
when it is quiet, repeat, and read the minima; the wall time of (a) gains from its 2 processes
only when 2 CPUs are free. Pass ``--keep DIR`` to keep (and, on
later runs, reuse) the answer file, and ``--src DIR`` to time (a) with the ``sceneparser`` package
found in DIR instead (an older checkout, for before/after numbers from one run). Not part of the
test-suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CATEGORIES = ["mug", "bottle", "drawer", "door", "chair", "laptop", "kettle"]
PARTS = ["handle", "body", "lid", "knob", "button", "screen", "spout", "leg", "seat"]
ACTIONS = ["grasp", "pull", "push", "open", "pour", "press", "sit", "twist"]
W, H = 1920, 1080


def _box(r: random.Random, x0=None, y0=None, wmax=600, hmax=400):
    x0 = r.randint(0, W - 200) if x0 is None else x0
    y0 = r.randint(0, H - 200) if y0 is None else y0
    return [x0, y0, min(W, x0 + r.randint(20, wmax)), min(H, y0 + r.randint(20, hmax))]


def _inside(r: random.Random, b):
    return [r.uniform(b[0], b[2]), r.uniform(b[1], b[3])]


def _gt_object(r: random.Random, cat: str) -> dict:
    ob = _box(r)
    parts = []
    for _ in range(r.randint(0, 4)):
        pb = _box(r, r.randint(ob[0], max(ob[0], ob[2] - 20)), r.randint(ob[1], max(ob[1], ob[3] - 20)), 200, 150)
        pseudo = r.random() < 0.15
        affs = []
        for _ in range(r.randint(0, 3)):
            ab = None if r.random() < 0.3 else _box(r, pb[0], pb[1], 80, 80)
            pts = [[round(v, 1) for v in _inside(r, ab or pb)] for _ in range(r.randint(1, 3))]
            affs.append({"action": "__none__" if r.random() < 0.1 else r.choice(ACTIONS), "affordance_bbox": ab,
                         "mask_path": None, "points": pts, "point": pts[0]})
        parts.append({"part_name": "__placeholder_part__" if pseudo else r.choice(PARTS), "bbox": pb,
                      "affordances": affs})
    return {"name": cat, "bbox": ob, "has_part": bool(parts),
            "has_affordance": any(p["affordances"] for p in parts), "parts": parts, "affordances": []}


def _jitter(r: random.Random, b, amount):
    return [float(v + r.uniform(-amount, amount)) for v in b]


def _pred_object(r: random.Random, g: dict) -> dict:
    perturb = r.random() < 0.3
    parts = []
    for p in g["parts"]:
        if perturb and r.random() < 0.3:
            continue
        affs = []
        for a in p["affordances"]:
            if perturb and r.random() < 0.3:
                continue
            pt = _inside(r, a["affordance_bbox"] or p["bbox"]) if not perturb or r.random() < 0.5 else _inside(r, p["bbox"])
            affs.append({"action": a["action"], "point": pt})
        parts.append({"part_name": p["part_name"], "bbox": _jitter(r, p["bbox"], 30 if perturb else 4),
                      "affordances": affs})
    if perturb and r.random() < 0.3:
        parts.append({"part_name": r.choice(PARTS), "bbox": _jitter(r, g["bbox"], 50),
                      "affordances": [{"action": r.choice(ACTIONS), "point": _inside(r, g["bbox"])}]})
    return {"name": g["name"], "bbox": _jitter(r, g["bbox"], 80 if perturb else 6), "has_part": None,
            "has_affordance": None, "parts": parts, "affordances": []}


def _to_tokens(objs) -> str:
    def tok(vals, sizes):
        return "".join(f"<{max(0, min(999, int(v / s * 999)))}>" for v, s in zip(vals, sizes))

    out = []
    for o in objs:
        out.append({"name": o["name"], "bbox": tok(o["bbox"], (W, H, W, H)), "parts": [
            {"part_name": p["part_name"], "bbox": tok(p["bbox"], (W, H, W, H)),
             "affordances": [{"action": a["action"], "point": tok(a["point"], (W, H))} for a in p["affordances"]]}
            for p in o["parts"]]})
    return json.dumps({"objects": out}, ensure_ascii=False)


def write_answers(path: Path, images: int, seed: int = 0) -> int:
    r = random.Random(seed)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(images):
            for cat in CATEGORIES:
                G = [_gt_object(r, cat) for _ in range(r.randint(1, 5))]
                P = []
                for g in G:
                    x = r.random()
                    if x < 0.1:  # missing
                        continue
                    P.append(_pred_object(r, g))
                    if x > 0.95:  # extra duplicate
                        P.append(_pred_object(r, g))
                if r.random() < 0.05:
                    P.append(_pred_object(r, _gt_object(r, cat)))
                line = {
                    "image_path": f"datasets/images/{i:06d}.jpg",
                    "category": cat,
                    "question": f"Return a single JSON object only.\nParse {cat} in this image and return object "
                                "bbox, part bboxes, and affordance points when available.",
                    "gt": {"objects": G},
                    "extracted_predictions": {"objects": P},
                    "raw_response": _to_tokens(P),
                    "task_name": "sceneparser_structured_parsing",
                    "dataset_name": "SceneParserStructured",
                }
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                n += 1
    return n


PARSE_ONLY = (
    "import json,sys\n"
    "loads=json.loads\n"
    "n=0\n"
    "with open(sys.argv[1],'r',encoding='utf-8') as f:\n"
    "    for line in f:\n"
    "        if line.strip():\n"
    "            loads(line); n+=1\n"
    "print(n)\n"
)


TARGET_RATIO = 1.2
TARGET_RSS_MB = 200


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user + sys), peak RSS in MB) of one child process run in ``cwd``
    (not the repository, so that ``-m`` imports the installed package or ``--src``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    rss_kb = usage.ru_maxrss  # Linux: kilobytes
    return wall, usage.ru_utime + usage.ru_stime, rss_kb / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", default=None, help="directory to keep the answer file and results in")
    ap.add_argument("--src", default=None, help="time (a) with the sceneparser package found in this directory")
    ap.add_argument("--workers", default=None, help="pass --workers N to (a) (default: the command's default)")
    args = ap.parse_args()
    env_a = None
    if args.src:
        env_a = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [args.src, os.environ.get("PYTHONPATH")])))

    work = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="bench_metrics_"))
    work.mkdir(parents=True, exist_ok=True)
    answers = work / "answer.jsonl"
    stamp = work / f".answers_{args.images}"
    t0 = time.perf_counter()
    if answers.exists() and stamp.exists():
        n = sum(1 for _ in open(answers, encoding="utf-8"))
    else:
        n = write_answers(answers, args.images)
        stamp.write_text("ok")
    size_mb = answers.stat().st_size / 1e6
    print(f"answer file: {n} samples, {size_mb:.1f} MB (ready in {time.perf_counter() - t0:.1f} s)")

    cmd_a = [sys.executable, "-m", "sceneparser.cli", "metrics", "--data-path", str(answers),
             "--output-path", str(work / "eval_results_filtered.json"), "--ignore-pseudo-part",
             "--ignore-none-action", "--final-metrics-path", str(work / "final_metrics.json")]
    if args.workers:
        cmd_a += ["--workers", args.workers]
    cmd_b = [sys.executable, "-c", PARSE_ONLY, str(answers)]
    load_before = os.getloadavg()
    a_runs, b_runs = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        b_runs.append(timed(cmd_b, work))
        a_runs.append(timed(cmd_a, work, env_a))
    a_wall, a_cpu = min(r[0] for r in a_runs), min(r[1] for r in a_runs)
    b_wall, b_cpu = min(r[0] for r in b_runs), min(r[1] for r in b_runs)
    peak_a = max(r[2] for r in a_runs)
    peak_b = max(r[2] for r in b_runs)
    print(f"(a) sceneparser metrics{' (' + args.src + ')' if args.src else ''}, both filters, end to end: wall {a_wall:.2f} s, CPU {a_cpu:.2f} s, "
          f"peak RSS {peak_a:.0f} MB  (runs, wall/CPU: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c, _ in a_runs) + ")")
    print(f"(b) read + json.loads every line (stdlib):        wall {b_wall:.2f} s, CPU {b_cpu:.2f} s, "
          f"peak RSS {peak_b:.0f} MB  (runs, wall/CPU: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c, _ in b_runs) + ")")
    r_wall, r_cpu = a_wall / b_wall, a_cpu / b_cpu
    def verdict(r: float) -> str:
        return "met" if r <= TARGET_RATIO else "NOT met"

    print(f"ratio (a)/(b) (target <= {TARGET_RATIO}): wall {r_wall:.2f} ({verdict(r_wall)}), CPU {r_cpu:.2f} "
          f"({verdict(r_cpu)}); peak memory of (a) {peak_a:.0f} MB "
          f"(target <= {TARGET_RSS_MB} MB: {'met' if peak_a <= TARGET_RSS_MB else 'NOT met'})")
    print("(CPU time is the steadier figure on a shared machine; best of each.) load average (1/5/15 min) "
          f"before {'/'.join(f'{x:.1f}' for x in load_before)}, after "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    final = json.loads((work / "final_metrics.json").read_text())
    print("final metrics:", json.dumps(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
