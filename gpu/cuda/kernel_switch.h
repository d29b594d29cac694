// Kernel switches read from the environment (A/B runs), for host code and .cu files alike
// (no other includes). Defined in backend_setup.cpp.
#pragma once

#include <cstddef>

namespace conclave::gpu::cuda {

/// `fallback` when the variable is unset; on unless it is "0" otherwise.
bool kernel_switch_on(const char* env, bool fallback = true);

/// `fallback` when unset; a positive integer otherwise, else std::runtime_error naming the
/// variable.
size_t kernel_size_setting(const char* env, size_t fallback);

/// The CUDA backend's kernel choices, read from the environment once per backend (for A/B
/// runs; docs/cuda.md). Each default is the measured best (docs/PERFORMANCE.md).
struct kernel_switches {
  bool decode_mma = true;  ///< CONCLAVE_DECODE_MMA=0: decode attention on CUDA cores
  bool expert_mma = true;  ///< CONCLAVE_EXPERT_MMA=0: the grouped expert GEMV, not the GEMM
  bool fused_kv = true;    ///< CONCLAVE_FUSED_KV=0: the KV write as its own kernel
  /// CONCLAVE_FUSED_MOE=0: router and permute as two launches, a one-token step's SwiGLU
  /// and combine, and the tensor-core GEMM's SwiGLU as their own kernels
  bool fused_moe = true;
  /// CONCLAVE_FUSED_ROUTER=1: a one-token step's router projection inside route + permute
  /// (moe_router_route_permute_one), not its own launch. Off: exact, but the batch-1 step
  /// was not faster (H100 2026-12-07: fp8 3.42 ms on against 3.39 off; docs/PERFORMANCE.md)
  bool fused_router = false;
  /// CONCLAVE_LIGHT_EXPERTS=0: steps past grouped_max_tokens run every expert on cuBLAS,
  /// not only the heavy ones (gpu/cuda/moe_experts.h)
  bool light_experts = true;
  /// CONCLAVE_EARLY_EXPERT_WEIGHTS=0: decode steps whose grid covers every expert still map
  /// blocks to experts through the active list, so no weights load before the wait
  bool early_expert_weights = true;
  /// CONCLAVE_PREFILL_WGMMA=0: prefill attention tiles of 64 rows on mma.sync on Hopper
  /// too, not the 128-row wgmma kernel (gpu/cuda/prefill_attention_wgmma.cu)
  bool prefill_wgmma = true;
  /// CONCLAVE_PREFILL_WGMMA_SCHEDULE=1..5: the wgmma kernel's schedule, serial, overlapped,
  /// decoupled, with a loading warpgroup, or that with ping-pong
  /// (prefill_attention_args::wgmma_schedule + 1). Decoupled: 4 was 1.6 % faster with a
  /// bf16 cache and 32 % slower with fp8, 5 slower with both (H100, 2026-12-07).
  size_t prefill_wgmma_schedule = 3;
  /// CONCLAVE_PREFILL_SPLIT=0: the backend no longer splits the wgmma kernel's tiles over
  /// the context when a chunk's tiles leave most SMs idle (short chunks at long contexts).
  bool prefill_split = true;
  /// CONCLAVE_PREFILL_PACK_GQA=0: a wgmma block per query head again, not per KV head
  /// with the group's query heads as its rows (prefill_attention_args::pack_gqa). Packed,
  /// the 8 streams' step next to a 96K prompt's 16-token chunks went from 4.9x to 2.2x
  /// their quiet step, with the split (H100, 2026-12-07); long chunks run as fast.
  bool prefill_pack_gqa = true;
  /// CONCLAVE_PREFILL_TMA=1: the wgmma kernel's KV tiles by TMA from one warp, not by
  /// cp.async from every thread (prefill_attention_args::tma; bf16 cache, the mbarrier
  /// schedules). With the engine's 16-token blocks a tile is 32 boxes of 2 KiB, and the 32K
  /// prompt's attention ran at 352 TFLOP/s against 397 by cp.async (H100, 2026-12-07).
  bool prefill_tma = false;
  /// Steps of at most this many tokens run the experts through one grouped launch per
  /// projection (no host round trip; CUDA graphs up to 128); larger ones sync once for the
  /// experts' row counts. CONCLAVE_GROUPED_MAX_TOKENS moves the line.
  size_t grouped_max_tokens = 128;
  /// Steps of at most this many tokens route and permute in one launch (one warp routes
  /// each token; beyond a few tokens the router's own grid is faster: at 64 tokens 455.9 us
  /// against 444.0 for the layer on the H100). CONCLAVE_ROUTE_PERMUTE_MAX_TOKENS moves it.
  size_t route_permute_max_tokens = 16;
  /// The tensor-core grouped GEMM of a decode step takes an expert's rows in passes of up
  /// to this many (CONCLAVE_EXPERT_PASS_ROWS moves it; 16, 32 or 64 size the pass's tile).
  /// Passes of 16 rows hold the least shared memory, so four blocks a multiprocessor stream
  /// weights instead of three: on the H100 the 64-token layer took 444 us against 454-458
  /// with 32 or 64. An expert with more rows reads its weights again.
  size_t expert_pass_rows = 16;
  /// CONCLAVE_QUANT_ROW_GEMV=0: one-row launches of quantized (fp8, awq) weights take the
  /// grouped GEMV again, not the row kernels (gpu/cuda/gemv_decode.h); CONCLAVE_QUANT_MMA=0:
  /// quantized steps of 16+ rows take the quantized GEMV and cuBLAS on a dequantized
  /// scratch, not the tensor-core GEMM (moe_mma.cu). On: exact against the bf16 twins, and
  /// on the H100 the 30B fp8 step went 4.63 -> 4.26 ms at batch 1 and 56.0 -> 34.0 at 64,
  /// awq 3.72 -> 3.46 and 45.5 -> 28.1 (2026-12-07).
  bool quant_row_gemv = true;
  bool quant_mma = true;
  /// CONCLAVE_QUANT_MMA_MIN_ROWS=N (1..16): quantized dense projections and experts of
  /// steps of N or more rows take the tensor-core GEMM (weights widened to bf16 in shared
  /// memory), where unset they do from 9 rows (dense) and 16 tokens (experts). An A/B for
  /// batch 1, not yet measured: the fp8 one-row GEMV is issue-bound (about twice the
  /// instructions a weight of bf16's for half the bytes; docs/PERFORMANCE.md, twentieth
  /// session), the GEMM widens a weight in a few instructions. 0: unset.
  size_t quant_mma_min_rows = 0;
  /// CONCLAVE_QUANT_ROW_MMA=0: one-row launches of fp8 / awq weights (batch-1 decode's
  /// projections, gate/up with SwiGLU, down with the combine) sum on CUDA cores again, not
  /// on tensor cores with the weights widened to f16 in registers (gpu/cuda/quant_row_mma.h).
  /// On the H100 the 30B batch-1 step went 4.21 -> 3.56 ms (fp8) and 3.36 -> 3.26 (awq)
  /// (2026-12-07). CONCLAVE_QUANT_ROW_MMA_WIDE=1 (read by the kernels' launcher, an A/B,
  /// off): twice the loads in flight a lane; 3.53 and 3.20 ms in one run each.
  bool quant_row_mma = true;

  /// The defaults overridden by the CONCLAVE_* variables that are set; a malformed size
  /// throws std::runtime_error naming the variable.
  static kernel_switches from_env();
};

}  // namespace conclave::gpu::cuda
