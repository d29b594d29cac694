#!/usr/bin/env bash
# Builds conclave and runs the whole test suite: the default build (CUDA code compiled
# when nvcc is present; GPU tests skip without a GPU), then the ASan+UBSan build.
# Usage: scripts/test.sh [--no-asan]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
asan=1
[ "${1:-}" = "--no-asan" ] && asan=0

cmake --preset default
cmake --build --preset default -j "$jobs"
ctest --preset default -j "$jobs"

if [ "$asan" = 1 ]; then
  cmake --preset asan
  cmake --build --preset asan -j "$jobs"
  # Tests that run none of conclave's code (promtool, the dashboard on a synthetic feed)
  # ran in the default pass; the sanitizers have nothing to add there.
  ctest --preset asan -j "$jobs" -LE no_native
fi
