// config.json parsing: both HF spellings, HF's defaults where HF has sensible ones,
// and one-line errors naming the file and key for everything else.
#include "model/model_config.h"

#include <simdjson.h>
#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "model/model_error.h"

namespace conclave::model {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

class reader {
 public:
  reader(object root, const std::string& source) : root_(root), source_(source) {}

  bool has(std::string_view key) const {
    element e;
    return !root_[key].get(e) && !e.is_null();
  }

  int64_t integer(std::string_view key) const {
    element e = require(key);
    int64_t v = 0;
    if (e.get(v)) throw error(key, "an integer");
    return v;
  }
  int64_t integer(std::string_view key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  double number(std::string_view key) const { return number_of(require(key), key); }
  double number(std::string_view key, double fallback) const {
    return has(key) ? number(key) : fallback;
  }
  bool boolean(std::string_view key, bool fallback) const {
    if (!has(key)) return fallback;
    bool v = false;
    if (root_[key].get(v)) throw error(key, "true or false");
    return v;
  }
  std::vector<int64_t> int_list(std::string_view key) const {
    std::vector<int64_t> out;
    if (!has(key)) return out;
    simdjson::dom::array arr;
    if (root_[key].get(arr)) throw error(key, "an array of integers");
    for (auto v : arr) {
      int64_t x = 0;
      if (v.get(x)) throw error(key, "an array of integers");
      out.push_back(x);
    }
    return out;
  }
  /// An int, a list of ints, or null.
  std::vector<int64_t> int_or_list(std::string_view key) const {
    if (!has(key)) return {};
    int64_t x = 0;
    if (!root_[key].get(x)) return {x};
    return int_list(key);
  }
  element require(std::string_view key) const {
    element e;
    if (root_[key].get(e) || e.is_null()) {
      throw model_error(fmt::format("{}: missing required key \"{}\"", source_, key));
    }
    return e;
  }
  double number_of(element e, std::string_view key) const {
    double d = 0;
    if (!e.get(d)) return d;
    int64_t i = 0;
    if (!e.get(i)) return static_cast<double>(i);
    throw error(key, "a number");
  }
  model_error error(std::string_view key, std::string_view expected) const {
    return model_error(fmt::format("{}: key \"{}\" must be {}", source_, key, expected));
  }
  object root() const { return root_; }

 private:
  object root_;
  const std::string& source_;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw model_error(
        fmt::format("{}: cannot open (is this a Hugging Face model folder?)", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// RoPE: theta and scaling from `rope_parameters` (transformers 5) or `rope_theta` plus
/// `rope_scaling` (Qwen's model cards). Types other than default, linear and yarn are
/// refused in one line.
void read_rope(const reader& r, const std::string& source, model_config& c) {
  element rp, rs;
  const bool has_params = !r.root()["rope_parameters"].get(rp) && !rp.is_null();
  const bool has_scaling = !r.root()["rope_scaling"].get(rs) && !rs.is_null();
  object params;
  std::string key;  // which object holds the scaling keys
  if (has_params) {
    if (rp.get(params)) throw r.error("rope_parameters", "an object");
    key = "rope_parameters";
  }
  if (has_scaling) {
    object o;
    if (rs.get(o)) throw r.error("rope_scaling", "an object");
    if (!has_params) {
      params = o;
      key = "rope_scaling";
    }
  }
  std::string_view type = "default";
  double theta = 0;
  bool have_theta = false;
  if (!key.empty()) {
    const std::string sub = source + ": " + key;
    reader p(params, sub);
    for (std::string_view k : {"rope_type", "type"}) {
      if (!p.has(k)) continue;
      if (p.require(k).get(type)) throw p.error(k, "a string");
      break;
    }
    if (p.has("rope_theta")) {
      theta = p.number("rope_theta");
      have_theta = true;
    }
    if (p.has("partial_rotary_factor") && p.number("partial_rotary_factor") != 1.0) {
      throw model_error(fmt::format(
          "{}: partial_rotary_factor {} is not supported (conclave rotates the whole head)", sub,
          p.number("partial_rotary_factor")));
    }
    auto& s = c.rope;
    if (type == "linear") {
      s.type = rope_scaling_config::kind::linear;
      s.factor = p.number("factor");
    } else if (type == "yarn") {
      s.type = rope_scaling_config::kind::yarn;
      s.original_max_position_embeddings = p.integer("original_max_position_embeddings", 0);
      if (p.has("factor")) {
        s.factor = p.number("factor");
      } else if (s.original_max_position_embeddings > 0) {
        s.factor = static_cast<double>(c.max_position_embeddings) /
                   static_cast<double>(s.original_max_position_embeddings);
      } else {
        throw model_error(fmt::format(
            "{}: yarn needs \"factor\" (or \"original_max_position_embeddings\")", sub));
      }
      if (p.has("attention_factor")) {
        s.has_attention_factor = true;
        s.attention_factor = p.number("attention_factor");
      }
      s.mscale = p.number("mscale", 0.0);
      s.mscale_all_dim = p.number("mscale_all_dim", 0.0);
      // transformers: `get("beta_fast") or 32`, so 0 also means the default.
      s.beta_fast = p.number("beta_fast", 0.0);
      if (s.beta_fast == 0) s.beta_fast = 32;
      s.beta_slow = p.number("beta_slow", 0.0);
      if (s.beta_slow == 0) s.beta_slow = 1;
      s.truncate = p.boolean("truncate", true);
      if (s.original_max_position_embeddings == 0)
        s.original_max_position_embeddings = c.max_position_embeddings;
      if (s.original_max_position_embeddings <= 0)
        throw p.error("original_max_position_embeddings", "a positive integer");
    } else if (type != "default") {
      throw model_error(
          fmt::format("{}: rope_type \"{}\" is not supported (conclave implements \"default\", "
                      "\"linear\" and \"yarn\")",
                      sub, type));
    }
    if (s.type != rope_scaling_config::kind::none && !(s.factor >= 1.0)) {
      throw model_error(fmt::format("{}: factor must be at least 1, got {}", sub, s.factor));
    }
  }
  if (!have_theta) {
    if (!r.has("rope_theta")) {
      throw model_error(fmt::format(
          "{}: missing required key \"rope_theta\" (or \"rope_parameters.rope_theta\")", source));
    }
    theta = r.number("rope_theta");
  }
  c.rope_theta = theta;
  // The context the scaling makes room for (vLLM's rule): linear stretches the configured
  // context, yarn the original one; never below what config.json says.
  auto& s = c.rope;
  s.config_max_position_embeddings = c.max_position_embeddings;
  if (s.type == rope_scaling_config::kind::linear) {
    c.max_position_embeddings =
        static_cast<int64_t>(static_cast<double>(c.max_position_embeddings) * s.factor);
  } else if (s.type == rope_scaling_config::kind::yarn) {
    c.max_position_embeddings = std::max<int64_t>(
        c.max_position_embeddings,
        static_cast<int64_t>(static_cast<double>(s.original_max_position_embeddings) * s.factor));
  }
}

/// quantization_config (docs/quantization.md): fp8 with block scales or AWQ int4 GEMM.
/// Anything else is refused in one line naming the method or key.
quant_config read_quant_config(const reader& top, const std::string& source) {
  quant_config q;
  element qe;
  if (top.root()["quantization_config"].get(qe) || qe.is_null()) return q;
  object o;
  if (qe.get(o)) throw top.error("quantization_config", "an object");
  const std::string sub = source + ": quantization_config";
  reader r(o, sub);
  std::string_view method;
  if (r.require("quant_method").get(method)) throw r.error("quant_method", "a string");
  const auto text = [&](std::string_view key, std::string_view fallback) {
    if (!r.has(key)) return std::string(fallback);
    std::string_view v;
    if (r.require(key).get(v)) throw r.error(key, "a string");
    return std::string(v);
  };
  if (r.has("modules_to_not_convert")) {
    simdjson::dom::array arr;
    if (r.require("modules_to_not_convert").get(arr))
      throw r.error("modules_to_not_convert", "an array of strings");
    for (auto v : arr) {
      std::string_view m;
      if (v.get(m)) throw r.error("modules_to_not_convert", "an array of strings");
      q.modules_to_not_convert.emplace_back(m);
    }
  }
  if (method == "fp8") {
    q.method = quant_method::fp8;
    if (const auto fmt_ = text("fmt", "e4m3"); fmt_ != "e4m3") {
      throw model_error(
          fmt::format("{}: fp8 format \"{}\" is not supported (conclave loads e4m3)", sub, fmt_));
    }
    if (const auto act = text("activation_scheme", "dynamic"); act != "dynamic") {
      throw model_error(fmt::format(
          "{}: activation_scheme \"{}\" is not supported (conclave loads \"dynamic\" fp8, "
          "whose activation scales are computed at run time)",
          sub, act));
    }
    const auto block = r.int_list("weight_block_size");
    if (block.empty()) {
      throw model_error(fmt::format(
          "{}: missing \"weight_block_size\" (conclave loads block-scaled fp8, e.g. [128, 128]; "
          "per-tensor fp8 is not supported)",
          sub));
    }
    if (block.size() != 2 || block[0] <= 0 || block[1] <= 0)
      throw r.error("weight_block_size", "two positive integers");
    q.block_out = block[0];
    q.block_in = block[1];
  } else if (method == "awq") {
    q.method = quant_method::awq;
    q.bits = static_cast<int>(r.integer("bits", 4));
    if (q.bits != 4) {
      throw model_error(fmt::format(
          "{}: AWQ with {} bits is not supported (conclave loads 4-bit AWQ)", sub, q.bits));
    }
    q.group_size = r.integer("group_size", 128);
    if (q.group_size <= 0) {
      throw model_error(fmt::format(
          "{}: AWQ group_size {} is not supported (per-channel -1 or 0 is not; use a grouped "
          "checkpoint)",
          sub, q.group_size));
    }
    if (!r.boolean("zero_point", true)) {
      throw model_error(fmt::format(
          "{}: AWQ without zero points is not supported (zero_point must be true)", sub));
    }
    if (const auto version = text("version", "gemm"); version != "gemm" && version != "GEMM") {
      throw model_error(
          fmt::format("{}: AWQ version \"{}\" is not supported (conclave loads the GEMM packing)",
                      sub, version));
    }
  } else {
    throw model_error(fmt::format(
        "{}: quantization method \"{}\" is not supported (conclave loads \"fp8\" with block "
        "scales and 4-bit \"awq\")",
        sub, method));
  }
  return q;
}

/// use_sliding_window / sliding_window / max_window_layers / layer_types, as
/// transformers reads them (docs/sliding_window.md): Qwen3-MoE windows every layer when
/// use_sliding_window is true; Qwen3 dense windows the layers layer_types marks
/// "sliding_attention", or without layer_types those >= max_window_layers (default 28).
void read_sliding_window(const reader& r, model_config& c, const std::string& source) {
  std::vector<bool> marked;  // layer_types, when present
  if (r.has("layer_types")) {
    simdjson::dom::array arr;
    if (r.root()["layer_types"].get(arr)) throw r.error("layer_types", "an array of strings");
    for (auto v : arr) {
      std::string_view t;
      if (v.get(t) || (t != "sliding_attention" && t != "full_attention")) {
        throw r.error("layer_types", "an array of \"sliding_attention\" / \"full_attention\"");
      }
      marked.push_back(t == "sliding_attention");
    }
    if (static_cast<int64_t>(marked.size()) != c.num_layers) {
      throw model_error(
          fmt::format("{}: key \"layer_types\" has {} entries but the model has {} "
                      "layers (num_hidden_layers)",
                      source, marked.size(), c.num_layers));
    }
  }
  const bool any_marked = std::find(marked.begin(), marked.end(), true) != marked.end();
  const bool moe = c.arch == architecture::qwen3_moe;
  if (!moe) c.max_window_layers = r.integer("max_window_layers", 28);
  if (!r.boolean("use_sliding_window", false)) {
    if (any_marked) {
      throw model_error(
          fmt::format("{}: key \"layer_types\" marks sliding_attention layers but "
                      "use_sliding_window is false",
                      source));
    }
    return;
  }
  if (!r.has("sliding_window")) {
    throw model_error(fmt::format(
        "{}: missing required key \"sliding_window\" (use_sliding_window is true)", source));
  }
  c.sliding_window = r.integer("sliding_window");
  if (c.sliding_window <= 0 || c.sliding_window > INT32_MAX) {
    throw r.error("sliding_window", "a positive integer when use_sliding_window is true");
  }
  if (moe) {
    // transformers' Qwen3MoeModel builds one sliding-window mask for every layer.
    if (std::find(marked.begin(), marked.end(), false) != marked.end()) {
      throw model_error(fmt::format(
          "{}: key \"layer_types\" marks full_attention layers, but transformers' Qwen3-MoE "
          "windows every layer when use_sliding_window is true",
          source));
    }
    c.sliding_layers.assign(static_cast<size_t>(std::max<int64_t>(c.num_layers, 0)), true);
  } else if (!marked.empty()) {
    c.sliding_layers = marked;
  } else {
    c.sliding_layers.resize(static_cast<size_t>(std::max<int64_t>(c.num_layers, 0)));
    for (int64_t l = 0; l < c.num_layers; ++l)
      c.sliding_layers[static_cast<size_t>(l)] = l >= c.max_window_layers;
  }
}

}  // namespace

bool model_config::is_moe_layer(int64_t l) const {
  if (arch != architecture::qwen3_moe || num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), l) != mlp_only_layers.end()) {
    return false;
  }
  return (l + 1) % decoder_sparse_step == 0;
}

bool model_config::is_sliding_layer(int64_t l) const {
  return sliding_window > 0 && l >= 0 && l < static_cast<int64_t>(sliding_layers.size()) &&
         sliding_layers[static_cast<size_t>(l)];
}

int32_t model_config::layer_window(int64_t l) const {
  return is_sliding_layer(l) ? static_cast<int32_t>(sliding_window) : 0;
}

bool model_config::all_layers_sliding() const {
  if (sliding_window <= 0 || num_layers <= 0) return false;
  for (int64_t l = 0; l < num_layers; ++l)
    if (!is_sliding_layer(l)) return false;
  return true;
}

void model_config::validate(const std::string& source) const {
  const auto fail = [&](const std::string& msg) { throw model_error(source + ": " + msg); };
  const auto positive = [&](int64_t v, std::string_view key) {
    if (v <= 0) fail(fmt::format("\"{}\" must be positive, got {}", key, v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_layers, "num_hidden_layers");
  positive(num_heads, "num_attention_heads");
  positive(num_kv_heads, "num_key_value_heads");
  positive(head_dim, "head_dim");
  positive(max_position_embeddings, "max_position_embeddings");
  if (head_dim % 2 != 0) fail(fmt::format("\"head_dim\" must be even for RoPE, got {}", head_dim));
  if (num_heads % num_kv_heads != 0) {
    fail(fmt::format("num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                     num_heads, num_kv_heads));
  }
  if (!(rms_norm_eps > 0)) fail("\"rms_norm_eps\" must be positive");
  if (!(rope_theta > 0)) fail("\"rope_theta\" must be positive");
  bool any_dense = false, any_moe = false;
  for (int64_t l = 0; l < num_layers; ++l) (is_moe_layer(l) ? any_moe : any_dense) = true;
  if (any_dense) positive(intermediate_size, "intermediate_size");
  if (arch == architecture::qwen3_moe) {
    positive(decoder_sparse_step, "decoder_sparse_step");
    if (any_moe) {
      positive(num_experts, "num_experts");
      positive(moe_intermediate_size, "moe_intermediate_size");
      if (num_experts_per_tok <= 0 || num_experts_per_tok > num_experts) {
        fail(fmt::format("num_experts_per_tok ({}) must be between 1 and num_experts ({})",
                         num_experts_per_tok, num_experts));
      }
    }
    for (int64_t l : mlp_only_layers) {
      if (l < 0 || l >= num_layers) {
        fail(fmt::format("mlp_only_layers names layer {} but the model has {} layers", l,
                         num_layers));
      }
    }
  }
  if (sliding_window < 0 || sliding_window > INT32_MAX)
    fail(fmt::format("\"sliding_window\" must be positive, got {}", sliding_window));
  if (sliding_window > 0 && static_cast<int64_t>(sliding_layers.size()) != num_layers) {
    fail(fmt::format("\"layer_types\" has {} entries but the model has {} layers",
                     sliding_layers.size(), num_layers));
  }
  for (int32_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size)
      fail(fmt::format("eos_token_id {} is outside the vocabulary", id));
  }
}

model_config parse_model_config(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  simdjson::padded_string text(json);
  object root;
  if (auto err = parser.parse(text).get(root); err) {
    throw model_error(
        fmt::format("{}: not a JSON object: {}", source, simdjson::error_message(err)));
  }
  reader r(root, source);
  model_config c;

  simdjson::dom::array archs;
  if (r.require("architectures").get(archs) || archs.size() == 0) {
    throw r.error("architectures", "a non-empty array of strings");
  }
  std::string_view arch;
  if (archs.at(0).get(arch)) throw r.error("architectures", "a non-empty array of strings");
  c.architecture_name = std::string(arch);
  if (arch == "Qwen3MoeForCausalLM") {
    c.arch = architecture::qwen3_moe;
  } else if (arch == "Qwen3ForCausalLM") {
    c.arch = architecture::qwen3_dense;
  } else {
    throw model_error(
        fmt::format("{}: architecture \"{}\" is not supported (expected Qwen3MoeForCausalLM or "
                    "Qwen3ForCausalLM)",
                    source, arch));
  }

  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("hidden_size");
  c.num_layers = r.integer("num_hidden_layers");
  c.num_heads = r.integer("num_attention_heads");
  c.num_kv_heads = r.integer("num_key_value_heads", c.num_heads);
  c.head_dim = r.integer("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.max_position_embeddings = r.integer("max_position_embeddings", 32768);
  read_rope(r, source, c);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.attention_bias = r.boolean("attention_bias", false);
  read_sliding_window(r, c, source);
  if (r.has("hidden_act")) {
    std::string_view act;
    if (r.require("hidden_act").get(act) || act != "silu") throw r.error("hidden_act", "\"silu\"");
  }

  if (c.arch == architecture::qwen3_moe) {
    if (r.has("num_experts")) {
      c.num_experts = r.integer("num_experts");
    } else if (r.has("num_local_experts")) {
      c.num_experts = r.integer("num_local_experts");
    } else {
      throw model_error(fmt::format(
          "{}: missing required key \"num_experts\" (or \"num_local_experts\")", source));
    }
    c.num_experts_per_tok = r.integer("num_experts_per_tok");
    c.moe_intermediate_size = r.integer("moe_intermediate_size");
    c.norm_topk_prob = r.boolean("norm_topk_prob", false);
    c.decoder_sparse_step = r.integer("decoder_sparse_step", 1);
    c.mlp_only_layers = r.int_list("mlp_only_layers");
  }
  // intermediate_size is needed only when some layer is dense; checked by validate().
  bool any_dense = false;
  for (int64_t l = 0; l < c.num_layers; ++l) any_dense |= !c.is_moe_layer(l);
  c.intermediate_size =
      any_dense ? r.integer("intermediate_size") : r.integer("intermediate_size", 0);

  for (int64_t id : r.int_or_list("eos_token_id"))
    c.eos_token_ids.push_back(static_cast<int32_t>(id));
  c.quant = read_quant_config(r, source);
  c.validate(source);
  return c;
}

model_config load_model_config(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) {
    throw model_error(
        fmt::format("{}: not a directory (expected a Hugging Face model folder)", dir.string()));
  }
  const auto path = dir / "config.json";
  model_config c = parse_model_config(read_file(path), path.string());
  const auto gen = dir / "generation_config.json";
  if (std::filesystem::exists(gen)) {
    simdjson::dom::parser parser;
    simdjson::padded_string text(read_file(gen));
    object root;
    if (auto err = parser.parse(text).get(root); err) {
      throw model_error(
          fmt::format("{}: not a JSON object: {}", gen.string(), simdjson::error_message(err)));
    }
    const std::string source = gen.string();
    reader r(root, source);
    for (int64_t id : r.int_or_list("eos_token_id")) {
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
        c.eos_token_ids.push_back(static_cast<int32_t>(id));
      }
    }
    c.validate(source);
  }
  return c;
}

std::string model_config_to_json(const model_config& c) {
  const bool moe = c.arch == architecture::qwen3_moe;
  std::string s = "{\n";
  const auto add = [&s](std::string_view key, const std::string& value) {
    s += fmt::format("  \"{}\": {},\n", key, value);
  };
  add("architectures", moe ? "[\"Qwen3MoeForCausalLM\"]" : "[\"Qwen3ForCausalLM\"]");
  add("model_type", moe ? "\"qwen3_moe\"" : "\"qwen3\"");
  add("vocab_size", std::to_string(c.vocab_size));
  add("hidden_size", std::to_string(c.hidden_size));
  add("intermediate_size", std::to_string(c.intermediate_size));
  add("num_hidden_layers", std::to_string(c.num_layers));
  add("num_attention_heads", std::to_string(c.num_heads));
  add("num_key_value_heads", std::to_string(c.num_kv_heads));
  add("head_dim", std::to_string(c.head_dim));
  if (moe) {
    add("num_experts", std::to_string(c.num_experts));
    add("num_experts_per_tok", std::to_string(c.num_experts_per_tok));
    add("moe_intermediate_size", std::to_string(c.moe_intermediate_size));
    add("norm_topk_prob", c.norm_topk_prob ? "true" : "false");
    add("decoder_sparse_step", std::to_string(c.decoder_sparse_step));
    add("mlp_only_layers", fmt::format("[{}]", fmt::join(c.mlp_only_layers, ", ")));
  }
  add("hidden_act", "\"silu\"");
  add("rms_norm_eps", fmt::format("{}", c.rms_norm_eps));
  add("rope_theta", fmt::format("{:.1f}", c.rope_theta));
  const auto& r = c.rope;
  switch (r.type) {
    case rope_scaling_config::kind::none:
      add("rope_parameters",
          fmt::format("{{\"rope_theta\": {:.1f}, \"rope_type\": \"default\"}}", c.rope_theta));
      break;
    case rope_scaling_config::kind::linear:
      add("rope_parameters",
          fmt::format("{{\"rope_theta\": {:.1f}, \"rope_type\": \"linear\", \"factor\": {}}}",
                      c.rope_theta, r.factor));
      break;
    case rope_scaling_config::kind::yarn: {
      std::string extra;
      if (r.has_attention_factor)
        extra += fmt::format(", \"attention_factor\": {}", r.attention_factor);
      if (r.mscale != 0) extra += fmt::format(", \"mscale\": {}", r.mscale);
      if (r.mscale_all_dim != 0) extra += fmt::format(", \"mscale_all_dim\": {}", r.mscale_all_dim);
      if (!r.truncate) extra += ", \"truncate\": false";
      add("rope_parameters",
          fmt::format("{{\"rope_theta\": {:.1f}, \"rope_type\": \"yarn\", \"factor\": {}, "
                      "\"original_max_position_embeddings\": {}, \"beta_fast\": {}, "
                      "\"beta_slow\": {}{}}}",
                      c.rope_theta, r.factor, r.original_max_position_embeddings, r.beta_fast,
                      r.beta_slow, extra));
      break;
    }
  }
  add("max_position_embeddings",
      std::to_string(r.config_max_position_embeddings > 0 ? r.config_max_position_embeddings
                                                          : c.max_position_embeddings));
  add("tie_word_embeddings", c.tie_word_embeddings ? "true" : "false");
  add("attention_bias", c.attention_bias ? "true" : "false");
  add("use_sliding_window", c.sliding_window > 0 ? "true" : "false");
  add("sliding_window", c.sliding_window > 0 ? std::to_string(c.sliding_window) : "null");
  if (!moe) {
    add("max_window_layers", std::to_string(c.max_window_layers));
    if (c.sliding_window > 0) {
      std::vector<std::string> types;
      for (int64_t l = 0; l < c.num_layers; ++l)
        types.push_back(c.is_sliding_layer(l) ? "\"sliding_attention\"" : "\"full_attention\"");
      add("layer_types", fmt::format("[{}]", fmt::join(types, ", ")));
    }
  }
  add("torch_dtype", "\"bfloat16\"");
  if (!c.eos_token_ids.empty()) {
    add("eos_token_id", c.eos_token_ids.size() == 1
                            ? std::to_string(c.eos_token_ids[0])
                            : fmt::format("[{}]", fmt::join(c.eos_token_ids, ", ")));
  }
  switch (c.quant.method) {
    case quant_method::none:
      break;
    case quant_method::fp8:
      add("quantization_config",
          fmt::format("{{\"quant_method\": \"fp8\", \"fmt\": \"e4m3\", \"activation_scheme\": "
                      "\"dynamic\", \"weight_block_size\": [{}, {}]}}",
                      c.quant.block_out, c.quant.block_in));
      break;
    case quant_method::awq:
      add("quantization_config",
          fmt::format("{{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": {}, "
                      "\"zero_point\": true, \"version\": \"gemm\"}}",
                      c.quant.group_size));
      break;
  }
  s += "  \"use_cache\": true\n}\n";
  return s;
}

std::vector<tensor_spec> expected_tensors(const model_config& c) {
  std::vector<tensor_spec> out;
  const int64_t h = c.hidden_size;
  const int64_t q = c.num_heads * c.head_dim;
  const int64_t kv = c.num_kv_heads * c.head_dim;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    out.push_back({p + "input_layernorm.weight", {h}});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}, true});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}, true});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}, true});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}, true});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {q}});
      out.push_back({p + "self_attn.k_proj.bias", {kv}});
      out.push_back({p + "self_attn.v_proj.bias", {kv}});
      out.push_back({p + "self_attn.o_proj.bias", {h}});
    }
    out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
    out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    if (c.is_moe_layer(l)) {
      const int64_t m = c.moe_intermediate_size;
      out.push_back({p + "mlp.gate.weight", {c.num_experts, h}, true});
      for (int64_t e = 0; e < c.num_experts; ++e) {
        const std::string ep = fmt::format("{}mlp.experts.{}.", p, e);
        out.push_back({ep + "gate_proj.weight", {m, h}, true});
        out.push_back({ep + "up_proj.weight", {m, h}, true});
        out.push_back({ep + "down_proj.weight", {h, m}, true});
      }
    } else {
      const int64_t m = c.intermediate_size;
      out.push_back({p + "mlp.gate_proj.weight", {m, h}, true});
      out.push_back({p + "mlp.up_proj.weight", {m, h}, true});
      out.push_back({p + "mlp.down_proj.weight", {h, m}, true});
    }
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}, true});
  return out;
}

}  // namespace conclave::model
