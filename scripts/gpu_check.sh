#!/usr/bin/env bash
# The prepared GPU check of issue 20 (see benchmarks/gpu_check.py for what each part does).
#
#   scripts/gpu_check.sh              # on a CUDA machine: installs the vllm/train extras, runs every
#                                     # part, writes $OUT/gpu_report.json (or ./gpu_report.json)
#   scripts/gpu_check.sh --dry-run    # anywhere: tiny scale on the CPU, vLLM and DeepSpeed skipped
#   scripts/gpu_check.sh --help       # all options (--out, --scale, --train-scale, --budget, --parts, ...)
#
# Every part runs in its own process with its own time limit; a failing part is marked failed in
# the report and the others still run; the exit status is non-zero at the end if any part failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# The package's own dependencies (torch is expected to be there already: a CUDA build on a GPU
# machine). Only when sceneparser's imports fail, and never for more than three minutes.
if ! "$PY" -c "import sceneparser.model.loading, transformers" >/dev/null 2>&1; then
  echo "[gpu_check] installing sceneparser's dependencies (pip install -e .)" >&2
  timeout 180 "$PY" -m pip install -q --disable-pip-version-check -e . >&2 \
    || echo "[gpu_check] pip install -e . failed; the parts that need it will report the error" >&2
fi

exec "$PY" benchmarks/gpu_check.py "$@"
