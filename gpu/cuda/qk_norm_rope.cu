#include <stdexcept>
#include <type_traits>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_cache.h"
#include "gpu/cuda/kv_elem.cuh"
#include "gpu/cuda/pdl.cuh"
#include "gpu/cuda/qk_norm_rope.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxPairs = 4;  // rotate-half pairs per lane: head_dim <= 256

struct no_cache {};  // C of the kernel without the KV write
using fp8_cache = uint8_t;

// Stores one head's values (lane l holds pairs i = l + 32 j: lo at i, hi at i + half) into
// row `slot` of a cache of C: as kv_write_kernel does (dev::st) or, for fp8, as
// kv_write_fp8_kernel does (dev::fp8_kv_scale of the head's amax, dev::fp8_kv_byte, the scale
// after the row's kv_heads x head_dim bytes). Every lane of the warp must call it.
template <typename C>
__device__ __forceinline__ void store_head(const float (&lo)[kMaxPairs],
                                           const float (&hi)[kMaxPairs], int lane, int half,
                                           void* cache, size_t slot, int h, int kv_heads, int hd,
                                           size_t row_bytes) {
  if constexpr (std::is_same_v<C, fp8_cache>) {
    float amax = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j)
      if (lane + 32 * j < half) amax = fmaxf(amax, fmaxf(fabsf(lo[j]), fabsf(hi[j])));
    amax = dev::warp_max(amax);
    const float sc = dev::fp8_kv_scale(amax);
    uint8_t* row = static_cast<uint8_t*>(cache) + slot * row_bytes;
    uint8_t* out = row + static_cast<size_t>(h) * hd;
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j) {
      const int i = lane + 32 * j;
      if (i < half) {
        out[i] = dev::fp8_kv_byte(lo[j], sc);
        out[i + half] = dev::fp8_kv_byte(hi[j], sc);
      }
    }
    if (lane == 0) reinterpret_cast<float*>(row + static_cast<size_t>(kv_heads) * hd)[h] = sc;
  } else if constexpr (!std::is_same_v<C, no_cache>) {
    C* out = static_cast<C*>(cache) + slot * static_cast<size_t>(kv_heads) * hd +
             static_cast<size_t>(h) * hd;
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j) {
      const int i = lane + 32 * j;
      if (i < half) {
        dev::st(out + i, lo[j]);
        dev::st(out + i + half, hi[j]);
      }
    }
  }
}

// One warp per (row, head slot); slots [0, heads) are q, then kv_heads of k, then v. Lane
// l holds the pairs (i, i + half) for i = l, l + 32, ...: the norm's sum is a warp sum and
// the rotation needs no exchange.
// With C other than no_cache, the warps of key and value heads also store them into the
// KV cache (store_head), so no second kernel reads them back.
template <typename C>
__global__ void __launch_bounds__(kWarps * 32)
    qk_norm_rope_kernel(float* qkv, const float* bias, const float* q_w, const float* k_w,
                        const int32_t* positions, const float* inv_freq, size_t rows, int heads,
                        int kv_heads, int hd, float eps, float rope_scale, kv_target kv) {
  dev::pdl_wait();
  dev::pdl_trigger();
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const size_t slots = static_cast<size_t>(heads + 2 * kv_heads);
  const size_t gw = static_cast<size_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (gw >= rows * slots) return;
  const size_t r = gw / slots;
  const int slot = static_cast<int>(gw % slots);
  float* x = qkv + r * slots * hd + static_cast<size_t>(slot) * hd;
  const float* b = bias != nullptr ? bias + static_cast<size_t>(slot) * hd : nullptr;
  const int half = hd / 2;
  float lo[kMaxPairs], hi[kMaxPairs];
  if (slot >= heads + kv_heads) {  // a value head: the bias only
    if constexpr (std::is_same_v<C, no_cache>)
      if (b == nullptr) return;
#pragma unroll
    for (int j = 0; j < kMaxPairs; ++j) {
      const int i = lane + 32 * j;
      lo[j] = hi[j] = 0.0f;
      if (i < half) {
        lo[j] = x[i];
        hi[j] = x[i + half];
        if (b != nullptr) {
          x[i] = lo[j] = __fadd_rn(lo[j], b[i]);
          x[i + half] = hi[j] = __fadd_rn(hi[j], b[i + half]);
        }
      }
    }
    store_head<C>(lo, hi, lane, half, kv.v_cache, static_cast<size_t>(kv.slots ? kv.slots[r] : 0),
                  slot - heads - kv_heads, kv_heads, hd, kv.row_bytes);
    return;
  }
  const float* w = slot < heads ? q_w : k_w;
  float ss = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxPairs; ++j) {
    const int i = lane + 32 * j;
    lo[j] = hi[j] = 0.0f;
    if (i < half) {
      lo[j] = x[i];
      hi[j] = x[i + half];
      if (b != nullptr) {
        lo[j] = __fadd_rn(lo[j], b[i]);
        hi[j] = __fadd_rn(hi[j], b[i + half]);
      }
      ss = __fmaf_rn(lo[j], lo[j], ss);
      ss = __fmaf_rn(hi[j], hi[j], ss);
    }
  }
  ss = dev::warp_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + eps);
  const float pos = static_cast<float>(positions[r]);
#pragma unroll
  for (int j = 0; j < kMaxPairs; ++j) {
    const int i = lane + 32 * j;
    if (i < half) {
      const float a = __fmul_rn(w[i], __fmul_rn(lo[j], inv));
      const float bb = __fmul_rn(w[i + half], __fmul_rn(hi[j], inv));
      const float angle = __fmul_rn(pos, inv_freq[i]);
      double sd, cd;
      sincos(static_cast<double>(angle), &sd, &cd);
      const float c = __fmul_rn(static_cast<float>(cd), rope_scale);
      const float sn = __fmul_rn(static_cast<float>(sd), rope_scale);
      lo[j] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(bb, sn));
      hi[j] = __fadd_rn(__fmul_rn(bb, c), __fmul_rn(a, sn));
      x[i] = lo[j];
      x[i + half] = hi[j];
    }
  }
  if (slot >= heads)  // a key head
    store_head<C>(lo, hi, lane, half, kv.k_cache, static_cast<size_t>(kv.slots ? kv.slots[r] : 0),
                  slot - heads, kv_heads, hd, kv.row_bytes);
}

template <typename C>
void launch(float* qkv, const float* bias, const float* q_w, const float* k_w,
            const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
            size_t kv_heads, size_t head_dim, float eps, float rope_scale, const kv_target& kv,
            stream_t s) {
  if (head_dim % 2 != 0 || head_dim > 64 * kMaxPairs)
    throw std::invalid_argument("qk_norm_rope: head_dim must be even and at most 256");
  const size_t warps = rows * (heads + 2 * kv_heads);
  const unsigned blocks = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
  launch_pdl(qk_norm_rope_kernel<C>, dim3(blocks), dim3(kWarps * 32), 0, s, qkv, bias, q_w, k_w,
             positions, inv_freq, rows, static_cast<int>(heads), static_cast<int>(kv_heads),
             static_cast<int>(head_dim), eps, rope_scale, kv);
}

}  // namespace

void qk_norm_rope(float* qkv, const float* bias, const float* q_w, const float* k_w,
                  const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                  size_t kv_heads, size_t head_dim, float eps, stream_t s, float rope_scale) {
  if (rows == 0) return;
  launch<no_cache>(qkv, bias, q_w, k_w, positions, inv_freq, rows, heads, kv_heads, head_dim, eps,
                   rope_scale, kv_target{}, s);
}

void qk_norm_rope_kv(float* qkv, const float* bias, const float* q_w, const float* k_w,
                     const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                     size_t kv_heads, size_t head_dim, float eps, float rope_scale,
                     const kv_target& kv, bool fused, stream_t s) {
  if (rows == 0) return;
  const size_t qw = heads * head_dim, kvw = kv_heads * head_dim, stride = qw + 2 * kvw;
  if (!fused) {
    qk_norm_rope(qkv, bias, q_w, k_w, positions, inv_freq, rows, heads, kv_heads, head_dim, eps, s,
                 rope_scale);
    if (kv.fp8)
      kv_cache_write_fp8(qkv, stride, qw, qw + kvw, kv.slots, rows, kv_heads, head_dim,
                         kv.row_bytes, kv.k_cache, kv.v_cache, s);
    else
      kv_cache_write(qkv, stride, qw, qw + kvw, kv.slots, rows, kvw, kv.k_cache, kv.v_cache, kv.t,
                     s);
    return;
  }
  if (kv.fp8) {
    launch<fp8_cache>(qkv, bias, q_w, k_w, positions, inv_freq, rows, heads, kv_heads, head_dim,
                      eps, rope_scale, kv, s);
    return;
  }
  CONCLAVE_DISPATCH_ELEM(kv.t, T,
                         launch<T>(qkv, bias, q_w, k_w, positions, inv_freq, rows, heads, kv_heads,
                                   head_dim, eps, rope_scale, kv, s));
}

}  // namespace conclave::gpu::cuda
