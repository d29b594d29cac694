#!/usr/bin/env bash
# example.custom_tool_plugin: installs conclave's tool plugin SDK (`cmake --install
# --component sdk`) into a temporary prefix, builds this folder there as its own CMake
# project against it, starts `conclave serve` with the plugin in [[tools.plugins]], and
# checks that a request forcing a word_count call gets the count the plugin computed.
# Usage: check.sh <conclave build dir> <this folder> <conclave binary> <tokenizer dir>
set -euo pipefail
build=$1 src=$2 conclave=$3 tokdir=$4
. "$(dirname "$0")/../../tests/lib/serve_tiny.sh"
make_work

cmake --install "$build" --component sdk --prefix "$work/prefix" >/dev/null
cmake -S "$src" -B "$work/plugin" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release \
  >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/plugin" >"$work/build.log" || { cat "$work/build.log"; exit 1; }
plugin="$work/plugin/libword_count.so"
test -f "$plugin"

cat >"$work/serve.toml" <<EOT
[[tools.plugins]]
path = "$plugin"
config = { max_words = 1000 }
EOT
serve_tiny "$conclave" "$tokdir" "$work" --config "$work/serve.toml"
grep -q 'tool plugin .*libword_count.so: tool "word_count"' "$work/serve.log"

# The random model is made to call word_count (constrained to the schema); the server runs
# the plugin and shows the call and its result under "conclave".
curl -sf "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' -d '{
  "model": "tiny", "max_tokens": 64, "temperature": 0,
  "messages": [{"role": "user", "content": "How many words?"}],
  "server_tools": ["word_count"],
  "tool_choice": {"type": "function", "function": {"name": "word_count"}},
  "server_tool_choices": ["none"]}' >"$work/reply.json"
python3 - "$work/reply.json" <<'PY'
import json, sys
reply = json.load(open(sys.argv[1]))
calls = reply["conclave"]["tool_calls"]
assert calls, reply
c = calls[0]
assert c["name"] == "word_count", c
assert c["outcome"] == "ok", c
text = json.loads(c["arguments"])["text"]
assert c["content"] == str(len(text.split())), (c["content"], text)
print(f"word_count({text!r}) -> {c['content']}: ok")
PY

# A plugin that cannot be loaded stops the start with an error naming the entry.
printf '[[tools.plugins]]\npath = "%s/missing.so"\n' "$work" >"$work/bad.toml"
if "$conclave" --log-format text serve --model "$work/model" --name tiny --config "$work/bad.toml" \
  --state-store memory --port 0 2>"$work/bad.log"; then
  echo "conclave serve started with a missing plugin"
  exit 1
fi
grep -q 'tools.plugins\[0\]: tool plugin .*missing.so' "$work/bad.log" || { cat "$work/bad.log"; exit 1; }
echo "a missing plugin: $(grep -o 'tools.plugins\[0\].*' "$work/bad.log" | head -1)"
