"""Learning curve of a default-model run: held-out scores of its checkpoints, next to the training loss.

A run of ``scripts/train_default_model.sh`` keeps a complete model directory every 400 steps
(``model/stage1/checkpoint-N``) and one per stage (``model/stageK``). This script scores the chosen
stage-1 checkpoints and the three stage outputs with the ``sceneparser eval`` runner (object
level, the recipe's input size) on the first ``--limit`` images of a synthetic folder, and prints a
Markdown table: step, learning rate, mean training loss and attention loss over the ``--window``
logged steps before it, L1, L2, L3, ParseRate.

Score the curve on a *selection* seed (e.g. 3000), never on the seed the shipped numbers are
reported on; the stage-1 / stage-3 rows are what the stage-2/3 length is chosen from.

    sceneparser synth --out /tmp/sel3000 --num-images 100 --seed 3000 --val-fraction 1.0
    python benchmarks/default_model_curve.py --run /tmp/default_model_v2_run \\
        --data /tmp/sel3000/val.jsonl --image-root /tmp/sel3000 --every 2000 --limit 100 \\
        --json /tmp/curve.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from sceneparser.evaluation.runner import EvalConfig, run_eval
from sceneparser.io import write_json


def score(model: Path, data: str, image_root: str, limit: int, out: Path) -> dict:
    """Object-level eval at the recipe's input size (224x168), in this process."""
    outcome = run_eval(EvalConfig(model=str(model), data=data, out=str(out), image_root=image_root, level="object",
                                  batch_size=16, max_new_tokens=512, limit=limit, device="cpu", min_pixels=3136,
                                  max_pixels=37632, overwrite=True, fsync=False, progress=False),
                       log=lambda msg: None)
    return dict(outcome.final)


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]


def window(log: list[dict], step: int, key: str, size: int) -> float | None:
    values = [r[key] for r in log if key in r and step - size < r.get("step", -1) <= step]
    return round(statistics.fmean(values), 4) if values else None


def learning_rate(log: list[dict], step: int) -> float | None:
    before = [r for r in log if "learning_rate" in r and r.get("step", -1) <= step]
    return before[-1]["learning_rate"] if before else None


def points(run: Path, every: int) -> list[tuple[str, int, Path]]:
    stage1 = run / "model" / "stage1"
    found = sorted((int(p.name.split("-")[1]), p) for p in stage1.glob("checkpoint-*") if p.name.split("-")[1].isdigit())
    chosen = [("stage 1", step, p) for step, p in found if step % every == 0]
    done = 0  # steps of the stages before: stage-2/3 steps count on from the end of stage 1
    for k in (1, 2, 3):
        out = run / "model" / f"stage{k}"
        if (out / "model.safetensors").is_file():
            steps = [r["step"] for r in read_log(out / "log.jsonl") if "step" in r]
            done += max(steps) if steps else 0
            if k == 1:  # the last checkpoint of stage 1 is the stage-1 output: score it once
                chosen = [c for c in chosen if c[1] != done]
            chosen.append((f"stage {k} output", done, out))
    return chosen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="work directory of scripts/train_default_model.sh")
    ap.add_argument("--data", required=True, help="val.jsonl of a synthetic folder (a selection seed)")
    ap.add_argument("--image-root", required=True)
    ap.add_argument("--every", type=int, default=2000, help="score the stage-1 checkpoints whose step is a multiple of N (checkpoints come every 400 steps; default 2000)")
    ap.add_argument("--limit", type=int, default=100, help="images scored per point (default 100)")
    ap.add_argument("--window", type=int, default=500, help="training-loss window in steps (default 500)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    run = Path(args.run)
    log1 = read_log(run / "model" / "stage1" / "log.jsonl")
    rows = []
    print("| point | step | LR | loss | attention loss | L1 | L2 | L3 | ParseRate |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, step, model) in enumerate(points(run, args.every)):
            metrics = score(model, args.data, args.image_root, args.limit, Path(tmp) / f"eval{i}")
            in_stage1 = label in ("stage 1", "stage 1 output")
            row = {"point": label, "step": step, "model": str(model),
                   "learning_rate": learning_rate(log1, step) if in_stage1 else None,
                   "loss": window(log1, step, "loss", args.window) if in_stage1 else None,
                   "attention_loss": window(log1, step, "attention_loss", args.window) if in_stage1 else None,
                   **{k: round(float(v), 4) for k, v in metrics.items()}}
            rows.append(row)

            def cell(v, fmt="{:.3f}"):
                return "" if v is None else fmt.format(v)

            print(f"| {label} | {step:,} | {cell(row['learning_rate'], '{:.2e}')} | {cell(row['loss'], '{:.2f}')} "
                  f"| {cell(row['attention_loss'], '{:.3f}')} | {cell(row.get('L1'))} | {cell(row.get('L2'))} "
                  f"| {cell(row.get('L3'))} | {cell(row.get('ParseRate'))} |", flush=True)
    if args.json:
        write_json(args.json, {"run": str(run), "data": args.data, "limit": args.limit, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
