#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle): per-kernel times of single steps of the
# random-weight benchmark under ncu (each kernel timed alone; clocks and caches left as
# found). The bench brackets one step of each named case with cudaProfilerStart/Stop
# (CONCLAVE_BENCH_PROFILE); kernel_summary.py splits the log per step.
# PROFILE_DRAM=1 also reads each kernel's DRAM throughput (% of peak; ncu then replays
# each kernel, which takes longer).
# Usage: scripts/device/profile.sh "BATCHES" "PREFILL_LENS" case...
#   e.g. scripts/device/profile.sh 1,64 512 decode+g:1 decode+g:64 prefill:512
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
batches=$1 lens=$2
shift 2
cases=$(echo "$*" | tr ' ' ',')
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}; nsys: $(command -v nsys || echo none)"
CONCLAVE_BENCH_PROFILE=$cases timeout ${T_PROF:-300} "$NCU" --profile-from-start off \
  --clock-control none --cache-control none \
  --metrics gpu__time_duration.sum${PROFILE_DRAM:+,dram__throughput.avg.pct_of_peak_sustained_elapsed} --csv \
  --log-file /tmp/ncu.csv /tmp/cb/bin/conclave bench engine --backend cuda \
  --preset "${PRESET:-qwen3-30b-a3b}" --random-weights ${BENCH_FLAGS:-} --batches "$batches" \
  --prefill-lens "$lens" 2>&1 | tee "$OUT/bench_profiled.log" | grep -E '^(decode|prefill|  ceil)'
python3 scripts/device/kernel_summary.py /tmp/ncu.csv "$@" | tee "$OUT/profile.txt"
xz -c /tmp/ncu.csv >"$OUT/ncu.csv.xz"
