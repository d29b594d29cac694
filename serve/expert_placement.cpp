// Expert placement. Packing runs in rounds of one copy per rank, heaviest copies first:
// every rank ends with the same number of copies (or one more), and since an expert's
// copies weigh the same they are consecutive in that order, so they span at most two
// rounds and only the expert split across a round boundary has ranks it may not use in
// the next round; it is placed first there, while every rank is still free, so packing
// never gets stuck. The packed ranks are then renamed to overlap the current placement
// most, and a layer keeps its current placement unless the new one is 5 % better.
#include "serve/expert_placement.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace conclave::serve::expert_placement {
namespace {

/// A layer's new placement must lower its imbalance by this fraction at least; otherwise
/// its experts stay where they are (moving weights is not free).
constexpr double min_gain = 0.05;

/// The experts per MoE layer; throws when `map` is malformed or `load` does not match it.
size_t experts_of(const expert_load& load, const gpu::expert_map& map) {
  if (load.size() != map.holders.size()) {
    throw std::invalid_argument(fmt::format("expert load has {} layers, the placement {}",
                                            load.size(), map.holders.size()));
  }
  size_t experts = 0;
  for (size_t l = 0; l < load.size(); ++l) {
    const size_t n = map.holders[l].size();
    if (n == 0) continue;
    if (load[l].size() != n) {
      throw std::invalid_argument(fmt::format(
          "expert load of layer {} has {} experts, the placement {}", l, load[l].size(), n));
    }
    experts = n;
  }
  if (auto err = map.check(static_cast<int32_t>(map.holders.size()), static_cast<int32_t>(experts));
      !err.empty())
    throw std::invalid_argument(err);
  return experts;
}

bool all_zero(const std::vector<uint64_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint64_t x) { return x == 0; });
}

/// One copy of an expert: it carries load / copies of its expert.
struct copy_item {
  int32_t expert = 0;
  double weight = 0;
};

/// How many copies each expert of a layer gets: one each, then `extra` more, each to the
/// expert with the highest load per copy (lowest id on ties) that has fewer than `ranks`.
std::vector<uint64_t> copies_for(const std::vector<uint64_t>& load, size_t extra, int32_t ranks) {
  std::vector<uint64_t> copies(load.size(), 1);
  for (size_t k = 0; k < extra; ++k) {
    size_t best = load.size();
    for (size_t e = 0; e < load.size(); ++e) {
      if (copies[e] >= static_cast<uint64_t>(ranks)) continue;
      // load[e] / copies[e] > load[best] / copies[best], exactly.
      if (best == load.size() || load[e] * copies[best] > load[best] * copies[e]) best = e;
    }
    if (best == load.size()) break;
    ++copies[best];
  }
  return copies;
}

/// Packs the copies of one layer onto `ranks` ranks.
std::vector<std::vector<int32_t>> pack_layer(const std::vector<uint64_t>& load,
                                             const std::vector<uint64_t>& copies, int32_t ranks) {
  std::vector<size_t> order(load.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Heaviest copy first (exact comparison of load / copies), lowest id on ties.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return load[a] * copies[b] > load[b] * copies[a]; });
  std::vector<copy_item> items;
  for (size_t e : order) {
    const double w = static_cast<double>(load[e]) / static_cast<double>(copies[e]);
    for (uint64_t c = 0; c < copies[e]; ++c) items.push_back({static_cast<int32_t>(e), w});
  }

  std::vector<std::vector<int32_t>> holders(load.size());
  std::vector<double> rank_load(static_cast<size_t>(ranks), 0.0);
  const auto r_count = static_cast<size_t>(ranks);
  for (size_t begin = 0; begin < items.size(); begin += r_count) {
    std::vector<bool> taken(r_count, false);  // each rank gets one copy per round
    for (size_t i = begin; i < std::min(items.size(), begin + r_count); ++i) {
      auto& h = holders[static_cast<size_t>(items[i].expert)];
      int32_t best = -1;
      for (int32_t r = 0; r < ranks; ++r) {
        const auto ri = static_cast<size_t>(r);
        if (taken[ri] || std::find(h.begin(), h.end(), r) != h.end()) continue;
        if (best < 0 || rank_load[ri] < rank_load[static_cast<size_t>(best)]) best = r;
      }
      if (best < 0) throw std::logic_error("expert_placement: no rank left for a copy");
      taken[static_cast<size_t>(best)] = true;
      rank_load[static_cast<size_t>(best)] += items[i].weight;
      h.push_back(best);
    }
  }
  return holders;
}

/// Renames the ranks of `next` (loads only depend on which experts share a rank, so any
/// renaming balances the same) to keep as many experts as possible where `now` has them:
/// greedily the pair (new rank, old rank) sharing the most experts, lowest ids on ties.
void keep_in_place(std::vector<std::vector<int32_t>>& next,
                   const std::vector<std::vector<int32_t>>& now, int32_t ranks) {
  const auto n = static_cast<size_t>(ranks);
  std::vector<size_t> shared(n * n, 0);  // [new rank * n + old rank]
  for (size_t e = 0; e < next.size(); ++e)
    for (int32_t a : next[e])
      for (int32_t b : now[e]) ++shared[static_cast<size_t>(a) * n + static_cast<size_t>(b)];
  std::vector<int32_t> rename(n, -1);
  std::vector<bool> old_used(n, false);
  for (size_t k = 0; k < n; ++k) {
    size_t best_a = n, best_b = n;
    for (size_t a = 0; a < n; ++a) {
      if (rename[a] >= 0) continue;
      for (size_t b = 0; b < n; ++b) {
        if (old_used[b]) continue;
        if (best_a == n || shared[a * n + b] > shared[best_a * n + best_b]) best_a = a, best_b = b;
      }
    }
    rename[best_a] = static_cast<int32_t>(best_b);
    old_used[best_b] = true;
  }
  for (auto& h : next) {
    for (int32_t& r : h) r = rename[static_cast<size_t>(r)];
    std::sort(h.begin(), h.end());
  }
}

/// The most experts one rank holds in a layer.
size_t most_per_rank(const std::vector<std::vector<int32_t>>& holders, int32_t ranks) {
  std::vector<size_t> count(static_cast<size_t>(ranks), 0);
  for (const auto& h : holders)
    for (int32_t r : h) ++count[static_cast<size_t>(r)];
  return *std::max_element(count.begin(), count.end());
}

/// max / mean rank load of one MoE layer (1 when it has no load).
double layer_imbalance(const std::vector<uint64_t>& load,
                       const std::vector<std::vector<int32_t>>& holders, int32_t ranks) {
  std::vector<double> rank_load(static_cast<size_t>(std::max(ranks, 1)), 0.0);
  double total = 0;
  for (size_t e = 0; e < holders.size(); ++e) {
    const auto tokens = static_cast<double>(load[e]);
    total += tokens;
    for (int32_t r : holders[e])
      rank_load[static_cast<size_t>(r)] += tokens / static_cast<double>(holders[e].size());
  }
  if (total <= 0) return 1.0;
  const double mean = total / static_cast<double>(rank_load.size());
  return *std::max_element(rank_load.begin(), rank_load.end()) / mean;
}

}  // namespace

gpu::expert_map initial(std::span<const bool> moe_layer, int32_t experts, int32_t ranks) {
  return gpu::expert_map::contiguous(moe_layer, experts, ranks);
}

gpu::expert_map rebalance(const expert_load& load, const gpu::expert_map& current,
                          int32_t slots_per_rank, int32_t redundant) {
  const size_t experts = experts_of(load, current);
  const int32_t ranks = current.ranks;
  if (ranks < 1) throw std::invalid_argument("expert placement needs at least one rank");
  if (redundant < 0) throw std::invalid_argument("redundant experts must be >= 0");
  const auto slots = static_cast<size_t>(std::max(slots_per_rank, 0)) * static_cast<size_t>(ranks);
  if (slots < experts) {
    throw std::invalid_argument(fmt::format("{} ranks x {} slots cannot hold {} experts once",
                                            ranks, slots_per_rank, experts));
  }
  if (std::all_of(load.begin(), load.end(), all_zero)) return current;

  // Extra copies: as many as asked, the slots leave room for and one per rank allows.
  const size_t extra = std::min(
      {static_cast<size_t>(redundant), slots - experts, experts * static_cast<size_t>(ranks - 1)});
  gpu::expert_map next = current;
  next.version = current.version + 1;
  for (size_t l = 0; l < load.size(); ++l) {
    if (current.holders[l].empty() || all_zero(load[l])) continue;
    auto packed = pack_layer(load[l], copies_for(load[l], extra, ranks), ranks);
    keep_in_place(packed, current.holders[l], ranks);
    const double before = layer_imbalance(load[l], current.holders[l], ranks);
    const double after = layer_imbalance(load[l], packed, ranks);
    if (before - after >= min_gain * before ||
        most_per_rank(current.holders[l], ranks) > static_cast<size_t>(slots_per_rank))
      next.holders[l] = std::move(packed);
  }
  return next;
}

load_imbalance imbalance(const expert_load& load, const gpu::expert_map& map) {
  experts_of(load, map);
  load_imbalance out;
  out.per_layer.assign(load.size(), 1.0);
  for (size_t l = 0; l < load.size(); ++l) {
    if (map.holders[l].empty()) continue;
    out.per_layer[l] = layer_imbalance(load[l], map.holders[l], map.ranks);
    out.overall = std::max(out.overall, out.per_layer[l]);
  }
  return out;
}

}  // namespace conclave::serve::expert_placement
