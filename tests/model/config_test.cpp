// config.json parsing: both spellings, HF defaults, and one-line errors naming the key.
#include <catch2/catch.hpp>

#include "model/model_config.h"
#include "model/model_error.h"

using namespace conclave::model;

namespace {

const char* base_moe = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 100, "hidden_size": 16,
  "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
  "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 12,
  "intermediate_size": 32, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
  "eos_token_id": [7, 9]
})";

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

std::string error_of(const std::string& json) {
  try {
    parse_model_config(json, "dir/config.json");
  } catch (const model_error& e) {
    const std::string msg = e.what();
    CHECK(msg.rfind("dir/config.json: ", 0) == 0);
    CHECK(msg.find('\n') == std::string::npos);
    return msg;
  }
  FAIL("no error");
  return {};
}

}  // namespace

TEST_CASE("a Qwen3-MoE config parses with its values", "[config]") {
  const model_config c = parse_model_config(base_moe, "x");
  CHECK(c.arch == architecture::qwen3_moe);
  CHECK(c.num_experts == 8);
  CHECK(c.head_dim == 8);
  CHECK(c.rope_theta == 1e6);
  CHECK(c.eos_token_ids == std::vector<int32_t>{7, 9});
  CHECK_FALSE(c.norm_topk_prob);  // HF's default
  CHECK(c.max_position_embeddings == 32768);
  for (int l = 0; l < 4; ++l) CHECK(c.is_moe_layer(l));
}

TEST_CASE("both key spellings are accepted", "[config]") {
  auto s = replace(base_moe, R"("num_experts": 8)", R"("num_local_experts": 8)");
  s = replace(s, R"("rope_theta": 1000000.0)",
              R"("rope_parameters": {"rope_theta": 5000.0, "rope_type": "default"})");
  const model_config c = parse_model_config(s, "x");
  CHECK(c.num_experts == 8);
  CHECK(c.rope_theta == 5000.0);
}

TEST_CASE("mlp_only_layers and decoder_sparse_step choose dense layers", "[config]") {
  auto s = replace(base_moe, R"("intermediate_size": 32)",
                   R"("intermediate_size": 32, "decoder_sparse_step": 2, "mlp_only_layers": [3])");
  const model_config c = parse_model_config(s, "x");
  CHECK_FALSE(c.is_moe_layer(0));
  CHECK(c.is_moe_layer(1));
  CHECK_FALSE(c.is_moe_layer(2));
  CHECK_FALSE(c.is_moe_layer(3));  // on the grid but listed in mlp_only_layers
}

TEST_CASE("dense Qwen3 configs need no expert keys", "[config]") {
  const model_config c =
      parse_model_config(R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 10,
    "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
    "rope_theta": 10000, "tie_word_embeddings": true, "eos_token_id": 3})",
                         "x");
  CHECK(c.arch == architecture::qwen3_dense);
  CHECK(c.num_kv_heads == 2);  // defaults to num_attention_heads
  CHECK(c.head_dim == 4);      // defaults to hidden / heads
  CHECK(c.tie_word_embeddings);
  CHECK(c.eos_token_ids == std::vector<int32_t>{3});
  CHECK_FALSE(c.is_moe_layer(0));
}

TEST_CASE("bad configs name the key and what was expected", "[config]") {
  CHECK_THAT(error_of(replace(base_moe, R"("Qwen3MoeForCausalLM")", R"("LlamaForCausalLM")")),
             Catch::Contains("architecture \"LlamaForCausalLM\" is not supported (expected "
                             "Qwen3MoeForCausalLM or Qwen3ForCausalLM)"));
  CHECK_THAT(error_of(replace(base_moe, R"("hidden_size": 16,)", "")),
             Catch::Contains("missing required key \"hidden_size\""));
  CHECK_THAT(error_of(replace(base_moe, R"("num_experts": 8,)", "")),
             Catch::Contains("missing required key \"num_experts\" (or \"num_local_experts\")"));
  CHECK_THAT(error_of(replace(base_moe, R"("rope_theta": 1000000.0,)", "")),
             Catch::Contains("\"rope_theta\""));
  CHECK_THAT(error_of(replace(base_moe, R"("vocab_size": 100)", R"("vocab_size": "100")")),
             Catch::Contains("key \"vocab_size\" must be an integer"));
  CHECK_THAT(
      error_of(replace(base_moe, R"("num_experts_per_tok": 2)", R"("num_experts_per_tok": 9)")),
      Catch::Contains("num_experts_per_tok (9) must be between 1 and num_experts (8)"));
  CHECK_THAT(
      error_of(replace(base_moe, R"("num_key_value_heads": 2)", R"("num_key_value_heads": 3)")),
      Catch::Contains("must be a multiple of num_key_value_heads"));
  CHECK_THAT(error_of(replace(base_moe, R"("rope_theta": 1000000.0)",
                              R"("rope_parameters": {"rope_type": "dynamic", "factor": 4})")),
             Catch::Contains("rope_type \"dynamic\" is not supported"));
  CHECK_THAT(error_of(replace(base_moe, R"("eos_token_id": [7, 9])", R"("eos_token_id": [700])")),
             Catch::Contains("eos_token_id 700 is outside the vocabulary"));
  CHECK_THAT(error_of("[1, 2]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(
      error_of(replace(base_moe, R"("intermediate_size": 32,)", R"("decoder_sparse_step": 2,)")),
      Catch::Contains("missing required key \"intermediate_size\""));
}

TEST_CASE("config JSON written for gen-model parses back to the same config", "[config]") {
  model_config c = parse_model_config(
      replace(base_moe, R"("intermediate_size": 32)",
              R"("intermediate_size": 32, "mlp_only_layers": [0, 2], "norm_topk_prob": true)"),
      "x");
  const model_config back = parse_model_config(model_config_to_json(c), "y");
  CHECK(back.mlp_only_layers == c.mlp_only_layers);
  CHECK(back.norm_topk_prob);
  CHECK(back.rope_theta == c.rope_theta);
  CHECK(back.eos_token_ids == c.eos_token_ids);
  CHECK(expected_tensors(back).size() == expected_tensors(c).size());
}

TEST_CASE("RoPE scaling: yarn and linear in both spellings, the context follows",
          "[config][rope]") {
  // Qwen's model cards: rope_scaling next to rope_theta.
  auto s = replace(base_moe, R"("rope_theta": 1000000.0)",
                   R"("rope_theta": 1000000.0, "max_position_embeddings": 32768,
                      "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                       "original_max_position_embeddings": 32768})");
  model_config c = parse_model_config(s, "x");
  CHECK(c.rope.type == rope_scaling_config::kind::yarn);
  CHECK(c.rope.factor == 4.0);
  CHECK(c.rope.original_max_position_embeddings == 32768);
  CHECK(c.rope.beta_fast == 32);
  CHECK(c.rope.beta_slow == 1);
  CHECK_FALSE(c.rope.has_attention_factor);
  CHECK(c.rope.config_max_position_embeddings == 32768);
  CHECK(c.max_position_embeddings == 131072);  // the context limit follows the config
  CHECK(c.rope_theta == 1e6);
  // The old "type" key, and transformers 5's rope_parameters.
  c = parse_model_config(replace(s, R"("rope_type": "yarn")", R"("type": "yarn")"), "x");
  CHECK(c.rope.type == rope_scaling_config::kind::yarn);
  c = parse_model_config(
      replace(base_moe, R"("rope_theta": 1000000.0)",
              R"("max_position_embeddings": 1024, "rope_parameters": {"rope_type": "yarn",
                 "rope_theta": 5000.0, "factor": 2.0, "attention_factor": 1.5,
                 "beta_fast": 16, "beta_slow": 2})"),
      "x");
  CHECK(c.rope.type == rope_scaling_config::kind::yarn);
  CHECK(c.rope_theta == 5000.0);
  CHECK(c.rope.original_max_position_embeddings == 1024);  // default: as configured
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.rope.has_attention_factor);
  CHECK(c.rope.attention_factor == 1.5);
  CHECK(c.rope.beta_fast == 16);
  CHECK(c.rope.beta_slow == 2);
  // Linear stretches the configured context.
  c = parse_model_config(replace(base_moe, R"("rope_theta": 1000000.0)",
                                 R"("rope_theta": 10000.0, "max_position_embeddings": 4096,
                 "rope_scaling": {"type": "linear", "factor": 2.0})"),
                         "x");
  CHECK(c.rope.type == rope_scaling_config::kind::linear);
  CHECK(c.max_position_embeddings == 8192);
  // Written back as read: the config round-trips.
  const model_config again = parse_model_config(model_config_to_json(c), "again");
  CHECK(again.rope.type == rope_scaling_config::kind::linear);
  CHECK(again.rope.factor == 2.0);
  CHECK(again.max_position_embeddings == 8192);
}

TEST_CASE("RoPE scaling: what conclave does not implement is refused in one line",
          "[config][rope]") {
  const auto with = [](const std::string& scaling) {
    return replace(base_moe, R"("rope_theta": 1000000.0)",
                   R"("rope_theta": 1000000.0, "rope_scaling": )" + scaling);
  };
  CHECK_THAT(error_of(with(R"({"rope_type": "longrope", "factor": 4})")),
             Catch::Contains("rope_type \"longrope\" is not supported"));
  CHECK_THAT(error_of(with(R"({"rope_type": "llama3", "factor": 8})")),
             Catch::Contains("rope_type \"llama3\" is not supported"));
  CHECK_THAT(error_of(with(R"({"rope_type": "yarn"})")), Catch::Contains("yarn needs \"factor\""));
  CHECK_THAT(error_of(with(R"({"rope_type": "linear", "factor": 0.5})")),
             Catch::Contains("factor must be at least 1"));
  CHECK_THAT(error_of(with(R"({"rope_type": "yarn", "factor": 4, "partial_rotary_factor": 0.5})")),
             Catch::Contains("partial_rotary_factor 0.5 is not supported"));
  CHECK_THAT(error_of(with("[1]")), Catch::Contains("key \"rope_scaling\" must be an object"));
}

TEST_CASE("sliding window: Qwen3-MoE windows every layer, as transformers does",
          "[config][window]") {
  const std::string on = replace(base_moe, R"("eos_token_id": [7, 9])",
                                 R"("eos_token_id": [7, 9], "use_sliding_window": true,
                                    "sliding_window": 24, "max_window_layers": 2)");
  const model_config c = parse_model_config(on, "x");
  CHECK(c.sliding_window == 24);
  for (int64_t l = 0; l < 4; ++l) CHECK(c.layer_window(l) == 24);  // max_window_layers ignored
  CHECK(c.all_layers_sliding());
  // The window is off unless use_sliding_window is true (HF's default sliding_window 4096).
  const model_config off = parse_model_config(
      replace(base_moe, R"("eos_token_id": [7, 9])",
              R"("eos_token_id": [7, 9], "use_sliding_window": false, "sliding_window": 4096)"),
      "x");
  CHECK(off.sliding_window == 0);
  CHECK(off.layer_window(0) == 0);
  CHECK_FALSE(off.all_layers_sliding());
  // layer_types all sliding is accepted; a full_attention layer is refused in one line.
  CHECK(parse_model_config(replace(on, R"("max_window_layers": 2)",
                                   R"("layer_types": ["sliding_attention", "sliding_attention",
                                      "sliding_attention", "sliding_attention"])"),
                           "x")
            .all_layers_sliding());
  CHECK_THAT(error_of(replace(on, R"("max_window_layers": 2)",
                              R"("layer_types": ["full_attention", "sliding_attention",
                                 "sliding_attention", "sliding_attention"])")),
             Catch::Contains("\"layer_types\" marks full_attention layers"));
  // Round trip through the config.json gen-model writes.
  const model_config back = parse_model_config(model_config_to_json(c), "y");
  CHECK(back.sliding_window == 24);
  CHECK(back.sliding_layers == c.sliding_layers);
}

TEST_CASE("sliding window: Qwen3 dense picks layers by layer_types or max_window_layers",
          "[config][window]") {
  const std::string dense =
      replace(replace(base_moe, R"("Qwen3MoeForCausalLM")", R"("Qwen3ForCausalLM")"),
              R"("eos_token_id": [7, 9])",
              R"("eos_token_id": [7, 9], "use_sliding_window": true, "sliding_window": 5,
         "max_window_layers": 2)");
  const model_config c = parse_model_config(dense, "x");
  CHECK(c.layer_window(0) == 0);
  CHECK(c.layer_window(1) == 0);
  CHECK(c.layer_window(2) == 5);
  CHECK(c.layer_window(3) == 5);
  CHECK_FALSE(c.all_layers_sliding());
  const model_config typed = parse_model_config(
      replace(dense, R"("max_window_layers": 2)",
              R"("max_window_layers": 2, "layer_types": ["sliding_attention", "full_attention",
                 "sliding_attention", "full_attention"])"),
      "x");
  CHECK(typed.sliding_layers == std::vector<bool>{true, false, true, false});
  const model_config back = parse_model_config(model_config_to_json(typed), "y");
  CHECK(back.sliding_layers == typed.sliding_layers);
  CHECK(back.sliding_window == 5);
  CHECK(back.max_window_layers == 2);
  // HF's default max_window_layers is 28: a 4-layer model without it has no windowed layer.
  CHECK_FALSE(parse_model_config(
                  replace(dense, R"("max_window_layers": 2)", R"("max_window_layers": null)"), "x")
                  .is_sliding_layer(3));
}

TEST_CASE("sliding window: invalid keys are refused in one line naming the key",
          "[config][window]") {
  const std::string on = replace(base_moe, R"("eos_token_id": [7, 9])",
                                 R"("eos_token_id": [7, 9], "use_sliding_window": true,
                                    "sliding_window": 24)");
  CHECK_THAT(error_of(replace(on, R"("sliding_window": 24)", R"("sliding_window": 0)")),
             Catch::Contains("key \"sliding_window\" must be a positive integer"));
  CHECK_THAT(error_of(replace(on, R"("sliding_window": 24)", R"("sliding_window": null)")),
             Catch::Contains("missing required key \"sliding_window\""));
  CHECK_THAT(error_of(replace(on, R"("sliding_window": 24)",
                              R"("sliding_window": 24, "layer_types": ["sliding_attention"])")),
             Catch::Contains("\"layer_types\" has 1 entries but the model has 4 layers"));
  CHECK_THAT(error_of(replace(on, R"("sliding_window": 24)",
                              R"("sliding_window": 24, "layer_types": ["a", "b", "c", "d"])")),
             Catch::Contains("key \"layer_types\" must be an array of"));
  CHECK_THAT(error_of(replace(on, R"("use_sliding_window": true)",
                              R"("use_sliding_window": false, "layer_types": ["sliding_attention",
                                 "full_attention", "full_attention", "full_attention"])")),
             Catch::Contains("marks sliding_attention layers but use_sliding_window is false"));
  CHECK_THAT(error_of(replace(on, R"("use_sliding_window": true)", R"("use_sliding_window": 1)")),
             Catch::Contains("key \"use_sliding_window\" must be true or false"));
}
