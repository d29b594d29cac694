// GEMV kernels for matrices of one row (batch-1 decode), of plain or quantized (fp8, awq)
// weights (gpu/cuda/gemv_formats.cuh): one weight row (or two) per warp,
// every lane issuing all of a round's 16-byte weight loads before using any, and enough
// warps that a matrix is in flight in one or two rounds. grouped_gemv sends its one-row
// launches here. Two fused forms serve a batch-1 MoE layer: gate/up with SwiGLU in the
// epilogue, and down with the router-weighted combine.
#pragma once

#include "gpu/cuda/moe_gemv.h"

namespace conclave::gpu::cuda {

/// Whether the row kernels take `a`: at most one row per matrix (max_rows with offsets,
/// rows without), 16-byte aligned x and w, k a multiple of one 16-byte load of weights
/// (8 bf16 or 4 fp32, 16 fp8, 32 awq), and for quantized weights bf16 activations and
/// scale groups of a power of two that hold whole loads.
bool row_gemv_ok(const gemv_args& a);

/// grouped_gemv (or quant_grouped_gemv) for a launch that row_gemv_ok accepts (the same
/// result up to the order of the fp32 sums).
void row_gemv(const gemv_args& a, stream_t s);

/// The experts' gate/up with SwiGLU: `a` as for grouped_gemv with n = 2 m (each expert's m
/// gate rows, then its m up rows), a.y unused; writes act[r, j] = silu(gate[r, j]) * up[r,
/// j] as `a.t` ([rows, m], what swiglu writes from the fp32 gate/up). Needs row_gemv_ok(a).
void row_gemv_swiglu(const gemv_args& a, void* act, stream_t s);

/// The experts' down projection and the weighted combine in one launch.
struct down_combine_args {
  const void* act = nullptr;  ///< [pairs, m] of `t`: row slot_row[p] is pair p's input
  const void* w = nullptr;    ///< [experts, n, m] of `t`, or quantized as [experts * n, m]
  elem t = elem::bf16;
  quant_layout q;  ///< w's quantization (gemv_args); its scales and awq zeros
  const void* scales = nullptr;
  const void* zeros = nullptr;
  const int32_t* ids = nullptr;       ///< [tokens, k]: the expert of pair p = t k + j
  const int32_t* slot_row = nullptr;  ///< [tokens, k]: pair p's row of act
  const float* weights = nullptr;     ///< [tokens, k] router weights
  size_t tokens = 0, k = 0, n = 0, m = 0;
  float* out = nullptr;        ///< [tokens, n] fp32
  bool quant_row_mma = false;  ///< gemv_args's: fp8 / awq weights on tensor cores
  /// ids was written two launches before this one or earlier (not by the kernel just
  /// before): the tensor-core kernel then reads it, and issues its first weight loads,
  /// before waiting for that kernel (pdl.cuh).
  bool ids_settled = false;
};
/// out[t, i] = sum over j < k, in pick order, of weights[t k + j] * (w[ids[t k + j]][i, :] .
/// act[slot_row[t k + j], :]), the sum moe_combine forms from down's rows. Reads each
/// pair's expert rows once per token: for steps of a token or two.
void down_combine(const down_combine_args& a, stream_t s);
bool down_combine_ok(const down_combine_args& a);

}  // namespace conclave::gpu::cuda
