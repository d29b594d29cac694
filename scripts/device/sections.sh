#!/usr/bin/env bash
# Runs on the GPU machine (carry .devbundle), sections in the order given, each started
# only while BUDGET (default 560) seconds have not gone. SECTIONS (default "ttft stall"):
# tests = the whole cuda_tests; fp8dec = decode with an fp8 cache at 1K, 128K and 256K with
# the fast widening and the conversion instructions; busy = the busy step's parts next to a
# 96K prompt; ncubusy = its kernels under ncu; ttft = one 256K prompt with a bf16
# cache, decode at 1K and 256K; stall = 8 streams next to a 128K prompt, chunks of 2,048
# and the scheduler's under --prefill-stall-pairs; concurrent = two 256K prompts through
# the engine with KV offload (LONG_QUANT=fp8: fp8 weights, so that it fits an H100; KV_MIB,
# OFFLOAD_MIB: the device cache and host pool); profdecode = the kernels of one decode step at 128K context
# with an fp8 cache, under ncu; listed = 8 streams at 32K context next to a 32K prompt's
# chunks, their rows split (CONCLAVE_DECODE_SPLIT_LISTED=1) and whole (=0); flake = the
# quantized-twin case (fp8 in graphs gave 3.1e-3 once where it gives exactly 0) repeated
# REPS times with programmatic dependent launch on and off; quant = issue 14's engine bench
# per format (QUANTS, default "none fp8 fp8-cc awq awq-cc"; NAME-old: the quantized row
# GEMVs and tensor-core GEMM switched off; NAME-mma1: the GEMM from one row; NAME-cc: the
# one-row kernels on CUDA cores) at batches 1, 8, 64 and a 4K prefill; ep1 = on one GPU: the
# expert-parallel cases, then bench ep of a random EP_LAYERS-layer (default 2) slice of
# qwen3-coder-480b, 1 and 2 ranks sharing the GPU over device buffers (the exchange NCCL
# runs) and over Gloo; multigpu = issue 20: the [nccl] and [ep] cases, then bench ep of an
# EP_LAYERS-layer (default 3) slice of qwen3-coder-480b over NCCL on 1, 2, 4 and 8 GPUs (as
# many as there are) at batches 1, 64, 256 (EP_QUANT: none, fp8); killgpu = issue 20's
# rank killed mid-stream, one node per GPU over NCCL; ncuprefill = ncu --set full of one prefill-attention launch (16K prompt); prefill32k = a 32K prompt's attention TFLOP/s per AB_VALUES of AB_VAR; ep480 = the whole 480B shape over
# every GPU: decode TPOT at batch 1 and 64 and TTFT of 4K and 32K prompts (MODEL, WEIGHT_DTYPE, TOKENS: see
# tests/cluster/cluster_test.py kill9_gpu_rank); ncufull = ncu --set full of a batch-1 step's
# NCU_KERNELS (regex, default row_mma_kernel), the first NCU_COUNT (3); decode = the decode
# step at 1K, 128K and 256K context per AB_VALUES of AB_VAR (default an fp8 cache); paced = 8
# streams next to a 128K prompt through the engine per decode_slowdown (PACED).
set -uo pipefail
. "$(dirname "$0")/bundle_env.sh"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# The switch an A/B value stands for: "" for "-" (AB_VALUES unset: one run), else AB_VAR=v.
ab_switch() { [ "$1" = - ] || echo "${AB_VAR:?AB_VAR names the variable AB_VALUES sets}=$1"; }
for w in ${SECTIONS:-ttft stall}; do
  echo "== $w ($(date -u +%T), $((SECONDS - t0)) s)"
  [ "$(left)" -gt 60 ] || { echo "(budget spent: $w not started)"; continue; }
  case $w in
    tests)  # the whole cuda_tests (SUBSET: Catch test specs)
      timeout ${T_TESTS:-280} /tmp/cb/bin/cuda_tests -r compact ${SUBSET:+"$SUBSET"} 2>&1 |
        tee "$OUT/cuda_tests_full.log" | grep -v "warning:" | tail -6 ;;
    fp8dec)  # the fp8 cache's decode with both widenings; the first also times a 32K prompt
      for v in 1 0; do
        [ "$(left)" -gt 100 ] || break
        echo "-- CONCLAVE_DECODE_FP8_FAST_CVT=$v"
        lens=1024; [ $v = 1 ] && lens=32768
        CONCLAVE_DECODE_FP8_FAST_CVT=$v timeout 100 /tmp/cb/bin/conclave bench long --backend cuda \
          --prompt-lens $lens --decode-contexts 1024,131072,262144 --streams 0 --kv-cache-dtype fp8 \
          --kv-cache-mib 16384 2>&1 | tee "$OUT/bench_fp8_decode_cvt$v.log" |
          sed -n '/^  prompt/,$p' | grep -v '^\s*$'
      done ;;
    busy)  # the busy step's device / attention / wall parts next to a 96K prompt
      timeout 120 /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 1024 \
        --decode-contexts 1024 --busy-prompt 98304 --busy-chunks 16,64,512 2>&1 |
        tee "$OUT/bench_busy_parts.log" | sed -n '/^8 streams/,$p' ;;
    ncubusy)  # the busy step's kernels (16-token chunk at 96K) under ncu
      NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      CONCLAVE_BENCH_PROFILE=busy:16 timeout 150 "$NCU" --profile-from-start off \
        --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
        --log-file /tmp/ncu_busy.csv /tmp/cb/bin/conclave bench long --backend cuda \
        --prompt-lens 1024 --decode-contexts 1024 --busy-prompt 98304 --busy-chunks 16 \
        >"$OUT/bench_busy_ncu.log" 2>&1
      python3 scripts/device/kernel_summary.py /tmp/ncu_busy.csv busy16 |
        tee "$OUT/profile_busy16.txt" | head -40
      xz -c /tmp/ncu_busy.csv >"$OUT/ncu_busy.csv.xz" ;;
    ttft)
      timeout ${T_TTFT:-300} /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 262144 \
        --decode-contexts 1024,131072,262144 --streams 0 --kv-cache-mib 30720 2>&1 |
        tee "$OUT/bench_long_256k.log" | grep -v '^\s*$' | tail -12 ;;
    stall)
      timeout ${T_STALL:-240} /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 1024 \
        --decode-contexts 1024 --busy-prompt 131072 --busy-chunks 2048,16 \
        --busy-pairs 1600000,8000000 2>&1 | tee "$OUT/bench_stall_128k.log" |
        sed -n '/^8 streams/,$p' ;;
    concurrent)
      timeout ${T_CONC:-560} /tmp/cb/bin/conclave bench long --backend cuda --only-concurrent \
        --quant "${LONG_QUANT:-none}" --concurrent 2 --kv-cache-mib "${KV_MIB:-30720}" --kv-offload-mib "${OFFLOAD_MIB:-40960}" \
        2>&1 | tee "$OUT/bench_concurrent.log" | grep -v '^\s*$' | tail -20 ;;
    listed)
      for v in 1 0; do
        echo "-- CONCLAVE_DECODE_SPLIT_LISTED=$v"
        CONCLAVE_DECODE_SPLIT_LISTED=$v timeout ${T_LISTED:-150} /tmp/cb/bin/conclave bench long \
          --backend cuda --prompt-lens 1024 --decode-contexts 1024 --stream-context 32768 \
          --busy-prompt 32768 --busy-chunks 16,512 2>&1 | tee "$OUT/bench_listed_$v.log" |
          sed -n '/^8 streams/,$p'
      done ;;
    flake)
      for pdl in 1 0; do
        fails=0
        for i in $(seq "${REPS:-8}"); do
          CONCLAVE_PDL=$pdl timeout 120 /tmp/cb/bin/cuda_tests -r compact \
            "quantized checkpoints on the cuda backend equal their bf16 twins" \
            >"$OUT/flake_pdl${pdl}_$i.log" 2>&1 || fails=$((fails + 1))
          # A run over 1e-3: replay its tokens (every mode then reads the same prompts):
          # the same difference without graphs (mode 1) means summation order, not replay.
          seed=$(grep -ho "mode [1-4] against its bf16 twin.*" "$OUT/flake_pdl${pdl}_$i.log" |
            tr -d "'" | awk '{for (f = 1; f <= NF; ++f) if ($f == "max(1,") w = $(f + 3);
              if (w + 0 > 1e-3) { sub(",", "", w); print $NF; exit }}')
          [ -n "$seed" ] || continue
          echo "run $i failed, seed $seed; replayed:"
          CONCLAVE_TEST_SEED=$seed CONCLAVE_PDL=$pdl timeout 120 /tmp/cb/bin/cuda_tests -r compact \
            "quantized checkpoints on the cuda backend equal their bf16 twins" 2>&1 |
            grep -o "mode [0-9] against its bf16 twin.*" | tr -d "'" | head -6
        done
        echo "CONCLAVE_PDL=$pdl: $fails of ${REPS:-8} runs failed"
      done ;;
    quant)
      # A format named NAME-old runs with the quantized row GEMVs and tensor-core GEMM off
      # (CONCLAVE_QUANT_ROW_GEMV=0 CONCLAVE_QUANT_MMA=0: the paths before 2026-12-07);
      # NAME-mma1 with the tensor-core GEMM from one row (CONCLAVE_QUANT_MMA_MIN_ROWS=1);
      # NAME-cc with the one-row kernels on CUDA cores (CONCLAVE_QUANT_ROW_MMA=0); NAME-wide
      # with the tensor-core row kernels' wider rounds (CONCLAVE_QUANT_ROW_MMA_WIDE=1); NAME-late
      # with the down kernel's weights loaded only after its wait (CONCLAVE_QUANT_DOWN_EARLY=0).
      for name in ${QUANTS:-none fp8 fp8-cc awq awq-cc}; do
        [ "$(left)" -gt 60 ] || break
        q=${name%-*} sw=
        case $name in
          *-old) sw="CONCLAVE_QUANT_ROW_GEMV=0 CONCLAVE_QUANT_MMA=0" ;;
          *-mma1) sw="CONCLAVE_QUANT_MMA_MIN_ROWS=1" ;;
          *-cc) sw="CONCLAVE_QUANT_ROW_MMA=0" ;;
          *-wide) sw="CONCLAVE_QUANT_ROW_MMA_WIDE=1" ;;
          *-late) sw="CONCLAVE_QUANT_DOWN_EARLY=0" ;;
          *) q=$name ;;
        esac
        echo "-- $name"
        env $sw timeout ${T_QUANT:-150} \
          /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b \
          --random-weights --quant $q --batches ${QBATCHES:-1,8,64} --prefill-lens 4096 2>&1 |
          tee "$OUT/bench_30b_$name.log" | grep -E "^decode\+g|^prefill|model:" | head -8
      done ;;
    ep1)  # EP_TESTS=0: skip the cases (a tests section before it ran them)
      [ "${EP_TESTS:-1}" = 0 ] || timeout ${T_TESTS:-280} /tmp/cb/bin/cuda_tests -r compact \
        "[ep],[nccl]" 2>&1 | tee "$OUT/cuda_tests_ep.log" | grep -v "warning:" | tail -6
      for c in local gloo; do
        [ "$(left)" -gt 90 ] || break
        echo "-- --collectives $c"
        timeout ${T_EP:-200} /tmp/cb/bin/conclave bench ep --backend cuda --random-weights \
          --preset qwen3-coder-480b --layers ${EP_LAYERS:-2} --quant ${EP_QUANT:-none} \
          --collectives $c --ranks 1,2 --batches 1,64 --steps 8 2>&1 |
          tee "$OUT/bench_ep1_$c.log" | sed -n '/^ ranks/,$p; /error/Ip' | grep -v '^{'
      done ;;
    multigpu)
      export NCCL_NVLS_ENABLE=0
      timeout ${T_TESTS:-280} /tmp/cb/bin/cuda_tests -r compact "[nccl],[ep]" 2>&1 |
        tee "$OUT/cuda_tests_multigpu.log" | grep -v "warning:" | tail -6
      n=$(nvidia-smi -L | wc -l) ranks=1
      for r in 2 4 8; do [ "$r" -le "$n" ] && ranks="$ranks,$r"; done
      timeout ${T_EP:-400} /tmp/cb/bin/conclave bench ep --backend cuda --random-weights \
        --preset qwen3-coder-480b --layers ${EP_LAYERS:-3} --quant ${EP_QUANT:-none} \
        --collectives nccl --ranks $ranks --batches 1,64,256 --steps 8 2>&1 |
        tee "$OUT/bench_ep_nccl.log" | sed -n '/^ ranks/,$p; /error/Ip' | grep -v '^{' ;;
    ep480)  # issue 20: the whole 480B shape (random EP_QUANT weights, default fp8) over NCCL
      # on every GPU: decode TPOT at batch 1 and 64, TTFT of 4K and 32K prompts
      n=$(nvidia-smi -L | wc -l)
      timeout ${T_EP:-560} /tmp/cb/bin/conclave bench ep --backend cuda --random-weights \
        --preset qwen3-coder-480b --quant ${EP_QUANT:-fp8} --collectives nccl --ranks "$n" \
        --batches 1,64 --steps 16 --prefill-lens 4096,32768 2>&1 |
        tee "$OUT/bench_ep480.log" | sed -n '/^ ranks/,$p; /error/Ip' | grep -v '^{' ;;
    killgpu)  # issue 20: a GPU rank's node killed mid-stream (tests/cluster/cluster_test.py)
      timeout ${T_KILL:-400} python3 tests/cluster/cluster_test.py /tmp/cb/bin/conclave \
        tests/data third_party/qwen3-tokenizer/tokenizer.json kill9_gpu_rank 2>&1 |
        tee "$OUT/kill9_gpu_rank.log" | tail -8 ;;
    ncufull)  # ncu --set full of the first NCU_COUNT (default 3) kernels matching NCU_KERNELS
      # (default the quantized row kernels) in one batch-1 decode step of bench engine
      # (BENCH_FLAGS, default --quant fp8); the details page's headline lines printed.
      NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      CONCLAVE_BENCH_PROFILE=decode+g:1 timeout ${T_PROF:-200} "$NCU" --profile-from-start off \
        --set full -k "regex:${NCU_KERNELS:-row_mma_kernel}" -c "${NCU_COUNT:-3}" \
        /tmp/cb/bin/conclave bench engine --backend cuda --preset qwen3-30b-a3b \
        --random-weights ${BENCH_FLAGS:---quant fp8} --batches 1 --prefill-lens 512 \
        >"$OUT/ncu_full.txt" 2>&1
      grep -E "^  [a-z_].*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Stall|Block Limit|Waves Per SM|L2 Hit" \
        "$OUT/ncu_full.txt" | grep -v "^ *-" | head -${NCU_LINES:-80} ;;
    prefill32k)  # a 32K prompt's TTFT and attention TFLOP/s, once per AB_VALUES of the
      # variable AB_VAR (e.g. AB_VAR=CONCLAVE_PREFILL_TMA AB_VALUES="1 0 1 0"; unset: once),
      # BENCH_FLAGS added (e.g. --block-size 128, --kv-cache-dtype fp8)
      for v in ${AB_VALUES:--}; do
        [ "$(left)" -gt 40 ] || break
        sw=$(ab_switch "$v") || exit 2
        echo "-- ${sw:-default} ${BENCH_FLAGS:-}"
        env $sw timeout ${T_PREFILL:-90} /tmp/cb/bin/conclave bench long --backend cuda \
          --prompt-lens 32768 --decode-contexts 1024 --streams 0 ${BENCH_FLAGS:-} 2>&1 |
          tee "$OUT/bench_prefill32k_${v}.log" | grep -A1 '^  prompt  chunks' | tail -1
      done ;;
    decode)  # decode step at 1K, 128K and 256K context (one 1K prompt), once per AB_VALUES of
      # AB_VAR (unset: once), BENCH_FLAGS added (default --kv-cache-dtype fp8 --kv-cache-mib 16384)
      for v in ${AB_VALUES:--}; do
        [ "$(left)" -gt 60 ] || break
        sw=$(ab_switch "$v") || exit 2
        echo "-- ${sw:-default} ${BENCH_FLAGS:---kv-cache-dtype fp8 --kv-cache-mib 16384}"
        env $sw timeout ${T_DECODE:-100} /tmp/cb/bin/conclave bench long --backend cuda \
          --prompt-lens 1024 --decode-contexts 1024,131072,262144 --streams 0 \
          ${BENCH_FLAGS:---kv-cache-dtype fp8 --kv-cache-mib 16384} 2>&1 |
          tee "$OUT/bench_decode_${v}.log" | sed -n '/^  context/,$p' | grep -v '^\s*$' | head -4
      done ;;
    paced)  # issue 15's stall through the engine: 8 streams at 1K next to a PACED_PROMPT
      # (131072) prompt, per decode_slowdown in PACED (default 0,1.5), PACED_FLAGS added
      timeout ${T_PACED:-300} /tmp/cb/bin/conclave bench long --backend cuda --skip-tables \
        --busy-prompt ${PACED_PROMPT:-131072} --paced ${PACED:-0,1.5} ${PACED_FLAGS:-} 2>&1 |
        tee "$OUT/bench_paced.log" | sed -n '/slowdown  quiet/,$p' ;;
    ncuprefill)  # ncu --set full (stall reasons printed) of one wgmma prefill-attention launch:
      # layer NCU_SKIP - 48 of a 16K prompt's second 8K chunk (BENCH_FLAGS: e.g. --kv-cache-dtype fp8)
      NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      timeout ${T_PROF:-240} "$NCU" --set full --print-details all -k regex:prefill_attention_wgmma \
        --launch-skip "${NCU_SKIP:-60}" -c 1 /tmp/cb/bin/conclave bench long --backend cuda \
        --prompt-lens 16384 --decode-contexts 1024 --streams 0 ${BENCH_FLAGS:-} \
        >"$OUT/ncu_prefill.txt" 2>&1
      grep -E "^  [a-z_].*\(|Duration|Elapsed Cycles|SM Active|Registers Per|Issue Slots Busy|Eligible|Stall|stall|Pipe|Occupancy|L2 Hit|L1/TEX Cache|Shared" \
        "$OUT/ncu_prefill.txt" | grep -v "^ *-" | head -${NCU_LINES:-90} ;;
    profdecode)
      NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
      CONCLAVE_BENCH_PROFILE=decode_ctx:131072 timeout ${T_PROF:-200} "$NCU" --profile-from-start off \
        --clock-control none --cache-control none \
        --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed --csv \
        --log-file /tmp/ncu_dec.csv /tmp/cb/bin/conclave bench long --backend cuda --prompt-lens 1024 \
        --decode-contexts 1024,131072 --streams 0 --kv-cache-dtype fp8 --kv-cache-mib 16384 \
        >"$OUT/bench_profdecode.log" 2>&1
      python3 scripts/device/kernel_summary.py /tmp/ncu_dec.csv decode128k_fp8 |
        tee "$OUT/profile_decode128k_fp8.txt" | head -20 ;;
  esac
done
echo "done after $((SECONDS - t0)) s"
