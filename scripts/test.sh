#!/usr/bin/env bash
# The README's test command and the only thing .ci/run does: install the dependencies,
# configure, build and run every test. ctest's summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
