// host_ops: host-side helpers that every backend shares (computed on the CPU once, then
// used or uploaded by the backend). They live here, not in gpu/cpu/, so that the CUDA
// backend does not depend on the CPU backend's internals.
#pragma once

#include <cstddef>
#include <vector>

#include "model/model_config.h"

namespace conclave::gpu {

/// HF's default RoPE inverse frequencies: 1 / theta^(2i / head_dim), i < head_dim / 2, in
/// fp32. `round_to_bf16` reproduces a model that was cast with `.to(torch.bfloat16)` and
/// back, which rounds HF's inv_freq buffer (see config::backend_config::rope_inv_freq_dtype).
std::vector<float> rope_inv_freq(size_t head_dim, double theta, bool round_to_bf16 = false);

/// What RoPE needs at run time: the inverse frequencies and the factor cos and sin are
/// multiplied by (yarn's attention scaling; 1 otherwise).
struct rope_table {
  std::vector<float> inv_freq;
  float attention_scaling = 1.0f;
};

/// `c`'s RoPE as transformers computes it (modeling_rope_utils.py): default; linear
/// (inv_freq / factor); yarn (interpolated and extrapolated frequencies blended over
/// beta_fast..beta_slow rotations of the original context, and the attention factor:
/// given, else 0.1 ln(factor) + 1, or the mscale ratio), every step in fp32 as torch.
rope_table rope_parameters(const model::model_config& c, bool round_to_bf16 = false);

}  // namespace conclave::gpu
