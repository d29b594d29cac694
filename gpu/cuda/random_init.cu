#include <cuda_fp16.h>

#include <algorithm>

#include "gpu/cuda/check.h"
#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/random_init.h"

namespace conclave::gpu::cuda {
namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <class T>
__global__ void random_kernel(T* dst, size_t n, uint64_t key, size_t offset, float std,
                              bool is_norm, round_through r) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint64_t idx = static_cast<uint64_t>(offset + i);
    const uint64_t a = splitmix64(key ^ (2 * idx));
    const uint64_t b = splitmix64(key ^ (2 * idx + 1));
    const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
    const double z = sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
    float v = is_norm ? static_cast<float>(1.0 + 0.1 * z) : static_cast<float>(z * std);
    if (r == round_through::bf16)
      v = __bfloat162float(__float2bfloat16_rn(v));
    else if (r == round_through::f16)
      v = __half2float(__float2half_rn(v));
    dev::st(dst + i, v);
  }
}

template <class T>
__global__ void convert_kernel(const float* src, T* dst, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dev::st(dst + i, src[i]);
}

unsigned blocks_for(size_t n) {
  return static_cast<unsigned>(std::clamp<size_t>((n + 255) / 256, 1, 132 * 32));
}

}  // namespace

void random_fill(void* dst, elem t, size_t n, uint64_t key, size_t offset, float std, bool is_norm,
                 stream_t s, round_through r) {
  if (n == 0) return;
  CONCLAVE_DISPATCH_ELEM(t, T,
                         random_kernel<T><<<blocks_for(n), 256, 0, s>>>(
                             static_cast<T*>(dst), n, key, offset, std, is_norm, r));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

void convert_f32(const float* src, void* dst, elem t, size_t n, stream_t s) {
  if (n == 0) return;
  CONCLAVE_DISPATCH_ELEM(
      t, T, convert_kernel<T><<<blocks_for(n), 256, 0, s>>>(src, static_cast<T*>(dst), n));
  CONCLAVE_CUDA_LAUNCH_CHECK();
}

}  // namespace conclave::gpu::cuda
