#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle, .devbundle80 and third_party/qwen3-tokenizer):
# what issue #16 asks to see in one call, correctness first.
#   tests   cuda_tests (the default build: sm_90a machine code on Hopper)
#   sm80    cuda_tests of the build for compute_80 only (scripts/device/make_bundle.sh
#           build-sm80 .devbundle80): on a Hopper card the driver compiles its PTX at load,
#           so every kernel runs the code an Ampere or Ada card runs, while cuBLAS keeps its
#           own Hopper kernels (CUDA_FORCE_PTX_JIT=1 would JIT cuBLAS too, which fails)
#   moe     `conclave bench moe`, then tools/moe_grouped_mm.py: torch._grouped_mm's layer
#           beside it on the same card
#   engine  `conclave bench engine --random-weights` and HF's speed script (hf_speed.py)
#   serve   the serving overhead at 64 streams: a 2-layer checkpoint of the 30B shape
#           (gen-model), `conclave serve --backend cuda`, `bench serve --protocol ws` with
#           64 clients (e2e - engine per request), and `bench engine` on the same weights
# AB="VAR ..." (e.g. AB="CONCLAVE_PDL CONCLAVE_FUSED_MOE") runs `moe` and `engine` again
# with each VAR=0 in turn (logs *_VAR0.log).
#   thresholds  `bench moe` with CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS and CONCLAVE_GROUPED_MAX_TOKENS
#           at their defaults and raised
#   variants  `bench moe` once per VAR=value in VARIANTS (default: the grouped GEMM's
#           switches: one block per work item, fewer x tiles a pass, route + permute in one
#           launch up to 64 tokens), then the defaults again
#   subset  the cuda_tests cases named in SUBSET (a Catch filter; default the grouped GEMM's)
#   profile ncu per kernel (with DRAM throughput) of a 64-token decode step in graphs and a
#           512-token prefill (scripts/device/profile.sh): #16's before/after and the why
#           of its missed goals. PROF_BATCHES=1,64 PROF_LENS=512,4096 PROF_CASES="decode+g:1 decode+g:64 prefill:512
#           prefill:4096" adds the 4K prefill
#   stall   `bench long`'s 8 decoding streams next to a 128K prompt, in fixed chunks and in
#           chunks bounded by --prefill-stall-pairs (STALL_PAIRS, the values tried)
# Usage: scripts/device/cuda_round2.sh [tests] [subset] [sm80] [moe] [variants] [thresholds] [engine] [profile] [stall] [serve]
# Timeouts: the compute_80 build's tests wait minutes for the driver to compile every
# kernel's PTX first (T_TESTS80, default 420 s; 90 s was not enough on an H100).
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
what=${*:-tests sm80 moe engine serve}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
for w in $what; do
  echo "== $w ($(date -u +%T))"
  case $w in
    tests)
      timeout "${T_TESTS:-200}" /tmp/cb/bin/cuda_tests -r compact 2>&1 |
        tee "$OUT/cuda_tests.log" | tail -6 ;;
    subset)
      timeout "${T_TESTS:-200}" /tmp/cb/bin/cuda_tests -r compact \
        "${SUBSET:-*grouped_mma*,time_moe_layer*,*ROUTE_PERMUTE*,*GROUPED_MAX*,cuda graphs and fast paths*,cuda bf16 weights*,cuda backend matches*,cuda gemm_experts*}" 2>&1 |
        tee "$OUT/cuda_tests_subset.log" | tail -6 ;;
    variants)
      # VARIANTS: ';'-separated runs, each one or more VAR=value
      IFS=';' read -ra runs <<<"${VARIANTS:-CONCLAVE_MMA_MAX_TILES=1;CONCLAVE_MMA_MAX_TILES=4;CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS=64}"
      for v in "${runs[@]}" DEFAULTS=1; do
        echo "-- $v"
        env $v timeout "${T_BENCH:-120}" /tmp/cb/bin/conclave bench moe --backend cuda \
          --tokens "${MOE_TOKENS:-16,32,64,128,512,1024}" --iters 50 2>&1 |
          tee "$OUT/bench_moe_$(echo "$v" | tr -c 'A-Za-z0-9_\n' _).log" | sed -n '/tokens  *us/,$p'
      done ;;
    sm80)
      mkdir -p /tmp/cb80 && tar -C /tmp/cb80 -xJf "${BUNDLE80:-.devbundle80}/bundle.tar.xz"
      timeout "${T_TESTS80:-420}" /tmp/cb80/bin/cuda_tests -r compact 2>&1 |
        tee "$OUT/cuda_tests_sm80.log" | tail -6 ;;
    moe)
      timeout "${T_BENCH:-240}" /tmp/cb/bin/conclave bench moe --backend cuda \
        --tokens "${MOE_TOKENS:-1,8,64,128,512}" 2>&1 | tee "$OUT/bench_moe.log"
      for v in ${AB:-}; do
        echo "-- $v=0"
        env "$v=0" timeout "${T_BENCH:-240}" /tmp/cb/bin/conclave bench moe --backend cuda \
          --tokens "${MOE_TOKENS:-1,8,64,128,512}" 2>&1 | tee "$OUT/bench_moe_${v}0.log" |
          sed -n '/tokens/,$p'
      done
      timeout "${T_HF:-240}" python3 tools/moe_grouped_mm.py --tokens "${MOE_TOKENS:-1,8,64,128,512}" \
        --conclave "$OUT/bench_moe.log" 2>&1 | tee "$OUT/moe_grouped_mm.log" ;;
    thresholds)  # the two size switches against their defaults, on the layer alone
      for env in "CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS=16 32,64,128" "CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS=128 32,64,128" \
        "CONCLAVE_GROUPED_MAX_TOKENS=128 256,512,1024,4096" "CONCLAVE_GROUPED_MAX_TOKENS=4096 256,512,1024,4096"; do
        set -- $env
        echo "-- $1"
        env "$1" timeout "${T_BENCH:-120}" /tmp/cb/bin/conclave bench moe --backend cuda --tokens "$2" \
          --iters 50 2>&1 | tee "$OUT/bench_moe_$1.log" | sed -n '/tokens  *us/,$p'
      done ;;
    engine)
      timeout "${T_BENCH:-300}" /tmp/cb/bin/conclave bench engine --backend cuda \
        --preset qwen3-30b-a3b --random-weights ${ENGINE_ARGS:-} 2>&1 | tee "$OUT/bench_30b.log"
      for v in ${AB:-}; do
        echo "-- $v=0"
        env "$v=0" timeout "${T_BENCH:-300}" /tmp/cb/bin/conclave bench engine --backend cuda \
          --preset qwen3-30b-a3b --random-weights ${ENGINE_ARGS:-} 2>&1 |
          tee "$OUT/bench_30b_${v}0.log" | grep -E '^(decode|prefill)'
      done
      timeout "${T_HF:-300}" python3 /tmp/cb/hf_speed.py 2>&1 | tee "$OUT/hf_speed.log" | tail -30 ;;
    profile)
      PROFILE_DRAM=1 T_PROF=${T_PROF:-400} bash scripts/device/profile.sh "${PROF_BATCHES:-64}" "${PROF_LENS:-512}" \
        ${PROF_CASES:-decode+g:64 prefill:512} 2>&1 | tail -60 ;;
    stall)  # #15: 8 streams' step while a 128K prompt is read, fixed chunks and stall-bounded ones
      timeout "${T_STALL:-500}" /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 8192 \
        --decode-contexts 1024 --busy-chunks 512,2048 \
        --busy-pairs "${STALL_PAIRS:-200000,1600000,8000000,64000000}" 2>&1 | tee "$OUT/bench_stall.log" ;;
    serve)
      model=/tmp/m30x2 port=18080
      [ -f $model/config.json ] || timeout 240 /tmp/cb/bin/conclave gen-model --preset qwen3-30b-a3b \
        --layers 2 --out $model 2>&1 | tail -1
      /tmp/cb/bin/conclave serve --backend cuda --model $model --port $port \
        --tokenizer third_party/qwen3-tokenizer/tokenizer.json >"$OUT/serve64.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 180); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 1; done
      timeout 240 /tmp/cb/bin/conclave bench serve --url "http://127.0.0.1:$port" --protocol ws \
        --clients 64 --requests 256 --max-tokens 128 2>&1 | tee "$OUT/bench_serve64.log"
      kill -TERM $pid; wait $pid
      timeout 120 /tmp/cb/bin/conclave bench engine --backend cuda --model $model --batches 64 \
        --decode-tokens 64 --decode-context 32 2>&1 | tee "$OUT/bench_engine_m30x2.log" | tail -8 ;;
  esac
done
