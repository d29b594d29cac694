// cuda_weights: a model's tensors in device memory, arranged for the CUDA forward (q/k/v
// fused into one matrix; every expert's gate and up fused and all experts of a layer in
// one buffer). Matrices are bf16 or fp32 (`t`); norms and biases are always fp32.
// Filled from a mapped checkpoint (converted on upload) or generated on the device.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "gpu/cuda/device_buffer.h"
#include "model/model_config.h"

namespace conclave::model {
class checkpoint;
}

namespace conclave::gpu::cuda {

struct cuda_layer {
  device_buffer input_norm, post_norm, q_norm, k_norm;  ///< fp32
  device_buffer qkv, qkv_bias;  ///< [q + 2 kv, hidden]; bias fp32, empty unless attention_bias
  device_buffer o, o_bias;      ///< [hidden, q]
  bool moe = false;
  device_buffer router;   ///< [experts, hidden]
  device_buffer gate_up;  ///< moe: [experts, 2 m, hidden]; dense: [2 i, hidden]
  device_buffer down;     ///< moe: [experts, hidden, m]; dense: [hidden, i]
  /// A rank of an expert-parallel replica: the experts it holds, ascending; gate_up and
  /// down then hold only these, slot i being expert experts[i]. Empty with every expert
  /// loaded (one rank: slot e is expert e).
  std::vector<int32_t> experts;
  bool sparse = false;  ///< whether `experts` lists the slots (expert-parallel layout)
};

struct cuda_weights {
  elem t = elem::bf16;
  device_buffer embed;  ///< [vocab, hidden]
  device_buffer final_norm;
  device_buffer lm_head;  ///< empty when tied
  std::vector<cuda_layer> layers;
  size_t bytes = 0;  ///< device bytes of all weights

  const void* output_matrix() const { return lm_head.get() ? lm_head.get() : embed.get(); }
};

/// Which routed experts a rank loads: (layer, expert) -> whether this rank holds it.
using cuda_expert_filter = std::function<bool(int64_t layer, int64_t expert)>;

/// Uploads every tensor `ckpt`'s config needs, converting to `t` (norms to fp32). With a
/// filter, a MoE layer holds only the experts it accepts (cuda_layer::experts).
cuda_weights load_cuda_weights(const model::checkpoint& ckpt, elem t,
                               const cuda_expert_filter& holds = {});

/// Switches MoE layer `layer` of `w` (sparse) to hold `experts` (ascending): experts kept
/// are copied on the device, gained ones loaded from `ckpt`, lost ones freed with the old
/// buffers. Nothing changes when it throws.
void reload_cuda_experts(const model::checkpoint& ckpt, cuda_weights& w, size_t layer,
                         std::vector<int32_t> experts);

/// Generates every tensor of `c` on the device: the values gen-model writes for `seed`
/// and `init_std` (rounded to `t` instead of the file's dtype).
cuda_weights random_cuda_weights(const model::model_config& c, elem t, uint64_t seed,
                                 float init_std);

}  // namespace conclave::gpu::cuda
