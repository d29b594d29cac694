// The host metadata a GPU step uploads (gpu/step_layout.h): rows, slots, tiles, the
// graph padding and the packed staging order.
#include "gpu/step_layout.h"

#include <catch2/catch.hpp>
#include <numeric>

using namespace conclave::gpu;

namespace {
std::vector<int32_t> iota_from(int32_t first, size_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

/// Blocks of 16, chunks of >= 16 tokens cut into tiles of 16 positions.
step_layout_options tiled_options() {
  step_layout_options o;
  o.block_size = 16;
  o.use_tiles = true;
  o.min_tile_tokens = 16;
  o.tile_span = 16;
  return o;
}
}  // namespace

TEST_CASE("step layout: a decode and a prefill chunk, tiles for the chunk only", "[step_layout]") {
  // Sequence 0 decodes at position 20 (blocks 7, 3); sequence 1 reads 40 prompt tokens
  // after 8 cached ones (blocks 10..13), all logits.
  const std::vector<int32_t> t0 = {5}, table0 = {7, 3};
  const std::vector<int32_t> t1 = iota_from(100, 40), table1 = {10, 11, 12, 13};
  const std::vector<step_sequence> batch = {{t0, 20, table0, false}, {t1, 8, table1, true}};
  const step_layout_options o = tiled_options();
  step_layout l;
  l.build(batch, o);
  REQUIRE(l.rows() == 41);
  CHECK(l.tokens()[0] == 5);
  CHECK(l.positions()[0] == 20);
  CHECK(l.slots()[0] == 3 * 16 + 4);  // position 20: block table0[1], offset 4
  CHECK(l.ctx()[0] == 21);
  CHECK(l.table_off()[0] == 0);
  // Row 1 + i is position 8 + i of sequence 1; its table starts after table0's 2 blocks.
  for (int32_t i = 0; i < 40; ++i) {
    const int32_t pos = 8 + i;
    CHECK(l.positions()[static_cast<size_t>(1 + i)] == pos);
    CHECK(l.slots()[static_cast<size_t>(1 + i)] ==
          table1[static_cast<size_t>(pos / 16)] * 16 + pos % 16);
    CHECK(l.table_off()[static_cast<size_t>(1 + i)] == 2);
  }
  // Only the blocks a sequence uses are copied: 48 positions need 3 of sequence 1's 4.
  CHECK(l.tables() == std::vector<int32_t>{7, 3, 10, 11, 12});
  // Logits: sequence 0's last row, then all 40 of sequence 1's.
  CHECK(l.logit_rows().size() == 41);
  CHECK(l.logit_row_begin() == std::vector<size_t>{0, 1, 41});
  // Tiles of 16 positions: {first row, rows, first position, table offset}.
  CHECK(l.tiles() == std::vector<int32_t>{1, 16, 8, 2, 17, 16, 24, 2, 33, 8, 40, 2});
  CHECK(l.num_tiles() == 3);
  CHECK(l.tile_ctx() == 48);
  CHECK(l.gqa_rows() == std::vector<int32_t>{0});  // the decode row
  CHECK(l.max_ctx() == 48);
}

TEST_CASE("step layout: without tiles the GQA kernel takes every row, unindexed", "[step_layout]") {
  const std::vector<int32_t> t = iota_from(1, 20), table = {4, 5};
  const std::vector<step_sequence> batch = {{t, 0, table, false}};
  step_layout_options o;
  o.block_size = 16;
  step_layout l;
  l.build(batch, o);
  CHECK(l.num_tiles() == 0);
  CHECK(l.num_gqa_rows() == 0);
  CHECK(l.tile_ctx() == 0);
  CHECK(l.logit_rows() == std::vector<int32_t>{19});
  // A chunk shorter than min_tile_tokens with tiles on: GQA rows, listed only because
  // another sequence has tiles.
  o.use_tiles = true;
  o.min_tile_tokens = 32;
  l.build(batch, o);
  CHECK(l.num_tiles() == 0);
  CHECK(l.num_gqa_rows() == 0);
}

TEST_CASE(
    "step layout: a graph step is padded with scratch rows and sized for the longest "
    "context",
    "[step_layout]") {
  const std::vector<int32_t> a = {9}, b = {8}, ta = {2}, tb = {6};
  const std::vector<step_sequence> batch = {{a, 3, ta, false}, {b, 0, tb, false}};
  step_layout_options o;
  o.block_size = 16;
  o.use_tiles = false;
  o.bucket = 4;
  o.scratch_block = 99;
  o.max_positions = 4096;
  step_layout l;
  l.build(batch, o);
  REQUIRE(l.rows() == 4);
  CHECK(l.tokens() == std::vector<int32_t>{9, 8, 0, 0});
  CHECK(l.slots() == std::vector<int32_t>{2 * 16 + 3, 6 * 16, 99 * 16, 99 * 16});
  CHECK(l.ctx() == std::vector<int32_t>{4, 1, 1, 1});
  CHECK(l.tables() == std::vector<int32_t>{2, 6, 99});
  CHECK(l.table_off() == std::vector<int32_t>{0, 1, 2, 2});
  // The padding rows return logits too (the graph's fixed shape); the sequences' ranges
  // cover only their own.
  CHECK(l.logit_rows() == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(l.logit_row_begin() == std::vector<size_t>{0, 1, 2});
  CHECK(l.max_ctx() == 4096);
}

TEST_CASE("step layout: the staging area holds the arrays in the fixed order", "[step_layout]") {
  const std::vector<int32_t> t0 = {5}, table0 = {7, 3};
  const std::vector<int32_t> t1 = iota_from(100, 20), table1 = {10, 11};
  const std::vector<step_sequence> batch = {{t0, 20, table0, false}, {t1, 0, table1, false}};
  const step_layout_options o = tiled_options();
  step_layout l;
  l.build(batch, o);
  const step_layout_offsets f = l.offsets();
  const size_t rows = l.rows();
  CHECK(f.tokens == 0);
  CHECK(f.positions == rows);
  CHECK(f.logit_rows == 5 * rows);
  CHECK(f.tables == f.logit_rows + l.logit_rows().size());
  CHECK(f.tiles == f.tables + l.tables().size());
  CHECK(f.gqa_rows == f.tiles + l.tiles().size());
  CHECK(f.total == f.gqa_rows + l.gqa_rows().size());
  std::vector<int32_t> host(f.total, -7);
  l.pack(host.data());
  const auto at = [&](size_t off, const std::vector<int32_t>& v) {
    return std::equal(v.begin(), v.end(), host.begin() + static_cast<std::ptrdiff_t>(off));
  };
  CHECK(at(f.tokens, l.tokens()));
  CHECK(at(f.positions, l.positions()));
  CHECK(at(f.slots, l.slots()));
  CHECK(at(f.ctx, l.ctx()));
  CHECK(at(f.table_off, l.table_off()));
  CHECK(at(f.logit_rows, l.logit_rows()));
  CHECK(at(f.tables, l.tables()));
  CHECK(at(f.tiles, l.tiles()));
  CHECK(at(f.gqa_rows, l.gqa_rows()));
  // A rebuild starts over: nothing of the previous step is kept.
  const std::vector<step_sequence> one = {{t0, 20, table0, false}};
  l.build(one, o);
  CHECK(l.rows() == 1);
  CHECK(l.tables() == std::vector<int32_t>{7, 3});
  CHECK(l.num_tiles() == 0);
  CHECK(l.logit_row_begin() == std::vector<size_t>{0, 1});
}
