#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_chunk.cuh"
#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/mma.cuh"
#include "gpu/cuda/prefill_attention.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 4;  // 16 query rows each
constexpr int kBr = kPrefillTileRows;
constexpr int kBc = 64;  // keys per KV tile

using dev::cp_async16;
using dev::cp_async_commit;
using dev::cp_async_wait;
using dev::ldsm_x4;
using dev::ldsm_x4_t;
using dev::mma;
using dev::pack_bf16;
using dev::quad_max;
using dev::quad_sum;

// Shared memory: Q [kBr][LD], then two stages of K [kBc][LD] and V [kBc][LD]; rows padded
// by 16 bytes so that ldmatrix's 8 row addresses fall in different banks.
template <int HD>
constexpr size_t smem_bytes() {
  return static_cast<size_t>(kBr + 4 * kBc) * (HD + 8) * 2;
}

// Warp w owns query rows 16w .. 16w + 15 of the tile; a thread holds rows g = lane / 4 and
// g + 8 of them (the mma accumulator layout). Scores are kept in log2 units (q is scaled
// by softmax_scale * log2(e)) so that exp2 does the softmax.
// FP8: kc / vc are fp8 rows of `row_bytes` (kv_elem.cuh), dequantized to bf16 as they are
// stored to shared memory (plain loads then, not cp.async).
template <int HD, bool FP8>
__global__ void __launch_bounds__(kWarps * 32)
    prefill_attention_kernel(const float* q, size_t q_stride, const void* kc, const void* vc,
                             size_t row_bytes, const prefill_tile* tiles, const int32_t* tables,
                             int32_t bs, int heads, int kv_heads, float qscale, int window,
                             dev::bf16* out) {
  constexpr int LD = HD + 8;
  extern __shared__ uint4 smem_u4[];
  auto* q_s = reinterpret_cast<dev::bf16*>(smem_u4);
  dev::bf16* k_s = q_s + kBr * LD;      // [2][kBc][LD]
  dev::bf16* v_s = k_s + 2 * kBc * LD;  // [2][kBc][LD]
  const prefill_tile tile = tiles[blockIdx.x];
  const int h = static_cast<int>(blockIdx.y);
  const int g = h / (heads / kv_heads);
  const int32_t* table = tables + tile.table_offset;
  const size_t width = static_cast<size_t>(kv_heads) * HD;
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int nrows = tile.rows, p0 = tile.first_pos;
  const int ctx = p0 + nrows;  // keys [lo, ctx) are read
  // Sliding window: the tile's first row sees keys > p0 - window; KV tiles wholly before
  // that are never loaded (nor their block table entries read).
  const int lo = window > 0 ? max(0, p0 + 1 - window) : 0;
  const int j0 = lo / kBc;
  const int ntiles = (ctx + kBc - 1) / kBc;

  auto load_kv = [&](int j, int buf) {
    dev::bf16* kd = k_s + buf * kBc * LD;
    dev::bf16* vd = v_s + buf * kBc * LD;
    for (int i = tid; i < kBc * (HD / 8); i += kWarps * 32) {
      const int key = i / (HD / 8), c = (i % (HD / 8)) * 8;
      const int t = j * kBc + key;
      const bool ok = t >= lo && t < ctx;
      const size_t slot = ok ? static_cast<size_t>(table[t / bs]) * bs + t % bs : 0;
      if constexpr (FP8) {
        uint4 kb, vb;
        dev::fp8_kv_chunk(kc, vc, slot, row_bytes, width, g, HD, c, ok, kb, vb);
        *reinterpret_cast<uint4*>(kd + key * LD + c) = kb;
        *reinterpret_cast<uint4*>(vd + key * LD + c) = vb;
      } else {
        const size_t src = slot * width + static_cast<size_t>(g) * HD + c;
        cp_async16(kd + key * LD + c, static_cast<const dev::bf16*>(kc) + src, ok);
        cp_async16(vd + key * LD + c, static_cast<const dev::bf16*>(vc) + src, ok);
      }
    }
    cp_async_commit();
  };
  load_kv(j0, j0 & 1);

  // Q rows of the tile, scaled, as bf16 (rows past the tile: zeros).
  for (int i = tid; i < kBr * (HD / 4); i += kWarps * 32) {
    const int r = i / (HD / 4), c = (i % (HD / 4)) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < nrows)
      v = *reinterpret_cast<const float4*>(q + static_cast<size_t>(tile.first_row + r) * q_stride +
                                           static_cast<size_t>(h) * HD + c);
    uint2 packed;
    packed.x = pack_bf16(v.x * qscale, v.y * qscale);
    packed.y = pack_bf16(v.z * qscale, v.w * qscale);
    *reinterpret_cast<uint2*>(q_s + r * LD + c) = packed;
  }
  __syncthreads();
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int ks = 0; ks < HD / 16; ++ks)
    ldsm_x4(qf[ks], q_s + (warp * 16 + (lane & 15)) * LD + ks * 16 + (lane >> 4) * 8);

  float o[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  const int row_a = warp * 16 + (lane >> 2), row_b = row_a + 8;
  // Rows past the tile copy the last row's position (their output is not written).
  const int pos_a = p0 + min(row_a, nrows - 1), pos_b = p0 + min(row_b, nrows - 1);
  const int warp_last = p0 + min(warp * 16 + 15, nrows - 1);
  const int warp_first = p0 + min(warp * 16, nrows - 1);

  for (int j = j0; j < ntiles; ++j) {
    if (j + 1 < ntiles) {
      load_kv(j + 1, (j + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const dev::bf16* ks_ = k_s + (j & 1) * kBc * LD;
    const dev::bf16* vs_ = v_s + (j & 1) * kBc * LD;
    const int kbase = j * kBc;
    // Warp-uniform: a tile wholly in this warp's future, or wholly before the window of
    // its first row, is skipped.
    if (kbase <= warp_last && (window == 0 || kbase + kBc > warp_first + 1 - window)) {
      float s[kBc / 8][4];
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < HD / 16; ++ks) {
#pragma unroll
        for (int nt = 0; nt < kBc / 8; nt += 2) {
          uint32_t b[4];
          ldsm_x4(b, ks_ + (nt * 8 + (lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 +
                         ((lane >> 3) & 1) * 8);
          mma(s[nt], qf[ks], b[0], b[1]);
          mma(s[nt + 1], qf[ks], b[2], b[3]);
        }
      }
      float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = kbase + nt * 8 + 2 * (lane & 3) + e;
          if (key > pos_a || (window > 0 && key <= pos_a - window)) s[nt][e] = -INFINITY;
          if (key > pos_b || (window > 0 && key <= pos_b - window)) s[nt][2 + e] = -INFINITY;
          mx_a = fmaxf(mx_a, s[nt][e]);
          mx_b = fmaxf(mx_b, s[nt][2 + e]);
        }
      }
      mx_a = quad_max(mx_a);
      mx_b = quad_max(mx_b);
      // Without a window key 0 is in every row's past, so after the first tile the maxima
      // are finite. With one, a row may see no key of a tile yet (all -inf): its state
      // stays empty (the exponent is taken against 0, not -inf - -inf).
      const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
      const float al_a = mn_a == -INFINITY ? 1.0f : exp2f(m_a - mn_a);
      const float al_b = mn_b == -INFINITY ? 1.0f : exp2f(m_b - mn_b);
      m_a = mn_a;
      m_b = mn_b;
      const float sub_a = mn_a == -INFINITY ? 0.0f : mn_a;
      const float sub_b = mn_b == -INFINITY ? 0.0f : mn_b;
      uint32_t pf[kBc / 16][4];
      float rs_a = 0.0f, rs_b = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        const float pa0 = exp2f(s[nt][0] - sub_a), pa1 = exp2f(s[nt][1] - sub_a);
        const float pb0 = exp2f(s[nt][2] - sub_b), pb1 = exp2f(s[nt][3] - sub_b);
        rs_a += pa0 + pa1;
        rs_b += pb0 + pb1;
        pf[nt / 2][(nt & 1) * 2] = pack_bf16(pa0, pa1);
        pf[nt / 2][(nt & 1) * 2 + 1] = pack_bf16(pb0, pb1);
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
      for (int kk = 0; kk < kBc / 16; ++kk) {
#pragma unroll
        for (int dt = 0; dt < HD / 8; dt += 2) {
          uint32_t b[4];
          ldsm_x4_t(b, vs_ + (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dt * 8 +
                           (lane >> 4) * 8);
          mma(o[dt], pf[kk], b[0], b[1]);
          mma(o[dt + 1], pf[kk], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's load
  }
  l_a = quad_sum(l_a);
  l_b = quad_sum(l_b);
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
  const size_t ostride = static_cast<size_t>(heads) * HD;
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) {
    const int d = dt * 8 + 2 * (lane & 3);
    if (row_a < nrows) {
      *reinterpret_cast<uint32_t*>(out + (tile.first_row + row_a) * ostride +
                                   static_cast<size_t>(h) * HD + d) =
          pack_bf16(o[dt][0] * inv_a, o[dt][1] * inv_a);
    }
    if (row_b < nrows) {
      *reinterpret_cast<uint32_t*>(out + (tile.first_row + row_b) * ostride +
                                   static_cast<size_t>(h) * HD + d) =
          pack_bf16(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
  }
}

template <int HD, bool FP8>
void launch(const prefill_attention_args& a, stream_t s) {
  constexpr size_t smem = smem_bytes<HD>();
  CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(prefill_attention_kernel<HD, FP8>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  const float qscale = 1.4426950408889634f / sqrtf(static_cast<float>(HD));
  const dim3 grid(static_cast<unsigned>(a.num_tiles), static_cast<unsigned>(a.heads));
  prefill_attention_kernel<HD, FP8><<<grid, kWarps * 32, smem, s>>>(
      a.q, a.q_stride, a.k_cache, a.v_cache, a.kv_row_bytes, a.tiles, a.block_tables, a.block_size,
      static_cast<int>(a.heads), static_cast<int>(a.kv_heads), qscale, a.window,
      static_cast<dev::bf16*>(a.out));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

template <int HD>
void launch_hd(const prefill_attention_args& a, stream_t s) {
  if (a.kv_fp8) {
    launch<HD, true>(a, s);
  } else {
    launch<HD, false>(a, s);
  }
}

}  // namespace

bool prefill_attention_supported(size_t head_dim) {
  return head_dim == 64 || head_dim == 128;
}

int32_t prefill_tile_rows(size_t head_dim, bool wgmma) {
  return wgmma && head_dim == 128 && prefill_wgmma_available() ? kPrefillWideTileRows
                                                               : kPrefillTileRows;
}

int32_t prefill_pack_gqa(size_t heads, size_t kv_heads, int32_t tile_rows, bool on) {
  if (!on || tile_rows != kPrefillWideTileRows || kv_heads == 0 || heads % kv_heads != 0) return 1;
  const size_t group = heads / kv_heads;
  return group >= 2 && group <= static_cast<size_t>(kPrefillWideTileRows)
             ? static_cast<int32_t>(group)
             : 1;
}

void prefill_attention(const prefill_attention_args& a, stream_t s) {
  if (a.num_tiles == 0) return;
  if (a.kv_heads == 0 || a.heads % a.kv_heads != 0)
    throw std::invalid_argument("prefill_attention: heads must be a multiple of kv_heads");
  if (a.window < 0) throw std::invalid_argument("prefill_attention: window must be >= 0");
  if (a.q_stride % 4 != 0) throw std::invalid_argument("prefill_attention: q_stride % 4 != 0");
  if (a.num_tiles > 0x7fffffff) throw std::invalid_argument("prefill_attention: too many tiles");
  if (a.kv_fp8 && (a.kv_row_bytes < a.kv_heads * (a.head_dim + 4) || a.kv_row_bytes % 16 != 0))
    throw std::invalid_argument("prefill_attention: bad fp8 KV row length");
  if (a.tile_rows == kPrefillWideTileRows) {
    prefill_attention_wgmma(a, s);
    return;
  }
  if (a.tile_rows != kPrefillTileRows)
    throw std::invalid_argument("prefill_attention: tile_rows must be 64 or 128");
  if (a.splits != 1)
    throw std::invalid_argument("prefill_attention: only 128-row tiles split over the context");
  if (a.head_dim == 64) {
    launch_hd<64>(a, s);
  } else if (a.head_dim == 128) {
    launch_hd<128>(a, s);
  } else {
    throw std::invalid_argument("prefill_attention: head_dim must be 64 or 128");
  }
}

}  // namespace conclave::gpu::cuda
