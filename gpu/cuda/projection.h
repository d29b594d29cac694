// The backend's projections, y[m, n] = x[m, k] W[n, k]^T into fp32: a GEMV (one pass over
// the weights) for steps of a few rows on the fast paths, cuBLAS for larger ones. Quantized
// weights go through the GEMV that dequantizes in registers for a few rows, the tensor-core
// GEMM that widens them in shared memory up to kQuantMmaRows, else are dequantized into a
// scratch buffer for cuBLAS. Plain C++ header.
#pragma once

#include "gpu/cuda/cuda_weights.h"

namespace conclave::gpu::cuda {

class blas;

struct projection {
  /// Steps of at most this many rows use the GEMV on the fast paths; larger ones and
  /// the LM head use cuBLAS.
  static constexpr size_t kGemvRows = 8;
  /// Quantized weights: steps of up to this many rows run the tensor-core GEMM that widens
  /// the stored weights in shared memory (grouped_mma: one pass over the weights per 64
  /// rows), instead of dequantizing the matrix into a scratch for cuBLAS.
  static constexpr size_t kQuantMmaRows = 256;

  blas* b = nullptr;
  const device_buffer* dq = nullptr;  ///< dequantization scratch (quantized weights only)
  elem t = elem::bf16;
  stream_t s = nullptr;
  bool fast = false;
  quant_paths qp;  ///< gemv_args's, for quantized weights

  /// w: [n, k] of `t`.
  void operator()(const void* x, const void* w, float* y, size_t m, size_t n, size_t k) const;
  /// w: plain or quantized.
  void operator()(const void* x, const qmatrix& w, float* y, size_t m, size_t n, size_t k) const;
};

}  // namespace conclave::gpu::cuda
