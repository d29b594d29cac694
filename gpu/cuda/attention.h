// Paged causal GQA attention over any mix of prefill chunks and decode tokens: each query
// row attends to the first ctx_len[row] positions of its sequence (the last `window` of
// them in a sliding-window layer), read through the sequence's block table (online softmax over
// tiles of keys, fp32 accumulation).
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

struct attention_args {
  const float* q = nullptr;  ///< [rows, q_stride] fp32, heads x head_dim at column 0
  size_t q_stride = 0;
  const void* k_cache = nullptr;  ///< [num_slots, kv_heads * head_dim] of `t`
  const void* v_cache = nullptr;
  elem t = elem::f32;  ///< the cache's and the output's type (bf16 output with kv_fp8)
  /// fp8 KV cache (kv_elem.cuh): rows of kv_row_bytes, e4m3 bytes then one fp32 scale per
  /// KV head; the output stays `t` (bf16).
  bool kv_fp8 = false;
  size_t kv_row_bytes = 0;                ///< with kv_fp8: bytes per slot row (gpu::kv_row_bytes)
  const int32_t* ctx_len = nullptr;       ///< [rows] keys visible to the row (position + 1)
  const int32_t* table_offset = nullptr;  ///< [rows] where the row's block table starts
  const int32_t* block_tables = nullptr;  ///< all sequences' tables, concatenated
  int32_t block_size = 16;
  size_t rows = 0, heads = 0, kv_heads = 0, head_dim = 0;
  void* out = nullptr;  ///< [rows, heads * head_dim] of `t`
  /// Split over the sequence (decode with few rows and long contexts): an upper bound on
  /// the step's ctx_len (the longest, or for a CUDA graph the model's longest), which
  /// sizes the grid; each row then picks on the device, from its own ctx_len, how many
  /// slices it uses (none at short contexts), and the last slice to finish merges them.
  /// `workspace`: fp32 scratch of attention_workspace_floats() elements, zero-filled when
  /// allocated (its head holds arrival counters that every launch leaves at zero; one
  /// workspace may serve launches of any shape, one at a time). With max_ctx 0 or no
  /// workspace, every block runs its row's whole context.
  int32_t max_ctx = 0;
  float* workspace = nullptr;
  /// false: the first kernel (one block per (row, head), one thread per key; verified on
  /// an H200). true (the fast paths, head_dim % 8 == 0): the GQA kernel, one block per
  /// (row, KV head, slice of the context) for up to 8 query heads sharing that KV head
  /// (fewer when rows x KV heads leave most SMs idle), 16-byte key loads; split over the
  /// sequence when rows x KV heads leave SMs idle.
  bool tiled = false;
  /// With `tiled`, a bf16 or fp8 cache, head_dim 64 or 128, at most 16 query heads per KV head:
  /// the tensor-core decode kernel (decode_attention.h: keys and values streamed through
  /// shared memory, every query head of a KV head in one block). false: the GQA kernel
  /// there too (tests of both, A/B benchmarks: CONCLAVE_DECODE_MMA=0).
  bool decode_mma = true;
  /// With `tiled`: the decode kernels run only the index_rows rows listed here (the others
  /// are prefill tiles, prefill_attention), split over the sequence as any launch of
  /// index_rows rows would be (a decode stream's long context next to a prompt chunk).
  /// Null: every row.
  const int32_t* row_index = nullptr;
  size_t index_rows = 0;
  /// Sliding window W of this layer (0: full causal): a row of ctx_len c reads only the
  /// keys [max(0, c - W), c); blocks wholly before that are not read (neither their
  /// block table entries nor their keys and values), and the split plans its slices over
  /// the window only.
  int32_t window = 0;
};

/// Scratch the split path needs for `a` (0 when it does not split), row_index and
/// index_rows set as they will be at the launch; zero-fill it once when allocating it.
size_t attention_workspace_floats(const attention_args& a);

/// head_dim must be even and at most 256.
void paged_attention(const attention_args& a, stream_t s);

}  // namespace conclave::gpu::cuda
