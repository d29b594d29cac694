// expert_placement: which ranks of a replica hold which routed experts, as plain rules
// (the expert_group actor applies them between steps). The initial placement is
// contiguous; rebalancing is EPLB-like: the hottest experts of a layer get extra copies,
// then every copy (carrying its expert's load divided by its copies) is packed onto the
// ranks, heaviest first, onto the lightest rank, with every rank holding as many copies
// as the others (or one more). Every copy of an expert has the same weights, so a placement only
// moves work, never changes output.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "gpu/expert_map.h"

namespace conclave::serve {

/// Tokens routed to each expert: load[layer][expert]; a dense layer's row may be empty.
using expert_load = std::vector<std::vector<uint64_t>>;

/// max rank load / mean rank load (1 = perfectly even).
struct load_imbalance {
  std::vector<double> per_layer;  ///< one per layer; 1 for dense or unloaded layers
  double overall = 1.0;           ///< the worst layer
};

namespace expert_placement {

/// Expert e of every MoE layer on rank e * ranks / experts (expert_map::contiguous).
gpu::expert_map initial(std::span<const bool> moe_layer, int32_t experts, int32_t ranks);

/// A placement for `load` from `current` (same ranks, layers and experts), version + 1.
/// Per MoE layer: up to `redundant` extra copies go one at a time to the expert with the
/// highest load per copy (at most one copy per rank, never more copies than the slots
/// hold); the copies are packed heaviest first onto the lightest rank, in rounds of one
/// copy per rank (so counts differ by at most one, by none when the ranks divide the
/// copies, and two copies of an expert never share a rank); the packed ranks are renamed
/// to keep as many experts where they are as possible. A layer keeps its current holders
/// when that lowers its imbalance by less than 5 % (moving weights is not free), and so
/// does a layer with no load; all-zero load returns `current` unchanged. A rank holds at
/// most `slots_per_rank` experts per layer. Deterministic: ties go to the lowest expert
/// id, then the lowest rank. Throws std::invalid_argument when the shapes disagree or
/// the slots cannot hold every expert once.
gpu::expert_map rebalance(const expert_load& load, const gpu::expert_map& current,
                          int32_t slots_per_rank, int32_t redundant);

/// Each rank's load per layer: an expert's tokens split evenly over its copies.
/// Throws std::invalid_argument when the shapes disagree.
load_imbalance imbalance(const expert_load& load, const gpu::expert_map& map);

}  // namespace expert_placement
}  // namespace conclave::serve
