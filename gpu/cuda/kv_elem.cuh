// Device helpers of the fp8 KV cache (--kv-cache-dtype fp8): a slot's row holds the
// keys (or values) of every KV head as e4m3 bytes, then one fp32 scale per KV head, the
// row padded to 16 bytes (gpu::kv_row_bytes). The kernels read the cache through a row
// stride in elements of their cache type (bytes for fp8); with bf16 or fp32 caches the
// scale is 1 and costs nothing.
#pragma once

#include <cuda_fp8.h>

#include "gpu/cuda/elem_io.cuh"
#include "gpu/cuda/quant_elem.cuh"

namespace conclave::gpu::cuda::dev {

using fp8kv = __nv_fp8_e4m3;

template <class T>
inline constexpr bool is_fp8_kv = false;
template <>
inline constexpr bool is_fp8_kv<fp8kv> = true;

/// The scale of one (token, KV head) of the fp8 cache from its largest magnitude: e4m3's
/// largest finite value (448) maps to amax; an all-zero head gets 1.
__device__ __forceinline__ float fp8_kv_scale(float amax) {
  return amax > 0.0f ? amax / 448.0f : 1.0f;
}

/// One element of the fp8 cache: e4m3(x / scale), saturating (cpu::fp8_kv_round's twin).
__device__ __forceinline__ uint8_t fp8_kv_byte(float x, float scale) {
  return __nv_cvt_float_to_fp8(x / scale, __NV_SATFINITE, __NV_E4M3);
}

/// The fp8 cache's reads widen by quant_elem.cuh's e4m3x4_to_float / e4m3_byte_to_float
/// without fp8x4_to_float's test for NaN codes: the cache holds them only for a head that
/// was NaN, whose scale is NaN too (fp8_kv_scale), so what reads it still gets NaN.

/// Two bytes of the fp8 cache (bytes 2 hi, 2 hi + 1 of w) as a bf16 pair, exactly: the
/// values have at most 3 mantissa bits, so their fp32's upper halves are their bf16.
__device__ __forceinline__ uint32_t fp8kv_x2_to_bf16x2(uint32_t w, bool hi) {
  const float a = hi ? e4m3_byte_to_float<2>(w) : e4m3_byte_to_float<0>(w);
  const float b = hi ? e4m3_byte_to_float<3>(w) : e4m3_byte_to_float<1>(w);
  return exact_bf16x2(a, b);
}

__device__ __forceinline__ float ld(const fp8kv* p) {
  return fp8_to_float(*reinterpret_cast<const uint8_t*>(p));
}

/// N consecutive fp8 elements as floats, one load of N bytes (N in 1, 2, 4, 8, 16).
template <int N>
__device__ __forceinline__ void ldv(const fp8kv* p, float (&v)[N]) {
  if constexpr (N == 1) {
    v[0] = ld(p);
  } else if constexpr (N == 2) {
    const uint16_t a = __ldg(reinterpret_cast<const unsigned short*>(p));
    const __half2_raw h =
        __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(a), __NV_E4M3);
    const float2 f = __half22float2(__half2(h));
    v[0] = f.x, v[1] = f.y;
  } else if constexpr (N == 4) {
    fp8x4_to_float(__ldg(reinterpret_cast<const unsigned int*>(p)), v);
  } else if constexpr (N == 8) {
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(p));
    fp8x4_to_float(a.x, v);
    fp8x4_to_float(a.y, v + 4);
  } else {
    static_assert(N == 16);
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    fp8x4_to_float(a.x, v);
    fp8x4_to_float(a.y, v + 4);
    fp8x4_to_float(a.z, v + 8);
    fp8x4_to_float(a.w, v + 12);
  }
}

/// 16 loaded bytes as 16 floats (the fp8 overload of elem_io's unpack16).
__device__ __forceinline__ void unpack16(const uint4& a, float (&v)[16]) {
  fp8x4_to_float(a.x, v);
  fp8x4_to_float(a.y, v + 4);
  fp8x4_to_float(a.z, v + 8);
  fp8x4_to_float(a.w, v + 12);
}

/// The scale of KV head g in the row of `slot` (1 for a bf16 / fp32 cache). `stride`:
/// the row's length in elements of T (bytes for fp8); `width`: kv_heads x head_dim.
template <class T>
__device__ __forceinline__ float kv_scale(const T* cache, size_t slot, size_t stride, size_t width,
                                          int g) {
  if constexpr (is_fp8_kv<T>) {
    const char* row = reinterpret_cast<const char*>(cache) + slot * stride;
    return __ldg(reinterpret_cast<const float*>(row + width) + g);
  } else {
    return 1.0f;
  }
}

}  // namespace conclave::gpu::cuda::dev
