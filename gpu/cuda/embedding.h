// Embedding gather: out[r, :] = table[ids[r], :] as fp32.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// table: [vocab, hidden] of `t`; ids: [rows] (device); out: [rows, hidden] fp32.
void embedding_gather(const void* table, elem t, const int32_t* ids, size_t rows, size_t hidden,
                      float* out, stream_t s);

}  // namespace conclave::gpu::cuda
