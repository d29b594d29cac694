#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/kv_cache.h"

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

}  // namespace

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
