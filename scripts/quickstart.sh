#!/usr/bin/env bash
# The most complete workflow that exists until a default model ships (issue 8):
# synthetic data -> TSV -> the three-stage curriculum (tiny preset) -> parse the example image
# (JSON + picture) -> benchmark evaluation (answer.jsonl, L1/L2/L3/ParseRate).
# About 3 minutes on 2 CPU cores. Everything goes to ${OUT:-quickstart_out}/.
# The tiny random model learns the JSON format only partly in a minute: expect few objects.
set -euo pipefail
OUT=${OUT:-quickstart_out}
mkdir -p "$OUT"

echo "== 1/5 synthetic scenes in the benchmark format"
sceneparser synth --out "$OUT/data" --num-images 64 --seed 0 --image-size 320x240 --val-fraction 0.125
echo "== 2/5 benchmark JSONL -> training TSV"
sceneparser convert --json-file "$OUT/data/train.jsonl" --out-dir "$OUT/data/train_tsv" \
    --image-root "$OUT/data" --validate
echo "== 3/5 curriculum: stage 1 (no pseudo) -> stage 2 (30 % pseudo) -> stage 3 (50 % pseudo)"
sceneparser train --curriculum tiny --data "$OUT/data/train_tsv" --output-dir "$OUT/runs"
echo "== 4/5 parse the example image with the stage-3 model"
sceneparser parse examples/scene.jpg --model "$OUT/runs/stage3" --query mug --query bottle \
    --max-new-tokens 128 --out "$OUT/parse.json" --viz "$OUT/parse.png" --tree
echo "== 5/5 evaluate on the held-out synthetic images"
sceneparser eval --model "$OUT/runs/stage3" --data "$OUT/data/val.jsonl" --image-root "$OUT/data" \
    --out "$OUT/eval" --max-new-tokens 128 --overwrite
echo
echo "done: $OUT/parse.json, $OUT/parse.png, $OUT/eval/final_metrics.json"
