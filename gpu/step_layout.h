// The host side of a device step: a batch of sequences flattened into the per-row
// metadata a GPU backend copies to its device in one transfer. Plain C++ (no CUDA), so
// the layout is tested on the CPU; gpu/cuda/cuda_backend.cpp uploads what it builds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gpu/backend.h"

namespace conclave::gpu {

struct step_layout_options {
  int32_t block_size = 16;
  /// Prefill chunks of at least min_tile_tokens tokens are cut into tiles of tile_span
  /// positions (the tensor-core prefill kernel); the other rows are listed for the GQA
  /// kernel. Off: no tiles, every row goes to the GQA kernel (no index).
  bool use_tiles = false;
  int32_t min_tile_tokens = 16;
  int32_t tile_span = 64;
  /// A graph step (bucket > 0) is padded to `bucket` rows of dummies that write and read
  /// only `scratch_block`, and its attention is sized for `max_positions`.
  size_t bucket = 0;
  int32_t scratch_block = 0;
  int32_t max_positions = 0;
};

/// Where each array starts in the staging area, in int32 elements. The order is fixed:
/// [tokens | positions | slots | ctx | table_off | logit_rows | tables | tiles | gqa_rows].
struct step_layout_offsets {
  size_t tokens = 0, positions = 0, slots = 0, ctx = 0, table_off = 0, logit_rows = 0, tables = 0,
         tiles = 0, gqa_rows = 0, total = 0;
};

/// Rebuilt each step (its vectors keep their capacity between steps).
class step_layout {
 public:
  /// Flattens `batch`. Each sequence's block table must cover its positions
  /// (validate_batch checks that first).
  void build(std::span<const step_sequence> batch, const step_layout_options& o);

  size_t rows() const { return tokens_.size(); }
  /// Rows whose logits the step returns, in row order.
  const std::vector<int32_t>& logit_rows() const { return logit_rows_; }
  /// Per sequence i, its logit rows are [begin[i], begin[i + 1]) of logit_rows().
  const std::vector<size_t>& logit_row_begin() const { return logit_row_begin_; }
  /// Tiles as {first row, rows, first position, table offset}.
  size_t num_tiles() const { return tiles_.size() / 4; }
  /// Rows the GQA kernel takes when there are tiles; 0 (every row, no index) otherwise.
  size_t num_gqa_rows() const { return gqa_rows_.size(); }
  /// The longest context a tiled chunk reaches (0 without tiles).
  int32_t tile_ctx() const { return tile_ctx_; }
  /// The longest context of the step; for a graph, max_positions.
  int32_t max_ctx() const { return max_ctx_; }

  step_layout_offsets offsets() const;
  /// Writes offsets().total int32 values to `host`.
  void pack(int32_t* host) const;

  // The arrays, for tests and the CPU-side checks.
  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::vector<int32_t>& positions() const { return positions_; }
  const std::vector<int32_t>& slots() const { return slots_; }
  const std::vector<int32_t>& ctx() const { return ctx_; }
  const std::vector<int32_t>& table_off() const { return table_off_; }
  const std::vector<int32_t>& tables() const { return tables_; }
  const std::vector<int32_t>& tiles() const { return tiles_; }
  const std::vector<int32_t>& gqa_rows() const { return gqa_rows_; }

 private:
  std::vector<int32_t> tokens_, positions_, slots_, ctx_, table_off_, tables_, logit_rows_, tiles_,
      gqa_rows_;
  std::vector<size_t> logit_row_begin_;
  int32_t tile_ctx_ = 0, max_ctx_ = 0;
};

}  // namespace conclave::gpu
