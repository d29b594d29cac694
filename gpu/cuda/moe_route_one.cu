// A one-token MoE step's router projection, top-k and permutation in one launch
// (moe_permute.h: moe_router_route_permute_one).
#include <stdexcept>

#include "gpu/cuda/attention_split.cuh"
#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/gemv_formats.cuh"
#include "gpu/cuda/gemv_round.cuh"
#include "gpu/cuda/gemv_rows.cuh"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/moe_route.cuh"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;  // router rows per block, one a warp
constexpr int kU = 8;      // 16-byte loads a lane keeps in flight

// Block x: router rows 8x .. 8x + 7. A warp's row is summed as the one-row GEMV
// (gemv_decode.cu) sums it: each lane over its loads in ascending order, then the warp,
// so the logits are that kernel's bit for bit. The router's weights load before the wait.
// The last block to finish (a counter, reset by it) routes the token with one warp.
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    router_route_one_kernel(const T* x, dev::plain<T> f, int experts, int k, bool normalize,
                            float* logits, int32_t* ids, float* weights, int32_t* offsets,
                            int32_t* row_token, int32_t* slot_row, int32_t* active,
                            unsigned int* counter) {
  using F = dev::plain<T>;
  constexpr size_t kStep = static_cast<size_t>(kU) * 32 * F::kIn;
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int j = static_cast<int>(blockIdx.x) * kWarps + warp;
  const bool live = j < experts;
  const size_t h = f.k, i_first = static_cast<size_t>(lane) * F::kIn;
  typename F::row wr[1];
  typename F::load_t raw[kU][1];
  if (live) {
    wr[0] = f.at(static_cast<size_t>(j));
    load_round<F, 1, kU>(f, wr, i_first, h, raw);
  }
  dev::pdl_wait();
  dev::pdl_trigger();
  if (live) {
    float acc[1] = {0.0f};
#pragma unroll 1
    for (size_t i0 = i_first; i0 < h; i0 += kStep) {
      if (i0 != i_first) load_round<F, 1, kU>(f, wr, i0, h, raw);
      dot_round<F, T, 1, kU>(f, raw, x, i0, h, acc);
    }
    acc[0] = dev::warp_sum(acc[0]);
    if (lane == 0) logits[j] = acc[0];
  }
  if (!dev::last_to_arrive(counter, static_cast<int>(gridDim.x))) return;
  if (warp != 0) return;
  dev::route_one_token(logits, experts, k, normalize, ids, weights, offsets, row_token, slot_row,
                       active);
}

}  // namespace

bool router_route_one_ok(elem t, size_t experts, size_t k, size_t hidden, const void* x,
                         const void* w) {
  const size_t per = 16 / elem_size(t);
  return (t == elem::bf16 || t == elem::f32) && experts > 0 && experts <= kRoutePermuteMaxExperts &&
         k > 0 && k <= experts && k <= 32 && hidden > 0 && hidden % per == 0 && dev::aligned16(x) &&
         dev::aligned16(w);
}

void moe_router_route_permute_one(const void* x, const void* router, elem t, size_t hidden,
                                  size_t experts, size_t k, bool normalize, float* logits,
                                  int32_t* ids, float* weights, int32_t* offsets,
                                  int32_t* row_token, int32_t* slot_row, int32_t* active,
                                  unsigned int* counter, stream_t s) {
  if (!router_route_one_ok(t, experts, k, hidden, x, router))
    throw std::invalid_argument(
        "moe_router_route_permute_one: bf16 / f32 rows of 16-byte loads, experts in [1, 512], "
        "k in [1, min(32, experts)]");
  const dim3 grid(static_cast<unsigned>((experts + kWarps - 1) / kWarps));
  CONCLAVE_DISPATCH_ELEM(
      t, T,
      launch_pdl(router_route_one_kernel<T>, grid, dim3(kWarps * 32), 0, s,
                 static_cast<const T*>(x), dev::plain<T>{static_cast<const T*>(router), hidden},
                 static_cast<int>(experts), static_cast<int>(k), normalize, logits, ids, weights,
                 offsets, row_token, slot_row, active, counter));
}

}  // namespace conclave::gpu::cuda
