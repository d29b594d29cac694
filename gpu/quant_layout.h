// quant_layout: how a quantized linear weight [n, k] is laid out in device memory, shared
// by the CUDA loader (gpu/cuda/cuda_weights.cpp) and the memory planner so that a plan
// counts exactly the bytes a load allocates. Host-only arithmetic, no CUDA.
//
// Both formats are row-major over outputs with per-(row, input group) scales, so the
// fused q/k/v and gate/up matrices are plain row concatenations:
// - fp8: data uint8 (e4m3) [n, k]; scales fp32 [n, ceil(k / g)] (a checkpoint's
//   [128, 128] block scale repeated over the block's rows); g = block_in.
// - awq: data uint32 [n, k / 8], nibble j of word c = input 8 c + j (natural order, a
//   load-time repack of AWQ's [k, n / 8]); scales fp16 [n, k / g]; zeros uint8 [n, k / g].
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/quant.h"

namespace conclave::gpu {

struct quant_layout {
  model::quant_method method = model::quant_method::none;
  int64_t group = 0;  ///< input channels per scale (fp8: block_in; awq: group_size)

  int64_t groups(int64_t k) const { return group > 0 ? (k + group - 1) / group : 0; }
  size_t data_bytes(int64_t n, int64_t k) const {
    switch (method) {
      case model::quant_method::fp8:
        return static_cast<size_t>(n * k);
      case model::quant_method::awq:
        return static_cast<size_t>(n * k / 2);
      case model::quant_method::none:
        break;
    }
    return 0;
  }
  size_t scale_bytes(int64_t n, int64_t k) const {
    switch (method) {
      case model::quant_method::fp8:
        return static_cast<size_t>(n * groups(k)) * 4;
      case model::quant_method::awq:
        return static_cast<size_t>(n * groups(k)) * 2;
      case model::quant_method::none:
        break;
    }
    return 0;
  }
  size_t zero_bytes(int64_t n, int64_t k) const {
    return method == model::quant_method::awq ? static_cast<size_t>(n * groups(k)) : 0;
  }
  /// Every device byte of one quantized [n, k] matrix.
  size_t bytes(int64_t n, int64_t k) const {
    return data_bytes(n, k) + scale_bytes(n, k) + zero_bytes(n, k);
  }
};

/// The device layout of `q`'s quantized weights (method none: plain).
inline quant_layout device_quant_layout(const model::quant_config& q) {
  quant_layout l;
  l.method = q.method;
  l.group = q.method == model::quant_method::fp8   ? q.block_in
            : q.method == model::quant_method::awq ? q.group_size
                                                   : 0;
  return l;
}

}  // namespace conclave::gpu
