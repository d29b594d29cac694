#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and third_party/qwen3-tokenizer), one call
# (2026-12-07): the whole cuda_tests with packed GQA and the split on by default; the
# busy step (8 streams + a short chunk at the end of a long prompt) split into device,
# attention and host time; the fp8 cache's decode with both widenings; the busy step's
# kernels under ncu; then (an H200, time left) the 256K
# bf16 TTFT. Sections stop being started once BUDGET seconds (default 560) have gone.
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
echo "gpu: $gpu"
busy=98304
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "== cuda_tests ($(date -u +%T))"
  # SUBSET: Catch test specs (default: every case).
  timeout ${T_TESTS:-280} /tmp/cb/bin/cuda_tests -r compact ${SUBSET:+"$SUBSET"} 2>&1 | tee "$OUT/cuda_tests_full.log" |
    grep -v "warning:" | tail -6
  echo "cuda_tests took $((SECONDS - t0)) s"
fi
for v in 1 0; do
  [ "$(left)" -gt 150 ] || break
  echo "== fp8 KV decode, CONCLAVE_DECODE_FP8_FAST_CVT=$v ($(date -u +%T))"
  # The first run also times a 32K prompt (fp8 prefill attention, 189.5 TFLOP/s before).
  lens=1024; [ $v = 1 ] && lens=32768
  CONCLAVE_DECODE_FP8_FAST_CVT=$v timeout 100 /tmp/cb/bin/conclave bench long --backend cuda \
    --prompt-lens $lens --decode-contexts 1024,131072,262144 --streams 0 --kv-cache-dtype fp8 \
    --kv-cache-mib 16384 2>&1 | tee "$OUT/bench_fp8_decode_cvt$v.log" | sed -n '/^  prompt/,$p' | grep -v '^\s*$'
done
if [ "$(left)" -gt 100 ]; then
  echo "== busy step parts, $busy-token prompt ($(date -u +%T))"
  timeout 120 /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 1024 \
    --decode-contexts 1024 --busy-prompt $busy --busy-chunks 16,64,512 2>&1 |
    tee "$OUT/bench_busy_parts.log" | sed -n '/^8 streams/,$p'
fi
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ "$(left)" -gt 100 ] && [ -n "$NCU" ]; then
  echo "== ncu of the busy step, chunk 16 ($(date -u +%T))"
  CONCLAVE_BENCH_PROFILE=busy:16 timeout 150 "$NCU" --profile-from-start off \
    --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
    --log-file /tmp/ncu_busy.csv /tmp/cb/bin/conclave bench long --backend cuda \
    --prompt-lens 1024 --decode-contexts 1024 --busy-prompt $busy --busy-chunks 16 \
    >"$OUT/bench_busy_ncu.log" 2>&1
  python3 scripts/device/kernel_summary.py /tmp/ncu_busy.csv busy16 | tee "$OUT/profile_busy16.txt" | head -40
  xz -c /tmp/ncu_busy.csv >"$OUT/ncu_busy.csv.xz"
fi
case $gpu in *H200*)
  if [ "$(left)" -gt 150 ]; then
    echo "== 256K TTFT, bf16 KV ($(date -u +%T))"
    timeout $(( $(left) + 30 )) /tmp/cb/bin/conclave bench long --backend cuda \
      --prompt-lens 262144 --decode-contexts 1024,262144 --streams 0 --kv-cache-mib 30720 2>&1 |
      tee "$OUT/bench_long_256k.log" | grep -v '^\s*$' | tail -12
  fi ;;
esac
echo "done after $((SECONDS - t0)) s"
