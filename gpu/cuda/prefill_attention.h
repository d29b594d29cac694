// Tensor-core causal attention for prefill chunks (bf16 KV cache): flash-attention style
// over the paged cache, mma.sync m16n8k16 (bf16 inputs, fp32 accumulation), online softmax
// in registers. One block per (tile of up to 64 consecutive query rows of one sequence,
// query head). Rows outside tiles go through paged_attention (attention.h).
#pragma once

#include "gpu/cuda/common.h"

namespace conclave::gpu::cuda {

/// A tile: query rows [first_row, first_row + rows) of one sequence at positions
/// first_pos, first_pos + 1, ...; its block table at table_offset. rows <= 64.
struct prefill_tile {
  int32_t first_row = 0, rows = 0, first_pos = 0, table_offset = 0;
};
constexpr int32_t kPrefillTileRows = 64;
/// Tiles of the Hopper kernel (prefill_attention_wgmma.cu): two warpgroups of 64 rows.
constexpr int32_t kPrefillWideTileRows = 128;
constexpr int kWgmmaSerial = 0, kWgmmaOverlap = 1, kWgmmaDecoupled = 2, kWgmmaProducer = 3,
              kWgmmaPingPong = 4;
constexpr int32_t kMaxPrefillSplits = 64;

struct prefill_attention_args {
  const float* q = nullptr;  ///< [rows, q_stride] fp32, heads x head_dim at column 0
  size_t q_stride = 0;
  const void* k_cache = nullptr;  ///< bf16 [num_slots, kv_heads * head_dim] (or fp8 rows)
  const void* v_cache = nullptr;
  const prefill_tile* tiles = nullptr;  ///< device array
  size_t num_tiles = 0;
  const int32_t* block_tables = nullptr;
  int32_t block_size = 16;
  size_t heads = 0, kv_heads = 0, head_dim = 0;
  void* out = nullptr;  ///< bf16 [rows, heads * head_dim]
  /// Sliding window W (0: full causal): the row at position p reads keys p - W < j <= p;
  /// KV tiles wholly before a tile's window are neither loaded nor computed.
  int32_t window = 0;
  /// fp8 KV cache (kv_elem.cuh: rows of kv_row_bytes, e4m3 bytes then a fp32 scale per KV
  /// head): tiles are dequantized to bf16 on their way into shared memory.
  bool kv_fp8 = false;
  size_t kv_row_bytes = 0;
  /// Rows per tile the tiles were cut to: kPrefillTileRows (mma.sync, any sm_80+ card) or
  /// kPrefillWideTileRows (wgmma; prefill_tile_rows says which applies).
  int32_t tile_rows = kPrefillTileRows;
  /// The wgmma kernel's schedule (prefill_attention_wgmma.cu): kWgmmaSerial (softmax, then
  /// P V, a block barrier per KV tile), kWgmmaOverlap (each tile's softmax under the
  /// previous tile's P V), kWgmmaDecoupled (the same, the warpgroups synchronized per
  /// stage by mbarriers instead of block barriers), kWgmmaProducer (kWgmmaDecoupled with a
  /// third warpgroup issuing the loads) or kWgmmaPingPong (kWgmmaProducer with the two
  /// computing warpgroups taking turns at the tensor cores).
  int wgmma_schedule = kWgmmaDecoupled;
  /// wgmma kernel: each (tile, head) split over the context into this many slices whose
  /// partial results a second kernel merges (prefill_splits: few tiles, long context, as a
  /// short chunk late in a long prompt). > 1 needs split_workspace of
  /// prefill_split_workspace_floats(num_tiles, heads, splits) floats.
  int32_t splits = 1;
  float* split_workspace = nullptr;
  /// wgmma kernel, packed GQA: 1 (a block per query head, a tile of up to 128 positions)
  /// or the GQA group heads / kv_heads (a block per KV head whose 128 rows are the group's
  /// query heads at up to 128 / group positions: tiles must be cut that short). A chunk
  /// shorter than 128 tokens still fills the tensor cores' rows, and each KV tile is read
  /// once for the group.
  int32_t pack_gqa = 1;
  /// wgmma kernel, bf16 cache, schedules from kWgmmaDecoupled: the KV tiles arrive by TMA
  /// (one lane issues a block of keys) where the cache blocks tile its 128-key tiles (block
  /// sizes 8, 16, 32, 64, 128 or multiples of 128) and num_slots (the slots of k_cache and
  /// v_cache each, < 2^31) is given; else by cp.async, as with tma false.
  bool tma = false;
  size_t num_slots = 0;
};

/// Whether the kernel exists for this head_dim (64 or 128).
bool prefill_attention_supported(size_t head_dim);

/// Whether this process runs the wgmma kernel's sm_90a machine code (a Hopper card; not
/// compute_80 PTX compiled at load, not a Blackwell card).
bool prefill_wgmma_available();

/// The rows per tile to cut prefill chunks to: kPrefillWideTileRows where the Hopper
/// kernel applies (head_dim 128, prefill_wgmma_available(), `wgmma` not switched off by
/// CONCLAVE_PREFILL_WGMMA=0), else kPrefillTileRows.
int32_t prefill_tile_rows(size_t head_dim, bool wgmma);

void prefill_attention(const prefill_attention_args& a, stream_t s);

/// The pack_gqa to run the kernel of `tile_rows` with: the GQA group where `on`, the
/// kernel is the wgmma one and the group is 2..128; else 1. Tiles are cut to
/// tile_rows / pack positions.
int32_t prefill_pack_gqa(size_t heads, size_t kv_heads, int32_t tile_rows, bool on);

/// The Hopper kernel (tile_rows == kPrefillWideTileRows); prefill_attention dispatches here.
void prefill_attention_wgmma(const prefill_attention_args& a, stream_t s);

/// Floats of a split launch's workspace (0 for splits <= 1).
size_t prefill_split_workspace_floats(size_t num_tiles, size_t heads, int32_t splits,
                                      int32_t pack_gqa = 1);

/// Slices to split each block of the wgmma kernel into (a block: a tile and a query head, or
/// a KV head with pack_gqa): 1 when the blocks fill the `sms` multiprocessors, else enough
/// for about two blocks an SM, each slice at least 8 KV tiles of the longest context
/// `max_ctx`, halved until the workspace fits max_workspace_bytes.
int32_t prefill_splits(size_t num_tiles, size_t heads, int32_t max_ctx, int sms,
                       int32_t pack_gqa = 1, size_t max_workspace_bytes = size_t{64} << 20);

}  // namespace conclave::gpu::cuda
