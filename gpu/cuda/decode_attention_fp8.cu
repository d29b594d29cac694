// The tensor-core decode attention over an fp8 KV cache for groups of at most 8 query
// heads per KV head (decode_attention.h, decode_fp8_direct_attention). decode_attention.cu's
// kernel widens each warp's 16 keys and values to bf16 in a corner of shared memory and
// runs every mma twice (high and low bf16 parts of Q and P); at 256K context that held it
// to about 44 % of the H100's bandwidth. Here the mma operands come straight from the
// staged e4m3 bytes:
// - ldmatrix reads the bytes as b16 pairs, and one cvt.rn.f16x2.e4m3x2 per pair widens
//   them, exactly, to f16 operands: K with the head dimensions permuted inside each
//   16-dimension chunk (Q is loaded with the same permutation), V through ldmatrix.trans,
//   a byte permute splitting each register into an even and an odd dimension.
// - The group's 8 query heads fill the mma's rows 0-7 with the high f16 parts of Q and P
//   and rows 8-15 with what those leave (the low parts): one mma gives both halves of a
//   score, which a thread holds in its c0/c2 (c1/c3), so scores and weights keep about 22
//   bits of mantissa at half the mma count.
// - Q is scaled by a power of two so that its largest element is below 2^14 (f16's range);
//   P.V's weights are p * vscale / V, V the largest value scale the warp has seen, so that
//   they are <= 1; O is kept in units of V and rescaled when V grows, as for the max.
// - The stages' 16-byte chunks are permuted per key (swz) so that the 8 rows an ldmatrix
//   reads fall in different banks; no scratch, so 4 stages (6 at head_dim 64) and three
//   blocks an SM.
// Slices and the end are decode_finish.cuh's, as in decode_attention.cu.
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/decode_attention.h"
#include "gpu/cuda/decode_finish.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/pdl.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 4;       // 16 keys of each stage each
constexpr int kTile = 64;       // keys per pipeline stage
constexpr int kGroup = 8;       // query heads per KV head at most: the mma's rows 0-7
constexpr int kMinSlice = 128;  // as decode_attention.cu's (attention.cu plans the split)

using dev::bf16;

template <int HD>
struct fp8_layout {
  static constexpr int ST = HD == 128 ? 4 : 6;         // pipeline stages
  static constexpr size_t stage = size_t{kTile} * HD;  // bytes: kTile rows of HD e4m3
  static constexpr size_t k_at = 0, v_at = ST * stage, scale_at = 2 * ST * stage;
  static constexpr size_t pipe = scale_at + 2 * ST * kTile * sizeof(float);  // K, V scales
  static constexpr size_t merge = size_t{kWarps} * kGroup * (HD + 2) * sizeof(float);
  static constexpr size_t bytes = pipe > merge ? pipe : merge;
};

/// Where the 16-byte chunk c of a stage's key row `key` is stored: 8 consecutive keys'
/// chunk c land in 8 different 16-byte bank groups (rows are 128 or 64 bytes).
template <int HD>
__device__ __forceinline__ int swz(int key, int c) {
  return HD == 128 ? c ^ (key & 7) : c ^ ((key >> 1) & 3);
}

/// Two e4m3 bytes (the low 16 bits) as an f16 pair, low byte in the low half: exact.
__device__ __forceinline__ uint32_t e4m3x2_to_f16x2(uint32_t two) {
  const __half2_raw h =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(two & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
}

/// (a, b) as the f16 pair `hi` plus the pair of what it leaves (`lo`).
__device__ __forceinline__ void split_f16(float a, float b, uint32_t& hi, uint32_t& lo) {
  const __half2 h = __floats2half2_rn(a, b);
  const float2 back = __half22float2(h);
  const __half2 r = __floats2half2_rn(a - back.x, b - back.y);
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&r);
}

// One block per (query row, KV head, slice of the context), as decode_mma_kernel. Per
// warp and stage, 16 keys: S = Q K^T (two n-tiles of 8 keys, HD / 16 chunks), softmax in
// log2 units (q scaled by scale * log2(e)), O += P V (HD / 8 n-tiles; n-tile 2c + p holds
// dimensions 16c + 2n + p). A thread (lane: row ra = lane / 4, quad position qd = lane % 4)
// holds query head ra: scores of keys 8 nt + 2 qd + {0, 1}, and O at dimensions
// 16c + 4qd + p and 16c + 4qd + 2 + p of n-tile 2c + p.
template <int HD>
__global__ void __launch_bounds__(kWarps * 32, 3)
    decode_fp8_kernel(const float* q, size_t q_stride, const char* kc, const char* vc,
                      size_t row_bytes, const int32_t* ctx_len, const int32_t* table_offset,
                      const int32_t* tables, const int32_t* row_index, int32_t bs, int heads,
                      int kv_heads, float qscale, bf16* out, int splits, float* partial,
                      unsigned int* counters, int window) {
  using L = fp8_layout<HD>;
  constexpr int ST = L::ST, kChunks = HD / 16;
  extern __shared__ uint4 smem_u4[];
  auto* smem = reinterpret_cast<char*>(smem_u4);
  auto* ksc_s = reinterpret_cast<float*>(smem + L::scale_at);  // [ST][kTile]
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
  const int ra = lane >> 2, qd = lane & 3;
  const int32_t* table = blk.table;
  const int ntiles = blk.ntiles;

  // Stage `buf` <- keys and values [begin + it * kTile, +kTile) of KV head g, chunks
  // placed by swz, then their scales; keys past `end` are zero-filled without reading the
  // table or the cache.
  auto load = [&](int it, int buf) {
    char* kd = smem + L::k_at + buf * L::stage;
    char* vd = smem + L::v_at + buf * L::stage;
    const int base = begin + it * kTile;
    for (int i = tid; i < kTile * kChunks; i += kWarps * 32) {
      const int key = i / kChunks, c = i % kChunks;
      const int t = base + key;
      const bool ok = t < end;
      const size_t slot = ok ? static_cast<size_t>(table[t / bs]) * bs + t % bs : 0;
      const size_t src = slot * row_bytes + static_cast<size_t>(g) * HD + c * 16;
      const int dst = key * HD + swz<HD>(key, c) * 16;
      dev::cp_async16(kd + dst, kc + src, ok);
      dev::cp_async16(vd + dst, vc + src, ok);
    }
    static_assert(2 * kTile == kWarps * 32, "a thread per scale");
    dev::decode_fp8_scales<kTile>(tid, base, end, table, bs, row_bytes,
                                  static_cast<size_t>(kv_heads) * HD + 4 * g, kc, vc,
                                  ksc_s + buf * kTile, vsc_s + buf * kTile);
    dev::cp_async_commit();
  };
  dev::decode_pipeline_start<ST>(ntiles, load);

  // Q (the mma's A): row ra the high f16 parts of head ra's q, row ra + 8 the low parts;
  // chunk c's k positions 2qd, 2qd + 1 are dimensions 16c + 4qd + {0, 1}, positions
  // 2qd + 8, 2qd + 9 dimensions 16c + 4qd + {2, 3} (the order ldmatrix gives K's bytes).
  uint32_t qa[kChunks][4];
  float qinv;  // 2^-e: Q was scaled by 2^e
  {
    float qv[kChunks][4];
    float amax = 0.0f;
    const float* qrow = q + row * q_stride + static_cast<size_t>(h0 + ra) * HD + 4 * qd;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      float2 x = make_float2(0.0f, 0.0f), y = x;
      if (ra < group) {
        x = *reinterpret_cast<const float2*>(qrow + 16 * c);
        y = *reinterpret_cast<const float2*>(qrow + 16 * c + 2);
      }
      qv[c][0] = x.x * qscale;
      qv[c][1] = x.y * qscale;
      qv[c][2] = y.x * qscale;
      qv[c][3] = y.y * qscale;
#pragma unroll
      for (int j = 0; j < 4; ++j) amax = fmaxf(amax, fabsf(qv[c][j]));
    }
    amax = dev::warp_max(amax);
    int ex = 0;
    if (amax > 0.0f && amax <= 3.0e38f) frexpf(amax, &ex);  // amax < 2^ex
    const int e = min(max(14 - ex, -100), 100);
    qinv = ldexpf(1.0f, -e);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      split_f16(ldexpf(qv[c][0], e), ldexpf(qv[c][1], e), qa[c][0], qa[c][1]);
      split_f16(ldexpf(qv[c][2], e), ldexpf(qv[c][3], e), qa[c][2], qa[c][3]);
    }
  }

  float o[HD / 8][4];
#pragma unroll
  for (int j = 0; j < HD / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  // m: the running max (log2 units), l: the sum of weights, vmax: the largest value scale
  // of the keys read (O is kept in its units).
  float m = -INFINITY, l = 0.0f, vmax = 0.0f;
  // This lane's ldmatrix row: key lrow of the warp's 16, chunk c + lchunk (matrices: keys
  // 0-7 and 8-15 of chunk c, then of chunk c + 1).
  const int lrow = (lane & 7) + ((lane >> 3) & 1) * 8, lchunk = lane >> 4;
  const int lkey = warp * 16 + lrow;  // its row in the stage
  for (int it = 0; it < ntiles; ++it) {
    const int buf = dev::decode_pipeline_step<ST>(it, ntiles, load);
    const int kbase = begin + it * kTile + warp * 16;  // this warp's first key
    if (kbase >= end) continue;                        // warp-uniform
    const char* ks = smem + L::k_at + buf * L::stage + lkey * HD;
    const char* vs = smem + L::v_at + buf * L::stage + lkey * HD;

    float sacc[2][4] = {};
#pragma unroll
    for (int c = 0; c < kChunks; c += 2) {
      uint32_t r[4];  // keys 0-7 and 8-15 of chunk c, then of chunk c + 1
      dev::ldsm_x4(r, ks + swz<HD>(lkey, c + lchunk) * 16);
      dev::mma_f16(sacc[0], qa[c], e4m3x2_to_f16x2(r[0]), e4m3x2_to_f16x2(r[0] >> 16));
      dev::mma_f16(sacc[1], qa[c], e4m3x2_to_f16x2(r[1]), e4m3x2_to_f16x2(r[1] >> 16));
      dev::mma_f16(sacc[0], qa[c + 1], e4m3x2_to_f16x2(r[2]), e4m3x2_to_f16x2(r[2] >> 16));
      dev::mma_f16(sacc[1], qa[c + 1], e4m3x2_to_f16x2(r[3]), e4m3x2_to_f16x2(r[3] >> 16));
    }
    // Scores of keys 8 nt + 2 qd + e: high part (row ra) + low part (row ra + 8), times
    // the key's scale and 2^-e.
    float s[2][2], vq[2][2];
    float mx = -INFINITY, vm = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int k = nt * 8 + 2 * qd + e;
        const int at = buf * kTile + warp * 16 + k;
        const bool valid = kbase + k < end;
        s[nt][e] = valid ? (sacc[nt][e] + sacc[nt][2 + e]) * (ksc_s[at] * qinv) : -INFINITY;
        vq[nt][e] = valid ? vsc_s[at] : 0.0f;
        mx = fmaxf(mx, s[nt][e]);
        vm = fmaxf(vm, vq[nt][e]);
      }
    }
    mx = dev::quad_max(mx);
    vm = dev::quad_max(vm);
    // The warp's first key is valid, so mx is finite.
    const float mn = fmaxf(m, mx), vn = fmaxf(vmax, vm);
    const float inv_vn = vn > 0.0f ? 1.0f / vn : 0.0f;
    const float al = exp2f(m - mn);          // 0 on the warp's first tile
    const float alo = al * (vmax * inv_vn);  // O's factor: the max and the value unit
    m = mn;
    vmax = vn;
    uint32_t pa[4];  // P (A): rows ra high parts, ra + 8 low parts; k = the warp's keys
    float rs = 0.0f;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const float p0 = exp2f(s[nt][0] - mn), p1 = exp2f(s[nt][1] - mn);
      rs += p0 + p1;
      split_f16(p0 * vq[nt][0] * inv_vn, p1 * vq[nt][1] * inv_vn, pa[2 * nt], pa[2 * nt + 1]);
    }
    l = l * al + rs;
    if (__any_sync(0xffffffffu, alo != 1.0f)) {
#pragma unroll
      for (int j = 0; j < HD / 8; ++j) {
        o[j][0] *= alo;
        o[j][1] *= alo;
        o[j][2] *= alo;
        o[j][3] *= alo;
      }
    }
#pragma unroll
    for (int c = 0; c < kChunks; c += 2) {
      // ldmatrix.trans of key pairs: register bytes (k, d), (k, d + 1), (k + 1, d),
      // (k + 1, d + 1) for k = 2qd (+8), d = 16c + 2 ra; permuted to the even dimension's
      // pair (low half) and the odd one's (high half).
      uint32_t r[4];
      dev::ldsm_x4_t(r, vs + swz<HD>(lkey, c + lchunk) * 16);
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // chunk c + h: registers 2h (keys 0-7), 2h + 1 (8-15)
        const uint32_t b0 = __byte_perm(r[2 * h], 0u, 0x3120);
        const uint32_t b1 = __byte_perm(r[2 * h + 1], 0u, 0x3120);
        dev::mma_f16(o[2 * (c + h)], pa, e4m3x2_to_f16x2(b0), e4m3x2_to_f16x2(b1));
        dev::mma_f16(o[2 * (c + h) + 1], pa, e4m3x2_to_f16x2(b0 >> 16), e4m3x2_to_f16x2(b1 >> 16));
      }
    }
  }
  dev::cp_async_wait<0>();
  __syncthreads();  // the pipeline's memory now holds the merge

  // This warp's state of query head ra: O's high and low rows summed, back in value units.
  auto* acc_s = reinterpret_cast<float*>(smem_u4);
  float* ml_s = acc_s + kWarps * kGroup * HD;  // [warps][kGroup][2]: m (log2), l
  l = dev::quad_sum(l);
  float* a = acc_s + (warp * kGroup + ra) * HD;
#pragma unroll
  for (int j = 0; j < HD / 8; ++j) {
    const int d = 16 * (j >> 1) + 4 * qd + (j & 1);
    a[d] = (o[j][0] + o[j][2]) * vmax;
    a[d + 2] = (o[j][1] + o[j][3]) * vmax;
  }
  if (qd == 0) {
    ml_s[(warp * kGroup + ra) * 2] = m;
    ml_s[(warp * kGroup + ra) * 2 + 1] = l;
  }
  dev::decode_finish<HD, kWarps, kGroup>(acc_s, ml_s, blk, heads, kv_heads, out, splits, partial,
                                         counters);
}

template <int HD>
void launch(const attention_args& a, float scale, int splits, float* partial,
            unsigned int* counters, stream_t s) {
  constexpr size_t smem = fp8_layout<HD>::bytes;
  // Every launch, graph captures included (as decode_attention.cu's).
  CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(
      decode_fp8_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const size_t rows = a.row_index != nullptr ? a.index_rows : a.rows;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(a.kv_heads),
                  static_cast<unsigned>(splits));
  constexpr float kLog2e = 1.4426950408889634f;
  launch_pdl(decode_fp8_kernel<HD>, grid, dim3(kWarps * 32), smem, s, a.q, a.q_stride,
             static_cast<const char*>(a.k_cache), static_cast<const char*>(a.v_cache),
             a.kv_row_bytes, a.ctx_len, a.table_offset, a.block_tables, a.row_index, a.block_size,
             static_cast<int>(a.heads), static_cast<int>(a.kv_heads), scale * kLog2e,
             static_cast<bf16*>(a.out), splits, partial, counters, a.window);
}

}  // namespace

bool decode_fp8_direct_ok(size_t heads, size_t kv_heads, size_t head_dim) {
  return (head_dim == 64 || head_dim == 128) && kv_heads > 0 && heads % kv_heads == 0 &&
         heads / kv_heads <= static_cast<size_t>(kGroup);
}

void decode_fp8_direct_attention(const attention_args& a, float scale, int splits, float* partial,
                                 unsigned int* counters, stream_t s) {
  if (!a.kv_fp8 || !decode_fp8_direct_ok(a.heads, a.kv_heads, a.head_dim))
    throw std::invalid_argument(
        "decode attention (fp8 direct): needs an fp8 cache, head_dim 64 "
        "or 128 and at most 8 query heads per KV head");
  if (a.head_dim == 64) {
    launch<64>(a, scale, splits, partial, counters, s);
  } else {
    launch<128>(a, scale, splits, partial, counters, s);
  }
}

}  // namespace conclave::gpu::cuda
