// The attention input transform, fused: bias add on q/k/v, per-head RMSNorm of q and k
// (q_norm / k_norm), then rotate-half RoPE at each row's position, in place; optionally
// each row's key and value stored into the KV cache in the same pass.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// qkv: [rows, (heads + 2 kv_heads) * head_dim] fp32, modified in place. bias: [that
/// width] or null; q_w, k_w: [head_dim]; positions: [rows]; inv_freq: [head_dim / 2];
/// rope_scale multiplies cos and sin (yarn's attention scaling).
void qk_norm_rope(float* qkv, const float* bias, const float* q_w, const float* k_w,
                  const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                  size_t kv_heads, size_t head_dim, float eps, stream_t s, float rope_scale = 1.0f);

/// Where qk_norm_rope_kv stores the keys and values: row r into slot slots[r] of the caches,
/// as kv_cache_write (elem `t`) or kv_cache_write_fp8 (`fp8`, rows of `row_bytes`) would.
struct kv_target {
  const int32_t* slots = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  elem t = elem::bf16;
  bool fp8 = false;
  size_t row_bytes = 0;
};

/// qk_norm_rope, then the KV write, bit-identical to qk_norm_rope followed by
/// kv_cache_write(_fp8): with `fused` in one kernel (each warp that finishes a key or value
/// head stores it), else as those two launches (CONCLAVE_FUSED_KV=0, for comparison).
void qk_norm_rope_kv(float* qkv, const float* bias, const float* q_w, const float* k_w,
                     const int32_t* positions, const float* inv_freq, size_t rows, size_t heads,
                     size_t kv_heads, size_t head_dim, float eps, float rope_scale,
                     const kv_target& kv, bool fused, stream_t s);

}  // namespace conclave::gpu::cuda
