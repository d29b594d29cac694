#!/usr/bin/env bash
# Issue 20 on a multi-GPU machine (carry .devbundle and third_party/qwen3-tokenizer): the
# whole qwen3-coder-480b shape with random fp8 weights generated on the GPUs
# (gen-model --weights-on-device), one replica of NGPU ranks (default: every GPU) over
# NCCL: `conclave serve` as the coordinator and one `conclave node` lending the GPUs.
# Checks a streamed chat request and a (forced) tool call, then `bench serve` at 1 and 64
# streams with 4K and 32K prompts (TTFT, TPOT). LAYERS=N takes a slice (a one-GPU
# rehearsal: NGPU=1 LAYERS=2), QUANT (fp8) the format, MAXLEN (32768) the context, COLL
# (auto) the collectives.
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
export CONCLAVE_HOME=/tmp/conclave-home
n=${NGPU:-$(nvidia-smi -L | wc -l)}
gpus=$(seq -s, 0 $((n - 1)))
model=/tmp/m480
/tmp/cb/bin/conclave gen-model --preset qwen3-coder-480b --quant ${QUANT:-fp8} --weights-on-device \
  ${LAYERS:+--layers $LAYERS} --out $model 2>&1 | tail -1
/tmp/cb/bin/conclave plan --model $model --gpus "$n" --max-model-len ${MAXLEN:-32768} 2>&1 |
  tee "$OUT/plan480.txt" | tail -3
head -c 48 /dev/urandom | base64 >/tmp/token && chmod 600 /tmp/token
port=18080 cport=17070
/tmp/cb/bin/conclave serve --model $model --tokenizer third_party/qwen3-tokenizer/tokenizer.json \
  --backend cuda --port $port --cluster-port $cport \
  --cluster-token-file /tmp/token --ranks-per-replica "$n" --collectives ${COLL:-auto} \
  --max-model-len ${MAXLEN:-32768} >"$OUT/serve480.log" 2>&1 &
spid=$!
sleep 2
/tmp/cb/bin/conclave node --join 127.0.0.1:$cport --cluster-token-file /tmp/token --gpus "$gpus" \
  --model $model >"$OUT/node480.log" 2>&1 &
npid=$!
for _ in $(seq 1 ${T_READY:-300}); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { echo "not ready"; tail -20 "$OUT/serve480.log"; tail -20 "$OUT/node480.log"; }
grep -E "over (nccl|gloo)|rank .* ready|replica .* up" "$OUT/serve480.log" "$OUT/node480.log" | head -12
python3 - "$port" <<'PY' 2>&1 | tee "$OUT/serve480_check.log"
import json, sys, time, urllib.request
port = sys.argv[1]
def post(body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read().decode()
model = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30).read())["data"][0]["id"]
t0 = time.time()
raw = post({"model": model, "stream": True, "max_tokens": 32, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a function that adds two numbers."}]})
chunks = [json.loads(l[6:]) for l in raw.splitlines() if l.startswith("data: ") and l != "data: [DONE]"]
text = "".join((c["choices"][0].get("delta", {}).get("content") or "") for c in chunks if c.get("choices"))
print(f"streamed chat: {len(chunks)} chunks in {time.time() - t0:.1f} s, [DONE]: {'data: [DONE]' in raw}, text {text[:60]!r}")
tools = [{"type": "function", "function": {"name": "add", "description": "add two numbers",
          "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                         "required": ["a", "b"]}}}]
r = json.loads(post({"model": model, "max_tokens": 64, "temperature": 0, "tools": tools,
                     "tool_choice": {"type": "function", "function": {"name": "add"}},
                     "messages": [{"role": "user", "content": "What is 2 + 3?"}]}))
calls = r["choices"][0]["message"].get("tool_calls") or []
print("tool call:", r["choices"][0]["finish_reason"], [(c["function"]["name"], c["function"]["arguments"]) for c in calls])
PY
for clients in 1 64; do
  for p in 4096 32768; do
    [ "$(left)" -gt 120 ] || break
    echo "-- bench serve: $clients streams, ~$p-token prompts"
    timeout 240 /tmp/cb/bin/conclave bench serve --url http://127.0.0.1:$port --clients $clients \
      --requests $((clients * 2)) --max-tokens 64 --prompt-tokens $p \
      --json "$OUT/bench_serve480_${clients}_$p.json" 2>&1 | tail -6
  done
done
curl -s "http://127.0.0.1:$port/admin/cluster" | head -c 1500; echo
kill -TERM $spid $npid; wait $spid; echo "serve exit $?"
