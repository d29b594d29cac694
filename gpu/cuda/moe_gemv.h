// Grouped expert GEMV for small batches (decode): every routed expert's rows in one
// launch, each weight row read once per expert (16-byte loads) and applied to all of that
// expert's rows; no host round trip for the per-expert counts (the offsets stay on the
// device). The same kernel with one matrix is the dense GEMV of steps of a few rows.
#pragma once

#include "gpu/cuda/common.h"
#include "gpu/quant_layout.h"

namespace conclave::gpu::cuda {

/// Which kernels quantized (fp8, awq) weights may take, from the backend's kernel_switches;
/// plain weights ignore them.
struct quant_paths {
  /// The one-row kernels (grouped_gemv's choice; CONCLAVE_QUANT_ROW_GEMV) and the
  /// tensor-core GEMM (grouped_mma_chosen; CONCLAVE_QUANT_MMA).
  bool rows = false, mma = false;
  /// The one-row kernels on tensor cores (quant_row_mma.h; CONCLAVE_QUANT_ROW_MMA).
  bool row_mma = false;
  /// CONCLAVE_QUANT_MMA_MIN_ROWS: 0, or the fewest rows (dense) or tokens (experts) at
  /// which quantized weights take the tensor-core GEMM.
  size_t mma_min = 0;
};

struct gemv_args {
  const void* x = nullptr;          ///< [*, k] of `t`
  const int32_t* x_rows = nullptr;  ///< row r reads x[x_rows[r]] (null: x[r])
  const void* w = nullptr;          ///< [experts, n, k] of `t`
  elem t = elem::f32;
  /// [experts + 1]: expert e owns rows [offsets[e], offsets[e+1]). Null: one matrix, rows
  /// [0, rows).
  const int32_t* offsets = nullptr;
  /// [grid_experts]: the expert of each block row, -1 for none (moe_permute's list of
  /// experts with rows). Null: block row e is expert e.
  const int32_t* active = nullptr;
  size_t experts = 1;
  size_t grid_experts = 1;  ///< block rows: experts, or at most rows x k with `active`
  size_t rows = 0;          ///< without offsets
  /// With offsets: the rows of one expert a kernel takes at once (register tile, or the
  /// tensor-core GEMM's pass over the weights): usually the most one expert can have (the
  /// step's tokens). Below that the grouped GEMV and GEMM stay correct (an expert with more
  /// rows takes more passes); the one-row GEMV needs 1 to be the true most (row_gemv_ok).
  size_t max_rows = 8;
  float* y = nullptr;  ///< [rows, n] fp32
  size_t n = 0, k = 0;
  /// Quantized weights (w8a16 / w4a16, gpu/quant_layout.h): `w` is then the data of the
  /// stacked [experts * n, k] matrix, `scales` and `zeros` its per-(row, group) scales
  /// and awq zeros; activations stay `t`, accumulation fp32.
  quant_layout q;
  const void* scales = nullptr;
  const void* zeros = nullptr;
  quant_paths qp;  ///< the kernels the quantized weights may take
};

/// y[r, :] = x[r, :] · w[e]^T for every row r of every expert e.
void grouped_gemv(const gemv_args& a, stream_t s);

/// grouped_gemv on tensor cores (moe_mma.cu, sm_80+ mma.sync): each block streams 64 of an
/// expert's weight rows through shared memory once per 64 of its rows. For bf16 weights
/// (grouped_mma_supported); the expert's rows of a decode batch of 16+ tokens.
void grouped_mma(const gemv_args& a, stream_t s);
bool grouped_mma_supported(const gemv_args& a);
/// grouped_mma of gate/up ([experts, 2m, k], gate rows then up rows) with SwiGLU in the
/// epilogue: act[r, j] = silu(gate) * up as bf16 ([rows, m]); a.y is not written. Exactly
/// grouped_mma then swiglu. For bf16 with m % 32 == 0 (grouped_mma_swiglu_ok).
void grouped_mma_swiglu(const gemv_args& a, void* act, stream_t s);
bool grouped_mma_swiglu_ok(const gemv_args& a);
/// Steps of fewer tokens keep the grouped GEMV: it reads the weights as fast.
constexpr size_t kExpertMmaMinTokens = 16;
/// kExpertMmaMinTokens, or a.qp.mma_min for quantized weights where it is set.
inline size_t expert_mma_min_tokens(const gemv_args& a) {
  return a.q.method != model::quant_method::none && a.qp.mma_min > 0 ? a.qp.mma_min
                                                                     : kExpertMmaMinTokens;
}
/// The grouped launch for a step of `tokens` tokens: on tensor cores from 16 tokens when
/// `tensor_cores` and grouped_mma_supported, else grouped_gemv (moe_mma.cu). Returns the
/// kernel it chose, in words.
const char* grouped_matmul(const gemv_args& a, size_t tokens, bool tensor_cores, stream_t s);

/// grouped_mma_supported(a), and for quantized weights a.qp.mma: what the backend sends
/// to the tensor-core GEMM (grouped_mma_supported says only what the kernel can take).
bool grouped_mma_chosen(const gemv_args& a);

/// grouped_gemv for quantized weights (a.q.method fp8 or awq; quant_gemv.cu).
void quant_grouped_gemv(const gemv_args& a, stream_t s);

/// The arguments of a dense y[m, n] = x[m, k] · w[n, k]^T (one matrix, no offsets); the
/// caller sets the weights.
gemv_args dense_gemv_args(const void* x, elem t, size_t m, float* y, size_t n, size_t k);

/// Dense y[m, n] = x[m, k] · w[n, k]^T (fp32 y), for m of a few rows.
void dense_gemv(const void* x, const void* w, elem t, size_t m, float* y, size_t n, size_t k,
                stream_t s);

}  // namespace conclave::gpu::cuda
