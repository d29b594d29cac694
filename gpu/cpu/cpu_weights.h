// cpu_weights: a checkpoint's tensors converted to fp32 and arranged for the CPU forward
// (q/k/v fused into one matrix, each expert's gate and up fused into one).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/checkpoint.h"

namespace conclave::gpu::cpu {

struct cpu_layer {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;
  std::vector<float> qkv, qkv_bias;  ///< [q + 2 kv, hidden]; bias empty unless attention_bias
  std::vector<float> o, o_bias;      ///< [hidden, q]
  bool moe = false;
  std::vector<float> router;                       ///< [experts, hidden]
  std::vector<std::vector<float>> expert_gate_up;  ///< per expert [2 m, hidden]
  std::vector<std::vector<float>> expert_down;     ///< per expert [hidden, m]
  std::vector<float> mlp_gate_up, mlp_down;        ///< dense layer: [2 i, hidden], [hidden, i]
};

struct cpu_weights {
  std::vector<float> embed;  ///< [vocab, hidden]
  std::vector<float> final_norm;
  std::vector<float> lm_head;  ///< [vocab, hidden]; empty when tied to embed
  std::vector<cpu_layer> layers;

  const std::vector<float>& output_matrix() const { return lm_head.empty() ? embed : lm_head; }
};

/// Which routed experts a rank loads: (layer, expert) -> whether this rank holds it.
using expert_filter = std::function<bool(int64_t layer, int64_t expert)>;

/// Converts every tensor the config needs; `threads` parallelises the conversion. With a
/// filter, only the experts it accepts are loaded (the others' entries stay empty).
cpu_weights load_cpu_weights(const model::checkpoint& ckpt, int threads,
                             const expert_filter& holds = {});

/// Loads expert `e` of MoE layer `layer` into `L` (a rank gaining it in a rebalance).
void load_cpu_expert(const model::checkpoint& ckpt, int64_t layer, int64_t e, cpu_layer& L);
/// Frees expert `e`'s weights (a rank losing it).
void drop_cpu_expert(cpu_layer& L, int64_t e);

}  // namespace conclave::gpu::cpu
