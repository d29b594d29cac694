// Fused SwiGLU: out[r, j] = silu(gate_up[r, j]) * gate_up[r, m + j].
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// gate_up: [rows, 2m] fp32; out: [rows, m] of `t` (the down projection's input).
void swiglu(const float* gate_up, size_t rows, size_t m, void* out, elem t, stream_t s);

}  // namespace conclave::gpu::cuda
