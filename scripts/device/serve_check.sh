#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and third_party/qwen3-tokenizer): starts
# `conclave serve --backend cuda` on the demo model and drives it over HTTP: seeded
# sampling twice (the same text), streamed and non-streamed, greedy, logprobs (sampled on
# the host next to device-sampled requests), another seed, then /metrics and SIGTERM.
# Usage: scripts/device/serve_check.sh [extra serve flags]
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
export CONCLAVE_HOME=/tmp/conclave-home
port=18080
/tmp/cb/bin/conclave serve --backend cuda --port $port "$@" >"$OUT/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 1
done
python3 - "$port" <<'PY' 2>&1 | tee "$OUT/serve_check.log"
import json, sys, urllib.request
port = sys.argv[1]
def post(body, stream=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        raw = r.read().decode()
    if not stream:
        return json.loads(raw)
    text = ""
    for line in raw.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            d = json.loads(line[6:])
            for c in d.get("choices", []):
                text += c.get("delta", {}).get("content") or ""
    return text
with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as r:
    model = json.loads(r.read())["data"][0]["id"]
print("model:", model)
msgs = [{"role": "user", "content": "Write a haiku about GPUs."}]
base = {"model": model, "messages": msgs, "max_tokens": 24}
seeded = dict(base, temperature=0.7, top_p=0.8, top_k=20, seed=1234, repetition_penalty=1.05)
a = post(seeded)["choices"][0]["message"]["content"]
b = post(seeded)["choices"][0]["message"]["content"]
s = post(dict(seeded, stream=True), stream=True)
print("seeded non-streamed twice identical:", a == b, "| streamed identical:", s == a)
print("seeded text:", repr(a[:80]))
g1 = post(dict(base, temperature=0))["choices"][0]["message"]["content"]
g2 = post(dict(base, temperature=0))["choices"][0]["message"]["content"]
print("greedy twice identical:", g1 == g2)
lp = post(dict(seeded, logprobs=True, top_logprobs=2))
entries = lp["choices"][0]["logprobs"]["content"]
print("logprobs request: tokens", len(entries), "first", entries[0]["token"] if entries else None,
      "| same text as device-sampled:", lp["choices"][0]["message"]["content"] == a)
other = post(dict(base, temperature=1.0, seed=99))["choices"][0]["message"]["content"]
print("different seed differs:", other != a)
PY
curl -s "http://127.0.0.1:$port/metrics" | grep -E "^conclave_(requests|tokens|generation)" | head -8 | tee -a "$OUT/serve_check.log"
kill -TERM $pid; wait $pid; echo "serve exit $?" | tee -a "$OUT/serve_check.log"
grep -E "cuda backend|error|warn" "$OUT/serve.log" | head -10
