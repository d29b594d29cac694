// cuBLAS GEMMs of the forward pass: y = x W^T with row-major x [m, k], W [n, k] (the HF
// layout) and fp32 y [m, n]. fp32 inputs use strict fp32 (no TF32): the exactness mode;
// bf16 inputs accumulate in fp32.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

class blas {
 public:
  blas();
  ~blas();
  blas(const blas&) = delete;
  blas& operator=(const blas&) = delete;

  void set_stream(stream_t s);
  /// cuBLAS scratch owned by the caller (needed for CUDA graph capture: no allocation then).
  void set_workspace(void* p, size_t bytes);
  /// y[m, n] = x[m, k] · w[n, k]^T; x, w of `t`; y fp32 with row stride n.
  void linear(const void* x, const void* w, elem t, float* y, size_t m, size_t n, size_t k);
  /// Same with `t` output (for benchmarks of bf16 GEMM peak): y of `t`.
  void linear_out(const void* x, const void* w, elem t, void* y, elem yt, size_t m, size_t n,
                  size_t k);

 private:
  void* handle_ = nullptr;
};

}  // namespace conclave::gpu::cuda
