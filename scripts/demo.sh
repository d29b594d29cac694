#!/usr/bin/env bash
# Builds conclave (CPU + CUDA when nvcc is present) and serves the demo model on
# 127.0.0.1:8080: a small Qwen3-MoE trained to answer arithmetic through the `math` tool
# and to write small Python functions (assets/demo-model/README.md), copied into
# ~/.cache/conclave/demo-model (or $CONCLAVE_HOME/demo-model) on first run.
# Extra arguments go to `conclave serve` (see `conclave serve --help`). The logs are text,
# for a person at a terminal; CONCLAVE_LOG_FORMAT=json gives the server's default JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target conclave
exec build/app/conclave --log-format "${CONCLAVE_LOG_FORMAT:-text}" serve "$@"
