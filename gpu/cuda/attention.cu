#include <algorithm>
#include <stdexcept>

#include "gpu/cuda/attention.h"
#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"

namespace conclave::gpu::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 32;  // keys per iteration, staged in shared memory
constexpr int kMaxDimsPerThread = 2;

// One block per (query row, head). Each tile of 32 keys/values is loaded coalesced into
// shared memory (fp32), scored by 4 threads per key, folded into an online softmax, and
// accumulated by one thread per output dimension.
template <class T>
__global__ void __launch_bounds__(kThreads)
    paged_attention_kernel(const float* q, size_t q_stride, const T* kc, const T* vc,
                           const int32_t* ctx_len, const int32_t* table_offset,
                           const int32_t* tables, int32_t bs, size_t heads, size_t kv_heads,
                           size_t hd, float scale, T* out, int splits, float* partial) {
  extern __shared__ float smem[];
  float* q_s = smem;                    // [hd]
  float* k_s = q_s + hd;                // [kTile][hd + 1]
  float* v_s = k_s + kTile * (hd + 1);  // [kTile][hd]
  __shared__ float p_s[kTile];
  __shared__ int32_t slot_s[kTile];
  __shared__ float scratch[32];
  const size_t row = blockIdx.x, h = blockIdx.y;
  const size_t g = h / (heads / kv_heads);
  const size_t width = kv_heads * hd;
  const int ctx_all = ctx_len[row];
  // Keys [begin, ctx) of this block: all of them, or slice blockIdx.z of `splits` equal
  // slices of this row's context (whole tiles; trailing slices of short rows are empty).
  const int per = splits > 1 ? ((ctx_all + splits - 1) / splits + kTile - 1) / kTile * kTile : 0;
  const int begin = splits > 1 ? static_cast<int>(blockIdx.z) * per : 0;
  const int ctx = splits > 1 ? min(ctx_all, begin + per) : ctx_all;
  const int32_t* table = tables + table_offset[row];
  for (size_t d = threadIdx.x; d < hd; d += kThreads) q_s[d] = q[row * q_stride + h * hd + d];

  const int key = static_cast<int>(threadIdx.x) / 4, part = static_cast<int>(threadIdx.x) % 4;
  float acc[kMaxDimsPerThread] = {0.0f, 0.0f};
  float m = -INFINITY, l = 0.0f;
  for (int base = begin; base < ctx; base += kTile) {
    const int n = min(kTile, ctx - base);
    if (threadIdx.x < kTile && static_cast<int>(threadIdx.x) < n) {
      const int t = base + static_cast<int>(threadIdx.x);
      slot_s[threadIdx.x] = table[t / bs] * bs + t % bs;
    }
    __syncthreads();
    for (size_t i = threadIdx.x; i < static_cast<size_t>(n) * hd; i += kThreads) {
      const size_t j = i / hd, d = i % hd;
      const size_t src = static_cast<size_t>(slot_s[j]) * width + g * hd + d;
      k_s[j * (hd + 1) + d] = dev::ld(kc + src);
      v_s[j * hd + d] = dev::ld(vc + src);
    }
    __syncthreads();
    // Every lane takes part in the shuffles (a key past n contributes nothing).
    float dot = 0.0f;
    if (key < n) {
      for (size_t d = static_cast<size_t>(part); d < hd; d += 4)
        dot = __fmaf_rn(q_s[d], k_s[key * (hd + 1) + d], dot);
    }
    dot += __shfl_xor_sync(0xffffffffu, dot, 1);
    dot += __shfl_xor_sync(0xffffffffu, dot, 2);
    const float s = key < n ? dot * scale : -INFINITY;
    const float tmax = dev::block_max(s, scratch);
    const float m_new = fmaxf(m, tmax);
    const float alpha = expf(m - m_new);
    const float p = key < n ? expf(s - m_new) : 0.0f;
    if (part == 0 && key < kTile) p_s[key] = p;
    const float psum = dev::block_sum(part == 0 ? p : 0.0f, scratch);  // syncs: p_s complete
    l = l * alpha + psum;
    m = m_new;
#pragma unroll
    for (int i = 0; i < kMaxDimsPerThread; ++i) {
      const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
      if (d >= hd) break;
      float a = acc[i] * alpha;
      for (int j = 0; j < n; ++j) a = __fmaf_rn(p_s[j], v_s[j * hd + d], a);
      acc[i] = a;
    }
    __syncthreads();  // slot_s, k_s, v_s, p_s are rewritten by the next tile
  }
  if (partial != nullptr) {
    // Unnormalised accumulator, running max and sum of this slice: [acc(hd) | m | l].
    float* pp = partial + ((row * heads + h) * gridDim.z + blockIdx.z) * (hd + 2);
#pragma unroll
    for (int i = 0; i < kMaxDimsPerThread; ++i) {
      const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
      if (d < hd) pp[d] = acc[i];
    }
    if (threadIdx.x == 0) {
      pp[hd] = m;
      pp[hd + 1] = l;
    }
    return;
  }
  const float inv = 1.0f / l;
  T* o = out + row * heads * hd + h * hd;
#pragma unroll
  for (int i = 0; i < kMaxDimsPerThread; ++i) {
    const size_t d = threadIdx.x + static_cast<size_t>(i) * kThreads;
    if (d < hd) dev::st(o + d, acc[i] * inv);
  }
}

// The first kernel (verified on an H200, 2026-11-28): one block per (query row, head),
// one thread per key of a 128-key tile, keys and values read straight from the cache.
template <class T>
__global__ void __launch_bounds__(kThreads)
    simple_attention_kernel(const float* q, size_t q_stride, const T* kc, const T* vc,
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

// Merges the slices of one (row, head): out = sum acc_z e^(m_z - M) / sum l_z e^(m_z - M).
template <class T>
__global__ void attention_combine_kernel(const float* partial, size_t heads, size_t hd, int splits,
                                         T* out) {
  const size_t row = blockIdx.x, h = blockIdx.y;
  const float* pp = partial + (row * heads + h) * static_cast<size_t>(splits) * (hd + 2);
  float mx = -INFINITY;
  for (int z = 0; z < splits; ++z) mx = fmaxf(mx, pp[z * (hd + 2) + hd]);
  float l = 0.0f;
  for (int z = 0; z < splits; ++z) {
    const float mz = pp[z * (hd + 2) + hd];
    if (mz != -INFINITY) l += pp[z * (hd + 2) + hd + 1] * expf(mz - mx);
  }
  const float inv = 1.0f / l;
  for (size_t d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.0f;
    for (int z = 0; z < splits; ++z) {
      const float mz = pp[z * (hd + 2) + hd];
      if (mz != -INFINITY) a += pp[z * (hd + 2) + d] * expf(mz - mx);
    }
    dev::st(out + row * heads * hd + h * hd + d, a * inv);
  }
}

constexpr int kSplitLen = 256;  // keys per slice when splitting

int splits_for(const attention_args& a) {
  if (!a.tiled) return 1;
  // Split only when (row, head) blocks alone would leave most of the SMs idle.
  if (a.max_ctx <= kSplitLen || a.rows * a.heads >= 264) return 1;
  return std::min((a.max_ctx + kSplitLen - 1) / kSplitLen, 64);
}

size_t smem_bytes(size_t hd) {
  return (hd + kTile * (hd + 1) + kTile * hd) * sizeof(float);
}

}  // namespace

size_t attention_workspace_floats(const attention_args& a) {
  const int splits = splits_for(a);
  return splits > 1 ? a.rows * a.heads * static_cast<size_t>(splits) * (a.head_dim + 2) : 0;
}

namespace {

template <class T>
void launch_simple(const attention_args& a, float scale, stream_t s) {
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
  simple_attention_kernel<T><<<grid, kThreads, a.head_dim * sizeof(float), s>>>(
      a.q, a.q_stride, static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache),
      a.ctx_len, a.table_offset, a.block_tables, a.block_size, a.heads, a.kv_heads, a.head_dim,
      scale, static_cast<T*>(a.out));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

template <class T>
void launch_tiled(const attention_args& a, float scale, stream_t s) {
  const int splits = a.workspace != nullptr ? splits_for(a) : 1;
  const size_t smem = smem_bytes(a.head_dim);
  if (smem > 48 * 1024) {
    // Not during graph capture: an eager launch sets the attribute first.
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CONCLAVE_CUDA_CHECK(cudaStreamIsCapturing(s, &cs));
    if (cs == cudaStreamCaptureStatusNone) {
      CONCLAVE_CUDA_CHECK(cudaFuncSetAttribute(paged_attention_kernel<T>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem)));
    }
  }
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(splits));
  paged_attention_kernel<T><<<grid, kThreads, smem, s>>>(
      a.q, a.q_stride, static_cast<const T*>(a.k_cache), static_cast<const T*>(a.v_cache),
      a.ctx_len, a.table_offset, a.block_tables, a.block_size, a.heads, a.kv_heads, a.head_dim,
      scale, static_cast<T*>(a.out), splits, splits > 1 ? a.workspace : nullptr);
  CONCLAVE_CUDA_LAUNCH_CHECK();
  if (splits > 1) {
    const dim3 g2(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.heads));
    attention_combine_kernel<T>
        <<<g2, 128, 0, s>>>(a.workspace, a.heads, a.head_dim, splits, static_cast<T*>(a.out));
    CONCLAVE_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace

void paged_attention(const attention_args& a, stream_t s) {
  if (a.rows == 0) return;
  if (a.head_dim == 0 || a.head_dim > kThreads * kMaxDimsPerThread || a.head_dim % 2 != 0)
    throw std::invalid_argument("paged_attention: head_dim must be even and at most 256");
  if (a.kv_heads == 0 || a.heads % a.kv_heads != 0)
    throw std::invalid_argument("paged_attention: heads must be a multiple of kv_heads");
  const float scale = 1.0f / sqrtf(static_cast<float>(a.head_dim));
  if (a.tiled) {
    CONCLAVE_DISPATCH_ELEM(a.t, T, launch_tiled<T>(a, scale, s));
  } else {
    CONCLAVE_DISPATCH_ELEM(a.t, T, launch_simple<T>(a, scale, s));
  }
}

}  // namespace conclave::gpu::cuda
