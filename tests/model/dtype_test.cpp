// dtype conversions: exact round trips and IEEE rounding at the edges.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "model/dtype.h"

using namespace conclave::model;

TEST_CASE("bf16 conversion rounds to nearest even and round-trips", "[dtype]") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(-2.5f)) == -2.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f)) == 1.0f);
  CHECK(bf16_to_f32(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isinf(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::infinity()))));
}

TEST_CASE("f16 conversion is IEEE binary16", "[dtype]") {
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  CHECK(f32_to_f16(-2.0f) == 0xc000);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(65520.0f) == 0x7c00);  // rounds to infinity
  CHECK(f32_to_f16(0x1p-24f) == 0x0001);  // smallest subnormal
  CHECK(f32_to_f16(0x1p-25f) == 0x0000);  // tie to even: zero
  CHECK(f32_to_f16(0x1.8p-25f) == 0x0001);
  CHECK(f16_to_f32(0x0001) == 0x1p-24f);
  CHECK(f16_to_f32(0x03ff) == 0x3ffp-24f);  // largest subnormal
  CHECK(f16_to_f32(0x3555) == Approx(0.333251953125f));
  CHECK(std::isnan(f16_to_f32(f32_to_f16(std::nanf("")))));
  // Every finite half survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    REQUIRE(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) == h);
  }
}

TEST_CASE("bulk conversions agree with the scalar ones", "[dtype]") {
  const float src[] = {0.1f, -3.75f, 1e-3f, 12345.0f};
  for (dtype t : {dtype::bf16, dtype::f16, dtype::f32}) {
    unsigned char buf[16 + 1];
    convert_from_f32(t, src, 4, buf + 1);  // unaligned on purpose
    float back[4];
    convert_to_f32(t, buf + 1, 4, back);
    for (int i = 0; i < 4; ++i) {
      const float expect = t == dtype::f32    ? src[i]
                           : t == dtype::bf16 ? bf16_to_f32(f32_to_bf16(src[i]))
                                              : f16_to_f32(f32_to_f16(src[i]));
      CHECK(back[i] == expect);
    }
  }
  CHECK(parse_dtype("BF16") == dtype::bf16);
  CHECK(!parse_dtype("I64"));
  CHECK(dtype_name(dtype::f16) == "F16");
}
