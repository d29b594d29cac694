// The routed-expert MLP on the CPU: tokens grouped per expert, only routed experts run.
#pragma once

#include <cstddef>

#include "gpu/cpu/cpu_weights.h"

namespace conclave::gpu::cpu {
class thread_pool;
}

namespace conclave::gpu::cpu {

/// out[t] = sum over t's top-k experts e of weight(t, e) * down_e(silu(gate_e h) * up_e h).
/// h, out: [tokens, hidden].
void moe_forward(const cpu_layer& layer, const model::model_config& c, const float* h, float* out,
                 size_t tokens, thread_pool* pool = nullptr);

/// out = down(silu(gate h) * up h) for a dense SwiGLU layer. h, out: [tokens, hidden].
void dense_mlp_forward(const cpu_layer& layer, const model::model_config& c, const float* h,
                       float* out, size_t tokens, thread_pool* pool = nullptr);

}  // namespace conclave::gpu::cpu
