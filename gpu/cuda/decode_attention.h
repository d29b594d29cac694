// The tensor-core decode attention kernel (decode_attention.cu): paged GQA attention for
// rows of one query token (decode, or the leftover rows of a prefill step), all the query
// heads of a KV head in one block (mma rows), keys and values streamed through shared
// memory by cp.async in a 3-4 stage pipeline, split over the sequence like the GQA kernel.
// paged_attention (attention.cu) plans it and picks it; this header is its launcher.
#pragma once

#include "gpu/cuda/attention.h"

namespace conclave::gpu::cuda {

/// The kernel's shapes: head_dim 64 or 128 and at most 16 query heads per KV head (bf16
/// output, a bf16 or fp8 cache; the caller checks those).
bool decode_mma_shape_ok(size_t heads, size_t kv_heads, size_t head_dim);

/// The most blocks of either kernel an SM holds (the fp8 one's, three), for workspaces.
constexpr size_t kDecodeMmaMostBlocksPerSm = 3;

/// Blocks an SM the split of decode_mma_attention's launch for `a` plans one wave of: two
/// (the bf16 / widening kernel takes ~100 KiB of shared memory at head_dim 128); the fp8
/// kernel's ~68 KiB fit three, planned under CONCLAVE_DECODE_FP8_BLOCKS=3.
size_t decode_mma_blocks_per_sm(const attention_args& a);

/// Launches the kernel over a's rows (or a.row_index's) with `splits` slices per (row, KV
/// head) in the grid; splits > 1 needs `partial` (dev::partial_stride floats per row, query
/// head and slice) and the zeroed arrival `counters` (one per row and KV head).
/// `scale`: the softmax scale.
void decode_mma_attention(const attention_args& a, float scale, int splits, float* partial,
                          unsigned int* counters, stream_t s);

/// The fp8 cache's kernel without the widening copies (decode_attention_fp8.cu): head_dim
/// 64 or 128, at most 8 query heads per KV head.
bool decode_fp8_direct_ok(size_t heads, size_t kv_heads, size_t head_dim);

/// decode_mma_attention's launch for an fp8 cache of that shape (the same arguments and
/// workspace); decode_mma_attention takes it unless CONCLAVE_DECODE_FP8_DIRECT=0.
void decode_fp8_direct_attention(const attention_args& a, float scale, int splits, float* partial,
                                 unsigned int* counters, stream_t s);

/// The fp8 cache's widenings on every e4m3 code on the device: to bf16 by conversion
/// instructions and by the integer/fp32 way (CONCLAVE_DECODE_FP8_FAST_CVT), and to fp32
/// likewise (the prefill kernels' fp8 loads; and quant_elem.cuh's fp8x4_to_float, NaN
/// codes included): the number of results that differ (0 expected; NaN codes are
/// compared only for fp8x4_to_float, which keeps them NaN).
unsigned int decode_fp8_widen_mismatches();

}  // namespace conclave::gpu::cuda
