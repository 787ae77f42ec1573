#!/usr/bin/env bash
# Download the pure-Python wheels that the GPU machine lacks into .whl/ (git-ignored), so the
# device tool can carry them: run here (with network), then call ci/gpu there with carry [".whl"].
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl array-api-compat==1.16.0 array-api-strict==2.6.1
ls -l .whl
