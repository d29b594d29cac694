// The attention input transform, fused: bias add on q/k/v, per-head RMSNorm of q and k
// (q_norm / k_norm), then rotate-half RoPE at each row's position, in place.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// qkv: [rows, (heads + 2 kv_heads) * head_dim] fp32, modified in place. bias: [that
/// width] or null; q_w, k_w: [head_dim]; positions: [rows]; inv_freq: [head_dim / 2];
/// rope_scale multiplies cos and sin (yarn's attention scaling).
void qk_norm_rope(float* qkv, const float* bias, const float* q_w, const float* k_w,
                  const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                  size_t kv_heads, size_t head_dim, float eps, stream_t s, float rope_scale = 1.0f);

}  // namespace conclave::gpu::cuda
