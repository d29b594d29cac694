// Opening checkpoint folders: single file, shards + index, and every bad input the
// issue lists (truncated file, header past the end, wrong shape, wrong dtype, missing
// tensor, missing config key, unknown architecture) as one line naming the culprit.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model/checkpoint.h"
#include "model/gen_model.h"
#include "model/model_error.h"
#include "tests/fixture.h"

using namespace conclave;

namespace {

void spit(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

/// Rewrites DIR/model.safetensors, letting `edit` change each tensor's plan; data is
/// copied where the size still matches, else zero.
void rewrite(const std::filesystem::path& dir,
             const std::function<bool(model::tensor_plan&)>& edit) {
  const auto path = dir / "model.safetensors";
  const auto tmp = dir / "rewritten";
  {
    model::safetensors_file src(path);
    std::vector<model::tensor_plan> plan;
    std::vector<const model::tensor_view*> views;
    for (const auto& [name, t] : src.tensors()) {
      model::tensor_plan p{name, t.type, t.shape};
      if (!edit(p)) continue;
      plan.push_back(p);
      views.push_back(&t);
    }
    model::write_safetensors(tmp, plan, [&](size_t i, std::byte* dst) {
      if (plan[i].nbytes() == views[i]->nbytes) std::memcpy(dst, views[i]->data, views[i]->nbytes);
    });
  }
  std::filesystem::rename(tmp, path);
}

std::string checkpoint_error(const std::filesystem::path& dir) {
  try {
    model::checkpoint c(dir);
  } catch (const model::model_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find('\n') == std::string::npos);
    return msg;
  }
  FAIL("no error for " << dir);
  return {};
}

std::filesystem::path make_tiny(const test::temp_dir& tmp) {
  model::gen_model_options o;
  o.preset = "tiny";
  const auto dir = tmp.path() / "m";
  model::write_random_checkpoint(o, dir);
  return dir;
}

}  // namespace

TEST_CASE("the shared fixture opens (4 shards + index)", "[checkpoint]") {
  model::checkpoint c(test::data_dir() / "tiny_moe");
  CHECK(c.config().num_layers == 4);
  CHECK(c.config().num_experts == 16);
  CHECK(c.has("model.layers.3.mlp.experts.15.down_proj.weight"));
  CHECK(c.tensor("lm_head.weight").shape == std::vector<int64_t>{8192, 128});
  CHECK_THROWS_AS(c.tensor("nope"), model::model_error);
}

TEST_CASE("bad checkpoints give one line naming what is wrong", "[checkpoint]") {
  test::temp_dir tmp;
  const auto dir = make_tiny(tmp);
  const std::string st = (dir / "model.safetensors").string();
  REQUIRE_NOTHROW(model::checkpoint(dir));

  SECTION("truncated file") {
    const std::string data = conclave::test::read_text(dir / "model.safetensors");
    spit(dir / "model.safetensors", data.substr(0, data.size() - 1000));
    const auto msg = checkpoint_error(dir);
    CHECK_THAT(msg, Catch::Contains(st) && Catch::Contains("lie outside"));
  }
  SECTION("header length past the end") {
    std::string data = conclave::test::read_text(dir / "model.safetensors");
    const uint64_t len = data.size();
    std::memcpy(data.data(), &len, 8);
    spit(dir / "model.safetensors", data);
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains(st) && Catch::Contains("runs past the end of the file"));
  }
  SECTION("tensor of the wrong shape") {
    rewrite(dir, [](model::tensor_plan& p) {
      if (p.name == "model.layers.1.self_attn.k_proj.weight") p.shape = {16, 64};
      return true;
    });
    CHECK_THAT(
        checkpoint_error(dir),
        Catch::Contains(
            "tensor model.layers.1.self_attn.k_proj.weight has shape [16, 64], expected [32, 64]"));
  }
  SECTION("tensor of the wrong dtype") {
    std::string data = conclave::test::read_text(dir / "model.safetensors");
    const auto at = data.find(R"("model.norm.weight":{"dtype":"BF16")");
    REQUIRE(at != std::string::npos);
    data.replace(data.find("\"BF16\"", at), 6, "\"I16\" ");  // same header length
    spit(dir / "model.safetensors", data);
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains("tensor model.norm.weight: dtype I16 is not supported"));
  }
  SECTION("missing tensor") {
    rewrite(dir, [](model::tensor_plan& p) {
      return p.name != "model.layers.2.mlp.experts.5.up_proj.weight";
    });
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains(
                   "missing tensor model.layers.2.mlp.experts.5.up_proj.weight (shape [32, 64])"));
  }
  SECTION("missing config key") {
    std::string cfg = conclave::test::read_text(dir / "config.json");
    const auto at = cfg.find("  \"num_attention_heads\"");
    cfg.erase(at, cfg.find('\n', at) - at + 1);
    spit(dir / "config.json", cfg);
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains("config.json: missing required key \"num_attention_heads\""));
  }
  SECTION("unknown architecture") {
    std::string cfg = conclave::test::read_text(dir / "config.json");
    cfg.replace(cfg.find("Qwen3MoeForCausalLM"), 19, "MixtralForCausalLM");
    spit(dir / "config.json", cfg);
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains("architecture \"MixtralForCausalLM\" is not supported"));
  }
  SECTION("no weights at all") {
    std::filesystem::remove(dir / "model.safetensors");
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains(
                   "no model.safetensors, model.safetensors.index.json or random_weights.json"));
  }
  SECTION("not a folder") {
    CHECK_THAT(checkpoint_error(dir / "config.json"), Catch::Contains("not a directory"));
  }
}

TEST_CASE("a shard named by the index must exist and hold its tensors", "[checkpoint]") {
  test::temp_dir tmp;
  model::gen_model_options o;
  o.max_shard_bytes = 300 << 10;
  const auto dir = tmp.path() / "sharded";
  model::write_random_checkpoint(o, dir);
  REQUIRE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  REQUIRE_NOTHROW(model::checkpoint(dir));
  std::string index = conclave::test::read_text(dir / "model.safetensors.index.json");
  const std::string key = "\"model.norm.weight\": \"";
  const auto begin = index.find(key) + key.size();
  const std::string own = index.substr(begin, index.find('"', begin) - begin);
  const std::string other = own == "model-00001-of-00003.safetensors"
                                ? "model-00002-of-00003.safetensors"
                                : "model-00001-of-00003.safetensors";
  REQUIRE(std::filesystem::exists(dir / other));
  SECTION("tensor listed in the wrong shard") {
    index.replace(begin, own.size(), other);
    spit(dir / "model.safetensors.index.json", index);
    CHECK_THAT(
        checkpoint_error(dir),
        Catch::Contains("tensor model.norm.weight is listed in the index but not in this file"));
  }
  SECTION("missing shard") {
    std::filesystem::remove(dir / other);
    CHECK_THAT(checkpoint_error(dir),
               Catch::Contains("shard " + other + " named by the index is missing"));
  }
}

namespace {

std::filesystem::path make_quantized(const test::temp_dir& tmp, model::quant_method m) {
  model::gen_model_options o;
  o.preset = "tiny";
  o.quant.method = m;
  o.quant.group_size = 32;  // tiny's projections have 32 or 64 inputs
  const auto dir = tmp.path() / std::string(model::quant_method_name(m));
  model::write_random_checkpoint(o, dir);
  return dir;
}

void edit_config(const std::filesystem::path& dir, const std::string& from, const std::string& to) {
  std::string cfg = conclave::test::read_text(dir / "config.json");
  const auto at = cfg.find(from);
  REQUIRE(at != std::string::npos);
  cfg.replace(at, from.size(), to);
  spit(dir / "config.json", cfg);
}

}  // namespace

TEST_CASE("fp8 and AWQ checkpoints open with their weights stored quantized",
          "[checkpoint][quant]") {
  test::temp_dir tmp;
  for (auto m : {model::quant_method::fp8, model::quant_method::awq}) {
    INFO(model::quant_method_name(m));
    const auto dir = make_quantized(tmp, m);
    const model::checkpoint c(dir);
    CHECK(c.config().quant.method == m);
    const auto& q = c.weight("model.layers.1.self_attn.q_proj.weight");
    CHECK(q.method == m);
    CHECK(q.out == 64);
    CHECK(q.in == 64);
    CHECK(c.weight("model.layers.2.mlp.experts.7.down_proj.weight").method == m);
    // The router and lm_head stay bf16, as in Qwen's checkpoints.
    CHECK(c.weight("model.layers.0.mlp.gate.weight").method == model::quant_method::none);
    CHECK(c.weight("lm_head.weight").method == model::quant_method::none);
    CHECK(c.logical_numel("model.layers.1.self_attn.o_proj.weight") == 64 * 64);
    // read_f32 is the exact dequantization.
    std::vector<float> a(64 * 64), b(64 * 64);
    c.read_f32("model.layers.1.self_attn.q_proj.weight", a.data());
    model::dequantize(q, b.data());
    CHECK(a == b);
    CHECK_THROWS_AS(c.weight("model.norm.weight"), model::model_error);
  }
}

TEST_CASE("bad quantized checkpoints give one line naming what is wrong", "[checkpoint][quant]") {
  test::temp_dir tmp;
  const auto fp8 = make_quantized(tmp, model::quant_method::fp8);
  const auto awq = make_quantized(tmp, model::quant_method::awq);
  const std::string k = "model.layers.1.self_attn.k_proj";

  SECTION("unknown method") {
    edit_config(fp8, "\"quant_method\": \"fp8\"", "\"quant_method\": \"gptq\"");
    CHECK_THAT(checkpoint_error(fp8),
               Catch::Contains("quantization method \"gptq\" is not supported"));
  }
  SECTION("bitsandbytes") {
    edit_config(awq, "\"quant_method\": \"awq\"", "\"quant_method\": \"bitsandbytes\"");
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains("quantization method \"bitsandbytes\" is not supported"));
  }
  SECTION("fp8 without block scales") {
    edit_config(fp8, ", \"weight_block_size\": [128, 128]", "");
    CHECK_THAT(checkpoint_error(fp8), Catch::Contains("missing \"weight_block_size\""));
  }
  SECTION("static fp8 activations") {
    edit_config(fp8, "\"dynamic\"", "\"static\"");
    CHECK_THAT(checkpoint_error(fp8),
               Catch::Contains("activation_scheme \"static\" is not supported"));
  }
  SECTION("8-bit AWQ") {
    edit_config(awq, "\"bits\": 4", "\"bits\": 8");
    CHECK_THAT(checkpoint_error(awq), Catch::Contains("AWQ with 8 bits is not supported"));
  }
  SECTION("AWQ GEMV packing") {
    edit_config(awq, "\"version\": \"gemm\"", "\"version\": \"gemv\"");
    CHECK_THAT(checkpoint_error(awq), Catch::Contains("AWQ version \"gemv\" is not supported"));
  }
  SECTION("fp8 weights without a quantization_config") {
    std::string cfg = conclave::test::read_text(fp8 / "config.json");
    const auto at = cfg.find("  \"quantization_config\"");
    cfg.erase(at, cfg.find('\n', at) - at + 1);
    spit(fp8 / "config.json", cfg);
    CHECK_THAT(checkpoint_error(fp8), Catch::Contains("is F8_E4M3 but config.json has no fp8"));
  }
  SECTION("missing scale tensor") {
    rewrite(fp8, [&](model::tensor_plan& p) { return p.name != k + ".weight_scale_inv"; });
    CHECK_THAT(checkpoint_error(fp8),
               Catch::Contains("fp8 tensor " + k + ".weight has no scale tensor " + k +
                               ".weight_scale_inv"));
  }
  SECTION("scale of the wrong shape") {
    rewrite(fp8, [&](model::tensor_plan& p) {
      if (p.name == k + ".weight_scale_inv") p.shape = {2, 1};
      return true;
    });
    CHECK_THAT(
        checkpoint_error(fp8),
        Catch::Contains("tensor " + k + ".weight_scale_inv has shape [2, 1], expected [1, 1]"));
  }
  SECTION("fp8 scales must be real numbers") {
    rewrite(fp8, [&](model::tensor_plan& p) {
      if (p.name == k + ".weight_scale_inv") p.type = model::dtype::i32;
      return true;
    });
    CHECK_THAT(checkpoint_error(fp8),
               Catch::Contains("scale tensor " + k + ".weight_scale_inv is I32"));
  }
  SECTION("a norm may not be quantized") {
    rewrite(fp8, [](model::tensor_plan& p) {
      if (p.name == "model.norm.weight") p.type = model::dtype::f8_e4m3;
      return true;
    });
    CHECK_THAT(checkpoint_error(fp8),
               Catch::Contains("tensor model.norm.weight is F8_E4M3, but only linear weights"));
  }
  SECTION("truncated packed tensor") {
    rewrite(awq, [&](model::tensor_plan& p) {
      if (p.name == k + ".qweight") p.shape = {60, 4};
      return true;
    });
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains("tensor " + k + ".qweight has shape [60, 4], expected [64, 4]"));
  }
  SECTION("truncated file inside a packed tensor") {
    const std::string last = "model.layers.2.mlp.experts.7.down_proj.qweight";
    const std::string data = conclave::test::read_text(awq / "model.safetensors");
    size_t at = 0;
    {
      model::safetensors_file f(awq / "model.safetensors");
      const auto* t = f.find(last);
      REQUIRE(t != nullptr);
      const std::byte* data_begin = t->data;
      for (const auto& [name, v] : f.tensors()) data_begin = std::min(data_begin, v.data);
      uint64_t header = 0;
      std::memcpy(&header, data.data(), 8);
      at = 8 + header + static_cast<size_t>(t->data - data_begin) + 10;
    }
    spit(awq / "model.safetensors", data.substr(0, at));
    CHECK_THAT(checkpoint_error(awq), Catch::Contains("tensor " + last + ": data_offsets") &&
                                          Catch::Contains("lie outside"));
  }
  SECTION("AWQ weight without its zeros") {
    rewrite(awq, [&](model::tensor_plan& p) { return p.name != k + ".qzeros"; });
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains("AWQ weight " + k + " has no " + k + ".qzeros"));
  }
  SECTION("AWQ scales of the wrong shape") {
    rewrite(awq, [&](model::tensor_plan& p) {
      if (p.name == k + ".scales") p.shape = {2, 16};
      return true;
    });
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains("tensor " + k + ".scales has shape [2, 16], expected [2, 32]"));
  }
  SECTION("AWQ packed words must be I32") {
    rewrite(awq, [&](model::tensor_plan& p) {
      if (p.name == k + ".qweight") p.type = model::dtype::f32;
      return true;
    });
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains("AWQ tensor " + k + ".qweight is F32, expected I32"));
  }
  SECTION("AWQ group that does not divide the inputs") {
    edit_config(awq, "\"group_size\": 32", "\"group_size\": 48");
    CHECK_THAT(checkpoint_error(awq), Catch::Contains("inputs of group_size 48"));
  }
  SECTION("AWQ tensors without an awq quantization_config") {
    edit_config(awq,
                "\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 32, \"zero_point\": true, "
                "\"version\": \"gemm\"",
                "\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]");
    CHECK_THAT(checkpoint_error(awq),
               Catch::Contains(".qweight is AWQ-packed but config.json has no awq"));
  }
}
