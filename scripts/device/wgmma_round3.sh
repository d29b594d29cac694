#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and third_party/qwen3-tokenizer), one call:
# the prefill kernel's schedules 4 and 5 and packed GQA (2026-12-07) checked against the
# CPU twin, then timed, then the 8 streams' stall with packing and the split, then (an
# H200, time left) the 256K TTFT with the fastest variant. Sections stop being started
# once BUDGET seconds (default 560) have gone.
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
echo "gpu: $gpu"
busy=131072
case $gpu in *H100*) busy=98304 ;; esac
echo "== wgmma cases ($(date -u +%T))"
timeout 100 /tmp/cb/bin/cuda_tests -r compact "*wgmma*" 2>&1 | tee "$OUT/cuda_tests_wgmma.log" | tail -4
variants="CONCLAVE_PREFILL_WGMMA_SCHEDULE=3 CONCLAVE_PREFILL_WGMMA_SCHEDULE=4 CONCLAVE_PREFILL_WGMMA_SCHEDULE=5 CONCLAVE_PREFILL_PACK_GQA=1,CONCLAVE_PREFILL_WGMMA_SCHEDULE=5"
if ! grep -q "^Passed \|^All tests passed" "$OUT/cuda_tests_wgmma.log"; then
  echo "!! wgmma cases failed: only the default schedule is timed"
  variants="CONCLAVE_PREFILL_WGMMA_SCHEDULE=3"
fi
echo "== attention subset ($(date -u +%T))"
timeout 150 /tmp/cb/bin/cuda_tests -r compact -d yes \
  "*paged_attention*,*fp8 KV cache*,cuda graphs and fast paths*,cuda backend matches*" 2>&1 |
  tee "$OUT/cuda_tests_attention.log" | grep -v "^\(/\|  \)" | tail -6
best=CONCLAVE_PREFILL_WGMMA_SCHEDULE=3 best_rate=0
for v in $variants; do
  [ "$(left)" -gt 60 ] || break
  echo "-- $v ($(date -u +%T))"
  log="$OUT/long_ab_${v//[=,]/_}.log"
  env ${v//,/ } timeout 90 /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 32768 \
    --decode-contexts 1024 --streams 0 --busy-chunks 8192 --iters 2 >"$log" 2>&1
  rate=$(awk '$1 == 32768 && NF >= 7 {print $5}' "$log" | tail -1)
  grep -E "^ +32768 " "$log" || tail -3 "$log"
  if [ -n "$rate" ] && awk "BEGIN{exit !($rate > $best_rate)}"; then best=$v best_rate=$rate; fi
done
echo "fastest: $best ($best_rate TFLOP/s)"
if [ "$(left)" -gt 120 ]; then
  echo "== 8 streams next to a $busy-token prompt, packed GQA + split ($(date -u +%T))"
  env ${best//,/ } CONCLAVE_PREFILL_PACK_GQA=1 CONCLAVE_PREFILL_SPLIT=1 timeout $(( $(left) < 170 ? $(left) : 170 )) \
    /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 8192 --decode-contexts 1024 \
    --busy-prompt "$busy" --busy-chunks 2048 --busy-pairs 1600000,8000000 2>&1 |
    tee "$OUT/bench_stall_pack_split.log" | sed -n '/^8 streams/,$p'
fi
case $gpu in *H200*)
  if [ "$(left)" -gt 110 ]; then
    echo "== 256K TTFT ($(date -u +%T))"
    env ${best//,/ } timeout $(( $(left) + 60 )) /tmp/cb/bin/conclave bench long --backend cuda \
      --prompt-lens 262144 --decode-contexts 1024,262144 --streams 0 --kv-cache-mib 30720 2>&1 |
      tee "$OUT/bench_long_256k.log" | grep -v '^\s*$' | tail -12
  fi ;;
esac
echo "done after $((SECONDS - t0)) s"
