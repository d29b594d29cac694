// Shared by the device sampler's kernels (sampling.cu: penalties, temperature, masses,
// the draw; sampling_cut.cu: the top-k/top-p cut): launch shapes, the order-preserving
// float keys, masses, the cut test, block scans. CUDA only; internal to gpu/cuda/.
#pragma once

#include <cub/cub.cuh>

#include <climits>
#include <cstdint>

#include "gpu/cuda/sampling.h"

namespace conclave::gpu::cuda::sampling_detail {

constexpr int kSplits = 16;         // slices per row for the max and mass passes
constexpr int kSliceThreads = 256;  // threads per slice block and per pick block
constexpr int kCutThreads = 1024;   // threads per sorted row
constexpr int kSortKeyThreads = 256;
constexpr int kSelectThreads = 1024;         // threads per top-k row without a sort
constexpr int kMaxSelectK = kSelectThreads;  // larger top-k rows are sorted
constexpr int kBinShift = 21;                // select rows' histogram: a key's top 11 bits
constexpr int kBins = 1 << (32 - kBinShift);
constexpr int kCandCap = 2048;  // entries a select row sorts in shared memory
constexpr int kBatch = 8;       // loads in flight per thread over a row
constexpr size_t kPresizedRows = 256;

/// An order-preserving unsigned key of a float (-0 and +0 equal, as `<` sees them).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f == 0.0f ? 0.0f : f);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) != 0 ? (k & 0x7fffffffu) : ~k);
}

/// exp(v - m) in double, 0 for removed (-inf) logits: engine::sampler's softmax numerator.
__device__ __forceinline__ double mass(float v, float m) {
  return v == -INFINITY ? 0.0 : exp(static_cast<double>(v) - static_cast<double>(m));
}

/// The mass the draw sees: min-p removes tokens under min_p times the top token's mass (1).
__device__ __forceinline__ double kept_mass(float v, float m, float min_p) {
  const double e = mass(v, m);
  return min_p > 0.0f && e < static_cast<double>(min_p) ? 0.0 : e;
}

/// Rows whose top-k cut is found by select_kernel (sampling.h: top-k of at most 1,024).
__device__ __forceinline__ bool is_select_row(const sample_row& r) {
  return r.temperature != 0.0f && r.top_k > 0 && r.top_k < r.n && r.top_k <= kMaxSelectK;
}

/// Adds 1 to hist[bin] for every active lane, one shared atomic per distinct bin.
__device__ __forceinline__ void warp_count(int* hist, uint32_t bin) {
  const unsigned peers = __match_any_sync(__activemask(), bin);
  if ((threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
}

/// Block-wide prefix sums of one value per thread. Each thread's range is
/// [before, through), `before` being its predecessor's `through`, so the ranges tile the
/// total exactly and a target falls in one range only.
template <int Threads>
__device__ __forceinline__ void tiled_scan(double v, double& before, double& through) {
  using scan_t = cub::BlockScan<double, Threads>;
  __shared__ typename scan_t::TempStorage tmp;
  __shared__ double incl[Threads];
  scan_t(tmp).InclusiveSum(v, through);
  incl[threadIdx.x] = through;
  __syncthreads();
  before = threadIdx.x == 0 ? 0.0 : incl[threadIdx.x - 1];
  __syncthreads();
}

struct arg_max {
  float v;
  int32_t i;
};

/// Larger value first, lower id on ties (NaN never wins).
__device__ __forceinline__ arg_max better(arg_max a, arg_max b) {
  return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

__device__ __forceinline__ arg_max warp_best(arg_max a) {
  for (int o = 16; o > 0; o /= 2) {
    const arg_max b{__shfl_down_sync(0xffffffffu, a.v, o), __shfl_down_sync(0xffffffffu, a.i, o)};
    a = better(a, b);
  }
  return a;
}

/// The slice [begin, end) of slice s of a row of n.
__device__ __forceinline__ void slice_of(int n, int s, int& begin, int& end) {
  const int chunk = (n + kSplits - 1) / kSplits;
  begin = min(n, s * chunk);
  end = min(n, begin + chunk);
}

__device__ __forceinline__ float row_max(const float* part_max, int row) {
  float m = -INFINITY;
  for (int s = 0; s < kSplits; ++s) m = fmaxf(m, part_max[row * kSplits + s]);
  return m;
}

/// Whether token i (key k) is cut by its row's top-k/top-p: everything below (cut_key,
/// cut_id) in the ascending (value, id) order is.
__device__ __forceinline__ bool is_cut(uint32_t k, int i, uint32_t cut_key, int cut_id) {
  return k < cut_key || (k == cut_key && i < cut_id);
}

/// What the mass and draw passes read of one row: its logits, max, min-p and cut.
struct draw_row {
  const float* x;
  float m;
  float min_p;
  uint32_t cut_key;
  int cut_id;

  /// The probability mass the draw sees for token i (logit v): 0 when cut or under min-p.
  __device__ __forceinline__ double mass(float v, int i) const {
    return is_cut(order_key(v), i, cut_key, cut_id) ? 0.0 : kept_mass(v, m, min_p);
  }
  __device__ __forceinline__ double mass(int i) const { return mass(x[i], i); }
};

/// Device buffers one radix sort of kSortRows rows uses.
struct sort_buffers {
  unsigned long long* keys[2];
  int32_t* vals[2];
  void* temp;
  size_t temp_bytes;
};

/// CUB's scratch bytes for sorting `rows` rows of `vocab`.
size_t sort_temp_bytes(size_t rows, size_t vocab);

/// Top-k/top-p cuts of rows[sort_rows[i]] (i < count) by sorting each row whole,
/// device_sampler::kSortRows rows per sort.
void cut_by_sort(const float* logits, size_t vocab, const sample_row* rows,
                 const int32_t* sort_rows, size_t count, const sort_buffers& b, uint32_t* cut_key,
                 int32_t* cut_id, stream_t s);

/// Top-k (at most kMaxSelectK) cuts of rows[select_rows[i]] from the slices' histograms.
void cut_by_select(const float* logits, size_t vocab, const sample_row* rows,
                   const int32_t* select_rows, size_t count, const int* bins, uint32_t* cut_key,
                   int32_t* cut_id, stream_t s);

}  // namespace conclave::gpu::cuda::sampling_detail
