#!/usr/bin/env bash
# Builds conclave and runs the whole test suite: the default build (CUDA code compiled
# when nvcc is present; GPU tests skip without a GPU), then the ASan+UBSan build.
# Usage: scripts/test.sh [--no-asan]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
asan=1
[ "${1:-}" = "--no-asan" ] && asan=0

# Each phase's wall time, so a slow CI run says where its time went.
phase() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "test.sh: $name took $((SECONDS - start)) s (total $SECONDS s)" >&2
}

phase "default configure" cmake --preset default
phase "default build" cmake --build --preset default -j "$jobs"
phase "default tests" ctest --preset default -j "$jobs"

if [ "$asan" = 1 ]; then
  phase "asan configure" cmake --preset asan
  phase "asan build" cmake --build --preset asan -j "$jobs"
  # Tests that run none of conclave's code (promtool, the dashboard on a synthetic feed)
  # and the demo model's quality measure (its serving path is in the e2e tests) ran in the
  # default pass; the sanitizers have nothing to add there.
  phase "asan tests" ctest --preset asan -j "$jobs" -LE 'no_native|model_quality'
fi
