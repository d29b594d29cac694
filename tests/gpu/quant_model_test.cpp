// The CPU backend on fp8 and AWQ checkpoints computes exactly what it computes on the
// same weights dequantized and stored as fp32: dequantization at load is the reference
// semantics (docs/quantization.md). Transformers' side of the same claim is the
// moe_fp8 / moe_awq fixtures (fixture_test.cpp).
#include <catch2/catch.hpp>
#include <fstream>
#include <numeric>

#include "engine/llm_engine.h"
#include "gpu/backend.h"
#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "tests/fixture.h"
#include "tests/gpu/quant_twin.h"

namespace {

using namespace conclave;

/// A random tiny checkpoint quantized with `m` (AWQ groups of 32) in tmp/<method>.
std::filesystem::path tiny_quantized(const test::temp_dir& tmp, model::quant_method m,
                                     uint64_t seed) {
  model::gen_model_options o;
  o.preset = "tiny";
  o.seed = seed;
  o.quant.method = m;
  o.quant.group_size = 32;
  const auto dir = tmp.path() / std::string(model::quant_method_name(m));
  model::write_random_checkpoint(o, dir);
  return dir;
}

std::vector<float> all_logits(const model::checkpoint& ckpt, const std::vector<int32_t>& ids) {
  config::engine_config cfg;
  cfg.backend.kv_cache_bytes = size_t{16} << 20;
  auto be = gpu::make_backend(ckpt, cfg.backend);
  std::vector<int32_t> table(ids.size() / 16 + 1);
  std::iota(table.begin(), table.end(), 0);
  gpu::step_sequence s{ids, 0, table, true};
  gpu::step_output out;
  be->forward({&s, 1}, out);
  return out.logits;
}

}  // namespace

TEST_CASE("quantized checkpoints run exactly as their dequantized fp32 twins (CPU)",
          "[quant][cpu]") {
  test::temp_dir tmp;
  for (auto m : {model::quant_method::fp8, model::quant_method::awq}) {
    INFO(model::quant_method_name(m));
    const auto qdir = tiny_quantized(tmp, m, 4);
    const model::checkpoint q(qdir);
    const auto tdir = qdir.string() + "-twin";
    test::write_dequantized_twin(q, tdir);
    const model::checkpoint t(tdir);
    REQUIRE_FALSE(t.config().quant.quantized());

    std::vector<int32_t> ids(41);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 131 + 7) % 2048);
    const auto lq = all_logits(q, ids), lt = all_logits(t, ids);
    REQUIRE(lq.size() == lt.size());
    CHECK(lq == lt);  // bit for bit

    config::engine_config cfg;
    cfg.backend.kv_cache_bytes = size_t{16} << 20;
    engine::sampling_params sp;
    sp.temperature = 0.0f;
    sp.ignore_eos = true;
    sp.max_tokens = 20;
    engine::llm_engine eq(gpu::make_backend(q, cfg.backend), cfg);
    engine::llm_engine et(gpu::make_backend(t, cfg.backend), cfg);
    CHECK(eq.generate(ids, sp) == et.generate(ids, sp));
  }
}

TEST_CASE("the bf16-exact copy of a quantized checkpoint dequantizes to bf16 values (CPU)",
          "[quant][cpu]") {
  test::temp_dir tmp;
  for (auto m : {model::quant_method::fp8, model::quant_method::awq}) {
    INFO(model::quant_method_name(m));
    const auto qdir = tiny_quantized(tmp, m, 6);
    const auto edir = qdir.string() + "-exact";
    test::write_bf16_exact_copy(qdir, edir);
    const model::checkpoint q(qdir), e(edir);
    REQUIRE(e.config().quant.method == m);
    size_t weights = 0, inexact_before = 0, inexact_after = 0, changed = 0, too_far = 0;
    for (const auto& spec : model::expected_tensors(e.config())) {
      if (!spec.linear || !model::quantizes_weight(spec.name)) continue;
      ++weights;
      std::vector<float> a(q.logical_numel(spec.name)), b(a.size());
      q.read_f32(spec.name, a.data());
      e.read_f32(spec.name, b.data());
      for (size_t i = 0; i < a.size(); ++i) {
        const auto exact = [](float v) { return model::bf16_to_f32(model::f32_to_bf16(v)) == v; };
        inexact_before += exact(a[i]) ? 0 : 1;
        inexact_after += exact(b[i]) ? 0 : 1;
        changed += a[i] != b[i] ? 1 : 0;
        // The rounding moves a scale by at most a factor of 2^(1/2) (fp8) or 1/16 (awq).
        too_far += std::abs(b[i]) <= std::abs(a[i]) * 1.5f ? 0 : 1;
      }
    }
    CHECK(weights > 0);
    CHECK(inexact_before > 0);  // the original really needed the rounding
    CHECK(changed > 0);
    CHECK(inexact_after == 0);
    CHECK(too_far == 0);
  }
}

TEST_CASE("a folder of weights generated on the device is refused by the cpu backend in one line",
          "[gen_model][backend]") {
  test::temp_dir tmp;
  model::gen_model_options o;
  o.weights_on_device = true;
  model::write_random_checkpoint(o, tmp.path() / "m");
  const model::checkpoint ckpt(tmp.path() / "m");
  config::backend_config b;
  b.kind = "cpu";
  try {
    gpu::make_backend(ckpt, b);
    FAIL("the cpu backend took a folder without weights");
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    CHECK(what.find("generated on the GPU at load") != std::string::npos);
    CHECK(what.find("only --backend cuda") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
}
