// rank_split: cutting a step's batch by rank and merging the ranks' outputs gives back
// what one backend would have answered for the whole batch, whatever the mix of
// all_logits, device-sampled entries and idle ranks.
#include <catch2/catch.hpp>
#include <random>
#include <stdexcept>
#include <vector>

#include "engine/rank_split.h"

using namespace conclave;
using engine::merge_rank_outputs;
using engine::rank_batch;
using engine::split_by_rank;

namespace {

constexpr size_t vocab = 5;

/// A backend stand-in: entry i's rows depend only on the entry (its first token names it),
/// so answering a part or the whole batch gives the same rows for the same entry.
gpu::step_output fake_forward(std::span<const gpu::step_sequence> batch) {
  gpu::step_output out;
  out.vocab = vocab;
  out.row_begin.push_back(0);
  bool any_sampled = false;
  for (const auto& s : batch) any_sampled = any_sampled || (s.sample && !s.all_logits);
  for (const auto& s : batch) {
    const bool sampled = s.sample && !s.all_logits;
    if (any_sampled) out.sampled.push_back(sampled ? 1000 + s.tokens[0] : -1);
    const size_t rows = sampled ? 0 : (s.all_logits ? s.tokens.size() : 1);
    for (size_t r = 0; r < rows; ++r)
      for (size_t v = 0; v < vocab; ++v)
        out.logits.push_back(
            static_cast<float>(s.tokens[0] * 1000 + static_cast<int32_t>(r * 10 + v)));
    out.row_begin.push_back(out.row_begin.back() + rows);
  }
  return out;
}

struct random_step {
  std::vector<std::vector<int32_t>> tokens;
  gpu::device_sampling spec;
  std::vector<gpu::step_sequence> batch;
  std::vector<int32_t> rank;
};

random_step make_step(std::mt19937& rng, int ranks) {
  random_step s;
  const size_t n = rng() % 9;  // 0..8 entries
  s.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    s.tokens[i].assign(1 + rng() % 4, 0);
    s.tokens[i][0] = static_cast<int32_t>(i);  // names the entry
  }
  for (size_t i = 0; i < n; ++i) {
    gpu::step_sequence b;
    b.tokens = s.tokens[i];
    b.all_logits = rng() % 3 == 0;
    if (rng() % 2 == 0) b.sample = &s.spec;
    s.batch.push_back(b);
    // Rank 0 only when ranks > 2, so some ranks stay idle.
    s.rank.push_back(static_cast<int32_t>(ranks > 2 ? 1 + rng() % static_cast<unsigned>(ranks - 1)
                                                    : rng() % static_cast<unsigned>(ranks)));
  }
  return s;
}

void check_same(const gpu::step_output& a, const gpu::step_output& b) {
  CHECK(a.row_begin == b.row_begin);
  CHECK(a.sampled == b.sampled);
  CHECK(a.logits == b.logits);
  if (!a.logits.empty()) CHECK(a.vocab == b.vocab);
}

}  // namespace

TEST_CASE("split_by_rank then merge_rank_outputs is the identity", "[engine][rank_split]") {
  std::mt19937 rng(1234);
  for (int ranks : {1, 2, 3, 4}) {
    for (int round = 0; round < 200; ++round) {
      CAPTURE(ranks, round);
      const auto step = make_step(rng, ranks);
      const auto parts = split_by_rank(step.batch, step.rank, ranks);
      REQUIRE(parts.size() == static_cast<size_t>(ranks));
      size_t total = 0;
      for (size_t r = 0; r < parts.size(); ++r) {
        REQUIRE(parts[r].entries.size() == parts[r].batch.size());
        for (size_t k = 0; k < parts[r].entries.size(); ++k) {
          const size_t i = parts[r].entries[k];
          CHECK(step.rank[i] == static_cast<int32_t>(r));
          CHECK(parts[r].batch[k].tokens.data() == step.batch[i].tokens.data());
          if (k > 0) CHECK(parts[r].entries[k - 1] < i);
        }
        total += parts[r].entries.size();
      }
      CHECK(total == step.batch.size());

      std::vector<gpu::step_output> outputs;
      // An idle rank answers either an empty forward or nothing at all.
      for (const auto& part : parts)
        outputs.push_back(part.batch.empty() && round % 2 ? gpu::step_output{}
                                                          : fake_forward(part.batch));
      gpu::step_output merged;
      merged.logits.assign(3, 7.0f);  // reused buffers are overwritten
      merged.sampled.assign(2, 9);
      merge_rank_outputs(parts, outputs, merged);
      const auto whole = fake_forward(step.batch);
      check_same(merged, whole);
      for (size_t i = 0; i < step.batch.size(); ++i) {
        CHECK(merged.sampled_token(i) == whole.sampled_token(i));
        if (merged.row_begin[i + 1] > merged.row_begin[i])
          CHECK(merged.last(i)[0] == whole.last(i)[0]);
      }
    }
  }
}

TEST_CASE("every rank gets a part, idle ones empty", "[engine][rank_split]") {
  std::vector<int32_t> t0{1}, t1{2};
  std::vector<gpu::step_sequence> batch(2);
  batch[0].tokens = t0;
  batch[1].tokens = t1;
  const std::vector<int32_t> rank{2, 2};
  const auto parts = split_by_rank(batch, rank, 4);
  REQUIRE(parts.size() == 4);
  CHECK(parts[0].batch.empty());
  CHECK(parts[1].batch.empty());
  CHECK(parts[2].entries == std::vector<size_t>{0, 1});
  CHECK(parts[3].batch.empty());
  CHECK(split_by_rank({}, {}, 3).size() == 3);
}

TEST_CASE("split and merge refuse what does not fit", "[engine][rank_split]") {
  std::vector<int32_t> t0{1}, t1{2};
  std::vector<gpu::step_sequence> batch(2);
  batch[0].tokens = t0;
  batch[1].tokens = t1;
  const std::vector<int32_t> one_rank{0};
  CHECK_THROWS_AS(split_by_rank(batch, one_rank, 2), std::invalid_argument);
  const std::vector<int32_t> out_of_range{0, 2};
  CHECK_THROWS_AS(split_by_rank(batch, out_of_range, 2), std::invalid_argument);
  CHECK_THROWS_AS(split_by_rank(batch, std::vector<int32_t>{0, 0}, 0), std::invalid_argument);

  const auto parts = split_by_rank(batch, std::vector<int32_t>{0, 1}, 2);
  gpu::step_output merged;
  std::vector<gpu::step_output> outputs{fake_forward(parts[0].batch)};
  CHECK_THROWS_AS(merge_rank_outputs(parts, outputs, merged), std::invalid_argument);
  outputs.push_back(gpu::step_output{});  // rank 1 has an entry but answered nothing
  CHECK_THROWS_AS(merge_rank_outputs(parts, outputs, merged), std::invalid_argument);
  outputs[1] = fake_forward(parts[1].batch);
  outputs[1].vocab = vocab + 1;
  outputs[1].logits.resize(vocab + 1);
  CHECK_THROWS_AS(merge_rank_outputs(parts, outputs, merged), std::invalid_argument);
  outputs[1] = fake_forward(parts[1].batch);
  merge_rank_outputs(parts, outputs, merged);
  CHECK(merged.row_begin == std::vector<size_t>{0, 1, 2});
}
