// The CUDA loader's host repack of quantized weights into the device layout
// (gpu/quant_layout.h), checked on the CPU: the layout's exact dequantization must equal
// model::dequantize_rows bit for bit, row ranges included, on shapes with partial blocks.
#include <catch2/catch.hpp>

#include "gpu/quant_repack.h"
#include "tests/gpu/quant_fixture.h"

using namespace conclave;

namespace {

void check_repack(const test::quant_weight& q, const gpu::quant_layout& l, int64_t r0, int64_t r1) {
  const int64_t rows = r1 - r0, k = q.sw.in;
  std::vector<std::byte> data(l.data_bytes(rows, k)), scales(l.scale_bytes(rows, k)),
      zeros(l.zero_bytes(rows, k));
  REQUIRE(data.size() + scales.size() + zeros.size() == l.bytes(rows, k));
  gpu::repack_rows(q.sw, l, r0, r1, {data.data(), scales.data(), zeros.data()});
  std::vector<float> got(static_cast<size_t>(rows * k)), want(got.size());
  gpu::dequantize_device_layout(l, rows, k, data.data(), scales.data(), zeros.data(), got.data());
  model::dequantize_rows(q.sw, r0, r1, want.data());
  size_t differ = 0, nonzero = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    differ += got[i] != want[i] ? 1 : 0;
    nonzero += want[i] != 0.0f ? 1 : 0;
  }
  CHECK(differ == 0);
  CHECK(nonzero > got.size() / 2);  // a real weight, not an all-zero pass
}

}  // namespace

TEST_CASE("fp8 repack to the device layout dequantizes as the checkpoint does", "[quant]") {
  // n not a multiple of the 128-row block, k not a multiple of the input block.
  for (auto st : {model::dtype::f32, model::dtype::bf16}) {
    const test::quant_weight q(model::quant_method::fp8, 200, 72, 32, 11, 128, st);
    gpu::quant_layout l;
    l.method = model::quant_method::fp8;
    l.group = 32;
    REQUIRE(gpu::repackable(q.sw, l));
    check_repack(q, l, 0, 200);
    check_repack(q, l, 120, 133);  // across a block boundary
    check_repack(q, l, 199, 200);
  }
  const test::quant_weight big(model::quant_method::fp8, 131, 300, 128, 12);
  gpu::quant_layout l{model::quant_method::fp8, 128};
  check_repack(big, l, 0, 131);
  check_repack(big, l, 128, 131);
}

TEST_CASE("awq repack to natural nibble order dequantizes as the checkpoint does", "[quant]") {
  const test::quant_weight q(model::quant_method::awq, 40, 96, 32, 13);
  gpu::quant_layout l{model::quant_method::awq, 32};
  REQUIRE(gpu::repackable(q.sw, l));
  check_repack(q, l, 0, 40);
  check_repack(q, l, 3, 11);  // not aligned to the 8 columns of a packed word
  check_repack(q, l, 39, 40);
}

TEST_CASE("repack refuses a layout that does not match the weight", "[quant]") {
  const test::quant_weight q(model::quant_method::awq, 16, 64, 32, 14);
  gpu::quant_layout other{model::quant_method::awq, 64};
  CHECK_FALSE(gpu::repackable(q.sw, other));
  std::vector<std::byte> buf(4096);
  CHECK_THROWS_AS(gpu::repack_rows(q.sw, other, 0, 16, {buf.data(), buf.data(), buf.data()}),
                  std::invalid_argument);
  gpu::quant_layout fp8{model::quant_method::fp8, 32};
  CHECK_FALSE(gpu::repackable(q.sw, fp8));
}
