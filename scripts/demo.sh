#!/usr/bin/env bash
# Builds conclave (CPU + CUDA when nvcc is present) and serves the embedded demo model
# on 127.0.0.1:8080. The demo model is generated on first run (random weights, the real
# Qwen3 vocabulary): its text is meaningless, every other part of the path is real.
# Extra arguments go to `conclave serve` (see `conclave serve --help`). The logs are text,
# for a person at a terminal; CONCLAVE_LOG_FORMAT=json gives the server's default JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target conclave
exec build/app/conclave --log-format "${CONCLAVE_LOG_FORMAT:-text}" serve "$@"
