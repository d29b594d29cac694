// Safetensors: writer/reader round trip, and every malformed file gives one line
// naming the file (and tensor) and what was expected.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>

#include "model/model_error.h"
#include "model/safetensors.h"
#include "tests/fixture.h"

using namespace conclave;
using model::model_error;

namespace {

void write_raw(const std::filesystem::path& p, const std::string& header, size_t data_bytes,
               std::optional<uint64_t> declared_len = std::nullopt) {
  std::ofstream f(p, std::ios::binary);
  const uint64_t len = declared_len.value_or(header.size());
  f.write(reinterpret_cast<const char*>(&len), 8);
  f << header;
  f << std::string(data_bytes, '\0');
}

std::string safetensors_error(const std::filesystem::path& p) {
  try {
    model::safetensors_file f(p);
  } catch (const model_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(msg.find(p.string()) != std::string::npos);
    return msg;
  }
  FAIL("no error for " << p);
  return {};
}

}  // namespace

TEST_CASE("safetensors round trip", "[safetensors]") {
  test::temp_dir tmp;
  const auto p = tmp.path() / "a.safetensors";
  std::vector<model::tensor_plan> plan = {{"x", model::dtype::f32, {2, 3}},
                                          {"y.z", model::dtype::bf16, {5}}};
  model::write_safetensors(p, plan, [](size_t i, std::byte* dst) {
    if (i == 0) {
      const float v[6] = {1, 2, 3, 4, 5, 6};
      std::memcpy(dst, v, sizeof v);
    } else {
      for (int k = 0; k < 5; ++k) {
        const uint16_t h = model::f32_to_bf16(static_cast<float>(k) * 0.5f);
        std::memcpy(dst + 2 * k, &h, 2);
      }
    }
  });
  model::safetensors_file f(p);
  REQUIRE(f.tensors().size() == 2);
  const auto* x = f.find("x");
  REQUIRE(x != nullptr);
  CHECK(x->shape == std::vector<int64_t>{2, 3});
  float back[6];
  model::convert_to_f32(x->type, x->data, 6, back);
  CHECK(back[5] == 6.0f);
  const auto* y = f.find("y.z");
  REQUIRE(y != nullptr);
  CHECK(y->type == model::dtype::bf16);
  float yb[5];
  model::convert_to_f32(y->type, y->data, 5, yb);
  CHECK(yb[3] == 1.5f);
  CHECK(f.find("nope") == nullptr);
}

TEST_CASE("malformed safetensors files are refused with a clear message", "[safetensors]") {
  test::temp_dir tmp;
  const auto p = tmp.path() / "bad.safetensors";
  SECTION("shorter than the length prefix") {
    std::ofstream(p, std::ios::binary) << "abc";
    CHECK_THAT(safetensors_error(p), Catch::Contains("truncated: 3 bytes"));
  }
  SECTION("header length past the end") {
    write_raw(p, R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4, 1u << 30);
    CHECK_THAT(safetensors_error(p), Catch::Contains("header length 1073741824 runs past the end"));
  }
  SECTION("header not JSON") {
    write_raw(p, "{not json", 0);
    CHECK_THAT(safetensors_error(p), Catch::Contains("header is not a JSON object"));
  }
  SECTION("data truncated") {
    write_raw(p, R"({"w":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})", 10);
    CHECK_THAT(safetensors_error(p),
               Catch::Contains("tensor w: data_offsets [0, 64] lie outside the 10 data bytes"));
  }
  SECTION("unsupported dtype") {
    write_raw(p, R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16);
    CHECK_THAT(
        safetensors_error(p),
        Catch::Contains(
            "tensor ids: dtype I64 is not supported (expected BF16, F16, F32, F8_E4M3 or I32)"));
  }
  SECTION("offsets disagree with shape") {
    write_raw(p, R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8);
    CHECK_THAT(
        safetensors_error(p),
        Catch::Contains("tensor w: data_offsets span 8 bytes but shape [3] of BF16 needs 6"));
  }
  SECTION("negative shape") {
    write_raw(p, R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0);
    CHECK_THAT(safetensors_error(p),
               Catch::Contains("shape entries must be non-negative integers"));
  }
  SECTION("missing file") {
    CHECK_THAT(safetensors_error(tmp.path() / "none.safetensors"), Catch::Contains("cannot open"));
  }
}
