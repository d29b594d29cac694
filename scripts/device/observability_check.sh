#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and third_party/qwen3-tokenizer): starts
# `conclave serve --backend cuda` on the demo model, streams requests at it, and records
# what the observability surfaces say meanwhile: the GPU series of /metrics (NVML),
# /admin/telemetry, `conclave top --frames 1`, /admin/alerts and the JSON log lines.
# Usage: scripts/device/observability_check.sh [extra serve flags]
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
export CONCLAVE_HOME=/tmp/conclave-home
port=18081
nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw \
  --format=csv >"$OUT/nvidia_smi_before.csv" 2>&1
/tmp/cb/bin/conclave serve --backend cuda --port $port "$@" >"$OUT/obs_serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 1
done
/tmp/cb/bin/conclave bench serve --url "http://127.0.0.1:$port" --requests ${REQUESTS:-64} --clients ${CLIENTS:-8} \
  --max-tokens 128 >"$OUT/obs_bench.txt" 2>&1 &
bench=$!
sleep ${SAMPLE_AFTER_S:-6}
{
  echo "# /metrics GPU and replica series during load"
  curl -s "http://127.0.0.1:$port/metrics" | grep -E "^conclave_(gpu|replicas|kv_blocks|sequences)|^process_resident"
} | tee "$OUT/obs_metrics.txt"
curl -s "http://127.0.0.1:$port/admin/telemetry" >"$OUT/obs_telemetry.json"
python3 -c "import json,sys; f=json.load(open('$OUT/obs_telemetry.json')); print('telemetry gpus:', json.dumps(f['gpus'])); print('tokens/s', f['tokens']); print('ttft', f['latency']['ttft'])" | tee -a "$OUT/obs_metrics.txt"
/tmp/cb/bin/conclave top --url "http://127.0.0.1:$port" --frames 1 | tee "$OUT/obs_top.txt"
nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw \
  --format=csv >"$OUT/nvidia_smi_during.csv" 2>&1
wait $bench
curl -s "http://127.0.0.1:$port/admin/alerts" >"$OUT/obs_alerts.json"
kill -TERM $pid
wait $pid
echo "serve exit $?" | tee -a "$OUT/obs_metrics.txt"
python3 - "$OUT/obs_serve.log" <<'PY' | tee -a "$OUT/obs_metrics.txt"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
bad = [l for l in lines if not l.startswith("{")]
ok = 0
for l in lines:
    try:
        json.loads(l); ok += 1
    except Exception:
        pass
print(f"log lines: {len(lines)}, JSON: {ok}, not JSON: {len(bad)}")
for l in bad[:5]: print("  not JSON:", l.rstrip())
PY
tail -5 "$OUT/obs_bench.txt"
