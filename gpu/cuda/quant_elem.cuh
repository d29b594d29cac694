// Device helpers of the quantized-weight kernels: fp8 e4m3 and AWQ nibbles to float.
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <vector_types.h>

#include <cstdint>

namespace conclave::gpu::cuda::dev {

/// One e4m3 byte as float (exact; hardware conversion from sm_89 on).
__device__ __forceinline__ float fp8_to_float(uint32_t b) {
  const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
  return __half2float(__half(h));
}

/// Four e4m3 bytes of a word as floats by conversion instructions (two paired e4m3 ->
/// f16 and four f16 -> f32, on the SM's narrow conversion pipe): the reference widening.
__device__ __forceinline__ void fp8x4_to_float_cvt(uint32_t w, float* out) {
  const __half2_raw lo =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w & 0xffffu), __NV_E4M3);
  const __half2_raw hi =
      __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w >> 16), __NV_E4M3);
  const float2 a = __half22float2(__half2(lo)), b = __half22float2(__half2(hi));
  out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
}

/// e4m3 byte K of w as the fp32 of its value, without a conversion instruction (on the
/// integer and fp32 pipes): the byte's sign goes to bit 31 and its 4 exponent and 3
/// mantissa bits to bits 26..20, which read as an fp32 of 2^-120 times the e4m3 value
/// (exponent bias 127 instead of 7; e4m3 subnormals become fp32 subnormals of the same
/// ratio); multiplying by 2^120 (mul.rn without .ftz, so the subnormals are kept) gives
/// the value exactly. Codes 0x7f / 0xff (e4m3's NaN) come out as +-480, not NaN.
template <int K>
__device__ __forceinline__ float e4m3_byte_to_float(uint32_t w) {
  const auto top = static_cast<int32_t>(__byte_perm(w, 0u, 0x0444u | (K << 12)));  // byte K << 24
  const uint32_t bits = static_cast<uint32_t>(top >> 4) & 0x87f00000u;
  float v;
  asm("mul.rn.f32 %0, %1, 0f7B800000;" : "=f"(v) : "f"(__uint_as_float(bits)));  // x 2^120
  return v;
}

/// Four e4m3 bytes of a word as floats by e4m3_byte_to_float (NaN codes as +-480).
__device__ __forceinline__ void e4m3x4_to_float(uint32_t w, float* out) {
  out[0] = e4m3_byte_to_float<0>(w);
  out[1] = e4m3_byte_to_float<1>(w);
  out[2] = e4m3_byte_to_float<2>(w);
  out[3] = e4m3_byte_to_float<3>(w);
}

/// Four e4m3 bytes of a word as floats, exactly, NaN codes included: e4m3x4_to_float,
/// about twice the conversion instructions' rate (the fp8 weight GEMV and the fp8 KV
/// cache's GQA kernel were bound by that pipe); a word holding a NaN code takes
/// fp8x4_to_float_cvt.
__device__ __forceinline__ void fp8x4_to_float(uint32_t w, float* out) {
  // A byte's low 7 bits all set (0x7f / 0xff) carries into its top bit; no byte carries
  // into the next.
  if (((w & 0x7f7f7f7fu) + 0x01010101u) & 0x80808080u) {
    fp8x4_to_float_cvt(w, out);
    return;
  }
  e4m3x4_to_float(w, out);
}

/// Nibble j of `w` minus `zoff - 2^23` as float, exactly: 2^23 + q is built by bit
/// or-ing q into 2^23's mantissa (no int-to-float conversion), and (2^23 + q) - (2^23 + z)
/// is exact for q, z < 16. zoff = 2^23 + z (2^23 for no zero point).
__device__ __forceinline__ float nibble_minus(uint32_t w, int j, float zoff) {
  return __uint_as_float(0x4B000000u | ((w >> (4 * j)) & 0xfu)) - zoff;
}

/// Word i (0..3) of a 16-byte load, picked by value (i a constant once unrolled), not
/// through the load's address.
__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/// The 8 weights of piece p (of 8) of a 16-byte quantized load, unscaled: fp8 bytes 8p ..
/// 8p + 7 (p < 2), or awq word p's nibbles minus the zero (zoff = 2^23 + z; p < 4).
template <bool AWQ>
__device__ __forceinline__ void quant_piece(const uint4& raw, int p, float zoff, float (&v)[8]) {
  if constexpr (AWQ) {
    const uint32_t u = word_of(raw, p);
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = nibble_minus(u, j, zoff);
  } else {
    fp8x4_to_float(word_of(raw, 2 * p), v);
    fp8x4_to_float(word_of(raw, 2 * p + 1), v + 4);
  }
}

/// Two floats that are bf16 values (their low 16 bits zero: e4m3 values, small integers)
/// as a bf16 pair, lo in the low half: their upper halves.
__device__ __forceinline__ uint32_t exact_bf16x2(float lo, float hi) {
  return (__float_as_uint(hi) & 0xffff0000u) | (__float_as_uint(lo) >> 16);
}

__device__ __forceinline__ float half_bits_to_float(uint16_t b) {
  return __half2float(__ushort_as_half(b));
}

}  // namespace conclave::gpu::cuda::dev
