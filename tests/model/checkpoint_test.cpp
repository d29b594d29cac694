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

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

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

std::string error_of(const std::filesystem::path& dir) {
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
    const std::string data = slurp(dir / "model.safetensors");
    spit(dir / "model.safetensors", data.substr(0, data.size() - 1000));
    const auto msg = error_of(dir);
    CHECK_THAT(msg, Catch::Contains(st) && Catch::Contains("lie outside"));
  }
  SECTION("header length past the end") {
    std::string data = slurp(dir / "model.safetensors");
    const uint64_t len = data.size();
    std::memcpy(data.data(), &len, 8);
    spit(dir / "model.safetensors", data);
    CHECK_THAT(error_of(dir),
               Catch::Contains(st) && Catch::Contains("runs past the end of the file"));
  }
  SECTION("tensor of the wrong shape") {
    rewrite(dir, [](model::tensor_plan& p) {
      if (p.name == "model.layers.1.self_attn.k_proj.weight") p.shape = {16, 64};
      return true;
    });
    CHECK_THAT(
        error_of(dir),
        Catch::Contains(
            "tensor model.layers.1.self_attn.k_proj.weight has shape [16, 64], expected [32, 64]"));
  }
  SECTION("tensor of the wrong dtype") {
    std::string data = slurp(dir / "model.safetensors");
    const auto at = data.find(R"("model.norm.weight":{"dtype":"BF16")");
    REQUIRE(at != std::string::npos);
    data.replace(data.find("\"BF16\"", at), 6, "\"I16\" ");  // same header length
    spit(dir / "model.safetensors", data);
    CHECK_THAT(error_of(dir),
               Catch::Contains("tensor model.norm.weight: dtype I16 is not supported"));
  }
  SECTION("missing tensor") {
    rewrite(dir, [](model::tensor_plan& p) {
      return p.name != "model.layers.2.mlp.experts.5.up_proj.weight";
    });
    CHECK_THAT(error_of(dir),
               Catch::Contains(
                   "missing tensor model.layers.2.mlp.experts.5.up_proj.weight (shape [32, 64])"));
  }
  SECTION("missing config key") {
    std::string cfg = slurp(dir / "config.json");
    const auto at = cfg.find("  \"num_attention_heads\"");
    cfg.erase(at, cfg.find('\n', at) - at + 1);
    spit(dir / "config.json", cfg);
    CHECK_THAT(error_of(dir),
               Catch::Contains("config.json: missing required key \"num_attention_heads\""));
  }
  SECTION("unknown architecture") {
    std::string cfg = slurp(dir / "config.json");
    cfg.replace(cfg.find("Qwen3MoeForCausalLM"), 19, "MixtralForCausalLM");
    spit(dir / "config.json", cfg);
    CHECK_THAT(error_of(dir),
               Catch::Contains("architecture \"MixtralForCausalLM\" is not supported"));
  }
  SECTION("no weights at all") {
    std::filesystem::remove(dir / "model.safetensors");
    CHECK_THAT(error_of(dir),
               Catch::Contains("no model.safetensors or model.safetensors.index.json"));
  }
  SECTION("not a folder") {
    CHECK_THAT(error_of(dir / "config.json"), Catch::Contains("not a directory"));
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
  std::string index = slurp(dir / "model.safetensors.index.json");
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
        error_of(dir),
        Catch::Contains("tensor model.norm.weight is listed in the index but not in this file"));
  }
  SECTION("missing shard") {
    std::filesystem::remove(dir / other);
    CHECK_THAT(error_of(dir), Catch::Contains("shard " + other + " named by the index is missing"));
  }
}
