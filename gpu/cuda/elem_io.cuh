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

/// N consecutive elements as floats, in one load of N * sizeof(T) bytes (N in 1, 2, 4, 8;
/// the address must be aligned to that size, at most 16 bytes per load).
template <int N>
__device__ __forceinline__ void ldv(const float* p, float (&v)[N]) {
  if constexpr (N == 1) {
    v[0] = __ldg(p);
  } else if constexpr (N == 2) {
    const float2 a = __ldg(reinterpret_cast<const float2*>(p));
    v[0] = a.x, v[1] = a.y;
  } else {
    static_assert(N % 4 == 0);
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const float4 a = __ldg(reinterpret_cast<const float4*>(p + i));
      v[i] = a.x, v[i + 1] = a.y, v[i + 2] = a.z, v[i + 3] = a.w;
    }
  }
}
__device__ __forceinline__ float bf16_lo(uint32_t u) {
  return __uint_as_float(u << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t u) {
  return __uint_as_float(u & 0xffff0000u);
}
template <int N>
__device__ __forceinline__ void ldv(const bf16* p, float (&v)[N]) {
  if constexpr (N == 1) {
    v[0] = __bfloat162float(*p);
  } else if constexpr (N == 2) {
    const uint32_t a = __ldg(reinterpret_cast<const unsigned int*>(p));
    v[0] = bf16_lo(a), v[1] = bf16_hi(a);
  } else if constexpr (N == 4) {
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(p));
    v[0] = bf16_lo(a.x), v[1] = bf16_hi(a.x), v[2] = bf16_lo(a.y), v[3] = bf16_hi(a.y);
  } else {
    static_assert(N == 8);
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    v[0] = bf16_lo(a.x), v[1] = bf16_hi(a.x), v[2] = bf16_lo(a.y), v[3] = bf16_hi(a.y);
    v[4] = bf16_lo(a.z), v[5] = bf16_hi(a.z), v[6] = bf16_lo(a.w), v[7] = bf16_hi(a.w);
  }
}

/// 16 loaded bytes as floats: 4 fp32 or 8 bf16 (lets callers issue several raw loads
/// before converting any).
__device__ __forceinline__ void unpack16(const uint4& a, float (&v)[4]) {
  v[0] = __uint_as_float(a.x), v[1] = __uint_as_float(a.y), v[2] = __uint_as_float(a.z),
  v[3] = __uint_as_float(a.w);
}
__device__ __forceinline__ void unpack16(const uint4& a, float (&v)[8]) {
  v[0] = bf16_lo(a.x), v[1] = bf16_hi(a.x), v[2] = bf16_lo(a.y), v[3] = bf16_hi(a.y);
  v[4] = bf16_lo(a.z), v[5] = bf16_hi(a.z), v[6] = bf16_lo(a.w), v[7] = bf16_hi(a.w);
}
__device__ __forceinline__ uint4 ld16(const void* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

/// SwiGLU of one (gate, up) pair as every kernel and the CPU twin compute it: silu(g) * u.
__device__ __forceinline__ float silu_mul(float g, float u) {
  return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
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
