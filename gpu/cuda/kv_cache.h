// KV-cache write through block tables: each row's key and value go to its cache slot.
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// Row r's key (qkv[r, k_col : k_col + width]) and value (at v_col) are stored, as
/// `t`, into slot slots[r] of k_cache / v_cache ([num_slots, width]). slot = block id *
/// block_size + position % block_size, computed by the caller from the block table.
void kv_cache_write(const float* qkv, size_t row_stride, size_t k_col, size_t v_col,
                    const int32_t* slots, size_t rows, size_t width, void* k_cache, void* v_cache,
                    elem t, stream_t s);

}  // namespace conclave::gpu::cuda
