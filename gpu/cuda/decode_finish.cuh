// The tensor-core decode kernels' shared pieces (decode_attention.cu: bf16 caches, and
// fp8 widened through shared memory; decode_attention_fp8.cu: fp8 read straight from its
// stages): which keys a block reads, the start of its copy pipeline, the fp8 scales'
// copies, and what it does with its warps' states once read.
#pragma once

#include "gpu/cuda/attention_split.cuh"
#include "gpu/cuda/mma.cuh"

namespace conclave::gpu::cuda::dev {

/// Keys [begin, end) of one block; n slices in its (row, KV head), this one `slice`.
struct decode_slice {
  int begin, end, n, slice;
};

/// The slice of the context that block (blockIdx.z) of a row with `ctx_end` keys reads
/// (window > 0: only the last `window`). As the GQA kernel's (attention.cu): each row
/// plans its slices from its own length, n <= splits slices of a multiple of TILE keys;
/// rows of at most `min_slice` keys run whole. False when this block has no slice (it
/// returns at once: no barrier is reached).
template <int TILE>
__device__ __forceinline__ bool decode_slice_of(int ctx_end, int window, int splits, int min_slice,
                                                decode_slice& s) {
  const int lo = window > 0 ? max(0, ctx_end - window) : 0;
  const int all = ctx_end - lo;
  s = {lo, ctx_end, 1, 0};
  if (splits > 1 && all > min_slice) {
    int n = min((all + min_slice - 1) / min_slice, splits);
    const int per = ((all + n - 1) / n + TILE - 1) / TILE * TILE;
    n = (all + per - 1) / per;  // rounding the length up may leave fewer
    s.n = n;
    s.slice = static_cast<int>(blockIdx.z);
    if (s.slice >= n) return false;
    s.begin = lo + s.slice * per;
    s.end = min(ctx_end, s.begin + per);
    return true;
  }
  return blockIdx.z == 0;
}

/// What a decode block reads: KV head g (blockIdx.y) and its group of query heads from h0,
/// for query row `row` of the launch's row prow (blockIdx.x; prow keeps the slice states
/// and the counter: a launch over listed rows keeps them by list position), through that
/// row's block table; its slice of the context, in ntiles tiles of TILE keys.
struct decode_block {
  int g, group, h0, ntiles;
  size_t prow, row;
  const int32_t* table;
  decode_slice sl;
};

/// The block's decode_block (after pdl_wait: it reads the step's metadata); false when
/// it has no slice (decode_slice_of).
template <int TILE>
__device__ __forceinline__ bool decode_block_of(const int32_t* ctx_len, const int32_t* table_offset,
                                                const int32_t* tables, const int32_t* row_index,
                                                int heads, int kv_heads, int window, int splits,
                                                int min_slice, decode_block& b) {
  b.g = static_cast<int>(blockIdx.y);
  b.group = heads / kv_heads;
  b.h0 = b.g * b.group;
  b.prow = blockIdx.x;
  b.row = row_index != nullptr ? static_cast<size_t>(row_index[b.prow]) : b.prow;
  if (!decode_slice_of<TILE>(ctx_len[b.row], window, splits, min_slice, b.sl)) return false;
  b.table = tables + table_offset[b.row];
  b.ntiles = (b.sl.end - b.sl.begin + TILE - 1) / TILE;
  return true;
}

/// The pipeline's first ST - 1 stages: load(it, buf) for the tiles there are, an empty
/// commit group for each missing one (the wait counts stay uniform).
template <int ST, class Load>
__device__ __forceinline__ void decode_pipeline_start(int ntiles, Load&& load) {
#pragma unroll
  for (int st = 0; st < ST - 1; ++st) {
    if (st < ntiles) {
      load(st, st);
    } else {
      cp_async_commit();
    }
  }
}

/// Before tile `it`: waits until its stage has landed (this thread's copies, then, at the
/// barrier, everyone's; the barrier also frees stage it - 1) and starts the copies of tile
/// it + ST - 1 into that stage. Returns tile it's stage.
template <int ST, class Load>
__device__ __forceinline__ int decode_pipeline_step(int it, int ntiles, Load&& load) {
  cp_async_wait<ST - 2>();
  __syncthreads();
  const int next = it + ST - 1;
  if (next < ntiles) {
    load(next, next % ST);
  } else {
    cp_async_commit();
  }
  return it % ST;
}

/// An fp8 cache's scales of keys [base, base + TILE) of KV head g (each slot's row:
/// kv_heads x hd e4m3 bytes, then one fp32 scale per KV head), by cp.async: threads
/// [0, TILE) the keys' into ksc, [TILE, 2 TILE) the values' into vsc; zero past `end`
/// (nothing read). Not committed.
template <int TILE>
__device__ __forceinline__ void decode_fp8_scales(int tid, int base, int end, const int32_t* table,
                                                  int32_t bs, size_t row_bytes, size_t scales_at,
                                                  const char* kc, const char* vc, float* ksc,
                                                  float* vsc) {
  if (tid >= 2 * TILE) return;
  const int key = tid % TILE, t = base + key;
  const bool ok = t < end;
  const size_t slot = ok ? static_cast<size_t>(table[t / bs]) * bs + t % bs : 0;
  const size_t at = slot * row_bytes + scales_at;
  cp_async4((tid < TILE ? ksc : vsc) + key, (tid < TILE ? kc : vc) + at, ok);
}

/// The block's end, every thread: the WARPS warps' states (acc_s [WARPS][MAXH][HD], each
/// warp's unnormalised output per query head of the group; ml_s [WARPS][MAXH][2], its m
/// in log2 units, -inf for a warp without keys, and l) merged per query head. A row read
/// whole writes its output; a slice writes its state (natural units, as combine_slices
/// expects), and the last slice of the row to arrive merges them all.
template <int HD, int WARPS, int MAXH>
__device__ void decode_finish(float* acc_s, const float* ml_s, const decode_block& b, int heads,
                              int kv_heads, __nv_bfloat16* out, int splits, float* partial,
                              unsigned int* counters) {
  const int group = b.group, h0 = b.h0;
  const size_t prow = b.prow, row = b.row;
  const decode_slice& sl = b.sl;
  __syncthreads();
  constexpr float kLn2 = 0.6931471805599453f;
  for (int i = static_cast<int>(threadIdx.x); i < group * HD; i += WARPS * 32) {
    const int h = i / HD, d = i % HD;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) mx = fmaxf(mx, ml_s[(w * MAXH + h) * 2]);
    float a = 0.0f, lsum = 0.0f;
#pragma unroll
    for (int w = 0; w < WARPS; ++w) {
      const float mw = ml_s[(w * MAXH + h) * 2];
      const float e = mw == -INFINITY ? 0.0f : exp2f(mw - mx);  // a warp with no keys: 0
      lsum += ml_s[(w * MAXH + h) * 2 + 1] * e;
      a += acc_s[(w * MAXH + h) * HD + d] * e;
    }
    const size_t head = static_cast<size_t>(h0 + h);
    if (sl.n > 1) {
      float* pp = partial + ((prow * heads + head) * splits + sl.slice) * partial_stride(HD);
      pp[d] = a;
      if (d == 0) {
        pp[HD] = mx * kLn2;
        pp[HD + 1] = lsum;
      }
    } else {
      st(out + (row * heads + head) * HD + d, a / lsum);
    }
  }
  if (sl.n == 1) return;
  if (!last_to_arrive(counters + prow * kv_heads + b.g, sl.n)) return;
  combine_slices<__nv_bfloat16, MAXH>(partial, prow, row, heads, h0, group, HD, splits, sl.n, acc_s,
                                      out);
}

}  // namespace conclave::gpu::cuda::dev
