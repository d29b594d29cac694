// The online softmax of the Hopper prefill attention kernel (prefill_attention_wgmma.cu) on
// the fp32 accumulator of a wgmma m64n128: rows a and b of each thread, element 4 n + e at
// column 8 n + 2 (lane % 4) + e % 2 of row a (e < 2) or b.
#pragma once

#include <cmath>
#include <cstdint>

#include "gpu/cuda/mma.cuh"

namespace conclave::gpu::cuda::dev {

/// 2^x on the special function unit (2^-inf = 0).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// x[0] = op over x[0 .. 2W) by halving: x[i] = op(x[i], x[i + W]), then W / 2, ...
template <int W, typename Op>
__device__ __forceinline__ void tree(float (&x)[16], Op op) {
#pragma unroll
  for (int i = 0; i < W; ++i) x[i] = op(x[i], x[i + W]);
  if constexpr (W > 1) tree<W / 2>(x, op);
}

/// The largest of row a's (`off` 0) or row b's (`off` 2) 32 elements, as a tree.
__device__ __forceinline__ float row_max(const float (&s)[64], int off) {
  float x[16];
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) x[nt] = fmaxf(s[nt * 4 + off], s[nt * 4 + off + 1]);
  tree<8>(x, [](float a, float b) { return fmaxf(a, b); });
  return x[0];
}

/// The sum of row a's or row b's 32 elements, as a tree.
__device__ __forceinline__ float row_sum(const float (&s)[64], int off) {
  float x[16];
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) x[nt] = s[nt * 4 + off] + s[nt * 4 + off + 1];
  tree<8>(x, [](float a, float b) { return a + b; });
  return x[0];
}

/// FlashAttention-4's lazy rescale: a row's running max moves only where the tile's
/// exceeds it by more than kRescaleSlack (log2 units), and only then (for every row of the
/// warp, a warp-uniform choice) are the output and sum rescaled. P stays below 2^8 (bf16's
/// relative precision is the same at any scale; the fp32 sums have room), and the final
/// division by the sum, taken against the same max, cancels the stale max exactly.
constexpr float kRescaleSlack = 8.0f;

/// The online softmax of one KV tile on S (the m64n128 accumulator of this thread: rows a
/// and b, element 4 n + e at key kbase + 8 n + 2 (lane % 4) + e % 2): masks keys past each
/// row's position or before its window, updates the running max and sum, leaves P (fp32)
/// in s and returns the factors the output must be scaled by. pack_p makes P the A
/// fragments of the P V wgmma, once the previous P V has read the registers it reuses
/// (FlashAttention-3's order: no second set of P registers to copy between tiles).
/// The maxima and sums are trees (depth 5, not chains of 32 dependent instructions).
/// `masked`: some key of the tile lies past a row's position or before its window (the
/// diagonal and window-edge tiles; elsewhere the per-element test is skipped: this kernel
/// is bound by instruction issue as much as by the tensor cores). Returns whether the
/// output must be rescaled by al_a, al_b (false: the max stayed, the factors are 1).
__device__ __forceinline__ bool online_softmax(float (&s)[64], bool masked, int kbase, int lane,
                                               int pos_a, int pos_b, int window, float& m_a,
                                               float& m_b, float& l_a, float& l_b, float& al_a,
                                               float& al_b) {
  if (masked) {
#pragma unroll
    for (int nt = 0; nt < 16; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = kbase + nt * 8 + 2 * (lane & 3) + e;
        if (key > pos_a || (window > 0 && key <= pos_a - window)) s[nt * 4 + e] = -INFINITY;
        if (key > pos_b || (window > 0 && key <= pos_b - window)) s[nt * 4 + 2 + e] = -INFINITY;
      }
    }
  }
  const float mx_a = quad_max(row_max(s, 0));
  const float mx_b = quad_max(row_max(s, 2));
  // -inf + slack is -inf: a row that has seen no key moves on its first key.
  const bool move =
      __any_sync(0xffffffffu, mx_a > m_a + kRescaleSlack || mx_b > m_b + kRescaleSlack);
  al_a = al_b = 1.0f;
  if (move) {
    // As in prefill_attention.cu: a row that has seen no key yet keeps an empty state.
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    al_a = mn_a == -INFINITY ? 1.0f : ex2(m_a - mn_a);
    al_b = mn_b == -INFINITY ? 1.0f : ex2(m_b - mn_b);
    m_a = mn_a;
    m_b = mn_b;
  }
  const float sub_a = m_a == -INFINITY ? 0.0f : m_a;
  const float sub_b = m_b == -INFINITY ? 0.0f : m_b;
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    s[nt * 4] = ex2(s[nt * 4] - sub_a);
    s[nt * 4 + 1] = ex2(s[nt * 4 + 1] - sub_a);
    s[nt * 4 + 2] = ex2(s[nt * 4 + 2] - sub_b);
    s[nt * 4 + 3] = ex2(s[nt * 4 + 3] - sub_b);
  }
  l_a = l_a * al_a + row_sum(s, 0);
  l_b = l_b * al_b + row_sum(s, 2);
  return move;
}

/// P (fp32, in s) as the bf16 A fragments of the P V wgmma.
__device__ __forceinline__ void pack_p(const float (&s)[64], uint32_t (&pf)[8][4]) {
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    pf[nt / 2][(nt & 1) * 2] = pack_bf16(s[nt * 4], s[nt * 4 + 1]);
    pf[nt / 2][(nt & 1) * 2 + 1] = pack_bf16(s[nt * 4 + 2], s[nt * 4 + 3]);
  }
}

__device__ __forceinline__ void rescale(float (&o)[64], float al_a, float al_b) {
#pragma unroll
  for (int nt = 0; nt < 16; ++nt) {
    o[nt * 4] *= al_a;
    o[nt * 4 + 1] *= al_a;
    o[nt * 4 + 2] *= al_b;
    o[nt * 4 + 3] *= al_b;
  }
}

}  // namespace conclave::gpu::cuda::dev
