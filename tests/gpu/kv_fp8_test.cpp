// The fp8 KV cache's numerics (kv_cache_dtype fp8) on the CPU backend, which rounds its
// fp32 cache exactly as the CUDA backend stores e4m3 bytes and per-(token, KV head)
// scales: the rounding itself, and the whole model against the unrounded cache on every
// transformers fixture (top-1 agreement, the bar and why below). The CUDA kernels are
// held to this twin in cuda_attention_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>

#include "engine/llm_engine.h"
#include "gpu/backend.h"
#include "gpu/cpu/ops.h"
#include "model/checkpoint.h"
#include "model/dtype.h"
#include "model/tokenizer/tokenizer.h"
#include "tests/fixture.h"
#include "tests/gpu/offload_roundtrip.h"

#include <simdjson.h>

namespace {

using namespace conclave;

size_t argmax(std::span<const float> row) {
  return static_cast<size_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

/// The fp32-cache and fp8-cache backends of `ckpt`, each with a 64 MiB cache.
std::pair<std::unique_ptr<gpu::backend>, std::unique_ptr<gpu::backend>> fp32_and_fp8(
    const model::checkpoint& ckpt) {
  config::engine_config plain, fp8;
  plain.backend.kv_cache_bytes = fp8.backend.kv_cache_bytes = size_t{64} << 20;
  fp8.backend.kv_cache_dtype = "fp8";
  return {gpu::make_backend(ckpt, plain.backend), gpu::make_backend(ckpt, fp8.backend)};
}

/// Runs `ids` as one prompt through both backends (all logits) and counts the positions
/// whose top-1 token is the same.
size_t same_top1(gpu::backend& a, gpu::backend& b, std::span<const int32_t> ids) {
  const auto bs = static_cast<size_t>(a.kv_shape().block_size);
  std::vector<int32_t> table((ids.size() + bs - 1) / bs);
  std::iota(table.begin(), table.end(), 0);
  gpu::step_sequence s{ids, 0, table, true};
  gpu::step_output oa, ob;
  a.forward({&s, 1}, oa);
  b.forward({&s, 1}, ob);
  REQUIRE(oa.logits.size() == ob.logits.size());
  CHECK(oa.logits != ob.logits);  // the rounding is really applied
  size_t same = 0;
  for (size_t p = 0; p < ids.size(); ++p) same += argmax(oa.row(p)) == argmax(ob.row(p)) ? 1 : 0;
  return same;
}

}  // namespace

TEST_CASE("fp8_kv_round stores e4m3(x / s) * s with s = amax / 448", "[kv][fp8]") {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (size_t n : {1, 16, 128}) {
    std::vector<float> x(n);
    for (auto& v : x) v = d(rng);
    x[n / 2] = n > 1 ? 0.0f : x[0];
    auto r = x;
    const float s = gpu::cpu::fp8_kv_round(r.data(), r.size());
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::abs(v));
    CHECK(s == amax / 448.0f);
    for (size_t i = 0; i < n; ++i) {
      INFO("n " << n << " i " << i << " x " << x[i]);
      CHECK(r[i] == model::fp8_e4m3_to_f32(model::f32_to_fp8_e4m3(x[i] / s)) * s);
      // e4m3 keeps 4 significant bits: a relative step of 2^-4 (half of it when rounding),
      // subnormals below 2^-6 a step of 2^-9 (of s).
      CHECK(std::abs(r[i] - x[i]) <= std::abs(x[i]) / 16 + s / 1024);
    }
  }
  std::vector<float> zeros(64, 0.0f);
  CHECK(gpu::cpu::fp8_kv_round(zeros.data(), zeros.size()) == 1.0f);
  CHECK(std::all_of(zeros.begin(), zeros.end(), [](float v) { return v == 0.0f; }));
}

// e4m3 keeps 4 significant bits (bf16 8): on the dense fixture nothing changes, but the
// random MoE fixtures' routers have near ties (transformers' own bf16 run already flips
// 1-4 % of their top-1s, reference_bf16.json), and the cache's ~3 % rounding flips more:
// measured 93.4 % over all positions (docs/FIDELITY.md). The bar: the dense fixture
// identical, >= 90 % over all (a broken cache agrees on almost none).
TEST_CASE("fp8 KV cache against the fp32 cache on the fixtures", "[kv][fp8][fixture]") {
  const char* const fixtures[] = {"tiny_moe", "moe_mixed_f16", "moe_f32_altkeys", "dense_bias",
                                  "moe_fp8",  "moe_awq",       "moe_yarn",        "moe_swa"};
  size_t positions = 0, same = 0;
  for (const char* name : fixtures) {
    const auto dir = test::data_dir() / name;
    const model::checkpoint ckpt(dir);
    const auto cases = test::load_reference(dir);
    auto [a, b] = fp32_and_fp8(ckpt);
    size_t fixture_same = 0, fixture_positions = 0;
    for (const auto& c : cases) {
      fixture_same += same_top1(*a, *b, c.input_ids);
      fixture_positions += c.input_ids.size();
    }
    WARN(name << ": fp8 KV top-1 agreement with the fp32 cache " << fixture_same << "/"
              << fixture_positions);
    if (std::string(name) == "dense_bias") CHECK(fixture_same == fixture_positions);
    positions += fixture_positions;
    same += fixture_same;
  }
  WARN("fp8 KV top-1 agreement with the fp32 cache over all fixtures: " << same << "/"
                                                                        << positions);
  CHECK(static_cast<double>(same) >= 0.90 * static_cast<double>(positions));
}

// The random fixtures' near ties say little about what e4m3 keys and values cost a
// trained model. The demo model (assets/demo-model, trained; its bf16 weights run in fp32
// here) on held-out conversations of its training generator (tests/data/demo_texts.json:
// a tool list, calls, results, code), teacher-forced: the fp8 cache's next-token choice
// against the fp32 cache's at every position. Measured 2026-12-06: 2808/3025 (92.8 %); the
// same cache rounded to bf16 instead keeps 3008/3025 (99.4 %). e4m3 keeps 4 significant
// bits to bf16's 8, and this small model's choices are often close (docs/long-context.md).
// The bar, >= 90 %, catches a broken cache (one that agrees on almost nothing), not #15's
// 99 %, which e4m3 does not reach here.
TEST_CASE("fp8 KV cache on the trained demo model: top-1 agreement with the fp32 cache",
          "[kv][fp8][demo]") {
  const auto tok = tokenizer::tokenizer::from_file(
      std::filesystem::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json");
  const model::checkpoint ckpt(CONCLAVE_DEMO_MODEL_DIR);
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.load((test::data_dir() / "demo_texts.json").string());
  auto [a, b] = fp32_and_fp8(ckpt);
  size_t positions = 0, same = 0;
  for (const simdjson::dom::element t : doc["texts"].get_array()) {
    const std::string_view kind = t["kind"].get_string();
    const auto ids = tok.encode(std::string_view(t["text"].get_string()));
    const size_t text_same = same_top1(*a, *b, ids);
    WARN("demo model, " << kind << " (" << ids.size() << " tokens): fp8 KV top-1 agreement "
                        << text_same << "/" << ids.size());
    positions += ids.size();
    same += text_same;
  }
  WARN("demo model: fp8 KV top-1 agreement with the fp32 cache " << same << "/" << positions);
  CHECK(positions > 2000);
  CHECK(static_cast<double>(same) >= 0.90 * static_cast<double>(positions));
}

TEST_CASE("kv_cache_dtype is validated and sizes the cache rows", "[kv][fp8]") {
  config::engine_config cfg;
  cfg.backend.kv_cache_dtype = "int8";
  CHECK_FALSE(cfg.validate().empty());
  cfg.backend.kv_cache_dtype = "fp8";
  CHECK(cfg.validate().empty());
  const model::checkpoint ckpt(test::data_dir() / "tiny_moe");
  const auto& c = ckpt.config();
  const size_t width = static_cast<size_t>(c.num_kv_heads * c.head_dim);
  CHECK(gpu::kv_row_bytes(c, 2, false) == 2 * width);
  const size_t fp8 = gpu::kv_row_bytes(c, 2, true);
  CHECK(fp8 % 16 == 0);
  CHECK(fp8 >= width + 4 * static_cast<size_t>(c.num_kv_heads));
  CHECK(fp8 < width + 4 * static_cast<size_t>(c.num_kv_heads) + 16);
}

TEST_CASE("fp8 KV cache with offload and prefix caching gives the unconstrained run's tokens",
          "[kv][fp8][offload]") {
  config::backend_config b;
  b.kv_cache_dtype = "fp8";  // the rounded cache travels to the host and back unchanged
  test::check_offload_engine(b);
}
