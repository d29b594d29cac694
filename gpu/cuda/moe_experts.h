// The routed experts of one MoE layer, after moe_permute has grouped the (token, pick)
// pairs into one run of rows per expert: gate/up, SwiGLU, down. The backend's local
// experts and an expert-parallel rank's slots both run them through here.
#pragma once

#include "gpu/cuda/cuda_weights.h"

namespace conclave::gpu::cuda {

class blas;

struct expert_rows {
  const qmatrix* gate_up = nullptr;  ///< [experts, 2 m, h]
  const qmatrix* down = nullptr;     ///< [experts, h, m]
  elem t = elem::bf16;
  const void* x = nullptr;  ///< [*, h] of `t`: the token rows
  /// moe_permute's outputs: the x row of each permuted row, the experts' runs of rows,
  /// the experts with rows.
  const int32_t* row_token = nullptr;
  const int32_t* offsets = nullptr;
  const int32_t* active = nullptr;
  size_t experts = 0;
  size_t rows = 0;      ///< permuted rows (pairs)
  size_t max_rows = 0;  ///< the most rows one expert can have (the step's tokens)
  size_t h = 0, m = 0;
  float* gu = nullptr;  ///< [rows, 2 m] fp32 scratch
  void* act = nullptr;  ///< [rows, m] of `t`: SwiGLU's output
  float* dn = nullptr;  ///< [rows, h] fp32: down's output, permuted order
  quant_paths qp;       ///< gemv_args's, for quantized experts
};

/// On the device with no host round trip: one grouped launch per projection (the grouped
/// GEMV, or the tensor-core GEMM from 16 tokens when `tensor_cores`, then with SwiGLU in
/// gate/up's epilogue when `fuse`), so a CUDA graph can hold it. dn gets the result.
/// Returns the kernels that ran, in words.
const char* grouped_experts(const expert_rows& a, size_t tokens, bool tensor_cores, bool fuse,
                            stream_t s);

/// Where gemm_experts may run its light experts (kLightExpertRows rows or fewer) through
/// the grouped tensor-core GEMM instead of one cuBLAS GEMM each: scratch for their list,
/// pinned on the host and on the device ([experts] each).
struct light_experts {
  int32_t* host = nullptr;
  int32_t* device = nullptr;
};
/// A light expert's rows take at most two passes of the grouped GEMM over its weights:
/// there one launch for all such experts beats a cuBLAS GEMM each (launch-bound), while
/// an expert with many rows is faster on cuBLAS (bench moe, docs/PERFORMANCE.md).
constexpr size_t kLightExpertRows = 128;

/// On cuBLAS, one GEMM per expert with rows: the experts' counts are copied to host_off
/// (pinned, experts + 1) and the stream synchronised once. xs: [rows, h] of `t` scratch
/// (the gathered rows); dq: the dequantization scratch for quantized weights. With `light`
/// (and bf16 weights the grouped GEMM takes), the light experts go through one grouped
/// launch per projection instead (same results as gemm per expert up to fp32 summation
/// order). Returns the kernels that ran, in words.
const char* gemm_experts(const expert_rows& a, blas& b, int32_t* host_off, void* xs,
                         const device_buffer& dq, stream_t s, const light_experts* light = nullptr);

/// A step of one token (batch-1 decode) in two launches: gate/up with SwiGLU, then down
/// with the router-weighted combine into out ([h] fp32), moe_combine's result. ids, slot_row
/// and weights: the token's k picks (router_topk, moe_permute). Does nothing and returns
/// false where the fused kernels do not apply (quantized weights, unaligned shapes).
bool fused_token_experts(const expert_rows& a, const int32_t* ids, const int32_t* slot_row,
                         const float* weights, size_t k, float* out, stream_t s);

}  // namespace conclave::gpu::cuda
