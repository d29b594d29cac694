// Weighted un-permute: each token's k expert outputs, scaled by the router weights and
// summed back into the token's row.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// out[t, :] = sum_j weights[t, j] * down[slot_row[t * k + j], :]; down: [tokens * k,
/// hidden] fp32 in permuted order; out: [tokens, hidden] fp32.
void moe_combine(const float* down, const int32_t* slot_row, const float* weights, size_t tokens,
                 size_t k, size_t hidden, float* out, stream_t s);

}  // namespace conclave::gpu::cuda
