// Storage dtypes of checkpoint tensors and their conversions to and from fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace conclave::model {

/// Element types conclave reads from and writes to checkpoints. f8_e4m3 (torch
/// float8_e4m3fn) and i32 only appear in quantized checkpoints (model/quant.h).
enum class dtype : uint8_t { bf16, f16, f32, f8_e4m3, i32 };

/// Bytes per element.
constexpr size_t dtype_size(dtype t) {
  return t == dtype::f32 || t == dtype::i32 ? 4 : t == dtype::f8_e4m3 ? 1 : 2;
}

/// Whether `t` holds real numbers a plain (unquantized) weight may use.
constexpr bool is_float_dtype(dtype t) {
  return t == dtype::bf16 || t == dtype::f16 || t == dtype::f32;
}

/// The safetensors spelling: "BF16", "F16", "F32", "F8_E4M3", "I32".
std::string_view dtype_name(dtype t);

/// Parses a safetensors dtype string; nullopt for anything conclave does not load.
std::optional<dtype> parse_dtype(std::string_view s);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

/// Round-to-nearest-even, as torch's `.to(torch.bfloat16)`; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float f16_to_f32(uint16_t h);
/// float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; 0x7f and
/// 0xff are NaN; largest finite 448.
float fp8_e4m3_to_f32(uint8_t v);
/// Round-to-nearest-even to float8_e4m3fn, saturating at +-448 (what quantizers do after
/// clamping); NaN stays NaN.
uint8_t f32_to_fp8_e4m3(float f);
/// Round-to-nearest-even IEEE half; overflow goes to infinity.
uint16_t f32_to_f16(float f);

/// Converts `n` elements of type `t` at `src` (any alignment) to fp32 at `dst` (i32: the
/// integer's value).
void convert_to_f32(dtype t, const void* src, size_t n, float* dst);

/// Converts `n` fp32 values to type `t` at `dst` (any alignment).
void convert_from_f32(dtype t, const float* src, size_t n, void* dst);

}  // namespace conclave::model
