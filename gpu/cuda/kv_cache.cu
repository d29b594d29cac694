#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_cache.h"
#include "gpu/cuda/kv_elem.cuh"

namespace conclave::gpu::cuda {
namespace {

template <class T>
__global__ void kv_write_kernel(const float* qkv, size_t stride, size_t k_col, size_t v_col,
                                const int32_t* slots, size_t width, T* kc, T* vc) {
  const size_t r = blockIdx.x;
  const size_t slot = static_cast<size_t>(slots[r]);
  const float* src = qkv + r * stride;
  for (size_t i = threadIdx.x; i < width; i += blockDim.x) {
    dev::st(kc + slot * width + i, src[k_col + i]);
    dev::st(vc + slot * width + i, src[v_col + i]);
  }
}

// One warp per KV head of K or V (blockDim 128: 4 warps over 2 x kv_heads rows).
__global__ void kv_write_fp8_kernel(const float* qkv, size_t stride, size_t k_col, size_t v_col,
                                    const int32_t* slots, int kv_heads, int hd, size_t row_bytes,
                                    uint8_t* kc, uint8_t* vc) {
  const size_t r = blockIdx.x;
  const size_t slot = static_cast<size_t>(slots[r]);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const size_t width = static_cast<size_t>(kv_heads) * static_cast<size_t>(hd);
  for (int j = warp; j < 2 * kv_heads; j += static_cast<int>(blockDim.x) >> 5) {
    const bool is_v = j >= kv_heads;
    const int h = is_v ? j - kv_heads : j;
    const float* src = qkv + r * stride + (is_v ? v_col : k_col) + static_cast<size_t>(h) * hd;
    uint8_t* row = (is_v ? vc : kc) + slot * row_bytes;
    float amax = 0.0f;
    for (int i = lane; i < hd; i += 32) amax = fmaxf(amax, fabsf(src[i]));
    amax = dev::warp_max(amax);
    const float sc = dev::fp8_kv_scale(amax);
    for (int i = lane; i < hd; i += 32)
      row[static_cast<size_t>(h) * hd + i] = dev::fp8_kv_byte(src[i], sc);
    if (lane == 0) reinterpret_cast<float*>(row + width)[h] = sc;
  }
}

}  // namespace

void kv_cache_write_fp8(const float* qkv, size_t row_stride, size_t k_col, size_t v_col,
                        const int32_t* slots, size_t rows, size_t kv_heads, size_t head_dim,
                        size_t row_bytes, void* k_cache, void* v_cache, stream_t s) {
  if (rows == 0) return;
  kv_write_fp8_kernel<<<static_cast<unsigned>(rows), 128, 0, s>>>(
      qkv, row_stride, k_col, v_col, slots, static_cast<int>(kv_heads), static_cast<int>(head_dim),
      row_bytes, static_cast<uint8_t*>(k_cache), static_cast<uint8_t*>(v_cache));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

void kv_cache_write(const float* qkv, size_t row_stride, size_t k_col, size_t v_col,
                    const int32_t* slots, size_t rows, size_t width, void* k_cache, void* v_cache,
                    elem t, stream_t s) {
  if (rows == 0) return;
  CONCLAVE_DISPATCH_ELEM(t, T,
                         kv_write_kernel<T><<<static_cast<unsigned>(rows), 128, 0, s>>>(
                             qkv, row_stride, k_col, v_col, slots, width, static_cast<T*>(k_cache),
                             static_cast<T*>(v_cache)));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
