// The top-k/top-p cut of each row (see sampling.h): by a whole-row radix sort, or for a
// top-k of at most 1,024 by a select guided by the slices' histograms.
#include <algorithm>

#include "gpu/cuda/check.h"
#include "gpu/cuda/sampling_kernels.cuh"

namespace conclave::gpu::cuda::sampling_detail {
namespace {

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

int bits_for(size_t n) {
  int b = 0;
  while ((size_t{1} << b) < n) ++b;
  return b;
}

}  // namespace

size_t sort_temp_bytes(size_t rows, size_t vocab) {
  size_t bytes = 0;
  cub::DoubleBuffer<unsigned long long> k(nullptr, nullptr);
  cub::DoubleBuffer<int32_t> v(nullptr, nullptr);
  CONCLAVE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, k, v, static_cast<int>(rows * vocab), 0, 32 + bits_for(rows)));
  return bytes;
}

void cut_by_sort(const float* logits, size_t vocab, const sample_row* rows,
                 const int32_t* sort_rows, size_t count, const sort_buffers& b, uint32_t* cut_key,
                 int32_t* cut_id, stream_t s) {
  constexpr size_t group_rows_max = device_sampler::kSortRows;
  for (size_t first = 0; first < count; first += group_rows_max) {
    const size_t group = std::min(group_rows_max, count - first);
    const auto* group_rows = sort_rows + first;
    const dim3 grid(static_cast<unsigned>((vocab + kSortKeyThreads - 1) / kSortKeyThreads),
                    static_cast<unsigned>(group));
    sort_keys_kernel<<<grid, kSortKeyThreads, 0, s>>>(logits, vocab, rows, group_rows, b.keys[0],
                                                      b.vals[0]);
    CONCLAVE_CUDA_LAUNCH_CHECK();
    cub::DoubleBuffer<unsigned long long> k(b.keys[0], b.keys[1]);
    cub::DoubleBuffer<int32_t> v(b.vals[0], b.vals[1]);
    size_t tmp = b.temp_bytes;
    CONCLAVE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        b.temp, tmp, k, v, static_cast<int>(group * vocab), 0, 32 + bits_for(group), s));
    cutoff_kernel<<<static_cast<unsigned>(group), kCutThreads, 0, s>>>(
        rows, vocab, group_rows, k.Current(), v.Current(), cut_key, cut_id);
    CONCLAVE_CUDA_LAUNCH_CHECK();
  }
}

void cut_by_select(const float* logits, size_t vocab, const sample_row* rows,
                   const int32_t* select_rows, size_t count, const int* bins, uint32_t* cut_key,
                   int32_t* cut_id, stream_t s) {
  if (count == 0) return;
  select_kernel<<<static_cast<unsigned>(count), kSelectThreads, 0, s>>>(
      logits, vocab, rows, select_rows, bins, cut_key, cut_id);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda::sampling_detail
