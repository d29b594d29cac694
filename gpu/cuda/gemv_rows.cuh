// Host-side choices of the GEMV kernels (moe_gemv.cu, quant_gemv.cu, gemv_decode.cu): the
// register tile (how many x rows one pass holds, picked from the most rows one matrix can
// have in a launch) and whether a pointer allows 16-byte loads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace conclave::gpu::cuda::dev {

/// Whether `p` is 16-byte aligned (the kernels' uint4 loads).
inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

/// Calls go(std::integral_constant<int, C>{}) with C = 1, 2, 4 or Chunk, the smallest that
/// holds `most` rows (Chunk beyond 4: the kernel loops over chunks).
template <int Chunk, class Go>
void by_row_count(size_t most, Go&& go) {
  if (most <= 1) {
    go(std::integral_constant<int, 1>{});
  } else if (most <= 2) {
    go(std::integral_constant<int, 2>{});
  } else if (most <= 4) {
    go(std::integral_constant<int, 4>{});
  } else {
    go(std::integral_constant<int, Chunk>{});
  }
}

}  // namespace conclave::gpu::cuda::dev
