#!/usr/bin/env bash
# Runs on the GPU machine (through the device tool, from the repository root, with
# .devbundle carried): unpacks the bundle, then the CUDA op and model tests, a generate
# smoke test, the random-weight engine benchmark and HF's speed script. Logs go to $OUT.
# Usage: scripts/device/run_all.sh [tests] [bench] [hf]   (default: all three);
# BUNDLE=dir picks another bundle than .devbundle.
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
what=${*:-tests bench hf}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
# Per-step time caps (seconds): a lease is short, and each step's output is flushed as it
# goes, so a capped step still reports what it measured.
T_TESTS=${T_TESTS:-200} T_BENCH=${T_BENCH:-300} T_HF=${T_HF:-300} T_480=${T_480:-120}
for w in $what; do
  case $w in
    tests)
      timeout "$T_TESTS" /tmp/cb/bin/cuda_tests -r compact 2>&1 | tee "$OUT/cuda_tests.log" | tail -40
      for flags in "" "--cuda-graphs"; do
        timeout 60 /tmp/cb/bin/conclave generate --backend cuda $flags --model tests/data/tiny_moe \
          --prompt-ids 1,2,3 --max-tokens 8 2>&1 | tail -5 | tee -a "$OUT/generate.log"
      done ;;
    bench)
      timeout "$T_BENCH" /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b \
        --random-weights 2>&1 | tee "$OUT/bench_30b.log" ;;
    bench480)
      timeout "$T_480" /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-coder-480b \
        --layers 4 --random-weights --batches 1,64 --prefill-lens 512,4096 2>&1 |
        tee "$OUT/bench_480b.log" ;;
    hf)
      timeout "$T_HF" python3 /tmp/cb/hf_speed.py 2>&1 | tee "$OUT/hf_speed.log" | tail -30 ;;
  esac
done
