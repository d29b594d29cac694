// The quantized formats' facts (docs/quantization.md): float8_e4m3fn's encoding, AWQ's
// nibble order, exact dequantization and the quantizers gen-model uses.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "model/dtype.h"
#include "model/quant.h"
#include "model/safetensors.h"

using namespace conclave;

TEST_CASE("float8_e4m3fn decodes as torch does", "[quant]") {
  CHECK(model::fp8_e4m3_to_f32(0x00) == 0.0f);
  CHECK(std::signbit(model::fp8_e4m3_to_f32(0x80)));
  CHECK(model::fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(model::fp8_e4m3_to_f32(0x07) == 7 * std::ldexp(1.0f, -9));
  CHECK(model::fp8_e4m3_to_f32(0x08) == std::ldexp(1.0f, -6));  // smallest normal
  CHECK(model::fp8_e4m3_to_f32(0x38) == 1.0f);
  CHECK(model::fp8_e4m3_to_f32(0x3c) == 1.5f);
  CHECK(model::fp8_e4m3_to_f32(0xb8) == -1.0f);
  CHECK(model::fp8_e4m3_to_f32(0x7e) == 448.0f);  // largest finite
  CHECK(model::fp8_e4m3_to_f32(0xfe) == -448.0f);
  CHECK(std::isnan(model::fp8_e4m3_to_f32(0x7f)));
  CHECK(std::isnan(model::fp8_e4m3_to_f32(0xff)));
  // 0x78 (exponent 15, mantissa 0) is a number, not infinity: e4m3fn has none.
  CHECK(model::fp8_e4m3_to_f32(0x78) == 256.0f);
}

TEST_CASE("float8_e4m3fn encoding rounds to nearest even and saturates", "[quant]") {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;  // NaN
    const float v = model::fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    INFO("code " << c << " value " << v);
    CHECK(model::f32_to_fp8_e4m3(v) == c);
  }
  CHECK(model::f32_to_fp8_e4m3(1.0625f) == 0x38);  // tie between 1 and 1.125: even (1)
  CHECK(model::f32_to_fp8_e4m3(1.1875f) == 0x3a);  // tie between 1.125 and 1.25: even (1.25)
  CHECK(model::f32_to_fp8_e4m3(1.07f) == 0x39);    // nearer 1.125
  CHECK(model::f32_to_fp8_e4m3(std::ldexp(1.0f, -10)) == 0x00);          // half the smallest: even
  CHECK(model::f32_to_fp8_e4m3(3 * std::ldexp(1.0f, -10)) == 0x02);      // 1.5 quanta: even (2)
  CHECK(model::f32_to_fp8_e4m3(15.5f * std::ldexp(1.0f, -10)) == 0x08);  // rounds up to normal
  CHECK(model::f32_to_fp8_e4m3(500.0f) == 0x7e);
  CHECK(model::f32_to_fp8_e4m3(-1e30f) == 0xfe);
  CHECK(model::f32_to_fp8_e4m3(std::nanf("")) == 0x7f);
  CHECK(model::f32_to_fp8_e4m3(15.0f) == 0x57);  // 1.875 * 2^3: mantissa 7, exponent 10
}

TEST_CASE("AWQ's packing order: nibble j holds column order[j]", "[quant]") {
  // Columns 0..7 with values 0..7, packed as AutoAWQ packs them.
  uint32_t packed = 0;
  for (int j = 0; j < 8; ++j) packed |= static_cast<uint32_t>(model::awq_pack_order[j]) << (4 * j);
  CHECK(packed == 0x75316420u);
  for (int k = 0; k < 8; ++k) CHECK(model::awq_nibble(packed, k) == k);
  for (int k = 0; k < 8; ++k) CHECK(model::awq_pack_order[model::awq_unpack_order[k]] == k);
}

namespace {

model::tensor_view view_of(std::string name, model::dtype t, std::vector<int64_t> shape,
                           const void* data) {
  model::tensor_view v;
  v.name = std::move(name);
  v.type = t;
  v.shape = std::move(shape);
  v.data = static_cast<const std::byte*>(data);
  v.nbytes = v.numel() * model::dtype_size(t);
  return v;
}

std::vector<float> random_matrix(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (auto& x : w) x = d(rng);
  return w;
}

}  // namespace

TEST_CASE("fp8 block dequantization: float(q) times its block's scale", "[quant]") {
  // 3 x 5 weight, blocks of 2 x 3: scales [2, 2] with partial last block row and column.
  const uint8_t q[15] = {0x38, 0x40, 0xb8, 0x3c, 0x00, 0x30, 0x44, 0x48,
                         0x01, 0x7e, 0x38, 0x38, 0x38, 0x38, 0x38};
  const float s[4] = {0.5f, 2.0f, 0.25f, 1e-3f};
  const auto tq = view_of("w", model::dtype::f8_e4m3, {3, 5}, q);
  const auto ts = view_of("s", model::dtype::f32, {2, 2}, s);
  model::stored_weight w{model::quant_method::fp8, &tq, &ts, nullptr, 3, 5, 2, 3};
  std::vector<float> out(15);
  model::dequantize(w, out.data());
  for (int o = 0; o < 3; ++o) {
    for (int i = 0; i < 5; ++i) {
      INFO("o " << o << " i " << i);
      CHECK(out[o * 5 + i] == model::fp8_e4m3_to_f32(q[o * 5 + i]) * s[(o / 2) * 2 + i / 3]);
    }
  }
  // Rows on their own give the same values.
  std::vector<float> row(5);
  model::dequantize_rows(w, 2, 3, row.data());
  CHECK(std::equal(row.begin(), row.end(), out.begin() + 10));
  CHECK_THROWS_AS(model::dequantize_rows(w, 2, 4, row.data()), std::out_of_range);
}

TEST_CASE("fp8 quantize then dequantize is within half a step of each block's grid", "[quant]") {
  const int64_t out = 70, in = 300, bo = 32, bi = 128;
  const auto w = random_matrix(out, in, 3);
  std::vector<uint8_t> q(w.size());
  const int64_t so = (out + bo - 1) / bo, si = (in + bi - 1) / bi;
  std::vector<float> s(static_cast<size_t>(so * si));
  model::quantize_fp8_block(w.data(), out, in, bo, bi, q.data(), s.data());
  const auto tq = view_of("w", model::dtype::f8_e4m3, {out, in}, q.data());
  const auto ts = view_of("s", model::dtype::f32, {so, si}, s.data());
  model::stored_weight sw{model::quant_method::fp8, &tq, &ts, nullptr, out, in, bo, bi};
  std::vector<float> d(w.size());
  model::dequantize(sw, d.data());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const float scale = s[static_cast<size_t>((o / bo) * si + i / bi)];
      const float x = w[static_cast<size_t>(o * in + i)];
      // e4m3 keeps 3 mantissa bits: relative error <= 2^-4, plus the subnormal quantum.
      CHECK(std::fabs(d[static_cast<size_t>(o * in + i)] - x) <=
            std::fabs(x) * 0.0625f + scale * std::ldexp(1.0f, -10) + 1e-12f);
    }
  }
}

TEST_CASE("AWQ dequantization: (q - z) * s with AWQ's packing", "[quant]") {
  // in 4, out 8, group 2: two groups.
  const int64_t out = 8, in = 4, g = 2;
  int32_t qweight[4] = {};
  int32_t qzeros[2] = {};
  uint16_t scales[16];
  const auto put = [](int32_t& word, int col, int v) {
    word = static_cast<int32_t>(static_cast<uint32_t>(word) |
                                (static_cast<uint32_t>(v) << (4 * model::awq_unpack_order[col])));
  };
  for (int i = 0; i < in; ++i)
    for (int o = 0; o < out; ++o) put(qweight[i], o, (i * 3 + o) % 16);
  for (int grp = 0; grp < 2; ++grp)
    for (int o = 0; o < out; ++o) put(qzeros[grp], o, (grp + o) % 16);
  for (int grp = 0; grp < 2; ++grp)
    for (int o = 0; o < out; ++o)
      scales[grp * out + o] = model::f32_to_f16(0.125f * static_cast<float>(1 + o + grp));
  const auto tq = view_of("qweight", model::dtype::i32, {in, out / 8}, qweight);
  const auto tz = view_of("qzeros", model::dtype::i32, {in / g, out / 8}, qzeros);
  const auto ts = view_of("scales", model::dtype::f16, {in / g, out}, scales);
  model::stored_weight w{model::quant_method::awq, &tq, &ts, &tz, out, in, 1, g};
  std::vector<float> d(static_cast<size_t>(out * in));
  model::dequantize(w, d.data());
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) {
      const int grp = i / 2;
      const float expect = static_cast<float>((i * 3 + o) % 16 - (grp + o) % 16) * 0.125f *
                           static_cast<float>(1 + o + grp);
      INFO("o " << o << " i " << i);
      CHECK(d[static_cast<size_t>(o * in + i)] == expect);
    }
  }
}

TEST_CASE("AWQ quantize then dequantize is within half a step of each group's grid", "[quant]") {
  const int64_t out = 24, in = 256, g = 64;
  auto w = random_matrix(out, in, 9);
  for (int64_t i = 0; i < g; ++i) w[static_cast<size_t>(i)] = 0.0f;  // an all-zero group
  std::vector<int32_t> qw(static_cast<size_t>(in * out / 8)),
      qz(static_cast<size_t>(in / g * out / 8));
  std::vector<uint16_t> sc(static_cast<size_t>(in / g * out));
  model::quantize_awq(w.data(), out, in, g, qw.data(), qz.data(), sc.data());
  const auto tq = view_of("qweight", model::dtype::i32, {in, out / 8}, qw.data());
  const auto tz = view_of("qzeros", model::dtype::i32, {in / g, out / 8}, qz.data());
  const auto ts = view_of("scales", model::dtype::f16, {in / g, out}, sc.data());
  model::stored_weight sw{model::quant_method::awq, &tq, &ts, &tz, out, in, 1, g};
  std::vector<float> d(w.size());
  model::dequantize(sw, d.data());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      const float s = model::f16_to_f32(sc[static_cast<size_t>((i / g) * out + o)]);
      INFO("o " << o << " i " << i);
      CHECK(std::fabs(d[static_cast<size_t>(o * in + i)] - w[static_cast<size_t>(o * in + i)]) <=
            0.51f * s + 1e-7f);
    }
  }
  for (int64_t i = 0; i < g; ++i) CHECK(d[static_cast<size_t>(i)] == 0.0f);
}
