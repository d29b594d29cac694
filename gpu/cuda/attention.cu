#include <stdexcept>

#include "gpu/cuda/attention.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kThreads = 128;  // also the tile of keys per iteration
constexpr int kMaxDimsPerThread = 2;

template <class T>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(const float* q, size_t q_stride, const T* kc, const T* vc,
                           const int32_t* ctx_len, const int32_t* table_offset,
                           const int32_t* tables, int32_t bs, size_t heads, size_t kv_heads,
                           size_t hd, float scale, T* out) {
  extern __shared__ float q_s[];  // [hd]
  __shared__ float p_s[kThreads];
  __shared__ int32_t slot_s[kThreads];
  __shared__ float scratch[32];
  const size_t row = blockIdx.x, h = blockIdx.y;
  const size_t g = h / (heads / kv_heads);
  const size_t width = kv_heads * hd;
  const int ctx = ctx_len[row];
  const int32_t* table = tables + table_offset[row];
  for (size_t d = threadIdx.x; d < hd; d += kThreads) q_s[d] = q[row * q_stride + h * hd + d];
  __syncthreads();

  float acc[kMaxDimsPerThread] = {0.0f, 0.0f};
  float m = -INFINITY, l = 0.0f;
  for (int base = 0; base < ctx; base += kThreads) {
    const int t = base + static_cast<int>(threadIdx.x);
    float s = -INFINITY;
    if (t < ctx) {
      const int32_t slot = table[t / bs] * bs + t % bs;
      slot_s[threadIdx.x] = slot;
      const T* k = kc + static_cast<size_t>(slot) * width + g * hd;
      float dot = 0.0f;
      for (size_t d = 0; d < hd; ++d) dot = __fmaf_rn(q_s[d], dev::ld(k + d), dot);
      s = dot * scale;
    }
    const float tmax = dev::block_max(s, scratch);
    const float m_new = fmaxf(m, tmax);
    const float alpha = expf(m - m_new);
    const float p = t < ctx ? expf(s - m_new) : 0.0f;
    p_s[threadIdx.x] = p;
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
        a = __fmaf_rn(p_s[j], dev::ld(vc + static_cast<size_t>(slot_s[j]) * width + g * hd + d), a);
      acc[i] = a;
    }
    __syncthreads();  // p_s / slot_s are rewritten by the next tile
  }
  const float inv = 1.0f / l;
  T* o = out + row * heads * hd + h * hd;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerThread; ++i) {
    const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
    if (d < hd) dev::st(o + d, acc[i] * inv);
  }
}

}  // namespace

void paged_attention(const attention_args& a, stream_t s) {
  if (a.rows == 0) return;
  if (a.head_dim == 0 || a.head_dim > kThreads * kMaxDimsPerThread || a.head_dim % 2 != 0)
    throw std::invalid_argument("paged_attention: head_dim must be even and at most 256");
  if (a.kv_heads == 0 || a.heads % a.kv_heads != 0)
    throw std::invalid_argument("paged_attention: heads must be a multiple of kv_heads");
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
  const float scale = 1.0f / sqrtf(static_cast<float>(a.head_dim));
  CONCLAVE_DISPATCH_ELEM(
      a.t, T,
      paged_attention_kernel<T><<<grid, kThreads, a.head_dim * sizeof(float), s>>>(
          a.q, a.q_stride, static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache),
          a.ctx_len, a.table_offset, a.block_tables, a.block_size, a.heads, a.kv_heads, a.head_dim,
          scale, static_cast<T*>(a.out)));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
