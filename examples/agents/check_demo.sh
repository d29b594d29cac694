#!/usr/bin/env bash
# example.agents_demo: both agents against `conclave serve` with no --model (the shipped demo
# model, as scripts/demo.sh serves it), the model choosing every tool itself (no forced
# tool_choice).
# - The multi-tool agent, on its own task and on two phrasings of the same kind: the server
#   runs `math` on the dimensions, the model then calls the client's `convert_volume` on
#   that result, and its answer quotes the converted figure.
# - The repository agent on this repository: it lists the root, then searches (for what
#   the question names: "HTTP server" today), and ends with an answer. What the answer
#   says is not checked: the demo model does not cite real search results
#   (assets/demo-model/README.md).
# Skipped (77) when this folder's npm packages are missing (scripts/setup.sh).
# Usage: check_demo.sh <conclave binary> <repository root>
set -euo pipefail
conclave=$1 repo=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tests/lib/serve_tiny.sh"
require_node_modules "$here"
make_work
serve_demo "$conclave" "$work"
export CONCLAVE_BASE_URL="http://127.0.0.1:$port/v1"

n=0
for task in "" "How many liters in 1.5 x 2 x 0.5 m?" \
  "A crate is 1.2 m by 0.8 m by 0.6 m. How many cubic feet does it hold?"; do
  n=$((n + 1))
  out="$work/multi$n.out"
  node "$here/multi_tool_agent.mjs" ${task:+"$task"} | tee "$out" | cut -c1-200
  grep -q '^  \[server\] math(' "$out"
  grep -q '^round 1: convert_volume(' "$out"
  # The converted figure the client's tool printed ("... -> V m3 = X unit") is in the answer.
  figure=$(sed -n 's/^round 1: convert_volume(.*-> .* = \([0-9.e+-]*\) [a-z0-9_]*$/\1/p' "$out")
  [ -n "$figure" ] || { echo "no conversion result in the log"; exit 1; }
  grep -A1 '^1 client tool calls; answer:' "$out" | tail -1 | grep -qF "$figure" ||
    { echo "the answer does not quote $figure"; exit 1; }
done

node "$here/repo_agent.mjs" "$repo" | tee "$work/repo.out" | cut -c1-200
grep -q '^round 1: list_files(' "$work/repo.out"
grep -q '^round 2: search({"text": "[^"]' "$work/repo.out"  # a term from the question
grep -q '^[0-9]* tool calls; answer:' "$work/repo.out"
echo "both agents chose their tools and ran to their answers"
