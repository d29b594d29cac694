// Device sampling (see sampling.h for the plan). Float steps use the explicit _rn
// intrinsics so nvcc cannot contract them and the values equal the host's; masses are
// unnormalised doubles, compared as engine::sampler compares them.
#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu/cuda/check.h"
#include "gpu/cuda/device_buffer.h"
#include "gpu/cuda/sampling.h"
#include "gpu/cuda/sampling_kernels.cuh"

namespace conclave::gpu::cuda {
using namespace sampling_detail;

namespace {

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

// The surviving mass of each slice (top-k/top-p cut and min-p applied): grid (slice, row).
__global__ void __launch_bounds__(kSliceThreads)
    mass_kernel(const float* logits, size_t vocab, const sample_row* rows, const float* part_max,
                const uint32_t* cut_key, const int32_t* cut_id, double* part_z) {
  const int s = static_cast<int>(blockIdx.x), ri = static_cast<int>(blockIdx.y);
  const sample_row r = rows[ri];
  if (r.temperature == 0.0f) return;
  const draw_row d{logits + static_cast<size_t>(r.logit_row) * vocab, row_max(part_max, ri),
                   r.min_p, cut_key[ri], cut_id[ri]};
  int b = 0, e = 0;
  slice_of(r.n, s, b, e);
  double z = 0.0;
  for (int base = b + static_cast<int>(threadIdx.x); base < e; base += kSliceThreads * kBatch) {
    float v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      v[u] = i < e ? d.x[i] : -INFINITY;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kSliceThreads;
      if (i < e) z += d.mass(v[u], i);
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
  const draw_row d{logits + static_cast<size_t>(r.logit_row) * vocab, row_max(part_max, ri),
                   r.min_p, cut_key[ri], cut_id[ri]};
  int sb = 0, se = 0;
  slice_of(r.n, s_split, sb, se);
  const int per = (se - sb + kSliceThreads - 1) / kSliceThreads;
  const int b = min(se, sb + static_cast<int>(threadIdx.x) * per), e = min(se, b + per);
  double sum = 0.0;
  int last = -1;
  for (int i = b; i < e; ++i) {
    const double w = d.mass(i);
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
      const double w = d.mass(i);
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

}  // namespace

struct device_sampler::impl {
  size_t vocab = 0;
  size_t rows_cap = 0;
  device_buffer meta;  // [rows | penalties | sort list]
  device_buffer part_max, part_arg, part_z, tokens, cut_key, cut_id, bins;
  device_buffer keys[2], vals[2], sort_tmp;
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
  d.sort_tmp = device_buffer(sort_temp_bytes(kSortRows, vocab));
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
  const sort_buffers sb{{d.keys[0].as<unsigned long long>(), d.keys[1].as<unsigned long long>()},
                        {d.vals[0].as<int32_t>(), d.vals[1].as<int32_t>()},
                        d.sort_tmp.get(),
                        d.sort_tmp.bytes()};
  cut_by_sort(logits, vocab, d_rows, d_list, d.sort_list.size(), sb, cut_key, cut_id, s);
  cut_by_select(logits, vocab, d_rows, d_list + d.sort_list.size(), d.select_list.size(),
                d.bins.as<int>(), cut_key, cut_id, s);
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
