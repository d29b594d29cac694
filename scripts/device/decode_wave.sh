#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle and the tokenizer): the decode attention's
# split (CONCLAVE_DECODE_ONE_WAVE) in one call: its cuda_tests cases, `bench engine`
# decode steps with one wave of blocks and with the old rounding, and ncu's stall
# reasons and memory sections for one decode-attention launch of a 64-row graph step.
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
timeout "${T_TESTS:-120}" /tmp/cb/bin/cuda_tests -r compact "*attention*,cuda graphs*,cuda backend matches*" \
  2>&1 | tee "$OUT/cuda_tests_attention.log" | tail -3
for v in 1 0; do
  echo "-- CONCLAVE_DECODE_ONE_WAVE=$v"
  CONCLAVE_DECODE_ONE_WAVE=$v timeout "${T_BENCH:-100}" /tmp/cb/bin/conclave bench engine --backend cuda \
    --preset qwen3-30b-a3b --random-weights --batches "${BATCHES:-8,32,64,128}" --prefill-lens 128 \
    2>&1 | tee "$OUT/bench_wave$v.log" | grep -E '^decode\+g'
done
NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
CONCLAVE_BENCH_PROFILE=decode+g:64 timeout "${T_PROF:-90}" "$NCU" --profile-from-start off \
  -k regex:decode_mma --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
  --section WarpStateStats --section Occupancy --section LaunchStats \
  /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b --random-weights \
  --batches 64 --prefill-lens 128 >"$OUT/ncu_decode_attention.txt" 2>&1
grep -E "DRAM Throughput|Memory Throughput|Duration|Achieved Occupancy|Theoretical Occupancy|Stall|Warp Cycles|L2 Hit|L1/TEX Hit|Block Limit|Registers|Waves" \
  "$OUT/ncu_decode_attention.txt" | head -40
