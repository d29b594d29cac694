// Device sampling (see sampling.h for the plan). Float steps use the explicit _rn
// intrinsics so nvcc cannot contract them and the values equal the host's; masses are
// double like engine::sampler's softmax.
#include <cub/cub.cuh>

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu/cuda/check.h"
#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/sampling.h"

namespace conclave::gpu::cuda {
namespace {

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

// Penalties: one block per row, a thread per entry (entries are distinct tokens).
__global__ void __launch_bounds__(256)
    penalties_kernel(float* logits, size_t vocab, const sample_row* rows,
                     const sample_penalty* pen) {
  const sample_row r = rows[blockIdx.x];
  float* x = logits + static_cast<size_t>(r.logit_row) * vocab;
  for (int i = static_cast<int>(threadIdx.x); i < r.pen_count; i += static_cast<int>(blockDim.x)) {
    const sample_penalty p = pen[r.pen_begin + i];
    float s = x[p.token];
    if (p.repeated != 0)
      s = s < 0.0f ? __fmul_rn(s, r.repetition_penalty) : __fdiv_rn(s, r.repetition_penalty);
    x[p.token] = __fsub_rn(s, p.subtract);
  }
}

// Temperature (in place) and each slice's max / argmax: grid (slice, row).
__global__ void __launch_bounds__(kSliceThreads)
    temper_max_kernel(float* logits, size_t vocab, const sample_row* rows, float* part_max,
                      int32_t* part_arg, uint32_t* cut_key, int32_t* cut_id, int* bins) {
  const int s = static_cast<int>(blockIdx.x), ri = static_cast<int>(blockIdx.y);
  const sample_row r = rows[ri];
  float* x = logits + static_cast<size_t>(r.logit_row) * vocab;
  int b = 0, e = 0;
  slice_of(r.n, s, b, e);
  const bool scale = r.temperature != 0.0f && r.temperature != 1.0f;
  const bool select = is_select_row(r);
  __shared__ int hist[kBins];
  if (select) {
    for (int i = static_cast<int>(threadIdx.x); i < kBins; i += kSliceThreads) hist[i] = 0;
    __syncthreads();
  }
  if (s == 0 && threadIdx.x == 0) {  // nothing cut unless top-k/top-p say otherwise
    cut_key[ri] = 0;
    cut_id[ri] = -1;
  }
  arg_max best{-INFINITY, INT_MAX};
  for (int base = b + static_cast<int>(threadIdx.x); base < e; base += kSliceThreads * kBatch) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      v[u] = i < e ? x[i] : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      if (i >= e) break;
      if (scale) {
        v[u] = __fdiv_rn(v[u], r.temperature);
        x[i] = v[u];
      }
      best = better(best, arg_max{v[u], i});
      if (select) warp_count(hist, order_key(v[u]) >> kBinShift);
    }
  }
  __shared__ arg_max warps[kSliceThreads / 32];
  best = warp_best(best);
  if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kSliceThreads / 32; ++w) best = better(best, warps[w]);
    part_max[ri * kSplits + s] = best.v;
    part_arg[ri * kSplits + s] = best.i;
  }
  if (select) {
    int* out = bins + (static_cast<size_t>(ri) * kSplits + s) * kBins;
    for (int i = static_cast<int>(threadIdx.x); i < kBins; i += kSliceThreads) out[i] = hist[i];
  }
}

// Sort keys of the rows of one group: (slot, value) so one radix sort orders every row;
// ids past the row's n sort last. Grid (ceil(vocab / threads), slot).
__global__ void __launch_bounds__(kSortKeyThreads)
    sort_keys_kernel(const float* logits, size_t vocab, const sample_row* rows,
                     const int32_t* sort_rows, unsigned long long* keys, int32_t* vals) {
  const size_t slot = blockIdx.y;
  const size_t i = static_cast<size_t>(blockIdx.x) * kSortKeyThreads + threadIdx.x;
  if (i >= vocab) return;
  const sample_row r = rows[sort_rows[slot]];
  uint32_t k = 0xffffffffu;
  int32_t v = -1;
  if (i < static_cast<size_t>(r.n)) {
    k = order_key(logits[static_cast<size_t>(r.logit_row) * vocab + i]);
    v = static_cast<int32_t>(i);
  }
  keys[slot * vocab + i] = (static_cast<unsigned long long>(slot) << 32) | k;
  vals[slot * vocab + i] = v;
}

/// Whether token i (key k) is cut by its row's top-k/top-p: everything below (cut_key,
/// cut_id) in the ascending (value, id) order is.
__device__ __forceinline__ bool is_cut(uint32_t k, int i, uint32_t cut_key, int cut_id) {
  return k < cut_key || (k == cut_key && i < cut_id);
}

/// The probability mass the draw sees for token i: 0 when cut or under min-p.
__device__ __forceinline__ double draw_mass(float v, int i, float m, float min_p, uint32_t cut_key,
                                            int cut_id) {
  return is_cut(order_key(v), i, cut_key, cut_id) ? 0.0 : kept_mass(v, m, min_p);
}

// Top-k (and top-p) over one sorted row (ascending, ties in id order): the cut is the
// first kept entry. One block per row of the group.
__global__ void __launch_bounds__(kCutThreads)
    cutoff_kernel(const sample_row* rows, size_t vocab, const int32_t* sort_rows,
                  const unsigned long long* keys, const int32_t* vals, uint32_t* cut_key,
                  int32_t* cut_id) {
  __shared__ int s_start, s_cut;
  __shared__ double s_total;
  const size_t slot = blockIdx.x;
  const int ri = sort_rows[slot];
  const sample_row r = rows[ri];
  const unsigned long long* k = keys + slot * vocab;
  const int32_t* v = vals + slot * vocab;
  const int n = r.n;
  const float m = key_value(static_cast<uint32_t>(k[n - 1]));
  if (threadIdx.x == 0) {
    // Top-k: every value below the k-th largest goes (ties at it stay).
    int start = 0;
    if (r.top_k > 0 && r.top_k < n) {
      const uint32_t kth = static_cast<uint32_t>(k[n - r.top_k]);
      int lo = 0, hi = n - r.top_k;
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (static_cast<uint32_t>(k[mid]) < kth) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      start = lo;
    }
    s_start = start;
    s_cut = start;
  }
  __syncthreads();
  const int start = s_start;
  if (r.top_p < 1.0f && start < n - 1) {
    // Top-p: drop the ascending prefix whose cumulative probability <= 1 - top_p, never
    // the last (largest) entry. Each thread sums a contiguous chunk; the chunk where the
    // cumulative first passes the bound finds the position.
    const int len = n - start;
    const int per = (len + kCutThreads - 1) / kCutThreads;
    const int b = min(n, start + static_cast<int>(threadIdx.x) * per), e = min(n, b + per);
    double sum = 0.0;
    for (int p = b; p < e; ++p) sum += mass(key_value(static_cast<uint32_t>(k[p])), m);
    double before = 0.0, through = 0.0;
    tiled_scan<kCutThreads>(sum, before, through);
    if (threadIdx.x == kCutThreads - 1) s_total = through;
    if (threadIdx.x == 0) s_cut = n - 1;
    __syncthreads();
    const double total = s_total;
    const double bound = 1.0 - static_cast<double>(r.top_p);
    // The one chunk where the cumulative passes the bound finds the position (its last
    // entry when rounding inside the chunk never passes it).
    if (b < e && b < n - 1 && before / total <= bound && through / total > bound) {
      double cum = before;
      int p = b;
      for (; p < e - 1 && p < n - 1; ++p) {
        cum += mass(key_value(static_cast<uint32_t>(k[p])), m);
        if (cum / total > bound) break;
      }
      s_cut = min(p, n - 1);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    cut_key[ri] = static_cast<uint32_t>(k[s_cut]);
    cut_id[ri] = v[s_cut];
  }
}

// Top-k of at most kMaxSelectK (then top-p) without sorting the row. Usually: the slices'
// histograms of the keys' top bits (temper_max_kernel) name the bin holding the k-th
// largest value; the entries from that bin up (the k-th value's ties included) are
// gathered and sorted in shared memory. When they are too many (a flat row, huge ties):
// a radix select of the k-th largest key, the fewer-than-k larger entries sorted, the
// entries tied at the k-th value counted (they come first in the ascending order, by id,
// all with the same mass). One block per row.
__global__ void __launch_bounds__(kSelectThreads)
    select_kernel(const float* logits, size_t vocab, const sample_row* rows,
                  const int32_t* select_rows, const int* bins, uint32_t* cut_key, int32_t* cut_id) {
  __shared__ int hist[256];
  __shared__ uint32_t s_prefix;
  __shared__ int s_remaining, s_greater, s_ties, s_pos, s_tie_id, s_bin, s_cands, s_count;
  __shared__ union {
    int bins[kBins];                    // the row's histogram of top key bits
    unsigned long long cand[kCandCap];  // (key << 32 | id), ascending once sorted
  } sm;
  unsigned long long* cand = sm.cand;
  __shared__ double s_total;
  using scan_t = cub::BlockScan<double, kSelectThreads>;
  using iscan_t = cub::BlockScan<int, kSelectThreads>;
  using reduce_t = cub::BlockReduce<double, kSelectThreads>;
  __shared__ union {
    typename scan_t::TempStorage scan;
    typename iscan_t::TempStorage iscan;
    typename reduce_t::TempStorage reduce;
  } tmp;
  const int tid = static_cast<int>(threadIdx.x);
  const int ri = select_rows[blockIdx.x];
  const sample_row r = rows[ri];
  const float* x = logits + static_cast<size_t>(r.logit_row) * vocab;
  const int n = r.n;
  const int k = r.top_k;
  const double bound = 1.0 - static_cast<double>(r.top_p);
  for (int b = tid; b < kBins; b += kSelectThreads) {
    int c = 0;
    for (int sl = 0; sl < kSplits; ++sl)
      c += bins[(static_cast<size_t>(ri) * kSplits + sl) * kBins + b];
    sm.bins[b] = c;
  }
  __syncthreads();
  if (tid == 0) {
    int cum = 0, d = kBins - 1;
    for (; d > 0; --d) {
      if (cum + sm.bins[d] >= k) break;
      cum += sm.bins[d];
    }
    s_bin = d;
    s_cands = cum + sm.bins[d];
    s_count = 0;
  }
  __syncthreads();
  if (s_cands <= kCandCap) {
    const uint32_t bin = static_cast<uint32_t>(s_bin);
    const int cands = s_cands;
    for (int i = tid; i < kCandCap; i += kSelectThreads) sm.cand[i] = ~0ull;
    __syncthreads();
    // Gather (warp-aggregated slots); the loop is uniform over the block.
    for (int off = 0; off < n; off += kSelectThreads * kBatch) {
      float v[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int i = off + u * kSelectThreads + tid;
        v[u] = i < n ? x[i] : -INFINITY;
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int i = off + u * kSelectThreads + tid;
        const uint32_t key = order_key(v[u]);
        const bool take = i < n && (key >> kBinShift) >= bin;
        const unsigned ballot = __ballot_sync(0xffffffffu, take);
        if (ballot == 0) continue;
        const int lane = tid & 31, leader = __ffs(ballot) - 1;
        int base = 0;
        if (lane == leader) base = atomicAdd(&s_count, __popc(ballot));
        base = __shfl_sync(0xffffffffu, base, leader);
        if (take)
          sm.cand[base + __popc(ballot & ((1u << lane) - 1u))] =
              (static_cast<unsigned long long>(key) << 32) | static_cast<uint32_t>(i);
      }
    }
    __syncthreads();
    // Bitonic sort of the first power of two >= cands entries (padding sorts last).
    int size_max = 2;
    while (size_max < cands) size_max <<= 1;
    for (int size = 2; size <= size_max; size <<= 1) {
      for (int stride = size / 2; stride > 0; stride >>= 1) {
        for (int i = tid; i < size_max; i += kSelectThreads) {
          const int j = i ^ stride;
          if (j > i) {
            const unsigned long long a = sm.cand[i], b = sm.cand[j];
            if ((a > b) == ((i & size) == 0)) {
              sm.cand[i] = b;
              sm.cand[j] = a;
            }
          }
        }
        __syncthreads();
      }
    }
    // The k-th largest is at cands - k; its ties start at the first entry with its key.
    const uint32_t kth = static_cast<uint32_t>(sm.cand[cands - k] >> 32);
    if (tid == 0) {
      int lo = 0, hi = cands - k;
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (static_cast<uint32_t>(sm.cand[mid] >> 32) < kth) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      s_pos = lo;
    }
    __syncthreads();
    const int start = s_pos;
    if (r.top_p >= 1.0f) {
      if (tid == 0) {
        cut_key[ri] = kth;
        cut_id[ri] = -1;
      }
      return;
    }
    // Top-p over [start, cands): each thread a contiguous chunk of the ascending order.
    const float m = key_value(static_cast<uint32_t>(sm.cand[cands - 1] >> 32));
    const int len = cands - start, per = (len + kSelectThreads - 1) / kSelectThreads;
    const int b = min(cands, start + tid * per), e = min(cands, b + per);
    double sum = 0.0;
    for (int p = b; p < e; ++p) sum += mass(key_value(static_cast<uint32_t>(sm.cand[p] >> 32)), m);
    double before = 0.0, through = 0.0;
    tiled_scan<kSelectThreads>(sum, before, through);
    if (tid == kSelectThreads - 1) s_total = through;
    if (tid == 0) s_pos = cands - 1;
    __syncthreads();
    const double total = s_total;
    if (b < e && b < cands - 1 && before / total <= bound && through / total > bound) {
      double cum = before;
      int p = b;
      for (; p < e - 1 && p < cands - 1; ++p) {
        cum += mass(key_value(static_cast<uint32_t>(sm.cand[p] >> 32)), m);
        if (cum / total > bound) break;
      }
      s_pos = min(p, cands - 1);
    }
    __syncthreads();
    if (tid == 0) {
      cut_key[ri] = static_cast<uint32_t>(sm.cand[s_pos] >> 32);
      cut_id[ri] = static_cast<int32_t>(sm.cand[s_pos] & 0xffffffffu);
    }
    return;
  }
  // The k-th largest key, 8 bits at a time from the top.
  uint32_t prefix = 0, mask = 0;
  int remaining = r.top_k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = tid; i < 256; i += kSelectThreads) hist[i] = 0;
    __syncthreads();
    for (int i = tid; i < n; i += kSelectThreads) {
      const uint32_t key = order_key(x[i]);
      if ((key & mask) == prefix) {
        const uint32_t digit = (key >> shift) & 0xffu;
        const unsigned peers = __match_any_sync(__activemask(), digit);
        if ((tid & 31) == __ffs(peers) - 1) atomicAdd(&hist[digit], __popc(peers));
      }
    }
    __syncthreads();
    if (tid == 0) {
      int cum = 0, d = 255;
      for (; d > 0; --d) {
        if (cum + hist[d] >= remaining) break;
        cum += hist[d];
      }
      s_prefix = prefix | (static_cast<uint32_t>(d) << shift);
      s_remaining = remaining - cum;
    }
    __syncthreads();
    prefix = s_prefix;
    remaining = s_remaining;
    mask |= 0xffu << shift;
  }
  const uint32_t kth = prefix;
  if (r.top_p >= 1.0f) {
    if (tid == 0) {
      cut_key[ri] = kth;  // below the k-th value goes; its ties stay
      cut_id[ri] = -1;
    }
    return;
  }
  // The entries above the k-th value (fewer than k) and the count tied at it.
  if (tid == 0) {
    s_greater = 0;
    s_ties = 0;
  }
  cand[tid] = ~0ull;
  __syncthreads();
  int ties = 0;
  for (int i = tid; i < n; i += kSelectThreads) {
    const uint32_t key = order_key(x[i]);
    if (key > kth) {
      cand[atomicAdd(&s_greater, 1)] =
          (static_cast<unsigned long long>(key) << 32) | static_cast<uint32_t>(i);
    } else if (key == kth) {
      ++ties;
    }
  }
  atomicAdd(&s_ties, ties);
  __syncthreads();
  // Bitonic sort of the candidates, ascending (value, then id); padding sorts last.
  for (int size = 2; size <= kSelectThreads; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      const int j = tid ^ stride;
      if (j > tid) {
        const unsigned long long a = cand[tid], b = cand[j];
        if ((a > b) == ((tid & size) == 0)) {
          cand[tid] = b;
          cand[j] = a;
        }
      }
      __syncthreads();
    }
  }
  const int greater = s_greater, tied = s_ties, survivors = greater + tied;
  const float m = key_value(greater > 0 ? static_cast<uint32_t>(cand[greater - 1] >> 32) : kth);
  const double e_tie = mass(key_value(kth), m);
  const double e_c =
      tid < greater ? mass(key_value(static_cast<uint32_t>(cand[tid] >> 32)), m) : 0.0;
  const double cand_sum = reduce_t(tmp.reduce).Sum(e_c);
  if (tid == 0) s_total = cand_sum + static_cast<double>(tied) * e_tie;
  __syncthreads();
  const double total = s_total;
  // Position (in the survivors' ascending order) of the first kept entry; the last is
  // always kept. The tied entries hold positions [0, tied).
  if (tid == 0) {
    int j = static_cast<int>(
        fmin(fmax(floor(bound * total / e_tie) - 2.0, 0.0), static_cast<double>(tied)));
    while (j < tied && !(static_cast<double>(j + 1) * e_tie / total > bound)) ++j;
    s_pos = min(j, survivors - 1);
  }
  __syncthreads();
  if (s_pos >= tied) {
    // Past the ties: the first candidate whose cumulative mass passes the bound.
    __syncthreads();
    double incl = 0.0;
    scan_t(tmp.scan).InclusiveSum(e_c, incl);
    if (tid == 0) s_pos = survivors - 1;
    __syncthreads();
    const double before = static_cast<double>(tied) * e_tie;
    if (tid < greater && tied + tid < survivors - 1 && (before + incl) / total > bound)
      atomicMin(&s_pos, tied + tid);
    __syncthreads();
    if (tid == 0) {
      const unsigned long long c = cand[s_pos - tied];
      cut_key[ri] = static_cast<uint32_t>(c >> 32);
      cut_id[ri] = static_cast<int32_t>(c & 0xffffffffu);
    }
    return;
  }
  // Within the ties: the first s_pos of them (in id order) go; find the id of the next.
  const int pos = s_pos;
  if (pos == 0) {
    if (tid == 0) {
      cut_key[ri] = kth;
      cut_id[ri] = -1;
    }
    return;
  }
  const int per = (n + kSelectThreads - 1) / kSelectThreads;
  const int b = min(n, tid * per), e = min(n, b + per);
  int count = 0;
  for (int i = b; i < e; ++i) count += order_key(x[i]) == kth ? 1 : 0;
  int before = 0;
  iscan_t(tmp.iscan).ExclusiveSum(count, before);
  if (before <= pos && pos < before + count) {
    int seen = before;
    for (int i = b; i < e; ++i) {
      if (order_key(x[i]) != kth) continue;
      if (seen == pos) {
        s_tie_id = i;
        break;
      }
      ++seen;
    }
  }
  __syncthreads();
  if (tid == 0) {
    cut_key[ri] = kth;
    cut_id[ri] = s_tie_id;
  }
}

// The surviving mass of each slice (top-k/top-p cut and min-p applied): grid (slice, row).
__global__ void __launch_bounds__(kSliceThreads)
    mass_kernel(const float* logits, size_t vocab, const sample_row* rows, const float* part_max,
                const uint32_t* cut_key, const int32_t* cut_id, double* part_z) {
  const int s = static_cast<int>(blockIdx.x), ri = static_cast<int>(blockIdx.y);
  const sample_row r = rows[ri];
  if (r.temperature == 0.0f) return;
  const float* x = logits + static_cast<size_t>(r.logit_row) * vocab;
  const float m = row_max(part_max, ri);
  const uint32_t ck = cut_key[ri];
  const int ci = cut_id[ri];
  int b = 0, e = 0;
  slice_of(r.n, s, b, e);
  double z = 0.0;
  for (int base = b + static_cast<int>(threadIdx.x); base < e; base += kSliceThreads * kBatch) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      v[u] = i < e ? x[i] : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      if (i < e) z += draw_mass(v[u], i, m, r.min_p, ck, ci);
    }
  }
  using reduce_t = cub::BlockReduce<double, kSliceThreads>;
  __shared__ typename reduce_t::TempStorage tmp;
  z = reduce_t(tmp).Sum(z);
  if (threadIdx.x == 0) part_z[ri * kSplits + s] = z;
}

// The token: greedy rows take the argmax; the others the first id (in id order) whose
// cumulative mass exceeds u times the total. One block per row.
__global__ void __launch_bounds__(kSliceThreads)
    pick_kernel(const float* logits, size_t vocab, const sample_row* rows, const float* part_max,
                const int32_t* part_arg, const double* part_z, const uint32_t* cut_key,
                const int32_t* cut_id, int32_t* tokens) {
  const int ri = static_cast<int>(blockIdx.x);
  const sample_row r = rows[ri];
  if (r.temperature == 0.0f) {
    if (threadIdx.x == 0) {
      arg_max best{-INFINITY, INT_MAX};
      for (int s = 0; s < kSplits; ++s)
        best = better(best, arg_max{part_max[ri * kSplits + s], part_arg[ri * kSplits + s]});
      tokens[ri] = best.i == INT_MAX ? 0 : best.i;
    }
    return;
  }
  __shared__ int s_split, s_tok, s_last;
  __shared__ double s_target;
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int s = 0; s < kSplits; ++s) total += part_z[ri * kSplits + s];
    const double target = r.u * total;
    double cum = 0.0;
    int split = -1, last = 0;
    for (int s = 0; s < kSplits; ++s) {
      const double z = part_z[ri * kSplits + s];
      if (z > 0.0) last = s;
      if (split < 0 && target < cum + z) {
        split = s;
        s_target = target - cum;
      }
      cum += z;
    }
    if (split < 0) {  // rounding left the target just past the total: the last token kept
      split = last;
      s_target = INFINITY;
    }
    s_split = split;
    s_tok = INT_MAX;
    s_last = -1;
  }
  __syncthreads();
  const float* x = logits + static_cast<size_t>(r.logit_row) * vocab;
  const float m = row_max(part_max, ri);
  const uint32_t ck = cut_key[ri];
  const int ci = cut_id[ri];
  int sb = 0, se = 0;
  slice_of(r.n, s_split, sb, se);
  const int per = (se - sb + kSliceThreads - 1) / kSliceThreads;
  const int b = min(se, sb + static_cast<int>(threadIdx.x) * per), e = min(se, b + per);
  double sum = 0.0;
  int last = -1;
  for (int i = b; i < e; ++i) {
    const double w = draw_mass(x[i], i, m, r.min_p, ck, ci);
    if (w > 0.0) {
      sum += w;
      last = i;
    }
  }
  double before = 0.0, through = 0.0;
  tiled_scan<kSliceThreads>(sum, before, through);
  const double target = s_target;
  if (last >= 0) atomicMax(&s_last, last);
  if (b < e && target >= before && target < through) {
    // One thread at most: the ranges tile. Its last kept token when rounding inside the
    // chunk keeps the cumulative at or below the target.
    double cum = before;
    int tok = last;
    for (int i = b; i < e; ++i) {
      const double w = draw_mass(x[i], i, m, r.min_p, ck, ci);
      if (w <= 0.0) continue;
      cum += w;
      if (target < cum) {
        tok = i;
        break;
      }
    }
    s_tok = tok;
  }
  __syncthreads();
  if (threadIdx.x == 0) tokens[ri] = s_tok != INT_MAX ? s_tok : max(s_last, 0);
}

int bits_for(size_t n) {
  int b = 0;
  while ((size_t{1} << b) < n) ++b;
  return b;
}

}  // namespace

struct device_sampler::impl {
  size_t vocab = 0;
  size_t rows_cap = 0;
  device_buffer meta;  // [rows | penalties | sort list]
  device_buffer part_max, part_arg, part_z, tokens, cut_key, cut_id, bins;
  device_buffer keys[2], vals[2], sort_tmp;
  size_t sort_tmp_bytes = 0;
  pinned_buffer stage;           // the metadata staged for the copy
  pinned_buffer host_tokens;     // the tokens copied back
  cudaEvent_t staged = nullptr;  // the last metadata copy finished
  std::vector<int32_t> sort_list, select_list;

  ~impl() {
    if (staged != nullptr) {
      cudaEventSynchronize(staged);  // a copy may still read the staging area
      cudaEventDestroy(staged);
    }
  }

  void ensure_rows(size_t n) {
    if (n <= rows_cap) return;
    n = std::max(n, rows_cap * 2);
    part_max.ensure(n * kSplits * sizeof(float));
    part_arg.ensure(n * kSplits * sizeof(int32_t));
    part_z.ensure(n * kSplits * sizeof(double));
    cut_key.ensure(n * sizeof(uint32_t));
    cut_id.ensure(n * sizeof(int32_t));
    bins.ensure(n * kSplits * kBins * sizeof(int));
    tokens.ensure(n * sizeof(int32_t));
    host_tokens.ensure(n * sizeof(int32_t));
    rows_cap = n;
  }
};

device_sampler::device_sampler(size_t vocab) : impl_(std::make_unique<impl>()) {
  if (vocab == 0 || vocab > 0x7fffffff) throw std::invalid_argument("device_sampler: bad vocab");
  auto& d = *impl_;
  d.vocab = vocab;
  const size_t items = kSortRows * vocab;
  for (int i = 0; i < 2; ++i) {
    d.keys[i] = device_buffer(items * sizeof(unsigned long long));
    d.vals[i] = device_buffer(items * sizeof(int32_t));
  }
  cub::DoubleBuffer<unsigned long long> k(d.keys[0].as<unsigned long long>(),
                                          d.keys[1].as<unsigned long long>());
  cub::DoubleBuffer<int32_t> v(d.vals[0].as<int32_t>(), d.vals[1].as<int32_t>());
  CONCLAVE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, d.sort_tmp_bytes, k, v, static_cast<int>(items), 0, 32 + bits_for(kSortRows)));
  d.sort_tmp = device_buffer(d.sort_tmp_bytes);
  CONCLAVE_CUDA_CHECK(cudaEventCreateWithFlags(&d.staged, cudaEventDisableTiming));
  // Every graph bucket's rows up front, so serving rarely allocates after the KV cache
  // took the free memory.
  d.ensure_rows(kPresizedRows);
}

device_sampler::~device_sampler() = default;

size_t device_sampler::workspace_bytes() const {
  const auto& d = *impl_;
  return d.keys[0].bytes() * 2 + d.vals[0].bytes() * 2 + d.sort_tmp.bytes() + d.part_max.bytes() +
         d.part_arg.bytes() + d.part_z.bytes() + d.tokens.bytes() + d.cut_key.bytes() +
         d.cut_id.bytes() + d.bins.bytes() + d.meta.bytes();
}

const int32_t* device_sampler::tokens() const {
  return static_cast<const int32_t*>(impl_->host_tokens.data());
}

void device_sampler::sample(float* logits, const sample_row* rows, size_t count,
                            const sample_penalty* pen, size_t pen_count, stream_t s) {
  if (count == 0) return;
  auto& d = *impl_;
  const size_t vocab = d.vocab;
  if (count > 65535) throw std::invalid_argument("device_sampler: too many rows");
  d.sort_list.clear();
  d.select_list.clear();
  for (size_t i = 0; i < count; ++i) {
    const sample_row& r = rows[i];
    if (r.n < 1 || static_cast<size_t>(r.n) > vocab || r.logit_row < 0 || r.pen_begin < 0 ||
        r.pen_count < 0 ||
        static_cast<size_t>(r.pen_begin) + static_cast<size_t>(r.pen_count) > pen_count ||
        r.top_k < 0 || !(r.temperature >= 0.0f) || !(r.top_p > 0.0f && r.top_p <= 1.0f) ||
        !(r.u >= 0.0 && r.u < 1.0))
      throw std::invalid_argument("device_sampler: row " + std::to_string(i) + " out of range");
    if (r.temperature == 0.0f) continue;  // greedy: no warpers
    // Top-k of a few: a select; a large top-k or top-p alone: a sort of the whole row.
    const bool top_k = r.top_k > 0 && r.top_k < r.n;
    if (top_k && r.top_k <= kMaxSelectK) {
      d.select_list.push_back(static_cast<int32_t>(i));
    } else if (top_k || r.top_p < 1.0f) {
      d.sort_list.push_back(static_cast<int32_t>(i));
    }
  }
  for (size_t i = 0; i < pen_count; ++i) {
    if (pen[i].token < 0 || static_cast<size_t>(pen[i].token) >= vocab)
      throw std::invalid_argument("device_sampler: penalty token out of range");
  }
  d.ensure_rows(count);
  const size_t rows_bytes = count * sizeof(sample_row);
  const size_t pen_bytes = pen_count * sizeof(sample_penalty);
  const size_t list_bytes = (d.sort_list.size() + d.select_list.size()) * sizeof(int32_t);
  const size_t total = rows_bytes + pen_bytes + list_bytes;
  // The previous call's metadata copy must be done before the staging area is rewritten.
  CONCLAVE_CUDA_CHECK(cudaEventSynchronize(d.staged));
  auto* stage = static_cast<char*>(d.stage.ensure(total));
  std::memcpy(stage, rows, rows_bytes);
  if (pen_bytes > 0) std::memcpy(stage + rows_bytes, pen, pen_bytes);
  char* lists = stage + rows_bytes + pen_bytes;  // [sort rows | select rows]
  if (!d.sort_list.empty())
    std::memcpy(lists, d.sort_list.data(), d.sort_list.size() * sizeof(int32_t));
  if (!d.select_list.empty())
    std::memcpy(lists + d.sort_list.size() * sizeof(int32_t), d.select_list.data(),
                d.select_list.size() * sizeof(int32_t));
  d.meta.ensure(total);
  CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(d.meta.get(), stage, total, cudaMemcpyHostToDevice, s));
  CONCLAVE_CUDA_CHECK(cudaEventRecord(d.staged, s));
  const auto* d_rows = d.meta.as<sample_row>();
  const auto* d_pen = reinterpret_cast<const sample_penalty*>(d.meta.as<char>() + rows_bytes);
  const auto* d_list = reinterpret_cast<const int32_t*>(d.meta.as<char>() + rows_bytes + pen_bytes);
  auto* part_max = d.part_max.as<float>();
  auto* part_arg = d.part_arg.as<int32_t>();
  auto* part_z = d.part_z.as<double>();
  auto* cut_key = d.cut_key.as<uint32_t>();
  auto* cut_id = d.cut_id.as<int32_t>();
  const auto n_rows = static_cast<unsigned>(count);

  if (pen_count > 0) {
    penalties_kernel<<<n_rows, 256, 0, s>>>(logits, vocab, d_rows, d_pen);
    CONCLAVE_CUDA_LAUNCH_CHECK();
  }
  temper_max_kernel<<<dim3(kSplits, n_rows), kSliceThreads, 0, s>>>(
      logits, vocab, d_rows, part_max, part_arg, cut_key, cut_id, d.bins.as<int>());
  CONCLAVE_CUDA_LAUNCH_CHECK();
  for (size_t first = 0; first < d.sort_list.size(); first += kSortRows) {
    const size_t group = std::min(kSortRows, d.sort_list.size() - first);
    const auto* group_rows = d_list + first;
    const dim3 grid(static_cast<unsigned>((vocab + kSortKeyThreads - 1) / kSortKeyThreads),
                    static_cast<unsigned>(group));
    sort_keys_kernel<<<grid, kSortKeyThreads, 0, s>>>(logits, vocab, d_rows, group_rows,
                                                      d.keys[0].as<unsigned long long>(),
                                                      d.vals[0].as<int32_t>());
    CONCLAVE_CUDA_LAUNCH_CHECK();
    cub::DoubleBuffer<unsigned long long> k(d.keys[0].as<unsigned long long>(),
                                            d.keys[1].as<unsigned long long>());
    cub::DoubleBuffer<int32_t> v(d.vals[0].as<int32_t>(), d.vals[1].as<int32_t>());
    size_t tmp = d.sort_tmp_bytes;
    CONCLAVE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        d.sort_tmp.get(), tmp, k, v, static_cast<int>(group * vocab), 0, 32 + bits_for(group), s));
    cutoff_kernel<<<static_cast<unsigned>(group), kCutThreads, 0, s>>>(
        d_rows, vocab, group_rows, k.Current(), v.Current(), cut_key, cut_id);
    CONCLAVE_CUDA_LAUNCH_CHECK();
  }
  if (!d.select_list.empty()) {
    select_kernel<<<static_cast<unsigned>(d.select_list.size()), kSelectThreads, 0, s>>>(
        logits, vocab, d_rows, d_list + d.sort_list.size(), d.bins.as<int>(), cut_key, cut_id);
    CONCLAVE_CUDA_LAUNCH_CHECK();
  }
  mass_kernel<<<dim3(kSplits, n_rows), kSliceThreads, 0, s>>>(logits, vocab, d_rows, part_max,
                                                              cut_key, cut_id, part_z);
  CONCLAVE_CUDA_LAUNCH_CHECK();
  pick_kernel<<<n_rows, kSliceThreads, 0, s>>>(logits, vocab, d_rows, part_max, part_arg, part_z,
                                               cut_key, cut_id, d.tokens.as<int32_t>());
  CONCLAVE_CUDA_LAUNCH_CHECK();
  CONCLAVE_CUDA_CHECK(cudaMemcpyAsync(d.host_tokens.data(), d.tokens.get(), count * sizeof(int32_t),
                                      cudaMemcpyDeviceToHost, s));
}

}  // namespace conclave::gpu::cuda
