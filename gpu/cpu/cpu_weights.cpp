// Loading fp32 weights from a mapped checkpoint; fused layouts concatenate row blocks,
// which leaves every output element the same dot product as the separate matrices.
#include "gpu/cpu/cpu_weights.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "gpu/cpu/thread_pool.h"
#include "model/load_progress.h"

namespace conclave::gpu::cpu {
namespace {

/// Appends tensor `name`, converted to fp32, to `out`.
void append(const model::checkpoint& ckpt, const std::string& name, std::vector<float>& out,
            model::load_progress& progress) {
  const auto& t = ckpt.tensor(name);
  const size_t n = t.numel();
  const size_t at = out.size();
  out.resize(at + n);
  model::convert_to_f32(t.type, t.data, n, out.data() + at);
  progress.advance(t.nbytes);
}

}  // namespace

cpu_weights load_cpu_weights(const model::checkpoint& ckpt, int threads) {
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
          const std::string ep = fmt::format("{}mlp.experts.{}.", p, e);
          add(ep + "gate_proj.weight", L.expert_gate_up[static_cast<size_t>(e)]);
          add(ep + "up_proj.weight", L.expert_gate_up[static_cast<size_t>(e)]);
          add(ep + "down_proj.weight", L.expert_down[static_cast<size_t>(e)]);
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
