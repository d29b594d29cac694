#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/qk_norm_rope.h"

namespace conclave::gpu::cuda {
namespace {

// One block per (row, head slot); slots [0, heads) are q, then kv_heads of k, then v.
__global__ void qk_norm_rope_kernel(float* qkv, const float* bias, const float* q_w,
                                    const float* k_w, const int32_t* positions,
                                    const float* inv_freq, size_t heads, size_t kv_heads, size_t hd,
                                    float eps) {
  extern __shared__ float v[];  // [hd]
  __shared__ float scratch[32];
  const size_t width = (heads + 2 * kv_heads) * hd;
  const size_t r = blockIdx.x, slot = blockIdx.y;
  float* x = qkv + r * width + slot * hd;
  const float* b = bias != nullptr ? bias + slot * hd : nullptr;
  const bool is_v = slot >= heads + kv_heads;
  if (is_v) {
    if (b != nullptr)
      for (size_t i = threadIdx.x; i < hd; i += blockDim.x) x[i] = __fadd_rn(x[i], b[i]);
    return;
  }
  const float* w = slot < heads ? q_w : k_w;
  float ss = 0.0f;
  for (size_t i = threadIdx.x; i < hd; i += blockDim.x) {
    float a = x[i];
    if (b != nullptr) a = __fadd_rn(a, b[i]);
    v[i] = a;
    ss = __fmaf_rn(a, a, ss);
  }
  ss = dev::block_sum(ss, scratch);  // synchronises: v[] is complete
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(hd) + eps);
  for (size_t i = threadIdx.x; i < hd; i += blockDim.x)
    v[i] = __fmul_rn(w[i], __fmul_rn(v[i], inv));
  __syncthreads();
  const size_t half = hd / 2;
  const float pos = static_cast<float>(positions[r]);
  for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
    const float angle = __fmul_rn(pos, inv_freq[i]);
    double sd, cd;
    sincos(static_cast<double>(angle), &sd, &cd);
    const float c = static_cast<float>(cd), sn = static_cast<float>(sd);
    const float a = v[i], bb = v[i + half];
    x[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(bb, sn));
    x[i + half] = __fadd_rn(__fmul_rn(bb, c), __fmul_rn(a, sn));
  }
}

}  // namespace

void qk_norm_rope(float* qkv, const float* bias, const float* q_w, const float* k_w,
                  const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                  size_t kv_heads, size_t head_dim, float eps, stream_t s) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(heads + 2 * kv_heads));
  const unsigned threads = head_dim >= 128 ? 128 : (head_dim >= 64 ? 64 : 32);
  qk_norm_rope_kernel<<<grid, threads, head_dim * sizeof(float), s>>>(
      qkv, bias, q_w, k_w, positions, inv_freq, heads, kv_heads, head_dim, eps);
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
