// Device-side helpers shared by the kernels: loads/stores of fp32 or bf16 elements as
// float, block reductions, and the elem -> C++ type dispatch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda::dev {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float ld(const float* p) {
  return *p;
}
__device__ __forceinline__ float ld(const bf16* p) {
  return __bfloat162float(*p);
}
__device__ __forceinline__ void st(float* p, float v) {
  *p = v;
}
__device__ __forceinline__ void st(bf16* p, float v) {
  *p = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
/// `scratch` holds 32 floats; the call synchronises the block.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  float r = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(r);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  float r = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(r);
}

}  // namespace conclave::gpu::cuda::dev

/// Runs `...` with `T` bound to float or __nv_bfloat16 according to elem `e`.
#define CONCLAVE_DISPATCH_ELEM(e, T, ...)          \
  do {                                             \
    if ((e) == ::conclave::gpu::cuda::elem::f32) { \
      using T = float;                             \
      __VA_ARGS__;                                 \
    } else {                                       \
      using T = ::conclave::gpu::cuda::dev::bf16;  \
      __VA_ARGS__;                                 \
    }                                              \
  } while (0)
