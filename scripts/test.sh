#!/usr/bin/env bash
# Install everything the test-suite needs on a fresh machine, then run it.
# This is the README's test command and the only thing .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP="python3 -m pip"
# CPU torch first: a looser spec would pull a multi-GB CUDA build. Never torchvision here.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[test]"

python3 -m pytest "$@"
