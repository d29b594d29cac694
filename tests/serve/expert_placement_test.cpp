// expert_placement: rebalancing keeps every expert placed, copies on distinct ranks and
// equal slot counts, replicates a hot expert, evens out a skewed load, leaves a zero load
// alone and is deterministic.
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "serve/expert_placement.h"

using namespace conclave;
using namespace conclave::serve;

namespace {

/// Layers 0 and 2 dense, the others MoE.
std::vector<bool> moe_layers(size_t layers) {
  std::vector<bool> moe(layers, true);
  moe[0] = false;
  if (layers > 2) moe[2] = false;
  return moe;
}

gpu::expert_map start(size_t layers, int32_t experts, int32_t ranks) {
  const auto moe = moe_layers(layers);
  const auto flags = std::make_unique<bool[]>(layers);
  for (size_t l = 0; l < layers; ++l) flags[l] = moe[l];
  return expert_placement::initial(std::span<const bool>(flags.get(), layers), experts, ranks);
}

expert_load random_load(size_t layers, int32_t experts, uint32_t seed, bool skewed) {
  std::mt19937 rng(seed);
  const auto moe = moe_layers(layers);
  expert_load load(layers);
  for (size_t l = 0; l < layers; ++l) {
    if (!moe[l]) continue;
    for (int32_t e = 0; e < experts; ++e) {
      uint64_t tokens = rng() % 1000;
      if (skewed && e % 7 == 0) tokens *= 40;
      load[l].push_back(tokens);
    }
  }
  return load;
}

int32_t slots_for(int32_t experts, int32_t redundant, int32_t ranks) {
  return (experts + redundant + ranks - 1) / ranks;
}

/// Copies per rank in `layer`.
std::vector<size_t> slot_counts(const gpu::expert_map& m, size_t layer) {
  std::vector<size_t> n(static_cast<size_t>(m.ranks), 0);
  for (const auto& h : m.holders[layer])
    for (int32_t r : h) ++n[static_cast<size_t>(r)];
  return n;
}

}  // namespace

TEST_CASE("expert placement: initial is contiguous", "[serve][expert_placement]") {
  const auto m = start(4, 16, 4);
  CHECK(m.check(4, 16).empty());
  CHECK(m.holders[0].empty());
  CHECK(m.holders[1][0] == std::vector<int32_t>{0});
  CHECK(m.holders[1][5] == std::vector<int32_t>{1});
  CHECK(m.holders[3][15] == std::vector<int32_t>{3});
}

TEST_CASE("expert placement: every expert stays placed, copies on distinct ranks, equal slots",
          "[serve][expert_placement]") {
  const size_t layers = 5;
  for (const auto& [experts, ranks, redundant] : std::vector<std::tuple<int32_t, int32_t, int32_t>>{
           {16, 4, 0}, {16, 4, 4}, {16, 2, 2}, {16, 8, 8}, {128, 8, 8}, {12, 4, 4}, {6, 3, 12}}) {
    const int32_t slots = slots_for(experts, redundant, ranks);
    for (uint32_t seed = 1; seed <= 20; ++seed) {
      CAPTURE(experts, ranks, redundant, seed);
      auto current = start(layers, experts, ranks);
      const auto load = random_load(layers, experts, seed, seed % 2 == 0);
      const auto next = expert_placement::rebalance(load, current, slots, redundant);
      REQUIRE(next.check(static_cast<int32_t>(layers), experts).empty());  // placed, distinct
      CHECK(next.version == current.version + 1);
      CHECK(next.ranks == ranks);
      size_t repacked = 0;
      for (size_t l = 0; l < layers; ++l) {
        // A layer the new packing would not improve by 5 % keeps its holders.
        if (next.holders[l].empty() || next.holders[l] == current.holders[l]) continue;
        ++repacked;
        const auto counts = slot_counts(next, l);
        const size_t copies =
            std::min<size_t>(static_cast<size_t>(experts + redundant),
                             static_cast<size_t>(experts) * static_cast<size_t>(ranks));
        size_t total = 0;
        for (size_t c : counts) {
          total += c;
          CHECK(c <= static_cast<size_t>(slots));
          // Equal counts: here every total is a multiple of the ranks.
          CHECK(c == copies / static_cast<size_t>(ranks));
        }
        CHECK(total == copies);
      }
      // Spare slots and a skewed load: copies of the hot experts always pay.
      if (seed % 2 == 0 && redundant > 0) CHECK(repacked > 0);
      // Rebalancing its own result keeps it valid too.
      const auto again = expert_placement::rebalance(load, next, slots, redundant);
      CHECK(again.check(static_cast<int32_t>(layers), experts).empty());
    }
  }
}

TEST_CASE("expert placement: slot counts differ by at most one when ranks do not divide them",
          "[serve][expert_placement]") {
  const int32_t experts = 16, ranks = 3, redundant = 1;
  expert_load load(4);
  load[1].assign(experts, 10);
  load[3].assign(experts, 10);
  for (size_t e = 0; e < 3; ++e) load[1][e] = load[3][e] = 1000;  // all three on rank 0
  const auto next = expert_placement::rebalance(load, start(4, experts, ranks),
                                                slots_for(experts, redundant, ranks), redundant);
  REQUIRE(next.check(4, experts).empty());
  const auto counts = slot_counts(next, 1);
  CHECK(*std::max_element(counts.begin(), counts.end()) -
            *std::min_element(counts.begin(), counts.end()) <=
        1);
  CHECK(counts[0] + counts[1] + counts[2] == 17);
}

TEST_CASE("expert placement: a hot expert gets replicated", "[serve][expert_placement]") {
  const int32_t experts = 8, ranks = 4;
  expert_load load(2);
  load[1].assign(experts, 10);
  load[1][5] = 1000;
  const auto current = start(2, experts, ranks);

  const auto none = expert_placement::rebalance(load, current, slots_for(experts, 0, ranks), 0);
  CHECK(none.holders[1][5].size() == 1);

  const auto two = expert_placement::rebalance(load, current, slots_for(experts, 3, ranks), 3);
  REQUIRE(two.check(2, experts).empty());
  // 1000 tokens against 70: all three extra copies go to expert 5, one per rank.
  CHECK(two.holders[1][5] == std::vector<int32_t>{0, 1, 2, 3});
  for (int32_t e = 0; e < experts; ++e)
    if (e != 5) CHECK(two.holders[1][static_cast<size_t>(e)].size() == 1);
}

TEST_CASE("expert placement: imbalance drops for a skewed load", "[serve][expert_placement]") {
  const int32_t experts = 16, ranks = 4;
  expert_load load(3);
  // Experts 0..3 (all on rank 0 initially) take most of the tokens.
  for (size_t l : {1, 2}) {
    load[l].assign(experts, 10);
    for (size_t e = 0; e < 4; ++e) load[l][e] = 500 + 50 * e;
  }
  const bool moe[] = {false, true, true};
  const auto current = expert_placement::initial(moe, experts, ranks);
  const auto before = expert_placement::imbalance(load, current);
  CHECK(before.per_layer[0] == 1.0);  // dense
  CHECK(before.overall > 3.0);

  const auto moved = expert_placement::rebalance(load, current, 4, 0);
  const auto after_moved = expert_placement::imbalance(load, moved);
  // Four slots each: the four hot experts on four ranks is the best there is (1.12).
  CHECK(after_moved.overall < 1.15);

  const auto replicated = expert_placement::rebalance(load, current, 5, 4);
  const auto after_replicated = expert_placement::imbalance(load, replicated);
  CHECK(after_replicated.overall < 1.1);
  CHECK(after_replicated.overall <= before.overall);
}

TEST_CASE("expert placement: imbalance splits a replicated expert's tokens evenly",
          "[serve][expert_placement]") {
  gpu::expert_map m;
  m.ranks = 2;
  m.holders = {{{0, 1}, {0}, {1}}};
  const expert_load load{{100, 50, 10}};
  const auto imb = expert_placement::imbalance(load, m);
  // rank 0: 50 + 50 = 100, rank 1: 50 + 10 = 60, mean 80.
  CHECK(imb.per_layer[0] == Approx(100.0 / 80.0));
  CHECK(imb.overall == Approx(100.0 / 80.0));
  CHECK(expert_placement::imbalance({{0, 0, 0}}, m).overall == 1.0);
}

TEST_CASE("expert placement: zero load leaves the placement unchanged",
          "[serve][expert_placement]") {
  const auto current = start(4, 16, 4);
  expert_load zero(4);
  zero[1].assign(16, 0);
  zero[3].assign(16, 0);
  const auto next = expert_placement::rebalance(zero, current, 5, 4);
  CHECK(next.version == current.version);
  CHECK(next.holders == current.holders);
}

TEST_CASE("expert placement: a layer over its slots is repacked even without gain",
          "[serve][expert_placement]") {
  const auto current = start(2, 16, 2);  // 8 experts per rank
  expert_load even(2);
  even[1].assign(16, 100);
  const auto next = expert_placement::rebalance(even, start(2, 16, 2), 8, 0);
  CHECK(next.holders == current.holders);
  gpu::expert_map lopsided = current;
  for (size_t e = 0; e < 10; ++e) lopsided.holders[1][e] = {0};
  for (size_t e = 10; e < 16; ++e) lopsided.holders[1][e] = {1};
  const auto fixed = expert_placement::rebalance(even, lopsided, 8, 0);
  REQUIRE(fixed.check(2, 16).empty());
  CHECK(fixed.experts_on(1, 0).size() == 8);
  CHECK(fixed.experts_on(1, 1).size() == 8);
}

TEST_CASE("expert placement: a balanced load keeps experts where they are",
          "[serve][expert_placement]") {
  const auto current = start(2, 16, 4);
  expert_load even(2);
  even[1].assign(16, 100);
  const auto next = expert_placement::rebalance(even, current, 4, 0);
  CHECK(next.version == current.version + 1);
  CHECK(next.holders == current.holders);  // nothing to gain: no weights move
}

TEST_CASE("expert placement: deterministic", "[serve][expert_placement]") {
  const auto current = start(6, 64, 8);
  const auto load = random_load(6, 64, 42, true);
  const auto a = expert_placement::rebalance(load, current, 9, 8);
  const auto b = expert_placement::rebalance(load, current, 9, 8);
  CHECK(a.holders == b.holders);
  CHECK(a.version == b.version);
}

TEST_CASE("expert placement: refuses shapes that do not match", "[serve][expert_placement]") {
  const auto current = start(3, 16, 4);
  expert_load load(3);
  load[1].assign(16, 1);
  CHECK_THROWS_AS(expert_placement::rebalance(expert_load(2), current, 4, 0),
                  std::invalid_argument);
  CHECK_THROWS_AS(
      expert_placement::rebalance({{}, std::vector<uint64_t>(15, 1), {}}, current, 4, 0),
      std::invalid_argument);
  CHECK_THROWS_AS(expert_placement::rebalance(load, current, 3, 0), std::invalid_argument);
  CHECK_THROWS_AS(expert_placement::imbalance(expert_load(1), current), std::invalid_argument);
  auto broken = current;
  broken.holders[1][3] = {7};  // rank out of range
  CHECK_THROWS_AS(expert_placement::rebalance(load, broken, 4, 0), std::invalid_argument);
}
