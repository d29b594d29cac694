#include <algorithm>
#include <stdexcept>

#include "gpu/cuda/attention.h"
#include "gpu/cuda/attention_split.cuh"
#include "gpu/cuda/check.h"
#include "gpu/cuda/decode_attention.h"
#include "gpu/cuda/device_info.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kernel_switch.h"
#include "gpu/cuda/kv_elem.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxDimsPerThread = 2;
// The first kernel (verified on an H200, 2026-11-28): one block per (query row, head),
// one thread per key of a 128-key tile, keys and values read straight from the cache.
// TC: the cache's element type (fp8 rows carry per-head scales, kv_elem.cuh), `stride`
// its row length in TC elements; TO: the output's.
template <class TC, class TO>
__global__ void __launch_bounds__(kThreads)
    simple_attention_kernel(const float* q, size_t q_stride, const TC* kc, const TC* vc,
                            size_t stride, const int32_t* ctx_len, const int32_t* table_offset,
                            const int32_t* tables, int32_t bs, size_t heads, size_t kv_heads,
                            size_t hd, float scale, int window, TO* out) {
  extern __shared__ float q_s[];  // [hd]
  __shared__ float p_s[kThreads];
  __shared__ int32_t slot_s[kThreads];
  __shared__ float scratch[32];
  const size_t row = blockIdx.x, h = blockIdx.y;
  const size_t g = h / (heads / kv_heads);
  const size_t width = kv_heads * hd;
  const int ctx = ctx_len[row];
  const int lo = window > 0 ? max(0, ctx - window) : 0;  // keys [lo, ctx)
  const int32_t* table = tables + table_offset[row];
  for (size_t d = threadIdx.x; d < hd; d += kThreads) q_s[d] = q[row * q_stride + h * hd + d];
  __syncthreads();

  float acc[kMaxDimsPerThread] = {0.0f, 0.0f};
  float m = -INFINITY, l = 0.0f;
  for (int base = lo; base < ctx; base += kThreads) {
    const int t = base + static_cast<int>(threadIdx.x);
    float s = -INFINITY;
    float vs = 1.0f;  // the value row's scale (fp8), folded into p for P.V
    if (t < ctx) {
      const int32_t slot = table[t / bs] * bs + t % bs;
      slot_s[threadIdx.x] = slot;
      const TC* k = kc + static_cast<size_t>(slot) * stride + g * hd;
      float dot = 0.0f;
      for (size_t d = 0; d < hd; ++d) dot = __fmaf_rn(q_s[d], dev::ld(k + d), dot);
      s = dot * dev::kv_scale(kc, static_cast<size_t>(slot), stride, width, static_cast<int>(g)) *
          scale;
      vs = dev::kv_scale(vc, static_cast<size_t>(slot), stride, width, static_cast<int>(g));
    }
    const float tmax = dev::block_max(s, scratch);
    const float m_new = fmaxf(m, tmax);
    const float alpha = expf(m - m_new);
    const float p = t < ctx ? expf(s - m_new) : 0.0f;
    p_s[threadIdx.x] = p * vs;
    const float psum = dev::block_sum(p, scratch);  // synchronises: p_s, slot_s complete
    l = l * alpha + psum;
    m = m_new;
    const int n = min(kThreads, ctx - base);
#pragma unroll
    for (int i = 0; i < kMaxDimsPerThread; ++i) {
      const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
      if (d >= hd) break;
      float a = acc[i] * alpha;
      for (int j = 0; j < n; ++j)
        a = __fmaf_rn(p_s[j], dev::ld(vc + static_cast<size_t>(slot_s[j]) * stride + g * hd + d),
                      a);
      acc[i] = a;
    }
    __syncthreads();  // p_s / slot_s are rewritten by the next tile
  }
  const float inv = 1.0f / l;
  TO* o = out + row * heads * hd + h * hd;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerThread; ++i) {
    const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
    if (d < hd) dev::st(o + d, acc[i] * inv);
  }
}

constexpr int kGqaWarps = 4;
constexpr int kMaxGroup = 8;  // query heads of one KV head per block
// The shortest slice of a split row: one 32-key tile per warp.
constexpr int kMinSlice = kGqaWarps * 32;

// q_s rows are 16-byte aligned (head_dim % 8 == 0): float4 broadcast reads.
template <int N>
__device__ __forceinline__ void lds(const float* p, float (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; i += 4) {
    const float4 a = *reinterpret_cast<const float4*>(p + i);
    v[i] = a.x, v[i + 1] = a.y, v[i + 2] = a.z, v[i + 3] = a.w;
  }
}

// GQA-aware paged attention (the fast path). Block (query row, KV head x chunk of up to 8
// of its query heads, slice of the context): the keys and values are read once for all
// the query heads that share them. Each warp takes tiles of 32 keys: lane j scores key j
// against every head (16-byte loads of its key row, q broadcast from shared memory), an
// online softmax per head across the warp, then P·V with lane l owning DPL output
// dimensions (coalesced value rows). The 4 warps' states are merged at the end.
//
// Split over the sequence: the grid has, per (row, KV head), a pool of head chunks of
// hpb_min query heads x `splits` slices, planned on the host for the longest context the
// launch may see (a CUDA graph plans for the model's longest). Each row decides on the
// device, from its own ctx_len, how it uses the pool: nmax = ctx / kMinSlice slices at
// most, in chunks of the fewest heads per block (from hpb_min, doubling) whose chunks
// can all take nmax slices, else chunks of up to 8 heads sharing the pool, n slices of
// equal length (a multiple of 32) each. Blocks past chunks x n return at once; a row of
// n = 1 writes its output directly (the heads of a block do not change its bits). With n > 1
// each slice writes its unnormalised state (acc, m, l) to `partial`, then counts itself
// in the row's arrival counter; the last to arrive merges the n states, writes the
// output and sets the counter back to zero for the next launch (the counters start
// zeroed: the workspace is zero-filled when allocated). No second kernel.
// FIXED: head_dim == 32 * DPL, a compile-time loop bound (every key load of a lane in
// flight at once); else the loops run to the runtime head_dim.
// TC / TO / stride: as simple_attention_kernel's.
template <class TC, class TO, int DPL, bool FIXED>
__global__ void __launch_bounds__(kGqaWarps * 32)
    gqa_attention_kernel(const float* q, size_t q_stride, const TC* kc, const TC* vc, size_t stride,
                         const int32_t* ctx_len, const int32_t* table_offset, const int32_t* tables,
                         const int32_t* row_index, int32_t bs, int heads, int kv_heads, int hd_rt,
                         float scale, TO* out, int hpb_min, int splits, float* partial,
                         unsigned int* counters, int window) {
  const int hd = FIXED ? 32 * DPL : hd_rt;
  extern __shared__ float4 smem4[];
  float* q_s = reinterpret_cast<float*>(smem4);      // [kMaxGroup][hd]
  float* p_s = q_s + kMaxGroup * hd;                 // [warps][kMaxGroup][32]
  float* acc_s = p_s + kGqaWarps * kMaxGroup * 32;   // [warps][kMaxGroup][hd]
  float* ml_s = acc_s + kGqaWarps * kMaxGroup * hd;  // [warps][kMaxGroup][2]
  constexpr int KV = 16 / sizeof(TC);                // key elements per load
  const int group = heads / kv_heads;
  const int gchunks = (group + hpb_min - 1) / hpb_min;  // head chunks per KV head in the grid
  const int g = static_cast<int>(blockIdx.y) / gchunks, yc = static_cast<int>(blockIdx.y) % gchunks;
  // prow: the launch's row (its slice states and counter), row: the query row.
  const size_t prow = blockIdx.x;
  const size_t row = row_index != nullptr ? static_cast<size_t>(row_index[prow]) : prow;
  // The row's keys: [lo, ctx_end), ctx_all of them (the window's in a windowed layer).
  const int ctx_end = ctx_len[row];
  const int lo = window > 0 ? max(0, ctx_end - window) : 0;
  const int ctx_all = ctx_end - lo;
  // The row's plan: hpb query heads per block in `chunks` chunks, n slices each.
  int hpb = hpb_min, chunk = yc, chunks = gchunks, slice = 0;
  int begin = lo, end = ctx_end, n = 1;
  if (splits > 1 && ctx_all > kMinSlice) {
    const int pool = gchunks * splits;  // the blocks of (row, KV head)
    const int nmax = (ctx_all + kMinSlice - 1) / kMinSlice;
    // The fewest heads per block whose chunks can all take nmax slices; else the most
    // heads per block and as many slices as the pool holds.
    while (hpb < kMaxGroup && hpb < group && chunks * nmax > pool) {
      hpb *= 2;
      chunks = (group + hpb - 1) / hpb;
    }
    n = min(nmax, pool / chunks);
    const int per = ((ctx_all + n - 1) / n + 31) / 32 * 32;
    n = (ctx_all + per - 1) / per;  // rounding the length up may leave fewer
    const int j = yc * splits + static_cast<int>(blockIdx.z);
    chunk = j / n;
    slice = j % n;
    if (chunk >= chunks) return;  // the whole block: no barrier reached
    begin = lo + slice * per;
    end = min(ctx_end, begin + per);
  } else if (blockIdx.z > 0) {
    return;
  }
  const int h0 = g * group + chunk * hpb;
  const int nh = min(hpb, group - chunk * hpb);
  const int32_t* table = tables + table_offset[row];
  for (int i = static_cast<int>(threadIdx.x); i < nh * hd; i += blockDim.x)
    q_s[i] = q[row * q_stride + static_cast<size_t>(h0) * hd + i] * scale;
  __syncthreads();

  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t width = static_cast<size_t>(kv_heads) * hd;
  const TC* kbase = kc + static_cast<size_t>(g) * hd;
  const TC* vbase = vc + static_cast<size_t>(g) * hd;
  const int d0 = lane * DPL;
  float m[kMaxGroup], l[kMaxGroup], acc[kMaxGroup][DPL];
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
#pragma unroll
    for (int u = 0; u < DPL; ++u) acc[h][u] = 0.0f;
  }
  float* pw = p_s + warp * kMaxGroup * 32;
  for (int base = begin + warp * 32; base < end; base += kGqaWarps * 32) {
    const int t = base + lane;
    const bool valid = t < end;
    int slot = 0;
    float s[kMaxGroup];
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) s[h] = 0.0f;
    float vs = 1.0f;  // the value row's scale (fp8), folded into p for P.V
    if (valid) {
      slot = table[t / bs] * bs + t % bs;
      const TC* kr = kbase + static_cast<size_t>(slot) * stride;
      // Up to 8 loads of the key row in flight before the first use.
#pragma unroll
      for (int d = 0; d < hd; d += 8 * KV) {
        uint4 raw[8];
#pragma unroll
        for (int c = 0; c < 8; ++c)
          if (d + c * KV < hd) raw[c] = dev::ld16(kr + d + c * KV);
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          if (d + c * KV < hd) {
            float kv[KV];
            dev::unpack16(raw[c], kv);
#pragma unroll
            for (int h = 0; h < kMaxGroup; ++h) {
              if (h < nh) {
                float qv[KV];
                lds<KV>(q_s + h * hd + d + c * KV, qv);
#pragma unroll
                for (int u = 0; u < KV; ++u) s[h] = __fmaf_rn(qv[u], kv[u], s[h]);
              }
            }
          }
        }
      }
      if constexpr (dev::is_fp8_kv<TC>) {
        const float ks = dev::kv_scale(kc, static_cast<size_t>(slot), stride, width, g);
#pragma unroll
        for (int h = 0; h < kMaxGroup; ++h) s[h] *= ks;
        vs = dev::kv_scale(vc, static_cast<size_t>(slot), stride, width, g);
      }
    }
#pragma unroll
    for (int h = 0; h < kMaxGroup; ++h) {
      if (h < nh) {  // block-uniform: every lane takes part in the shuffles
        const float sv = valid ? s[h] : -INFINITY;
        const float m_new = fmaxf(m[h], dev::warp_max(sv));
        const float alpha = expf(m[h] - m_new);
        const float p = valid ? expf(sv - m_new) : 0.0f;
        l[h] = l[h] * alpha + p;  // this lane's share of the sum
#pragma unroll
        for (int u = 0; u < DPL; ++u) acc[h][u] *= alpha;
        m[h] = m_new;
        pw[h * 32 + lane] = p * vs;
      }
    }
    // P·V, 8 value rows in flight at a time. Keys past the tile's end have p = 0 and read
    // lane 0's value row (a key of this tile, so inside the window and written: a NaN
    // there is the output's anyway), so whole groups of 8 run. Not slot 0: that block may
    // be freed or hold anything (0 x NaN is NaN).
    const int slot0 = __shfl_sync(0xffffffffu, slot, 0);
    if (!valid) slot = slot0;
    __syncwarp();
    const int n = min(32, end - base);
    for (int j0 = 0; j0 < n; j0 += 8) {
      int sj[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) sj[u] = __shfl_sync(0xffffffffu, slot, j0 + u);
      if (d0 < hd) {
        float v[8][DPL];
#pragma unroll
        for (int u = 0; u < 8; ++u)
          dev::ldv<DPL>(vbase + static_cast<size_t>(sj[u]) * stride + d0, v[u]);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
#pragma unroll
          for (int h = 0; h < kMaxGroup; ++h) {
            if (h < nh) {
              const float p = pw[h * 32 + j0 + u];
#pragma unroll
              for (int e = 0; e < DPL; ++e) acc[h][e] = __fmaf_rn(p, v[u][e], acc[h][e]);
            }
          }
        }
      }
    }
    __syncwarp();
  }
  // Merge the warps: state of warp w, head h at acc_s[(w * kMaxGroup + h) * hd].
#pragma unroll
  for (int h = 0; h < kMaxGroup; ++h) {
    if (h < nh) {
      const float lt = dev::warp_sum(l[h]);
      float* a = acc_s + (warp * kMaxGroup + h) * hd;
      if (d0 < hd) {
#pragma unroll
        for (int u = 0; u < DPL; ++u) a[d0 + u] = acc[h][u];
      }
      if (lane == 0) {
        ml_s[(warp * kMaxGroup + h) * 2] = m[h];
        ml_s[(warp * kMaxGroup + h) * 2 + 1] = lt;
      }
    }
  }
  __syncthreads();
  for (int i = static_cast<int>(threadIdx.x); i < nh * hd; i += blockDim.x) {
    const int h = i / hd, d = i % hd;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < kGqaWarps; ++w) mx = fmaxf(mx, ml_s[(w * kMaxGroup + h) * 2]);
    float a = 0.0f, lsum = 0.0f;
    if (mx != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kGqaWarps; ++w) {
        const float mw = ml_s[(w * kMaxGroup + h) * 2];
        const float e = mw == -INFINITY ? 0.0f : expf(mw - mx);
        lsum += ml_s[(w * kMaxGroup + h) * 2 + 1] * e;
        a += acc_s[(w * kMaxGroup + h) * hd + d] * e;
      }
    }
    const size_t head = static_cast<size_t>(h0 + h);
    if (n > 1) {
      float* pp =
          partial + ((prow * heads + head) * gchunks * splits + slice) * dev::partial_stride(hd);
      pp[d] = a;
      if (d == 0) {
        pp[hd] = mx;
        pp[hd + 1] = lsum;
      }
    } else {
      dev::st(out + (row * heads + head) * hd + d, a / lsum);
    }
  }
  if (n == 1) return;
  if (!dev::last_to_arrive(counters + prow * gridDim.y + g * gchunks + chunk, n)) return;
  dev::combine_slices<TO, kMaxGroup>(partial, prow, row, heads, h0, nh, hd, gchunks * splits, n,
                                     q_s, out);
}

constexpr int kMaxSplits = 256;

bool gqa_ok(const attention_args& a) {
  // fp8 rows: 16-element key loads.
  return a.tiled && a.head_dim % (a.kv_fp8 ? 16 : 8) == 0;
}

// Rows the GQA kernel runs: those listed in row_index, or all.
size_t gqa_rows(const attention_args& a) {
  return a.row_index != nullptr ? a.index_rows : a.rows;
}

// Listed rows (next to prefill tiles) split like any rows; CONCLAVE_DECODE_SPLIT_LISTED=0
// runs them whole, as before 2026-12-07 (A/B, and a way back: this was written without a
// GPU to run it on).
bool split_allowed(const attention_args& a) {
  static const bool listed = kernel_switch_on("CONCLAVE_DECODE_SPLIT_LISTED");
  return gqa_rows(a) > 0 && (a.row_index == nullptr || listed);
}

// A launch of fewer (row, head chunk) blocks than this (a quarter of the SMs) gives each
// block fewer query heads: at batch 1 a block of 8 heads is one warp's ~8K dependent
// instructions per 32-key tile, latency-bound with most SMs idle.
constexpr size_t kMinBlocks = 32;

// The grid's query heads per block (a power of two, at most kMaxGroup); a row with a
// long context takes more per block on the device (fewer re-reads of its keys).
int heads_per_block(const attention_args& a) {
  int hpb = kMaxGroup;
  if (!gqa_ok(a) || a.row_index != nullptr || a.kv_heads == 0) return hpb;
  const size_t group = a.heads / a.kv_heads;
  while (hpb > 1 &&
         a.rows * a.kv_heads * ((group + static_cast<size_t>(hpb) - 1) / hpb) < kMinBlocks)
    hpb /= 2;
  return hpb;
}

// Head chunks per KV head in the grid.
size_t head_chunks(const attention_args& a) {
  const size_t group = a.heads / a.kv_heads, hpb = static_cast<size_t>(heads_per_block(a));
  return (group + hpb - 1) / hpb;
}

size_t gqa_smem_floats(size_t hd) {
  return kMaxGroup * hd + kGqaWarps * kMaxGroup * 32 + kGqaWarps * kMaxGroup * hd +
         kGqaWarps * kMaxGroup * 2;
}

size_t gqa_smem_bytes(size_t hd) {
  return gqa_smem_floats(hd) * sizeof(float);
}

// Blocks of one launch at which the split stops paying: about 4 per SM.
size_t split_target() {
  return 4 * static_cast<size_t>(current_sm_count());
}

// Slices of the context per (row, KV head chunk) in the grid: enough blocks for about 4
// per SM, each slice at least one 32-key tile per warp of the longest context. A row's
// pool (head chunks x slices) is at most kMaxSplits and what the combine's weights fit
// in the kernel's shared memory. The rows' own contexts decide on the device how the
// pool is used.
int splits_for(const attention_args& a) {
  if (!gqa_ok(a) || a.kv_heads == 0 || a.max_ctx <= kMinSlice || !split_allowed(a)) return 1;
  const size_t chunks = head_chunks(a);
  const size_t blocks = gqa_rows(a) * a.kv_heads * chunks;
  const size_t target = split_target();
  if (blocks >= target) return 1;
  size_t s = (target + blocks - 1) / blocks;
  s = std::min(s, (static_cast<size_t>(a.max_ctx) + kMinSlice - 1) / kMinSlice);
  const size_t pool_cap =
      std::min<size_t>(kMaxSplits, (gqa_smem_floats(a.head_dim) - kMaxGroup) / kMaxGroup);
  s = std::min(s, pool_cap / chunks);
  return static_cast<int>(std::max<size_t>(s, 1));
}

// The tensor-core decode kernel (decode_attention.cu) for this launch.
bool mma_ok(const attention_args& a) {
  return a.tiled && a.decode_mma && a.t == elem::bf16 && a.q_stride % 2 == 0 &&
         decode_mma_shape_ok(a.heads, a.kv_heads, a.head_dim);
}

// Its slices per (row, KV head) in the grid: one wave of blocks (every block of a split row
// has the same length; `per_sm` of them an SM, decode_mma_blocks_per_sm), each slice at
// least kMinSlice keys of the longest context. The workspace is sized for the most blocks
// an SM any of its kernels takes, so that a workspace sized before the cache type is known
// fits.
int mma_splits_for(const attention_args& a, size_t per_sm = kDecodeMmaMostBlocksPerSm) {
  if (!decode_mma_shape_ok(a.heads, a.kv_heads, a.head_dim) || a.max_ctx <= kMinSlice ||
      !split_allowed(a))
    return 1;
  const size_t blocks = gqa_rows(a) * a.kv_heads;
  const size_t target = per_sm * static_cast<size_t>(current_sm_count());
  if (blocks >= target) return 1;
  // Rounded down: rounding up put a second, nearly full wave behind the first (64 rows x 4
  // KV heads on 132 SMs: two slices each, 512 blocks for 264 places).
  // CONCLAVE_DECODE_ONE_WAVE=0 rounds up as before (A/B).
  static const bool one_wave = kernel_switch_on("CONCLAVE_DECODE_ONE_WAVE");
  size_t s = one_wave ? std::max<size_t>(target / blocks, 1) : (target + blocks - 1) / blocks;
  s = std::min(s, (static_cast<size_t>(a.max_ctx) + kMinSlice - 1) / kMinSlice);
  s = std::min<size_t>(s, kMaxSplits);
  return static_cast<int>(std::max<size_t>(s, 1));
}

// The workspace starts with the arrival counters, one per (row, head chunk) of a split
// launch: fewer than split_target(), whatever the launch, so that every launch sharing a
// workspace finds its counters at the same place (and zero). The slice states follow.
size_t counter_floats() {
  return (split_target() + 7) / 8 * 8;
}

}  // namespace

size_t attention_workspace_floats(const attention_args& a) {
  // Enough for either kernel: the GQA kernel's plan, and the tensor-core kernel's where
  // the shape allows it.
  const int splits = splits_for(a), mma = mma_splits_for(a);
  const size_t gqa = splits > 1 ? counter_floats() + gqa_rows(a) * a.heads * head_chunks(a) *
                                                         static_cast<size_t>(splits) *
                                                         dev::partial_stride(a.head_dim)
                                : 0;
  const size_t tc = mma > 1 ? counter_floats() + gqa_rows(a) * a.heads * static_cast<size_t>(mma) *
                                                     dev::partial_stride(a.head_dim)
                            : 0;
  return std::max(gqa, tc);
}

namespace {

// The cache's row length in elements of TC.
template <class TC>
size_t row_stride(const attention_args& a) {
  return dev::is_fp8_kv<TC> ? a.kv_row_bytes : a.kv_heads * a.head_dim;
}

template <class TC, class TO>
void launch_simple(const attention_args& a, float scale, stream_t s) {
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
  simple_attention_kernel<TC, TO><<<grid, kThreads, a.head_dim * sizeof(float), s>>>(
      a.q, a.q_stride, static_cast<const TC*>(a.k_cache), static_cast<const TC*>(a.v_cache),
      row_stride<TC>(a), a.ctx_len, a.table_offset, a.block_tables, a.block_size, a.heads,
      a.kv_heads, a.head_dim, scale, a.window, static_cast<TO*>(a.out));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

template <class TC, class TO, int DPL, bool FIXED>
void launch_gqa_fixed(const attention_args& a, float scale, int splits, stream_t s) {
  const size_t smem = gqa_smem_bytes(a.head_dim);
  if (smem > 48 * 1024) {
    // Not during graph capture: an eager launch sets the attribute first.
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CONCLAVE_CUDA_CHECK(cudaStreamIsCapturing(s, &cs));
    if (cs == cudaStreamCaptureStatusNone) {
      CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(gqa_attention_kernel<TC, TO, DPL, FIXED>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
    }
  }
  const dim3 grid(static_cast<unsigned>(gqa_rows(a)),
                  static_cast<unsigned>(a.kv_heads * head_chunks(a)),
                  static_cast<unsigned>(splits));
  gqa_attention_kernel<TC, TO, DPL, FIXED><<<grid, kGqaWarps * 32, smem, s>>>(
      a.q, a.q_stride, static_cast<const TC*>(a.k_cache), static_cast<const TC*>(a.v_cache),
      row_stride<TC>(a), a.ctx_len, a.table_offset, a.block_tables, a.row_index, a.block_size,
      static_cast<int>(a.heads), static_cast<int>(a.kv_heads), static_cast<int>(a.head_dim), scale,
      static_cast<TO*>(a.out), heads_per_block(a), splits,
      splits > 1 ? a.workspace + counter_floats() : nullptr,
      splits > 1 ? reinterpret_cast<unsigned int*>(a.workspace) : nullptr, a.window);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

template <class TC, class TO, int DPL>
void launch_gqa_dpl(const attention_args& a, float scale, int splits, stream_t s) {
  if (a.head_dim == 32 * DPL) {
    launch_gqa_fixed<TC, TO, DPL, true>(a, scale, splits, s);
  } else {
    launch_gqa_fixed<TC, TO, DPL, false>(a, scale, splits, s);
  }
}

template <class TC, class TO>
void launch_gqa(const attention_args& a, float scale, stream_t s) {
  if (gqa_rows(a) == 0) return;
  const int splits = a.workspace != nullptr ? splits_for(a) : 1;
  if (a.head_dim <= 32) {
    launch_gqa_dpl<TC, TO, 1>(a, scale, splits, s);
  } else if (a.head_dim <= 64) {
    launch_gqa_dpl<TC, TO, 2>(a, scale, splits, s);
  } else if (a.head_dim <= 128) {
    launch_gqa_dpl<TC, TO, 4>(a, scale, splits, s);
  } else {
    launch_gqa_dpl<TC, TO, 8>(a, scale, splits, s);
  }
}

void launch_mma(const attention_args& a, float scale, stream_t s) {
  const int splits = a.workspace != nullptr ? mma_splits_for(a, decode_mma_blocks_per_sm(a)) : 1;
  decode_mma_attention(a, scale, splits, splits > 1 ? a.workspace + counter_floats() : nullptr,
                       splits > 1 ? reinterpret_cast<unsigned int*>(a.workspace) : nullptr, s);
}

}  // namespace

void paged_attention(const attention_args& a, stream_t s) {
  if (a.rows == 0) return;
  if (a.head_dim == 0 || a.head_dim > kThreads * kMaxDimsPerThread || a.head_dim % 2 != 0)
    throw std::invalid_argument("paged_attention: head_dim must be even and at most 256");
  if (a.kv_heads == 0 || a.heads % a.kv_heads != 0)
    throw std::invalid_argument("paged_attention: heads must be a multiple of kv_heads");
  if (a.window < 0) throw std::invalid_argument("paged_attention: window must be >= 0");
  const float scale = 1.0f / sqrtf(static_cast<float>(a.head_dim));
  if (a.kv_fp8) {
    if (a.t != elem::bf16)
      throw std::invalid_argument("paged_attention: an fp8 KV cache runs with bf16 activations");
    if (a.kv_row_bytes < a.kv_heads * (a.head_dim + 4) || a.kv_row_bytes % 16 != 0)
      throw std::invalid_argument("paged_attention: bad fp8 KV row length");
    using dev::bf16;
    using dev::fp8kv;
    if (mma_ok(a)) {
      launch_mma(a, scale, s);
    } else if (gqa_ok(a)) {
      launch_gqa<fp8kv, bf16>(a, scale, s);
    } else {
      launch_simple<fp8kv, bf16>(a, scale, s);
    }
    return;
  }
  if (mma_ok(a)) {
    launch_mma(a, scale, s);
    return;
  }
  if (gqa_ok(a)) {
    CONCLAVE_DISPATCH_ELEM(a.t, T, (launch_gqa<T, T>(a, scale, s)));
  } else {
    CONCLAVE_DISPATCH_ELEM(a.t, T, (launch_simple<T, T>(a, scale, s)));
  }
}

}  // namespace conclave::gpu::cuda
