// Splitting keeps each rank's entries in batch order; merging copies every entry's rows
// from its rank's output into the place the entry has in the whole batch.
#include "engine/rank_split.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <stdexcept>

namespace conclave::engine {
namespace {

/// Rows an output holds; checks its shape against its part.
size_t checked_rows(const rank_batch& part, const gpu::step_output& out, size_t rank) {
  const size_t n = part.batch.size();
  if (n == 0 && out.row_begin.size() <= 1 && out.logits.empty() && out.sampled.empty()) return 0;
  if (out.row_begin.size() != n + 1 || out.row_begin.front() != 0) {
    throw std::invalid_argument(fmt::format("rank {} answered {} row offsets for {} sequences",
                                            rank, out.row_begin.size(), n));
  }
  if (!std::is_sorted(out.row_begin.begin(), out.row_begin.end()) ||
      out.logits.size() < out.row_begin.back() * out.vocab) {
    throw std::invalid_argument(fmt::format("rank {} answered malformed logits", rank));
  }
  if (!out.sampled.empty() && out.sampled.size() != n) {
    throw std::invalid_argument(fmt::format("rank {} answered {} sampled tokens for {} sequences",
                                            rank, out.sampled.size(), n));
  }
  return out.row_begin.back();
}

}  // namespace

std::vector<rank_batch> split_by_rank(std::span<const gpu::step_sequence> batch,
                                      std::span<const int32_t> entry_rank, int ranks) {
  if (ranks < 1) throw std::invalid_argument("split_by_rank: ranks must be >= 1");
  if (entry_rank.size() != batch.size()) {
    throw std::invalid_argument(fmt::format("split_by_rank: {} ranks for {} batch entries",
                                            entry_rank.size(), batch.size()));
  }
  std::vector<rank_batch> parts(static_cast<size_t>(ranks));
  for (size_t i = 0; i < batch.size(); ++i) {
    const int32_t r = entry_rank[i];
    if (r < 0 || r >= ranks) {
      throw std::invalid_argument(
          fmt::format("split_by_rank: entry {} is on rank {} of {}", i, r, ranks));
    }
    auto& part = parts[static_cast<size_t>(r)];
    part.entries.push_back(i);
    part.batch.push_back(batch[i]);
  }
  return parts;
}

void merge_rank_outputs(const std::vector<rank_batch>& parts,
                        std::span<const gpu::step_output> outputs, gpu::step_output& merged) {
  if (outputs.size() != parts.size()) {
    throw std::invalid_argument(
        fmt::format("merge_rank_outputs: {} outputs for {} ranks", outputs.size(), parts.size()));
  }
  // Where each entry of the whole batch is: its rank and its place in that rank's part.
  size_t n = 0;
  for (const auto& part : parts) n += part.entries.size();
  std::vector<std::pair<size_t, size_t>> where(n, {parts.size(), 0});
  size_t rows = 0, vocab = 0;
  bool any_sampled = false;
  for (size_t r = 0; r < parts.size(); ++r) {
    const auto& part = parts[r];
    if (part.entries.size() != part.batch.size())
      throw std::invalid_argument("merge_rank_outputs: a part's entries and batch differ");
    for (size_t k = 0; k < part.entries.size(); ++k) {
      const size_t i = part.entries[k];
      if (i >= n || where[i].first != parts.size())
        throw std::invalid_argument("merge_rank_outputs: entries are not a split of one batch");
      where[i] = {r, k};
    }
    const size_t rank_rows = checked_rows(part, outputs[r], r);
    rows += rank_rows;
    any_sampled = any_sampled || !outputs[r].sampled.empty();
    if (rank_rows == 0) continue;
    if (vocab != 0 && outputs[r].vocab != vocab)
      throw std::invalid_argument("merge_rank_outputs: ranks answered different vocabularies");
    vocab = outputs[r].vocab;
  }

  merged.vocab = vocab;
  merged.logits.resize(rows * vocab);
  merged.row_begin.assign(1, 0);
  merged.sampled.clear();
  if (any_sampled) merged.sampled.assign(n, -1);
  float* dst = merged.logits.data();
  for (size_t i = 0; i < n; ++i) {
    const auto [r, k] = where[i];
    const gpu::step_output& out = outputs[r];
    if (!out.sampled.empty()) merged.sampled[i] = out.sampled[k];
    const size_t begin = out.row_begin[k];  // a part with entries has all its offsets
    const size_t count = out.row_begin[k + 1] - begin;
    dst = std::copy_n(out.logits.data() + begin * vocab, count * vocab, dst);
    merged.row_begin.push_back(merged.row_begin.back() + count);
  }
}

}  // namespace conclave::engine
