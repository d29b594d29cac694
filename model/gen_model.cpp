// Random-weight checkpoints: counter-based (splitmix64 + Box-Muller) so each element
// depends only on (seed, tensor name, index), which makes the output reproducible
// byte for byte and lets the GPU backend generate the same weights in device memory.
#include "model/gen_model.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <unordered_map>

#include "model/checkpoint.h"
#include "model/model_error.h"
#include "model/safetensors.h"

namespace conclave::model {
namespace {

model_config base_config() {
  model_config c;
  c.arch = architecture::qwen3_moe;
  c.architecture_name = "Qwen3MoeForCausalLM";
  c.rms_norm_eps = 1e-6;
  c.norm_topk_prob = true;
  return c;
}

std::vector<model_preset> make_presets() {
  std::vector<model_preset> p;
  {
    model_config c = base_config();
    c.vocab_size = 2048;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.moe_intermediate_size = 32;
    c.num_layers = 3;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 4096;
    p.push_back(
        {"tiny", "3-layer, 8-expert toy model for unit tests (0.6 M parameters)", c, 0.08f});
  }
  {
    model_config c = base_config();
    c.vocab_size = 151936;  // the real Qwen3 tokenizer's, so text round-trips through it
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.moe_intermediate_size = 16;
    c.num_layers = 2;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 16;
    c.num_experts = 4;
    c.num_experts_per_tok = 2;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 4096;
    c.tie_word_embeddings = true;
    c.eos_token_ids = {151645, 151643};
    p.push_back({"tiny-qwen",
                 "2-layer toy model with Qwen3's vocabulary, for server tests (5 M parameters)", c,
                 0.08f});
  }
  {
    model_config c = base_config();
    c.vocab_size = 151936;  // the real Qwen3 tokenizer's
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.moe_intermediate_size = 128;
    c.num_layers = 4;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 64;
    c.num_experts = 16;
    c.num_experts_per_tok = 4;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 32768;
    c.tie_word_embeddings = true;
    c.eos_token_ids = {151645, 151643};  // <|im_end|>, <|endoftext|>
    p.push_back(
        {"demo", "the embedded demo: Qwen3 vocabulary, 4 MoE layers, CPU-interactive", c, 0.08f});
  }
  {
    model_config c = base_config();
    c.vocab_size = 151936;
    c.hidden_size = 2048;
    c.intermediate_size = 6144;
    c.moe_intermediate_size = 768;
    c.num_layers = 48;
    c.num_heads = 32;
    c.num_kv_heads = 4;
    c.head_dim = 128;
    c.num_experts = 128;
    c.num_experts_per_tok = 8;
    c.rope_theta = 1e6;
    c.max_position_embeddings = 40960;
    c.eos_token_ids = {151645, 151643};
    p.push_back(
        {"qwen3-30b-a3b", "Qwen3-30B-A3B's shape (48 layers, 128 experts, 8 active)", c, 0.02f});
    // Qwen3-Coder-30B-A3B-Instruct: the same shape, a native 256K context.
    c.rope_theta = 1e7;
    c.max_position_embeddings = 262144;
    p.push_back({"qwen3-coder-30b-a3b",
                 "Qwen3-Coder-30B-A3B's shape (Qwen3-30B-A3B's, 262144-token context)", c, 0.02f});
  }
  {
    model_config c = base_config();
    c.vocab_size = 151936;
    c.hidden_size = 6144;
    c.intermediate_size = 8192;
    c.moe_intermediate_size = 2560;
    c.num_layers = 62;
    c.num_heads = 96;
    c.num_kv_heads = 8;
    c.head_dim = 128;
    c.num_experts = 160;
    c.num_experts_per_tok = 8;
    c.rope_theta = 1e7;
    c.max_position_embeddings = 262144;
    c.eos_token_ids = {151645, 151643};
    p.push_back(
        {"qwen3-coder-480b", "Qwen3-Coder-480B-A35B's shape (62 layers, 160 experts)", c, 0.02f});
  }
  return p;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool is_norm_tensor(std::string_view name) {
  return name.ends_with("norm.weight");
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw model_error(fmt::format("{}: write failed", path.string()));
}

/// The tensors one spec is written as: itself, or a quantized weight's parts.
std::vector<tensor_plan> stored_tensors(const tensor_spec& spec, const gen_model_options& o) {
  if (!spec.linear || !quantizes_weight(spec.name) || !o.quant.quantized())
    return {{spec.name, o.type, spec.shape}};
  const std::string base = spec.name.substr(0, spec.name.size() - 7);  // drop ".weight"
  const int64_t out = spec.shape[0], in = spec.shape[1];
  if (o.quant.method == quant_method::fp8) {
    const int64_t bo = o.quant.block_out, bi = o.quant.block_in;
    return {{spec.name, dtype::f8_e4m3, spec.shape},
            {base + ".weight_scale_inv", dtype::f32, {(out + bo - 1) / bo, (in + bi - 1) / bi}}};
  }
  const int64_t g = o.quant.group_size;
  return {{base + ".qweight", dtype::i32, {in, out / 8}},
          {base + ".qzeros", dtype::i32, {in / g, out / 8}},
          {base + ".scales", dtype::f16, {in / g, out}}};
}

void check_quantizable(const model_config& c, const quant_config& q) {
  if (q.method != quant_method::awq) return;
  for (const auto& spec : expected_tensors(c)) {
    if (!spec.linear || !quantizes_weight(spec.name)) continue;
    if (spec.shape[1] % q.group_size != 0 || spec.shape[0] % 8 != 0) {
      throw model_error(fmt::format(
          "AWQ group size {} does not fit {} [{}, {}] (inputs must be a multiple of the group "
          "size, outputs of 8); pick a group size that divides it",
          q.group_size, spec.name, spec.shape[0], spec.shape[1]));
    }
  }
}

/// Quantizes a weight once, when its first stored part is written, and hands out the
/// other parts as the writer reaches them.
class quantized_cache {
 public:
  /// Writes `t` if it is a part of a quantized weight; false for a plain tensor.
  bool fill(const tensor_plan& t, std::byte* dst, const gen_model_options& o, float std) {
    if (!o.quant.quantized() || is_plain(t, o)) return false;
    const std::string base = base_of(t.name);
    if (base != base_) quantize(base, t, o, std);
    const auto it = parts_.find(t.name);
    if (it == parts_.end() || it->second.size() != t.nbytes())
      throw std::logic_error("gen-model: quantized part " + t.name + " out of step");
    std::memcpy(dst, it->second.data(), it->second.size());
    return true;
  }

 private:
  static bool is_plain(const tensor_plan& t, const gen_model_options& o) {
    if (o.quant.method == quant_method::fp8)
      return !(t.type == dtype::f8_e4m3 || t.name.ends_with(".weight_scale_inv"));
    return !(t.name.ends_with(".qweight") || t.name.ends_with(".qzeros") ||
             t.name.ends_with(".scales"));
  }
  static std::string base_of(const std::string& name) {
    for (std::string_view suffix :
         {".weight_scale_inv", ".weight", ".qweight", ".qzeros", ".scales"}) {
      if (name.ends_with(suffix)) return name.substr(0, name.size() - suffix.size());
    }
    return name;
  }
  /// `first` is the weight's first part in plan order: fp8 `X.weight` [out, in] or awq
  /// `X.qweight` [in, out / 8].
  void quantize(const std::string& base, const tensor_plan& first, const gen_model_options& o,
                float std) {
    const bool fp8 = o.quant.method == quant_method::fp8;
    const int64_t out = fp8 ? first.shape[0] : first.shape[1] * 8;
    const int64_t in = fp8 ? first.shape[1] : first.shape[0];
    std::vector<float> w(static_cast<size_t>(out * in));
    const std::string name = base + ".weight";
    for (size_t k = 0; k < w.size(); ++k) w[k] = random_weight(o.seed, name, k, std, false);
    parts_.clear();
    base_ = base;
    const auto part = [&](const std::string& n, size_t bytes) -> std::byte* {
      auto& v = parts_[n];
      v.assign(bytes, std::byte{0});
      return v.data();
    };
    if (fp8) {
      const int64_t bo = o.quant.block_out, bi = o.quant.block_in;
      const size_t scales = static_cast<size_t>(((out + bo - 1) / bo) * ((in + bi - 1) / bi));
      quantize_fp8_block(w.data(), out, in, bo, bi,
                         reinterpret_cast<uint8_t*>(part(name, w.size())),
                         reinterpret_cast<float*>(part(base + ".weight_scale_inv", scales * 4)));
    } else {
      const int64_t g = o.quant.group_size;
      const auto packed = static_cast<size_t>(in * (out / 8));
      const auto groups = static_cast<size_t>(in / g);
      quantize_awq(w.data(), out, in, g,
                   reinterpret_cast<int32_t*>(part(base + ".qweight", packed * 4)),
                   reinterpret_cast<int32_t*>(
                       part(base + ".qzeros", groups * static_cast<size_t>(out / 8) * 4)),
                   reinterpret_cast<uint16_t*>(
                       part(base + ".scales", groups * static_cast<size_t>(out) * 2)));
    }
  }

  std::string base_;
  std::unordered_map<std::string, std::vector<std::byte>> parts_;
};

}  // namespace

bool quantizes_weight(std::string_view name) {
  return name.find(".self_attn.") != std::string_view::npos ||
         name.find(".mlp.experts.") != std::string_view::npos ||
         name.ends_with(".mlp.gate_proj.weight") || name.ends_with(".mlp.up_proj.weight") ||
         name.ends_with(".mlp.down_proj.weight");
}

const std::vector<model_preset>& model_presets() {
  static const std::vector<model_preset> presets = make_presets();
  return presets;
}

const model_preset& find_preset(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& p : model_presets()) {
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  throw model_error(fmt::format("unknown preset \"{}\" (known: {})", name, fmt::join(names, ", ")));
}

uint64_t random_weight_stream(uint64_t seed, std::string_view name) {
  return XXH64(name.data(), name.size(), seed);
}

bool is_random_norm_tensor(std::string_view name) {
  return is_norm_tensor(name);
}

float random_weight(uint64_t seed, std::string_view name, size_t i, float std, bool is_norm) {
  const uint64_t stream = random_weight_stream(seed, name);
  // Box-Muller on two independent 53-bit uniforms in (0, 1].
  const uint64_t a = splitmix64(stream ^ (2 * static_cast<uint64_t>(i)));
  const uint64_t b = splitmix64(stream ^ (2 * static_cast<uint64_t>(i) + 1));
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  return is_norm ? static_cast<float>(1.0 + 0.1 * z) : static_cast<float>(z * std);
}

namespace {

/// config.json and generation_config.json of a written checkpoint.
void write_config_files(const std::filesystem::path& out, const model_config& c) {
  write_text(out / "config.json", model_config_to_json(c));
  std::string gen = "{\n  \"do_sample\": false";
  if (!c.eos_token_ids.empty())
    gen += fmt::format(",\n  \"eos_token_id\": [{}]", fmt::join(c.eos_token_ids, ", "));
  gen += "\n}\n";
  write_text(out / "generation_config.json", gen);
}

}  // namespace

size_t write_random_checkpoint(const gen_model_options& opts, const std::filesystem::path& out) {
  model_preset preset = find_preset(opts.preset);
  model_config& c = preset.config;
  if (opts.num_layers) {
    if (*opts.num_layers <= 0 || *opts.num_layers > c.num_layers) {
      throw model_error(fmt::format("--layers must be between 1 and {} for preset {}", c.num_layers,
                                    preset.name));
    }
    c.num_layers = *opts.num_layers;
  }
  c.quant = opts.quant;
  c.validate("preset " + preset.name);
  check_quantizable(c, opts.quant);
  std::filesystem::create_directories(out);
  if (opts.weights_on_device) {
    for (const char* stale : {"model.safetensors", "model.safetensors.index.json"})
      std::filesystem::remove(out / stale);  // the folder must not say both
    write_random_weights(out, {opts.seed, preset.init_std, opts.type});
    write_config_files(out, c);
    return 0;
  }

  // Plan shards: tensors in schema order, a new shard when the next one would overflow.
  std::vector<std::vector<tensor_plan>> shards(1);
  size_t shard_bytes = 0, total = 0;
  for (auto& spec : expected_tensors(c)) {
    for (tensor_plan& t : stored_tensors(spec, opts)) {
      const size_t n = t.nbytes();
      if (shard_bytes > 0 && shard_bytes + n > opts.max_shard_bytes) {
        shards.emplace_back();
        shard_bytes = 0;
      }
      shard_bytes += n;
      total += n;
      shards.back().push_back(std::move(t));
    }
  }

  std::vector<float> scratch;
  quantized_cache cache;
  std::vector<std::string> weight_map;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors"
                                                : fmt::format("model-{:05d}-of-{:05d}.safetensors",
                                                              s + 1, shards.size());
    const auto& plan = shards[s];
    write_safetensors(out / file, plan, [&](size_t i, std::byte* dst) {
      const tensor_plan& t = plan[i];
      if (cache.fill(t, dst, opts, preset.init_std)) return;
      const size_t n = t.nbytes() / dtype_size(t.type);
      scratch.resize(n);
      const bool norm = is_norm_tensor(t.name);
      for (size_t k = 0; k < n; ++k)
        scratch[k] = random_weight(opts.seed, t.name, k, preset.init_std, norm);
      convert_from_f32(t.type, scratch.data(), n, dst);
    });
    for (const auto& t : plan)
      weight_map.push_back(fmt::format("    \"{}\": \"{}\"", t.name, file));
    spdlog::info("gen-model: wrote {} ({} tensors)", (out / file).string(), plan.size());
  }
  if (shards.size() > 1) {
    std::sort(weight_map.begin(), weight_map.end());
    write_text(
        out / "model.safetensors.index.json",
        fmt::format(
            "{{\n  \"metadata\": {{\"total_size\": {}}},\n  \"weight_map\": {{\n{}\n  }}\n}}\n",
            total, fmt::join(weight_map, ",\n")));
  }
  std::filesystem::remove(out / kRandomWeightsFile);
  write_config_files(out, c);
  return total;
}

}  // namespace conclave::model
