#!/usr/bin/env bash
# example.agents: both agents against a live `conclave serve` on the tiny random model, with
# --forced tool choices (a random model cannot choose), each loop run to its answer: the
# repository agent's three forced tool rounds on this repository, and the multi-tool
# agent's server-side math call followed by its client-side conversion. check_demo.sh runs
# them on the demo model without forcing. Skipped (77) when this folder's npm packages are
# missing (scripts/setup.sh).
# Usage: check.sh <conclave binary> <tokenizer dir> <repository root>
set -euo pipefail
conclave=$1 tokdir=$2 repo=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tests/lib/serve_tiny.sh"
require_node_modules "$here"
make_work
serve_tiny "$conclave" "$tokdir" "$work"
export CONCLAVE_BASE_URL="http://127.0.0.1:$port/v1"

node "$here/repo_agent.mjs" "$repo" --forced | tee "$work/repo.out" | cut -c1-200
grep -q '^round 1: list_files(' "$work/repo.out"
grep -q '^round 2: read_file(' "$work/repo.out"
grep -q '^round 3: search(' "$work/repo.out"
grep -q '^3 tool calls; answer:' "$work/repo.out"

node "$here/multi_tool_agent.mjs" --forced | tee "$work/multi.out" | cut -c1-200
grep -q '^  \[server\] math(' "$work/multi.out"
grep -q '^round 1: convert_volume(' "$work/multi.out"
grep -q '^1 client tool calls; answer:' "$work/multi.out"
echo "both agents ran to their answers"
