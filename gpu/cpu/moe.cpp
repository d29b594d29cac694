// MoE on the CPU. Grouping tokens per expert turns k GEMVs per token into one GEMM per
// routed expert, which is what makes prefill fast; experts with no tokens cost nothing.
#include "gpu/cpu/moe.h"

#include <algorithm>

#include "gpu/cpu/ops.h"

namespace conclave::gpu::cpu {

void moe_forward(const cpu_layer& layer, const model::model_config& c, const float* h, float* out,
                 size_t tokens, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t experts = static_cast<size_t>(c.num_experts);
  const size_t k = static_cast<size_t>(c.num_experts_per_tok);
  const size_t m = static_cast<size_t>(c.moe_intermediate_size);

  std::vector<float> logits(tokens * experts);
  linear(h, layer.router.data(), nullptr, logits.data(), tokens, experts, hidden, pool);
  std::vector<int32_t> ids(tokens * k);
  std::vector<float> weights(tokens * k);
  router_topk(logits.data(), tokens, experts, k, c.norm_topk_prob, ids.data(), weights.data());

  // Bucket (token, weight) pairs by expert, tokens in ascending order within a bucket.
  std::vector<std::vector<std::pair<uint32_t, float>>> routed(experts);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t j = 0; j < k; ++j) {
      routed[static_cast<size_t>(ids[t * k + j])].emplace_back(static_cast<uint32_t>(t),
                                                               weights[t * k + j]);
    }
  }

  std::fill(out, out + tokens * hidden, 0.0f);
  std::vector<float> x, gate_up, act, down;
  for (size_t e = 0; e < experts; ++e) {
    const auto& list = routed[e];
    if (list.empty()) continue;
    const size_t n = list.size();
    x.resize(n * hidden);
    for (size_t i = 0; i < n; ++i)
      std::copy_n(h + list[i].first * hidden, hidden, x.data() + i * hidden);
    gate_up.resize(n * 2 * m);
    linear(x.data(), layer.expert_gate_up[e].data(), nullptr, gate_up.data(), n, 2 * m, hidden,
           pool);
    act.resize(n * m);
    swiglu(gate_up.data(), act.data(), n, m);
    down.resize(n * hidden);
    linear(act.data(), layer.expert_down[e].data(), nullptr, down.data(), n, hidden, m, pool);
    for (size_t i = 0; i < n; ++i) {
      float* o = out + list[i].first * hidden;
      const float* d = down.data() + i * hidden;
      const float w = list[i].second;
      for (size_t j = 0; j < hidden; ++j) o[j] += d[j] * w;
    }
  }
}

void dense_mlp_forward(const cpu_layer& layer, const model::model_config& c, const float* h,
                       float* out, size_t tokens, thread_pool* pool) {
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const size_t m = static_cast<size_t>(c.intermediate_size);
  std::vector<float> gate_up(tokens * 2 * m), act(tokens * m);
  linear(h, layer.mlp_gate_up.data(), nullptr, gate_up.data(), tokens, 2 * m, hidden, pool);
  swiglu(gate_up.data(), act.data(), tokens, m);
  linear(act.data(), layer.mlp_down.data(), nullptr, out, tokens, hidden, m, pool);
}

}  // namespace conclave::gpu::cpu
