// Loading fp32 weights from a mapped checkpoint; fused layouts concatenate row blocks,
// which leaves every output element the same dot product as the separate matrices.
#include "gpu/cpu/cpu_weights.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "gpu/cpu/thread_pool.h"
#include "model/load_progress.h"

namespace conclave::gpu::cpu {
namespace {

/// Appends tensor `name`, converted (or dequantized, model/quant.h) to fp32, to `out`.
void append(const model::checkpoint& ckpt, const std::string& name, std::vector<float>& out,
            model::load_progress& progress) {
  const size_t n = ckpt.logical_numel(name);
  const size_t at = out.size();
  out.resize(at + n);
  ckpt.read_f32(name, out.data() + at);
  progress.advance(ckpt.stored_bytes(name));
}

/// Appends one expert's gate, up and down projections to its (empty) entries of `L`.
void append_expert(const model::checkpoint& ckpt, int64_t layer, int64_t e, cpu_layer& L,
                   model::load_progress& progress) {
  const std::string ep = fmt::format("model.layers.{}.mlp.experts.{}.", layer, e);
  auto& gate_up = L.expert_gate_up[static_cast<size_t>(e)];
  auto& down = L.expert_down[static_cast<size_t>(e)];
  gate_up.clear();
  down.clear();
  append(ckpt, ep + "gate_proj.weight", gate_up, progress);
  append(ckpt, ep + "up_proj.weight", gate_up, progress);
  append(ckpt, ep + "down_proj.weight", down, progress);
}

}  // namespace

void load_cpu_expert(const model::checkpoint& ckpt, int64_t layer, int64_t e, cpu_layer& L) {
  if (!L.moe || e < 0 || static_cast<size_t>(e) >= L.expert_gate_up.size())
    throw std::invalid_argument(fmt::format("layer {} has no routed expert {}", layer, e));
  model::load_progress quiet("", 0);
  append_expert(ckpt, layer, e, L, quiet);
}

void drop_cpu_expert(cpu_layer& L, int64_t e) {
  if (e < 0 || static_cast<size_t>(e) >= L.expert_gate_up.size()) return;
  std::vector<float>().swap(L.expert_gate_up[static_cast<size_t>(e)]);
  std::vector<float>().swap(L.expert_down[static_cast<size_t>(e)]);
}

cpu_weights load_cpu_weights(const model::checkpoint& ckpt, int threads,
                             const expert_filter& holds) {
  const auto& c = ckpt.config();
  model::load_progress progress("loading weights", ckpt.weight_bytes());
  const auto load = [&](const std::string& name) {
    std::vector<float> out;
    append(ckpt, name, out, progress);
    return out;
  };
  const auto add = [&](const std::string& name, std::vector<float>& out) {
    append(ckpt, name, out, progress);
  };
  cpu_weights w;
  w.embed = load("model.embed_tokens.weight");
  w.final_norm = load("model.norm.weight");
  if (!c.tie_word_embeddings) w.lm_head = load("lm_head.weight");
  w.layers.resize(static_cast<size_t>(c.num_layers));

  thread_pool pool(threads);
  pool.parallel_for(w.layers.size(), [&](size_t begin, size_t end) {
    for (size_t l = begin; l < end; ++l) {
      cpu_layer& L = w.layers[l];
      const std::string p = fmt::format("model.layers.{}.", l);
      L.input_norm = load(p + "input_layernorm.weight");
      L.post_norm = load(p + "post_attention_layernorm.weight");
      L.q_norm = load(p + "self_attn.q_norm.weight");
      L.k_norm = load(p + "self_attn.k_norm.weight");
      for (const char* m : {"q", "k", "v"}) add(p + "self_attn." + m + "_proj.weight", L.qkv);
      L.o = load(p + "self_attn.o_proj.weight");
      if (c.attention_bias) {
        for (const char* m : {"q", "k", "v"}) add(p + "self_attn." + m + "_proj.bias", L.qkv_bias);
        L.o_bias = load(p + "self_attn.o_proj.bias");
      }
      L.moe = c.is_moe_layer(static_cast<int64_t>(l));
      if (L.moe) {
        L.router = load(p + "mlp.gate.weight");
        L.expert_gate_up.resize(static_cast<size_t>(c.num_experts));
        L.expert_down.resize(static_cast<size_t>(c.num_experts));
        for (int64_t e = 0; e < c.num_experts; ++e) {
          if (holds && !holds(static_cast<int64_t>(l), e)) continue;
          append_expert(ckpt, static_cast<int64_t>(l), e, L, progress);
        }
      } else {
        add(p + "mlp.gate_proj.weight", L.mlp_gate_up);
        add(p + "mlp.up_proj.weight", L.mlp_gate_up);
        L.mlp_down = load(p + "mlp.down_proj.weight");
      }
    }
  });
  progress.finish();
  return w;
}

}  // namespace conclave::gpu::cpu
