#include "gpu/step_layout.h"

#include <algorithm>
#include <cstring>

namespace conclave::gpu {

void step_layout::build(std::span<const step_sequence> batch, const step_layout_options& o) {
  for (auto* v : {&tokens_, &positions_, &slots_, &ctx_, &table_off_, &tables_, &logit_rows_,
                  &tiles_, &gqa_rows_})
    v->clear();
  logit_row_begin_.assign(1, 0);
  tile_ctx_ = 0;
  const int32_t bs = o.block_size;
  for (const step_sequence& s : batch) {
    const auto off = static_cast<int32_t>(tables_.size());
    const auto first = static_cast<int32_t>(tokens_.size());
    const auto count = static_cast<int32_t>(s.tokens.size());
    if (o.use_tiles && count >= o.min_tile_tokens) {
      tile_ctx_ = std::max(tile_ctx_, s.num_cached + count);
      for (int32_t r = 0; r < count; r += o.tile_span)
        tiles_.insert(tiles_.end(),
                      {first + r, std::min(o.tile_span, count - r), s.num_cached + r, off});
    } else {
      for (int32_t r = 0; r < count; ++r) gqa_rows_.push_back(first + r);
    }
    const size_t used =
        (static_cast<size_t>(s.num_cached) + s.tokens.size() + static_cast<size_t>(bs) - 1) /
        static_cast<size_t>(bs);
    tables_.insert(tables_.end(), s.block_table.begin(),
                   s.block_table.begin() + static_cast<std::ptrdiff_t>(used));
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      const int32_t pos = s.num_cached + static_cast<int32_t>(i);
      tokens_.push_back(s.tokens[i]);
      positions_.push_back(pos);
      slots_.push_back(s.block_table[static_cast<size_t>(pos / bs)] * bs + pos % bs);
      ctx_.push_back(pos + 1);
      table_off_.push_back(off);
      if (s.all_logits || i + 1 == s.tokens.size())
        logit_rows_.push_back(static_cast<int32_t>(tokens_.size() - 1));
    }
    logit_row_begin_.push_back(logit_rows_.size());
  }
  if (o.bucket > 0) {
    const auto off = static_cast<int32_t>(tables_.size());
    tables_.push_back(o.scratch_block);
    while (tokens_.size() < o.bucket) {
      tokens_.push_back(0);
      positions_.push_back(0);
      slots_.push_back(o.scratch_block * bs);
      ctx_.push_back(1);
      table_off_.push_back(off);
      logit_rows_.push_back(static_cast<int32_t>(tokens_.size() - 1));
    }
  }
  if (tiles_.empty()) gqa_rows_.clear();  // every row: no index
  // A graph fixes the attention grid: size its split for the longest context the model
  // allows (each row picks the slices it uses from its real context, on the device).
  max_ctx_ = o.bucket > 0   ? o.max_positions
             : ctx_.empty() ? 0
                            : *std::max_element(ctx_.begin(), ctx_.end());
}

step_layout_offsets step_layout::offsets() const {
  step_layout_offsets f;
  const size_t rows = tokens_.size();
  f.positions = rows;
  f.slots = 2 * rows;
  f.ctx = 3 * rows;
  f.table_off = 4 * rows;
  f.logit_rows = 5 * rows;
  f.tables = f.logit_rows + logit_rows_.size();
  f.tiles = f.tables + tables_.size();
  f.gqa_rows = f.tiles + tiles_.size();
  f.total = f.gqa_rows + gqa_rows_.size();
  return f;
}

void step_layout::pack(int32_t* host) const {
  size_t at = 0;
  for (const auto* v : {&tokens_, &positions_, &slots_, &ctx_, &table_off_, &logit_rows_, &tables_,
                        &tiles_, &gqa_rows_}) {
    if (!v->empty()) std::memcpy(host + at, v->data(), v->size() * sizeof(int32_t));
    at += v->size();
  }
}

}  // namespace conclave::gpu
