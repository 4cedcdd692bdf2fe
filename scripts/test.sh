#!/usr/bin/env bash
# Install everything the test-suite needs on a fresh machine, then run it.
# This is the README's test command and the only thing .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP="python3 -m pip"
# CPU torch first: a looser spec would pull a multi-GB CUDA build. Never torchvision here.
$PIP install -q "torch==2.13.0"
# the train extra brings DeepSpeed (tests/training/test_deepspeed.py runs ZeRO-2/3 on the CPU); pip
# caches the wheel it builds from the sdist, DeepSpeed caches its one JIT op in ~/.cache/torch_extensions
DS_BUILD_OPS=0 $PIP install -q -e ".[test,train]"

# Browser test (tests/serve/test_demo_browser.py): Debian's Chromium, driven by Playwright with
# executable_path. Installed only when missing; nothing downloads a browser build.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

python3 -m pytest "$@"
