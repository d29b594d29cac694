#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/moe_permute.h"
#include "gpu/cuda/moe_route.cuh"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kThreads = 512;  // pairs per tile
constexpr int kWarps = kThreads / 32;
constexpr int kMaxExperts = 1024;

// Warp 0 only: a[0, n) becomes its exclusive prefix sum; returns the total to every lane.
__device__ int warp_exclusive_scan(int* a, int n) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int per = (n + 31) / 32, lo = min(n, lane * per), hi = min(n, lo + per);
  int s = 0;
  for (int i = lo; i < hi; ++i) s += a[i];
  int incl = s;
  for (int o = 1; o < 32; o <<= 1) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  int run = incl - s;
  for (int i = lo; i < hi; ++i) {
    const int v = a[i];
    a[i] = run;
    run += v;
  }
  return __shfl_sync(0xffffffffu, incl, 31);
}

// One block. One token (route + permute): warp 0 routes it and places its k pairs. Else:
// pass 0 (route + permute, `logits` set): warp w routes tokens w, w + kWarps, ...
// into route_ids and weights (the router kernel's code, its softmax scratch in wc), which
// the barrier makes visible to the passes that read them as ids. Pass 1: per-expert counts (shared
// atomics), offsets by a scan, the list of experts with rows. Pass 2, per tile of 512 pairs: a
// pair's place is its expert's next free row + the rows of its expert in earlier warps of the tile
// + its rank among the lanes of its warp with the same expert (__match_any_sync): ascending pair
// order within each expert, as the CPU groups them.
__global__ void __launch_bounds__(kThreads)
    permute_kernel(const int32_t* ids, int n, int k, int experts, int32_t* offsets,
                   int32_t* row_token, int32_t* slot_row, int32_t* active, const float* logits,
                   bool normalize, int32_t* route_ids, float* weights) {
  __shared__ int count[kMaxExperts], next[kMaxExperts], flag[kMaxExperts];
  __shared__ __align__(16)
      uint16_t wc[kWarps][kMaxExperts];  // rows of expert e in warp w of the tile
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  dev::pdl_wait();
  dev::pdl_trigger();
  if (logits != nullptr && n == k) {
    // One token (a batch-1 decode step): warp 0 alone, no block barrier. Its k picks are
    // distinct, so each has one row, placed at its rank among them (ascending expert).
    if (warp != 0) return;
    dev::route_one_token(logits, experts, k, normalize, route_ids, weights, offsets, row_token,
                         slot_row, active);
    return;
  }
  if (logits != nullptr) {
    float* p = reinterpret_cast<float*>(&wc[0][0]) + static_cast<size_t>(warp) * experts;
    for (int t = warp; t < n / k; t += kWarps)
      dev::route_token(logits, static_cast<size_t>(t), experts, k, normalize, p, route_ids,
                       weights);
    __syncthreads();
  }
  for (int e = tid; e < experts; e += kThreads) count[e] = 0;
  __syncthreads();
  for (int p = tid; p < n; p += kThreads) atomicAdd(&count[ids[p]], 1);
  __syncthreads();
  for (int e = tid; e < experts; e += kThreads) {
    next[e] = count[e];
    flag[e] = count[e] > 0 ? 1 : 0;
  }
  __syncthreads();
  if (warp == 0) {
    const int total = warp_exclusive_scan(next, experts);
    if (lane == 0) offsets[experts] = total;
  } else if (warp == 1 && active != nullptr) {
    warp_exclusive_scan(flag, experts);
  }
  __syncthreads();
  for (int e = tid; e < experts; e += kThreads) {
    offsets[e] = next[e];
    if (active != nullptr) {
      if (count[e] > 0) active[flag[e]] = e;
      // Slots past the last expert with rows: -1 (the number of such experts is
      // flag[experts - 1] + (count[experts - 1] > 0)).
      const int used = flag[experts - 1] + (count[experts - 1] > 0 ? 1 : 0);
      if (e >= used) active[e] = -1;
    }
  }
  for (int base = 0; base < n; base += kThreads) {
    for (int w = 0; w < kWarps; ++w)
      for (int x = tid; x < experts; x += kThreads) wc[w][x] = 0;
    __syncthreads();
    const int p = base + tid;
    const int e = p < n ? ids[p] : -1;
    const unsigned same = __match_any_sync(0xffffffffu, e);
    const int rank = __popc(same & ((1u << lane) - 1u));
    if (e >= 0 && rank == 0) wc[warp][e] = static_cast<uint16_t>(__popc(same));
    __syncthreads();
    // Exclusive scan over the warps, per expert; the tile's total advances next[e].
    for (int x = tid; x < experts; x += kThreads) {
      int run = 0;
      for (int w = 0; w < kWarps; ++w) {
        const int c = wc[w][x];
        wc[w][x] = static_cast<uint16_t>(run);
        run += c;
      }
      flag[x] = run;  // count[] of this tile (flag is free after the active list)
    }
    __syncthreads();
    if (e >= 0) {
      const int row = next[e] + wc[warp][e] + rank;
      row_token[row] = p / k;
      slot_row[p] = row;
    }
    __syncthreads();
    for (int x = tid; x < experts; x += kThreads) next[x] += flag[x];
    // The next tile's first barrier orders these updates before their use.
  }
}

template <class T>
__global__ void gather_kernel(const T* src, const int32_t* index, size_t dim, T* dst) {
  const size_t i = blockIdx.x;
  const T* s = src + static_cast<size_t>(index[i]) * dim;
  T* d = dst + i * dim;
  for (size_t j = threadIdx.x; j < dim; j += blockDim.x) d[j] = s[j];
}

}  // namespace

void moe_permute(const int32_t* ids, size_t tokens, size_t k, size_t experts, int32_t* offsets,
                 int32_t* row_token, int32_t* slot_row, int32_t* active, stream_t s) {
  if (experts == 0 || experts > kMaxExperts)
    throw std::invalid_argument("moe_permute: experts must be in [1, 1024]");
  if (tokens * k > (1u << 30)) throw std::invalid_argument("moe_permute: too many pairs");
  launch_pdl(permute_kernel, dim3(1), dim3(kThreads), 0, s, ids, static_cast<int>(tokens * k),
             static_cast<int>(k), static_cast<int>(experts), offsets, row_token, slot_row, active,
             static_cast<const float*>(nullptr), false, static_cast<int32_t*>(nullptr),
             static_cast<float*>(nullptr));
}

void moe_route_permute(const float* logits, size_t tokens, size_t experts, size_t k, bool normalize,
                       int32_t* ids, float* weights, int32_t* offsets, int32_t* row_token,
                       int32_t* slot_row, int32_t* active, stream_t s) {
  if (experts == 0 || experts > kRoutePermuteMaxExperts)
    throw std::invalid_argument("moe_route_permute: experts must be in [1, 512]");
  if (k == 0 || k > static_cast<size_t>(dev::kMaxRouteK) || k > experts)
    throw std::invalid_argument("moe_route_permute: k must be in [1, min(32, experts)]");
  if (tokens * k > (1u << 30)) throw std::invalid_argument("moe_route_permute: too many pairs");
  // The routing scratch (kWarps rows of `experts` floats) lives in wc.
  static_assert(kRoutePermuteMaxExperts <= 16 * 32);  // route_one_token's registers
  static_assert(kRoutePermuteMaxExperts * kWarps * sizeof(float) <=
                kWarps * kMaxExperts * sizeof(uint16_t));
  launch_pdl(permute_kernel, dim3(1), dim3(kThreads), 0, s, ids, static_cast<int>(tokens * k),
             static_cast<int>(k), static_cast<int>(experts), offsets, row_token, slot_row, active,
             logits, normalize, ids, weights);
}

void gather_rows(const void* src, elem t, const int32_t* index, size_t n, size_t dim, void* dst,
                 stream_t s) {
  if (n == 0) return;
  CONCLAVE_DISPATCH_ELEM(t, T,
                         gather_kernel<T><<<static_cast<unsigned>(n), 256, 0, s>>>(
                             static_cast<const T*>(src), index, dim, static_cast<T*>(dst)));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
