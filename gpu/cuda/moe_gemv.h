// Grouped expert GEMM for small batches (decode): every routed expert's rows in one
// launch, each weight row read once per expert and applied to all of that expert's rows.
// No host round trip for the per-expert counts (the offsets stay on the device).
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// For every expert e and permuted row r in [offsets[e], offsets[e+1]):
/// y[r, :] = x[r, :] · w[e]^T, with x: [rows, k] of `t`, w: [experts, n, k] of `t`,
/// y: [rows, n] fp32. Efficient while experts get few rows each (it is a GEMV per row
/// with the weights shared); large batches go through cuBLAS instead.
void moe_grouped_gemv(const void* x, const void* w, elem t, const int32_t* offsets, size_t experts,
                      float* y, size_t n, size_t k, stream_t s);

}  // namespace conclave::gpu::cuda
