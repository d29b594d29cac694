#include <algorithm>
#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/decode_attention.h"
#include "gpu/cuda/decode_finish.cuh"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kernel_switch.h"
#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 4;       // 16 keys of each stage each
constexpr int kTile = 64;       // keys per pipeline stage
constexpr int kMaxHeads = 16;   // query heads per KV head: the mma's 16 rows
constexpr int kMinSlice = 128;  // the shortest slice of a split row (attention.cu plans it)

using dev::bf16;

template <int HD>
__host__ __device__ constexpr int stages() {
  return HD == 128 ? 3 : 4;
}

// Shared memory. bf16 cache: the pipeline, ST stages of K [kTile][LD] then ST of V, rows
// padded by 16 bytes so that ldmatrix's 8 row addresses fall in different banks. fp8
// cache: ST stages of K [kTile][HD] bytes, then V, then the K and V scales [ST][kTile],
// then each warp's bf16 copy of its 16 keys and values [kWarps][2][16][LD]. At the end
// the same memory holds the warps' states for their merge, then the split's weights.
template <int HD, bool FP8>
struct layout {
  static constexpr int LD = HD + 8, ST = stages<HD>();
  static constexpr size_t stage_bytes = FP8 ? size_t{kTile} * HD : size_t{kTile} * LD * 2;
  static constexpr size_t k_at = 0, v_at = ST * stage_bytes, scale_at = 2 * ST * stage_bytes;
  static constexpr size_t scratch_at = scale_at + (FP8 ? 2 * ST * kTile * sizeof(float) : 0);
  static constexpr size_t pipe = scratch_at + (FP8 ? size_t{kWarps} * 2 * 16 * LD * 2 : 0);
  static constexpr size_t merge = size_t{kWarps} * kMaxHeads * (HD + 2) * sizeof(float);
  static constexpr size_t bytes = pipe > merge ? pipe : merge;
};

// 16 e4m3 bytes (4 words) -> 16 bf16 (8 words), exactly: e4m3 -> f16 is exact, so is
// f16 -> f32 -> bf16 (3 mantissa bits, exponents well inside bf16's). Four conversion
// instructions per pair of values, on the SM's narrow conversion pipe.
__device__ __forceinline__ void fp8x16_to_bf16_cvt(const uint4& in, uint4& lo, uint4& hi) {
  const uint32_t w[4] = {in.x, in.y, in.z, in.w};
  uint32_t o[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float f[4];
    dev::fp8x4_to_float_cvt(w[i], f);
    o[2 * i] = dev::pack_bf16(f[0], f[1]);
    o[2 * i + 1] = dev::pack_bf16(f[2], f[3]);
  }
  lo = make_uint4(o[0], o[1], o[2], o[3]);
  hi = make_uint4(o[4], o[5], o[6], o[7]);
}

// The same widening as fp8x16_to_bf16_cvt, bit for bit, on the integer and fp32 pipes
// (quant_elem.cuh's e4m3_byte_to_float): per value a byte move, a shift, a mask and a
// multiply; per pair one byte move packs the two upper halves
// (CONCLAVE_DECODE_FP8_FAST_CVT, on by default).
__device__ __forceinline__ void fp8x16_to_bf16_int(const uint4& in, uint4& lo, uint4& hi) {
  using dev::fp8kv_x2_to_bf16x2;
  lo = make_uint4(fp8kv_x2_to_bf16x2(in.x, false), fp8kv_x2_to_bf16x2(in.x, true),
                  fp8kv_x2_to_bf16x2(in.y, false), fp8kv_x2_to_bf16x2(in.y, true));
  hi = make_uint4(fp8kv_x2_to_bf16x2(in.z, false), fp8kv_x2_to_bf16x2(in.z, true),
                  fp8kv_x2_to_bf16x2(in.w, false), fp8kv_x2_to_bf16x2(in.w, true));
}

template <bool FAST>
__device__ __forceinline__ void fp8x16_to_bf16(const uint4& in, uint4& lo, uint4& hi) {
  if constexpr (FAST) {
    fp8x16_to_bf16_int(in, lo, hi);
  } else {
    fp8x16_to_bf16_cvt(in, lo, hi);
  }
}

// Both widenings of every e4m3 code (16 codes a thread, 16 threads), to bf16 and to fp32:
// mismatching codes counted in *bad (NaN codes skipped).
__global__ void fp8_widen_check_kernel(unsigned int* bad) {
  const uint32_t c0 = threadIdx.x * 16;
  uint4 in;
  uint32_t* wd = &in.x;
  for (int i = 0; i < 4; ++i)
    wd[i] = (c0 + 4 * i) | (c0 + 4 * i + 1) << 8 | (c0 + 4 * i + 2) << 16 | (c0 + 4 * i + 3) << 24;
  uint4 a_lo, a_hi, b_lo, b_hi;
  fp8x16_to_bf16_cvt(in, a_lo, a_hi);
  fp8x16_to_bf16_int(in, b_lo, b_hi);
  const uint32_t* a = &a_lo.x;
  const uint32_t* b = &b_lo.x;
  const uint32_t* ah = &a_hi.x;
  const uint32_t* bh = &b_hi.x;
  for (int k = 0; k < 16; ++k) {
    const uint32_t code = c0 + k;
    if ((code & 0x7f) == 0x7f) continue;
    const uint32_t wa = k < 8 ? a[k / 2] : ah[(k - 8) / 2];
    const uint32_t wb = k < 8 ? b[k / 2] : bh[(k - 8) / 2];
    const uint32_t sh = (k & 1) * 16;
    if (((wa >> sh) & 0xffff) != ((wb >> sh) & 0xffff)) atomicAdd(bad, 1u);
  }
  // The fp32 widenings against the instructions': the fp8 cache's (prefill loads; NaN
  // codes skipped) and the general one (weights, GQA kernel; NaN codes included).
  for (int i = 0; i < 4; ++i) {
    float fa[4], fb[4], fc[4];
    dev::fp8x4_to_float_cvt(wd[i], fa);
    dev::e4m3x4_to_float(wd[i], fb);
    dev::fp8x4_to_float(wd[i], fc);
    for (int k = 0; k < 4; ++k) {
      if (((c0 + 4 * i + k) & 0x7f) != 0x7f && __float_as_uint(fa[k]) != __float_as_uint(fb[k]))
        atomicAdd(bad, 1u);
      if (__float_as_uint(fa[k]) != __float_as_uint(fc[k])) atomicAdd(bad, 1u);
    }
  }
}

// One block per (query row, KV head, slice of the context). The group's query heads are
// the rows of an m16n8k16 mma (rows past the group are zero): S = Q K^T per 16 keys, then
// O += P V, as FlashAttention-2 does for a tile of queries. Q and P enter the bf16 mma
// as two bf16 parts each (hi + lo), so scores and weights keep ~16 mantissa bits: the
// tensor cores have time to spare here, the kernel waits on memory.
// Keys and values stream through shared memory by cp.async, ST stages deep: a stage of
// kTile keys per KV head (32 KiB at head_dim 128), warp w taking keys 16w .. 16w + 15
// of each; the 4 warps' softmax states are merged at the end. Scores are in log2 units
// (q scaled by scale * log2(e)); slice states are written in natural units, as
// combine_slices (attention_split.cuh) expects.
// FP8 (kv_elem.cuh's rows: e4m3 bytes, then an fp32 scale per KV head): the stages hold the
// raw bytes and the keys' scales; each warp widens its 16 keys and values to bf16
// (exactly) in its own corner before the mma, and applies the scales to the scores and
// to the weights of P.V, as the CPU twin does.
// Split: as the GQA kernel's (attention.cu), each row plans its slices from its own
// ctx_len, n <= splits slices of a multiple of kTile keys; rows of at most kMinSlice keys
// (or windows) run whole; the last slice to arrive merges.
template <int HD, bool FP8, bool FAST_CVT>
__global__ void __launch_bounds__(kWarps * 32)
    decode_mma_kernel(const float* q, size_t q_stride, const char* kc, const char* vc,
                      size_t row_bytes, const int32_t* ctx_len, const int32_t* table_offset,
                      const int32_t* tables, const int32_t* row_index, int32_t bs, int heads,
                      int kv_heads, float qscale, bf16* out, int splits, float* partial,
                      unsigned int* counters, int window) {
  using L = layout<HD, FP8>;
  constexpr int LD = L::LD, ST = L::ST;
  extern __shared__ uint4 smem_u4[];
  auto* smem = reinterpret_cast<char*>(smem_u4);
  auto* ksc_s = reinterpret_cast<float*>(smem + L::scale_at);  // fp8: [ST][kTile]
  float* vsc_s = ksc_s + ST * kTile;
  dev::pdl_wait();
  dev::pdl_trigger();
  dev::decode_block blk;
  if (!dev::decode_block_of<kTile>(ctx_len, table_offset, tables, row_index, heads, kv_heads,
                                   window, splits, kMinSlice, blk))
    return;
  const int g = blk.g, group = blk.group, h0 = blk.h0, begin = blk.sl.begin, end = blk.sl.end;
  const size_t row = blk.row;
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int32_t* table = blk.table;
  const int ntiles = blk.ntiles;

  // Stage `buf` <- keys and values [begin + it * kTile, +kTile) of KV head g; keys past
  // `end` are zero-filled without reading the table or the cache.
  auto load = [&](int it, int buf) {
    char* kd = smem + L::k_at + buf * L::stage_bytes;
    char* vd = smem + L::v_at + buf * L::stage_bytes;
    const int base = begin + it * kTile;
    constexpr int kChunks = HD * (FP8 ? 1 : 2) / 16;  // 16-byte chunks of a key's row
    for (int i = tid; i < kTile * kChunks; i += kWarps * 32) {
      const int key = i / kChunks, c = (i % kChunks) * 16;
      const int t = base + key;
      const bool ok = t < end;
      const size_t slot = ok ? static_cast<size_t>(table[t / bs]) * bs + t % bs : 0;
      const size_t src = slot * row_bytes + static_cast<size_t>(g) * HD * (FP8 ? 1 : 2) + c;
      const size_t dst =
          FP8 ? static_cast<size_t>(key) * HD + c : static_cast<size_t>(key) * LD * 2 + c;
      dev::cp_async16(kd + dst, kc + src, ok);
      dev::cp_async16(vd + dst, vc + src, ok);
    }
    if constexpr (FP8) {
      dev::decode_fp8_scales<kTile>(tid, base, end, table, bs, row_bytes,
                                    static_cast<size_t>(kv_heads) * HD + 4 * g, kc, vc,
                                    ksc_s + buf * kTile, vsc_s + buf * kTile);
    }
    dev::cp_async_commit();
  };
  dev::decode_pipeline_start<ST>(ntiles, load);

  // Q fragments (the mma's A: rows ra = lane / 4 and rb = ra + 8 of the group), scaled.
  const int ra = lane >> 2, rb = ra + 8;
  uint32_t qh[HD / 16][4], ql[HD / 16][4];
  {
    const float* qrow = q + row * q_stride + static_cast<size_t>(h0) * HD;
    auto q2 = [&](int r, int c) {
      if (r >= group) return make_float2(0.0f, 0.0f);
      const float2 v = *reinterpret_cast<const float2*>(qrow + static_cast<size_t>(r) * HD + c);
      return make_float2(v.x * qscale, v.y * qscale);
    };
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      const int c = ks * 16 + 2 * (lane & 3);
      const float2 a0 = q2(ra, c), b0 = q2(rb, c), a1 = q2(ra, c + 8), b1 = q2(rb, c + 8);
      dev::split_bf16(a0.x, a0.y, qh[ks][0], ql[ks][0]);
      dev::split_bf16(b0.x, b0.y, qh[ks][1], ql[ks][1]);
      dev::split_bf16(a1.x, a1.y, qh[ks][2], ql[ks][2]);
      dev::split_bf16(b1.x, b1.y, qh[ks][3], ql[ks][3]);
    }
  }

  float o[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  for (int it = 0; it < ntiles; ++it) {
    const int buf = dev::decode_pipeline_step<ST>(it, ntiles, load);
    const int kbase = begin + it * kTile + warp * 16;  // this warp's first key
    if (kbase >= end) continue;                        // warp-uniform
    const bf16* ks_;
    const bf16* vs_;
    if constexpr (FP8) {
      // Widen this warp's 16 keys and values into its corner (after its last reads of it).
      auto* kw = reinterpret_cast<bf16*>(smem + L::scratch_at) + warp * 2 * 16 * LD;
      bf16* vw = kw + 16 * LD;
      const char* k8 = smem + L::k_at + buf * L::stage_bytes + warp * 16 * HD;
      const char* v8 = smem + L::v_at + buf * L::stage_bytes + warp * 16 * HD;
      __syncwarp();
#pragma unroll
      for (int i = lane; i < 16 * (HD / 16); i += 32) {
        const int key = i / (HD / 16), c = (i % (HD / 16)) * 16;
        uint4 a, b;
        fp8x16_to_bf16<FAST_CVT>(*reinterpret_cast<const uint4*>(k8 + key * HD + c), a, b);
        *reinterpret_cast<uint4*>(kw + key * LD + c) = a;
        *reinterpret_cast<uint4*>(kw + key * LD + c + 8) = b;
        fp8x16_to_bf16<FAST_CVT>(*reinterpret_cast<const uint4*>(v8 + key * HD + c), a, b);
        *reinterpret_cast<uint4*>(vw + key * LD + c) = a;
        *reinterpret_cast<uint4*>(vw + key * LD + c + 8) = b;
      }
      __syncwarp();
      ks_ = kw;
      vs_ = vw;
    } else {
      ks_ = reinterpret_cast<const bf16*>(smem + L::k_at + buf * L::stage_bytes) + warp * 16 * LD;
      vs_ = reinterpret_cast<const bf16*>(smem + L::v_at + buf * L::stage_bytes) + warp * 16 * LD;
    }
    // fp8: the scales of this thread's 4 keys (2 per n-tile of 8), 1 for bf16.
    float ksc[2][2], vsc[2][2];
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int k = buf * kTile + warp * 16 + nt * 8 + 2 * (lane & 3) + e;
        ksc[nt][e] = FP8 ? ksc_s[k] : 1.0f;
        vsc[nt][e] = FP8 ? vsc_s[k] : 1.0f;
      }
    }
    float sh[2][4] = {}, sl[2][4] = {};
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      uint32_t b[4];
      dev::ldsm_x4(b, ks_ + ((lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 + ((lane >> 3) & 1) * 8);
      dev::mma(sh[0], qh[ks], b[0], b[1]);
      dev::mma(sh[1], qh[ks], b[2], b[3]);
      dev::mma(sl[0], ql[ks], b[0], b[1]);
      dev::mma(sl[1], ql[ks], b[2], b[3]);
    }
    float s[2][4];
    float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool valid = kbase + nt * 8 + 2 * (lane & 3) + e < end;
        s[nt][e] = valid ? (sh[nt][e] + sl[nt][e]) * ksc[nt][e] : -INFINITY;
        s[nt][2 + e] = valid ? (sh[nt][2 + e] + sl[nt][2 + e]) * ksc[nt][e] : -INFINITY;
        mx_a = fmaxf(mx_a, s[nt][e]);
        mx_b = fmaxf(mx_b, s[nt][2 + e]);
      }
    }
    mx_a = dev::quad_max(mx_a);
    mx_b = dev::quad_max(mx_b);
    // The warp's first key is valid, so the maxima are finite.
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    const float al_a = exp2f(m_a - mn_a), al_b = exp2f(m_b - mn_b);  // 0 on the first tile
    m_a = mn_a;
    m_b = mn_b;
    uint32_t ph[4], pl[4];
    float rs_a = 0.0f, rs_b = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const float pa0 = exp2f(s[nt][0] - mn_a), pa1 = exp2f(s[nt][1] - mn_a);
      const float pb0 = exp2f(s[nt][2] - mn_b), pb1 = exp2f(s[nt][3] - mn_b);
      rs_a += pa0 + pa1;
      rs_b += pb0 + pb1;
      // P.V weighs each value row by its scale (fp8); the sums l do not.
      dev::split_bf16(pa0 * vsc[nt][0], pa1 * vsc[nt][1], ph[nt * 2], pl[nt * 2]);
      dev::split_bf16(pb0 * vsc[nt][0], pb1 * vsc[nt][1], ph[nt * 2 + 1], pl[nt * 2 + 1]);
    }
    l_a = l_a * al_a + rs_a;
    l_b = l_b * al_b + rs_b;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      o[dt][0] *= al_a;
      o[dt][1] *= al_a;
      o[dt][2] *= al_b;
      o[dt][3] *= al_b;
    }
#pragma unroll
    for (int dt = 0; dt < HD / 8; dt += 2) {
      uint32_t b[4];
      dev::ldsm_x4_t(b, vs_ + (((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dt * 8 + (lane >> 4) * 8);
      dev::mma(o[dt], ph, b[0], b[1]);
      dev::mma(o[dt + 1], ph, b[2], b[3]);
      dev::mma(o[dt], pl, b[0], b[1]);
      dev::mma(o[dt + 1], pl, b[2], b[3]);
    }
  }
  dev::cp_async_wait<0>();
  __syncthreads();  // the pipeline's memory now holds the merge

  // Merge the warps: state of warp w, query head h at acc_s[(w * kMaxHeads + h) * HD].
  auto* acc_s = reinterpret_cast<float*>(smem_u4);
  float* ml_s = acc_s + kWarps * kMaxHeads * HD;  // [warps][kMaxHeads][2]: m (log2), l
  l_a = dev::quad_sum(l_a);
  l_b = dev::quad_sum(l_b);
  {
    float* aa = acc_s + (warp * kMaxHeads + ra) * HD;
    float* ab = acc_s + (warp * kMaxHeads + rb) * HD;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      const int d = dt * 8 + 2 * (lane & 3);
      *reinterpret_cast<float2*>(aa + d) = make_float2(o[dt][0], o[dt][1]);
      *reinterpret_cast<float2*>(ab + d) = make_float2(o[dt][2], o[dt][3]);
    }
    if ((lane & 3) == 0) {
      ml_s[(warp * kMaxHeads + ra) * 2] = m_a;
      ml_s[(warp * kMaxHeads + ra) * 2 + 1] = l_a;
      ml_s[(warp * kMaxHeads + rb) * 2] = m_b;
      ml_s[(warp * kMaxHeads + rb) * 2 + 1] = l_b;
    }
  }
  dev::decode_finish<HD, kWarps, kMaxHeads>(acc_s, ml_s, blk, heads, kv_heads, out, splits, partial,
                                            counters);
}

template <int HD, bool FP8, bool FAST_CVT = false>
void launch(const attention_args& a, float scale, int splits, float* partial,
            unsigned int* counters, stream_t s) {
  constexpr size_t smem = layout<HD, FP8>::bytes;
  // Every launch, graph captures included (a decode graph may be the kernel's first use on
  // this device; the attribute is not a stream operation, capture allows it).
  CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(decode_mma_kernel<HD, FP8, FAST_CVT>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  const size_t rows = a.row_index != nullptr ? a.index_rows : a.rows;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(a.kv_heads),
                  static_cast<unsigned>(splits));
  constexpr float kLog2e = 1.4426950408889634f;
  launch_pdl(decode_mma_kernel<HD, FP8, FAST_CVT>, grid, dim3(kWarps * 32), smem, s, a.q,
             a.q_stride, static_cast<const char*>(a.k_cache), static_cast<const char*>(a.v_cache),
             FP8 ? a.kv_row_bytes : a.kv_heads * a.head_dim * sizeof(bf16), a.ctx_len,
             a.table_offset, a.block_tables, a.row_index, a.block_size, static_cast<int>(a.heads),
             static_cast<int>(a.kv_heads), scale * kLog2e, static_cast<bf16*>(a.out), splits,
             partial, counters, a.window);
}

template <int HD>
void launch_hd(const attention_args& a, float scale, int splits, float* partial,
               unsigned int* counters, stream_t s) {
  static const bool fast_cvt = kernel_switch_on("CONCLAVE_DECODE_FP8_FAST_CVT");
  if (a.kv_fp8 && fast_cvt) {
    launch<HD, true, true>(a, scale, splits, partial, counters, s);
  } else if (a.kv_fp8) {
    launch<HD, true>(a, scale, splits, partial, counters, s);
  } else {
    launch<HD, false>(a, scale, splits, partial, counters, s);
  }
}

}  // namespace

unsigned int decode_fp8_widen_mismatches() {
  unsigned int* d = nullptr;
  CONCLAVE_CUDA_CHECK(cudaMalloc(&d, sizeof(unsigned int)));
  unsigned int bad = 0;
  CONCLAVE_CUDA_CHECK(cudaMemset(d, 0, sizeof(unsigned int)));
  fp8_widen_check_kernel<<<1, 16>>>(d);
  CONCLAVE_CUDA_LAUNCH_CHECK();
  CONCLAVE_CUDA_CHECK(cudaMemcpy(&bad, d, sizeof bad, cudaMemcpyDeviceToHost));
  CONCLAVE_CUDA_CHECK(cudaFree(d));
  return bad;
}

bool decode_mma_shape_ok(size_t heads, size_t kv_heads, size_t head_dim) {
  return (head_dim == 64 || head_dim == 128) && kv_heads > 0 && heads % kv_heads == 0 &&
         heads / kv_heads <= static_cast<size_t>(kMaxHeads);
}

namespace {

// An fp8 cache's groups of <= 8 heads on the kernel that reads the e4m3 stages straight
// into f16 mma operands (decode_attention_fp8.cu; H100 2026-12-07: 1.96x the 1K step at
// 128K and 2.95x at 256K against 2.14x and 3.21x). CONCLAVE_DECODE_FP8_DIRECT=0: the
// widening kernel below.
bool direct_for(const attention_args& a) {
  static const bool direct = kernel_switch_on("CONCLAVE_DECODE_FP8_DIRECT");
  return a.kv_fp8 && direct && decode_fp8_direct_ok(a.heads, a.kv_heads, a.head_dim);
}

}  // namespace

size_t decode_mma_blocks_per_sm(const attention_args& a) {
  // CONCLAVE_DECODE_FP8_BLOCKS=3: the fp8 kernel's split planned for the three blocks an
  // SM it fits (more slices, more warps in flight; not yet measured); 2, as measured.
  static const size_t fp8_blocks = std::min<size_t>(
      kernel_size_setting("CONCLAVE_DECODE_FP8_BLOCKS", 2), kDecodeMmaMostBlocksPerSm);
  return direct_for(a) ? fp8_blocks : 2;
}

void decode_mma_attention(const attention_args& a, float scale, int splits, float* partial,
                          unsigned int* counters, stream_t s) {
  if (!decode_mma_shape_ok(a.heads, a.kv_heads, a.head_dim))
    throw std::invalid_argument("decode attention (tensor cores): unsupported head shape");
  if (a.q_stride % 2 != 0)
    throw std::invalid_argument("decode attention (tensor cores): q_stride must be even");
  if (splits > 1 && (partial == nullptr || counters == nullptr))
    throw std::invalid_argument("decode attention (tensor cores): a split needs a workspace");
  if ((a.row_index != nullptr ? a.index_rows : a.rows) == 0) return;
  if (a.kv_fp8 && (a.kv_row_bytes < a.kv_heads * (a.head_dim + 4) || a.kv_row_bytes % 16 != 0))
    throw std::invalid_argument("decode attention (tensor cores): bad fp8 KV row length");
  if (direct_for(a)) {
    decode_fp8_direct_attention(a, scale, splits, partial, counters, s);
    return;
  }
  if (a.head_dim == 64) {
    launch_hd<64>(a, scale, splits, partial, counters, s);
  } else {
    launch_hd<128>(a, scale, splits, partial, counters, s);
  }
}

}  // namespace conclave::gpu::cuda
