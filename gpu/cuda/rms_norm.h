// RMSNorm fused with the residual add: x[r] += add[r] (+ bias), out[i] = norm(x[r]) * w.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// For each output row i (r = rows_index ? rows_index[i] : i): when `add` is given,
/// x[r] += add[r] (+ bias) is written back; then out[i] = x[r] / sqrt(mean(x[r]^2) + eps)
/// * w, stored as `out_t`. x, add: [*, dim] fp32; bias, w: [dim] fp32; out: [rows, dim].
void add_rms_norm(float* x, const float* add, const float* bias, const float* w, void* out,
                  elem out_t, const int32_t* rows_index, size_t rows, size_t dim, float eps,
                  stream_t s);

}  // namespace conclave::gpu::cuda
