#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle): cuda_tests (TESTS=filter), then decode with
# the tensor-core decode kernel against the CUDA-core GQA kernel (CONCLAVE_DECODE_MMA=0),
# and the tensor-core grouped expert GEMM against the grouped GEMV (CONCLAVE_EXPERT_MMA=0),
# in the same call: batch-1 steps at long contexts (`bench long`, no long prefill) with bf16 and
# fp8 KV caches, the engine's decode batches, and (NCU=1) ncu's view of one attention
# launch of each kernel at the longest context.
# `fused` times the engine with a fusion on and off: FUSED=CONCLAVE_FUSED_KV (the KV write
# in qk-norm/RoPE, the default) or FUSED=CONCLAVE_FUSED_MOE (route + permute, and a
# one-token step's SwiGLU and combine in the expert GEMVs).
# Usage: scripts/device/decode_attention_ab.sh [tests] [long] [engine] [fused] [ncu]
#   CTX=1024,131072 (bf16 contexts) CTX8=1024,131072,262144 (fp8 contexts)
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
what=${*:-tests long engine}
ctx=${CTX:-1024,131072} ctx8=${CTX8:-1024,131072,262144}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
long() {  # mma kv contexts
  CONCLAVE_DECODE_MMA=$1 timeout "${T_LONG:-90}" /tmp/cb/bin/conclave bench long --backend cuda \
    --prompt-lens 2048 --decode-contexts "$3" --streams 0 --iters "${ITERS:-10}" \
    --kv-cache-dtype "$2" 2>&1 | tee "$OUT/long_${2}_mma$1.log" | sed -n '/^decode/,$p'
}
for w in $what; do
  case $w in
    tests)
      timeout "${T_TESTS:-200}" /tmp/cb/bin/cuda_tests ${TESTS:-} -r compact 2>&1 |
        tee "$OUT/cuda_tests_ops.log" | tail -15 ;;
    long)  # LONGKV="auto fp8": the KV dtypes (auto: bf16 at CTX, fp8 at CTX8)
      for kv in ${LONGKV:-auto fp8}; do
        for mma in 1 0; do
          echo "== CONCLAVE_DECODE_MMA=$mma $kv KV"
          if [ "$kv" = fp8 ]; then long $mma fp8 "$ctx8"; else long $mma auto "$ctx"; fi
        done
      done ;;
    engine)  # all tensor-core paths, then decode attention and then the experts on CUDA cores
      for ab in ${ENGINE_AB:-11 01 10}; do  # CONCLAVE_DECODE_MMA, CONCLAVE_EXPERT_MMA
        set -- ${ab:0:1} ${ab:1:1}
        echo "== CONCLAVE_DECODE_MMA=$1 CONCLAVE_EXPERT_MMA=$2 engine"
        CONCLAVE_DECODE_MMA=$1 CONCLAVE_EXPERT_MMA=$2 timeout "${T_BENCH:-120}" \
          /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b --random-weights \
          --batches 1,8,16,64,128 --prefill-lens 512 2>&1 | tee "$OUT/engine_$1$2.log" |
          grep -E '^(decode|prefill|  ceil|gpus)'
      done ;;
    fused)  # FUSED=CONCLAVE_FUSED_KV (default) or CONCLAVE_FUSED_MOE
      sw=${FUSED:-CONCLAVE_FUSED_KV}
      for f in 1 0; do
        echo "== $sw=$f engine"
        env "$sw=$f" timeout "${T_BENCH:-120}" /tmp/cb/bin/conclave bench engine \
          --backend cuda --preset qwen3-30b-a3b --random-weights --batches 1,8,64 \
          --prefill-lens 512 2>&1 | tee "$OUT/engine_${sw}_$f.log" | grep -E '^(decode|prefill|gpus)'
      done ;;
    ncu)
      NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      for mma in 1 0; do
        CONCLAVE_DECODE_MMA=$mma timeout "${T_NCU:-150}" "$NCU" \
          --kernel-name "regex:decode_mma|gqa_attention" --launch-skip 100 --launch-count 1 \
          --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
          /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 16 \
          --decode-contexts "${ctx##*,}" --streams 0 --iters 3 >"$OUT/ncu_mma$mma.txt" 2>&1
        grep -E "decode_mma|gqa_attention|Duration|Memory Throughput|DRAM Throughput|Registers|Achieved Occupancy|Grid Size|Compute \(SM\)|Stall" \
          "$OUT/ncu_mma$mma.txt" | head -20
      done ;;
  esac
done
