// A lane's share of one round of the one-row GEMV kernels (gemv_decode.cu, and the
// one-token router in moe_route_one.cu, which must sum exactly as they do). Included by
// .cu files only.
#pragma once

#include <cstddef>

namespace conclave::gpu::cuda {

// A lane's share of one round: U steps of 32 lanes x F::kIn inputs for each of R weight
// rows, starting at i0. load_round issues all R x U weight loads; dot_round then adds
// w[jj] . x over the round's k range into acc[jj] (lane-partial; the caller reduces over
// the warp).
template <class F, int R, int U>
__device__ __forceinline__ void load_round(const F& f, const typename F::row (&wr)[R], size_t i0,
                                           size_t k, typename F::load_t (&raw)[U][R]) {
  static_assert(R * U <= F::kMaxLoads);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const size_t i = i0 + static_cast<size_t>(u) * 32 * F::kIn;
#pragma unroll
    for (int jj = 0; jj < R; ++jj)
      if (i < k) raw[u][jj] = f.load(wr[jj], i);
  }
}

template <class F, class T, int R, int U>
__device__ __forceinline__ void dot_round(const F& f, const typename F::load_t (&raw)[U][R],
                                          const T* xr, size_t i0, size_t k, float (&acc)[R]) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const size_t i = i0 + static_cast<size_t>(u) * 32 * F::kIn;
    if (i < k) {
#pragma unroll
      for (int jj = 0; jj < R; ++jj) acc[jj] = f.dot(raw[u][jj], xr + i, acc[jj]);
    }
  }
}

}  // namespace conclave::gpu::cuda
