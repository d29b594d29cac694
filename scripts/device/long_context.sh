#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and third_party/qwen3-tokenizer): issue #15's
# long-context measurements around the Hopper prefill attention kernel.
#   tests   the attention cases of cuda_tests (the wgmma tiles against the CPU twin first)
#   ab      32K TTFT (AB_LENS) with the wgmma kernel's schedules (decoupled, loading
#           warpgroup, ping-pong, overlapped); AB_VARS overrides the list (an entry:
#           VAR=v or VAR=v,VAR2=w)
#   ttft    `bench long`'s tables: TTFT at LENS (default 32K, 128K, 256K), decode at 1K,
#           128K and 256K context, 8 streams next to a 128K prompt
#   stall   the 8 streams' step under --prefill-stall-pairs (STALL_PAIRS), next to a
#           BUSY_PROMPT-token prompt (default 131072; 98304 fits an H100), with the short
#           chunks split over the context and (SPLIT_AB=1) with CONCLAVE_PREFILL_SPLIT=0
#   concurrent  two 256K prompts at once through the engine with KV offload
# Usage: scripts/device/long_context.sh [tests] [ab] [ttft] [stall] [concurrent]
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
what=${*:-tests ab}
bench=(/tmp/cb/bin/conclave bench long --backend cuda)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
for w in $what; do
  echo "== $w ($(date -u +%T))"
  case $w in
    tests)
      timeout "${T_TESTS:-150}" /tmp/cb/bin/cuda_tests -r compact -d yes \
        "${SUBSET:-*wgmma*,*paged_attention*,*fp8 KV cache*,cuda graphs and fast paths*,cuda backend matches*}" 2>&1 |
        tee "$OUT/cuda_tests_attention.log" | tail -8
      # A failing case: the later sections run the schedule verified earlier (overlapped).
      if ! grep -q "^Passed \|^All tests passed" "$OUT/cuda_tests_attention.log"; then
        echo "!! attention tests failed: CONCLAVE_PREFILL_WGMMA_SCHEDULE=2 from here"
        export CONCLAVE_PREFILL_WGMMA_SCHEDULE=2
      fi ;;
    ab)
      for v in ${AB_VARS:-CONCLAVE_PREFILL_WGMMA_SCHEDULE=3 CONCLAVE_PREFILL_WGMMA_SCHEDULE=4 CONCLAVE_PREFILL_WGMMA_SCHEDULE=5 CONCLAVE_PREFILL_WGMMA_SCHEDULE=2}; do
        echo "-- $v"
        env ${v//,/ } timeout "${T_AB:-240}" "${bench[@]}" --prompt-lens "${AB_LENS:-32768}" \
          --decode-contexts 1024 --streams 0 --busy-chunks 8192 --iters 2 2>&1 |
          tee "$OUT/long_ab_${v//=/_}.log" | grep -v '^\s*$' | tail -14
      done ;;
    ttft)
      timeout "${T_TTFT:-580}" "${bench[@]}" --prompt-lens "${LENS:-32768,131072,262144}" \
        --kv-cache-mib "${KV_MIB:-30720}" ${TTFT_ARGS:-} 2>&1 |
        tee "$OUT/bench_long.log" ;;
    stall)
      for v in 1 ${SPLIT_AB:+0}; do
        echo "-- CONCLAVE_PREFILL_SPLIT=$v"
        CONCLAVE_PREFILL_SPLIT=$v timeout "${T_STALL:-300}" "${bench[@]}" --prompt-lens 8192 \
          --decode-contexts 1024 --busy-prompt "${BUSY_PROMPT:-131072}" --busy-chunks 2048 \
          --busy-pairs "${STALL_PAIRS:-400000,1600000,8000000}" 2>&1 |
          tee "$OUT/bench_stall_split$v.log" | sed -n '/^8 streams/,$p'
      done ;;
    concurrent)
      timeout "${T_CONC:-580}" "${bench[@]}" --only-concurrent --concurrent 2 \
        --kv-cache-mib "${KV_MIB:-30720}" --kv-offload-mib "${OFFLOAD_MIB:-40960}" ${CONC_ARGS:-} 2>&1 |
        tee "$OUT/bench_concurrent.log" ;;
    *) echo "unknown section $w" ;;
  esac
done
