// gen-model: deterministic bytes, valid checkpoints for every small preset, sharding.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "model/model_error.h"
#include "tests/fixture.h"

using namespace conclave;

namespace {}  // namespace

TEST_CASE("same preset and seed give the same bytes, another seed differs", "[gen_model]") {
  test::temp_dir tmp;
  model::gen_model_options o;
  o.seed = 42;
  model::write_random_checkpoint(o, tmp.path() / "a");
  model::write_random_checkpoint(o, tmp.path() / "b");
  o.seed = 43;
  model::write_random_checkpoint(o, tmp.path() / "c");
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
    CHECK(conclave::test::read_text(tmp.path() / "a" / f) ==
          conclave::test::read_text(tmp.path() / "b" / f));
  }
  CHECK(conclave::test::read_text(tmp.path() / "a" / "model.safetensors") !=
        conclave::test::read_text(tmp.path() / "c" / "model.safetensors"));
}

TEST_CASE("generated checkpoints load, in every dtype and sharded", "[gen_model]") {
  test::temp_dir tmp;
  for (auto t : {model::dtype::bf16, model::dtype::f16, model::dtype::f32}) {
    model::gen_model_options o;
    o.type = t;
    o.max_shard_bytes = 256 << 10;
    const auto dir = tmp.path() / std::string(model::dtype_name(t));
    model::write_random_checkpoint(o, dir);
    model::checkpoint c(dir);
    CHECK(c.tensor("model.embed_tokens.weight").type == t);
    CHECK(std::filesystem::exists(dir / "model.safetensors.index.json"));
  }
}

TEST_CASE("weights follow the preset's distribution", "[gen_model]") {
  double sum = 0, sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double v = model::random_weight(1, "w", static_cast<size_t>(i), 0.5f, false);
    sum += v;
    sq += v * v;
  }
  CHECK(std::abs(sum / n) < 0.02);
  CHECK(std::sqrt(sq / n) == Approx(0.5).epsilon(0.03));
  CHECK(model::random_weight(1, "n.norm.weight", 3, 0.5f, true) == Approx(1.0).margin(0.6));
  CHECK(model::random_weight(1, "w", 7, 0.5f, false) ==
        model::random_weight(1, "w", 7, 0.5f, false));
  CHECK(model::random_weight(1, "w", 7, 0.5f, false) !=
        model::random_weight(2, "w", 7, 0.5f, false));
}

TEST_CASE("presets have the real shapes and bad options are refused", "[gen_model]") {
  const auto& p30 = model::find_preset("qwen3-30b-a3b").config;
  CHECK(p30.num_layers == 48);
  CHECK(p30.num_experts == 128);
  CHECK(p30.num_heads == 32);
  const auto& p480 = model::find_preset("qwen3-coder-480b").config;
  CHECK(p480.hidden_size == 6144);
  CHECK(p480.num_experts == 160);
  CHECK(p480.rope_theta == 1e7);
  CHECK(model::find_preset("demo").config.vocab_size == 151936);
  CHECK_THROWS_WITH(model::find_preset("huge"),
                    Catch::Contains("unknown preset \"huge\" (known: tiny, tiny-qwen, demo"));
  test::temp_dir tmp;
  model::gen_model_options o;
  o.num_layers = 4;  // tiny has 3
  CHECK_THROWS_WITH(model::write_random_checkpoint(o, tmp.path()),
                    Catch::Contains("--layers must be between 1 and 3"));
  o.num_layers = 1;
  model::write_random_checkpoint(o, tmp.path() / "one");
  CHECK(model::checkpoint(tmp.path() / "one").config().num_layers == 1);
}

TEST_CASE(
    "gen-model --weights-on-device writes the config and the seed but no weights, and the "
    "folder opens without tensors",
    "[gen_model]") {
  test::temp_dir tmp;
  model::gen_model_options o;
  o.preset = "tiny";
  o.seed = 7;
  const auto stored = tmp.path() / "stored";
  model::write_random_checkpoint(o, stored);
  o.weights_on_device = true;
  const auto dir = tmp.path() / "device";
  CHECK(model::write_random_checkpoint(o, dir) == 0);
  CHECK(!std::filesystem::exists(dir / "model.safetensors"));
  CHECK(!std::filesystem::exists(dir / "model.safetensors.index.json"));
  CHECK(conclave::test::read_text(dir / "config.json") ==
        conclave::test::read_text(stored / "config.json"));
  const model::checkpoint c(dir);
  REQUIRE(c.random_weights().has_value());
  CHECK(c.random_weights()->seed == 7);
  CHECK(c.random_weights()->init_std == model::find_preset("tiny").init_std);
  CHECK(c.random_weights()->stored == model::dtype::bf16);
  CHECK(c.weight_bytes() == 0);
  CHECK(!c.has("model.embed_tokens.weight"));
  try {
    c.tensor("model.embed_tokens.weight");
    FAIL("a tensor was read from a folder without weights");
  } catch (const model::model_error& e) {
    const std::string what = e.what();
    CHECK(what.find("random_weights.json") != std::string::npos);
    CHECK(what.find("only the cuda backend") != std::string::npos);
    CHECK(what.find('\n') == std::string::npos);
  }
  CHECK_THROWS_AS(c.weight("model.layers.0.self_attn.q_proj.weight"), model::model_error);
  CHECK(!model::checkpoint(stored).random_weights().has_value());
  // Writing stored weights over the folder removes the marker: it never says both.
  o.weights_on_device = false;
  model::write_random_checkpoint(o, dir);
  CHECK(!std::filesystem::exists(dir / model::kRandomWeightsFile));
  CHECK(!model::checkpoint(dir).random_weights().has_value());
  // The storage dtype travels: the device rounds its values through it.
  o.weights_on_device = true;
  o.type = model::dtype::f32;
  model::write_random_checkpoint(o, dir);
  CHECK(model::checkpoint(dir).random_weights()->stored == model::dtype::f32);
}

TEST_CASE("random_weights.json: malformed files are one-line errors", "[gen_model]") {
  test::temp_dir tmp;
  model::gen_model_options o;
  o.weights_on_device = true;
  const auto dir = tmp.path() / "m";
  model::write_random_checkpoint(o, dir);
  const auto bad = [&](const std::string& text, const std::string& what) {
    std::ofstream(dir / model::kRandomWeightsFile, std::ios::trunc) << text;
    try {
      model::checkpoint c(dir);
    } catch (const model::model_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(what) != std::string::npos);
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
      return;
    }
    FAIL("accepted: " << text);
  };
  bad("{", "not a JSON object");
  bad(R"({"init_std": 0.02})", "\"seed\" must be a non-negative integer");
  bad(R"({"seed": -1, "init_std": 0.02})", "\"seed\" must be a non-negative integer");
  bad(R"({"seed": 1})", "\"init_std\" must be a number in (0, 10]");
  bad(R"({"seed": 1, "init_std": 0})", "\"init_std\" must be a number in (0, 10]");
  bad(R"({"seed": 1, "init_std": 0.02, "dtype": "I32"})",
      "\"dtype\" must be \"BF16\", \"F16\" or \"F32\"");
  bad(R"({"seed": 1, "init_std": 0.02, "dtype": 16})", "\"dtype\" must be \"BF16\"");
  std::filesystem::remove(dir / model::kRandomWeightsFile);
  CHECK_THROWS_WITH(
      model::checkpoint(dir),
      Catch::Contains("no model.safetensors, model.safetensors.index.json or random_weights.json"));
}
