#include <stdexcept>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/qk_norm_rope.h"

namespace conclave::gpu::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxPairs = 4;  // rotate-half pairs per lane: head_dim <= 256

// One warp per (row, head slot); slots [0, heads) are q, then kv_heads of k, then v. Lane
// l holds the pairs (i, i + half) for i = l, l + 32, ...: the norm's sum is a warp sum and
// the rotation needs no exchange.
__global__ void __launch_bounds__(kWarps * 32)
    qk_norm_rope_kernel(float* qkv, const float* bias, const float* q_w, const float* k_w,
                        const int32_t* positions, const float* inv_freq, size_t rows, int heads,
                        int kv_heads, int hd, float eps, float rope_scale) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const size_t slots = static_cast<size_t>(heads + 2 * kv_heads);
  const size_t gw = static_cast<size_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (gw >= rows * slots) return;
  const size_t r = gw / slots;
  const int slot = static_cast<int>(gw % slots);
  float* x = qkv + r * slots * hd + static_cast<size_t>(slot) * hd;
  const float* b = bias != nullptr ? bias + static_cast<size_t>(slot) * hd : nullptr;
  if (slot >= heads + kv_heads) {
    if (b != nullptr)
      for (int i = lane; i < hd; i += 32) x[i] = __fadd_rn(x[i], b[i]);
    return;
  }
  const float* w = slot < heads ? q_w : k_w;
  const int half = hd / 2;
  float lo[kMaxPairs], hi[kMaxPairs];
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
      x[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(bb, sn));
      x[i + half] = __fadd_rn(__fmul_rn(bb, c), __fmul_rn(a, sn));
    }
  }
}

}  // namespace

void qk_norm_rope(float* qkv, const float* bias, const float* q_w, const float* k_w,
                  const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                  size_t kv_heads, size_t head_dim, float eps, stream_t s, float rope_scale) {
  if (rows == 0) return;
  if (head_dim % 2 != 0 || head_dim > 64 * kMaxPairs)
    throw std::invalid_argument("qk_norm_rope: head_dim must be even and at most 256");
  const size_t warps = rows * (heads + 2 * kv_heads);
  const unsigned blocks = static_cast<unsigned>((warps + kWarps - 1) / kWarps);
  qk_norm_rope_kernel<<<blocks, kWarps * 32, 0, s>>>(
      qkv, bias, q_w, k_w, positions, inv_freq, rows, static_cast<int>(heads),
      static_cast<int>(kv_heads), static_cast<int>(head_dim), eps, rope_scale);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
