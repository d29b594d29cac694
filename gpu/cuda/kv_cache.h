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

/// The same into an fp8 KV cache (kv_elem.cuh): per row and KV head, s = amax / 448 over
/// the head's head_dim values (1 when all are zero), e4m3(x / s) bytes at the head's place
/// in the slot's row of `row_bytes`, and s as fp32 after the kv_heads x head_dim bytes.
/// The CPU twin is cpu::fp8_kv_round.
void kv_cache_write_fp8(const float* qkv, size_t row_stride, size_t k_col, size_t v_col,
                        const int32_t* slots, size_t rows, size_t kv_heads, size_t head_dim,
                        size_t row_bytes, void* k_cache, void* v_cache, stream_t s);

}  // namespace conclave::gpu::cuda
