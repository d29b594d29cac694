// cuda_weights: a model's tensors in device memory, arranged for the CUDA forward (q/k/v
// fused into one matrix; every expert's gate and up fused and all experts of a layer in
// one buffer). Matrices are bf16 or fp32 (`t`); norms and biases are always fp32.
// Filled from a mapped checkpoint (converted on upload) or generated on the device.
#pragma once

#include <cstdint>
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

/// Uploads every tensor `ckpt`'s config needs, converting to `t` (norms to fp32).
cuda_weights load_cuda_weights(const model::checkpoint& ckpt, elem t);

/// Generates every tensor of `c` on the device: the values gen-model writes for `seed`
/// and `init_std` (rounded to `t` instead of the file's dtype).
cuda_weights random_cuda_weights(const model::model_config& c, elem t, uint64_t seed,
                                 float init_std);

}  // namespace conclave::gpu::cuda
