#!/usr/bin/env bash
# Runs on the GPU machine (through the device tool, from the repository root, with
# .devbundle carried): unpacks the bundle, then the CUDA op and model tests, a generate
# smoke test, the random-weight engine benchmark and HF's speed script. Logs go to $OUT.
# Usage: scripts/device/run_all.sh [tests] [bench] [hf] [ep] [quant] [fixtures] [bench480]
#        (default: tests bench hf);
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
    ep)  # expert parallelism (#13): the EP and NCCL cases, then two ranks sharing the device
      timeout "$T_TESTS" /tmp/cb/bin/cuda_tests "[ep],[nccl]" -r compact 2>&1 | tee "$OUT/cuda_ep.log" | tail -20
      timeout "$T_BENCH" /tmp/cb/bin/conclave bench ep --backend cuda --ranks 1,2 --batches 1,8,64 \
        2>&1 | tee "$OUT/bench_ep.log" ;;
    quant)  # quantized weights (#14): one engine bench per format on the same card
      timeout "$T_TESTS" /tmp/cb/bin/cuda_tests "[quant]" -r compact 2>&1 | tee "$OUT/cuda_quant.log" | tail -20
      for q in none fp8 awq; do
        timeout "$T_BENCH" /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b \
          --random-weights --quant $q --batches 1,8,64 --prefill-lens 4096 2>&1 | tee "$OUT/bench_30b_$q.log"
      done
      timeout "$T_480" /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-coder-480b \
        --layers 4 --random-weights --quant fp8 --batches 1,64 --prefill-lens 4096 2>&1 |
        tee "$OUT/bench_480b_fp8.log" ;;
    fixtures)  # transformers-made fixtures (needs torch + transformers): copied back via $OUT
      timeout "$T_HF" python3 tools/make_fixtures.py --out "$OUT/fixtures" --only moe_fp8 moe_awq moe_yarn moe_swa 2>&1 |
        tee "$OUT/fixtures.log" | tail -5 ;;
    hf)
      timeout "$T_HF" python3 /tmp/cb/hf_speed.py 2>&1 | tee "$OUT/hf_speed.log" | tail -30 ;;
  esac
done
