// Shared vocabulary of the CUDA launchers: element types and the stream handle, without
// including any CUDA header (plain C++ code includes the launcher headers).
#pragma once

#include <cstddef>
#include <cstdint>

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace conclave::gpu::cuda {

using stream_t = CUstream_st*;

/// Storage type of weights, KV cache and GEMM inputs: fp32 (exactness mode) or bf16.
enum class elem : uint8_t { f32, bf16 };

constexpr size_t elem_size(elem t) {
  return t == elem::f32 ? 4 : 2;
}

}  // namespace conclave::gpu::cuda
