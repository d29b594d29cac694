// Device helpers of the quantized-weight kernels: fp8 e4m3 and AWQ nibbles to float.
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace conclave::gpu::cuda::dev {

/// One e4m3 byte as float (exact; hardware conversion from sm_89 on).
__device__ __forceinline__ float fp8_to_float(uint32_t b) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
  return __half2float(__half(h));
}

/// Four e4m3 bytes of a word as floats (two paired conversions).
__device__ __forceinline__ void fp8x4_to_float(uint32_t w, float* out) {
  const __half2_raw lo =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w & 0xffffu), __NV_E4M3);
  const __half2_raw hi =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w >> 16), __NV_E4M3);
  const float2 a = __half22float2(__half2(lo)), b = __half22float2(__half2(hi));
  out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
}

/// Nibble j of `w` minus `zoff - 2^23` as float, exactly: 2^23 + q is built by bit
/// or-ing q into 2^23's mantissa (no int-to-float conversion), and (2^23 + q) - (2^23 + z)
/// is exact for q, z < 16. zoff = 2^23 + z (2^23 for no zero point).
__device__ __forceinline__ float nibble_minus(uint32_t w, int j, float zoff) {
  return __uint_as_float(0x4B000000u | ((w >> (4 * j)) & 0xfu)) - zoff;
}

__device__ __forceinline__ float half_bits_to_float(uint16_t b) {
  return __half2float(__ushort_as_half(b));
}

}  // namespace conclave::gpu::cuda::dev
