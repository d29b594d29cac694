// host_ops: host-side helpers that every backend shares (computed on the CPU once, then
// used or uploaded by the backend). They live here, not in gpu/cpu/, so that the CUDA
// backend does not depend on the CPU backend's internals.
#pragma once

#include <cstddef>
#include <vector>

namespace conclave::gpu {

/// HF's default RoPE inverse frequencies: 1 / theta^(2i / head_dim), i < head_dim / 2, in
/// fp32. `round_to_bf16` reproduces a model that was cast with `.to(torch.bfloat16)` and
/// back, which rounds HF's inv_freq buffer (see config::backend_config::rope_inv_freq_dtype).
std::vector<float> rope_inv_freq(size_t head_dim, double theta, bool round_to_bf16 = false);

}  // namespace conclave::gpu
