// dtype conversions; the half-precision paths follow IEEE 754 binary16 exactly.
#include "model/dtype.h"

#include <bit>
#include <cmath>
#include <limits>

namespace conclave::model {

std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::bf16:
      return "BF16";
    case dtype::f16:
      return "F16";
    case dtype::f32:
      return "F32";
    case dtype::f8_e4m3:
      return "F8_E4M3";
    case dtype::i32:
      return "I32";
  }
  return "?";
}

std::optional<dtype> parse_dtype(std::string_view s) {
  if (s == "BF16") return dtype::bf16;
  if (s == "F16") return dtype::f16;
  if (s == "F32") return dtype::f32;
  if (s == "F8_E4M3") return dtype::f8_e4m3;
  if (s == "I32") return dtype::i32;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int shift = 0;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        ++shift;
      }
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - shift + 1) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {               // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return sign;  // under half the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    // value = mant * 2^(exp-150); in units of the smallest subnormal (2^-24) that is
    // mant >> (126 - exp), rounded to nearest even.
    const uint32_t shift = 126 - exp;
    const uint32_t val = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    uint32_t r = val;
    if (rem > half || (rem == half && (val & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  r = (r + 0xfffu + ((r >> 13) & 1u)) >> 13;
  return static_cast<uint16_t>(sign | r);
}

float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = (v & 0x80u) != 0;
  const int exp = (v >> 3) & 0xf;
  const int mant = v & 0x7;
  float r;
  if (exp == 0xf && mant == 0x7) {
    r = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    r = std::ldexp(static_cast<float>(mant), -9);  // subnormal: m * 2^-9
  } else {
    r = std::ldexp(static_cast<float>(8 + mant), exp - 10);  // (1 + m/8) * 2^(e-7)
  }
  return neg ? -r : r;
}

uint8_t f32_to_fp8_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80u : 0x00u;
  if (std::isnan(f)) return static_cast<uint8_t>(sign | 0x7fu);
  const float a = std::fabs(f);
  if (a >= 448.0f) return static_cast<uint8_t>(sign | 0x7eu);
  if (a < 0x1.0p-6f) {  // subnormal range: multiples of 2^-9; code 8 is the smallest normal
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(std::nearbyint(a * 512.0f)));
  }
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): a in [2^(e-1), 2^e)
  const int unbiased = e - 1;
  int q = static_cast<int>(std::nearbyint(std::ldexp(a, 3 - unbiased)));  // in [8, 16]
  int biased = unbiased + 7;
  if (q == 16) {
    q = 8;
    ++biased;
  }
  const int code = (biased << 3) | (q - 8);
  return static_cast<uint8_t>(sign | (code > 0x7e ? 0x7e : code));
}

void convert_to_f32(dtype t, const void* src, size_t n, float* dst) {
  const auto* p = static_cast<const unsigned char*>(src);
  switch (t) {
    case dtype::f32:
      std::memcpy(dst, src, n * 4);
      return;
    case dtype::bf16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case dtype::f16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case dtype::f8_e4m3:
      for (size_t i = 0; i < n; ++i) dst[i] = fp8_e4m3_to_f32(static_cast<uint8_t>(p[i]));
      return;
    case dtype::i32:
      for (size_t i = 0; i < n; ++i) {
        int32_t v;
        std::memcpy(&v, p + 4 * i, 4);
        dst[i] = static_cast<float>(v);
      }
      return;
  }
}

void convert_from_f32(dtype t, const float* src, size_t n, void* dst) {
  auto* p = static_cast<unsigned char*>(dst);
  switch (t) {
    case dtype::f32:
      std::memcpy(dst, src, n * 4);
      return;
    case dtype::bf16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    case dtype::f16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    case dtype::f8_e4m3:
      for (size_t i = 0; i < n; ++i) p[i] = f32_to_fp8_e4m3(src[i]);
      return;
    case dtype::i32:
      for (size_t i = 0; i < n; ++i) {
        const auto v = static_cast<int32_t>(std::lrint(src[i]));
        std::memcpy(p + 4 * i, &v, 4);
      }
      return;
  }
}

}  // namespace conclave::model
