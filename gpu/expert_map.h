// expert_map: where a replica's routed experts live. For every layer and logical expert,
// the ranks holding a copy of its weights. Every copy of an expert has the same weights,
// so which copy a token is sent to never changes the output; the map only decides where
// the work is done and which weights a rank loads. Plain data, no collectives.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace conclave::gpu {

struct expert_map {
  int32_t ranks = 1;
  uint64_t version = 0;  ///< +1 on every change; ranks refuse a step of another version
  /// holders[layer][expert]: the ranks holding a copy, ascending, never empty for an expert
  /// of a MoE layer. A dense layer has no entries.
  std::vector<std::vector<std::vector<int32_t>>> holders;

  /// Expert e of every MoE layer on rank e * ranks / experts: contiguous equal blocks.
  /// `moe_layer[l]` says which layers route (the others stay empty).
  static expert_map contiguous(std::span<const bool> moe_layer, int32_t experts, int32_t ranks);
  /// The same for a model's MoE layers.
  static expert_map contiguous(const model::model_config& c, int32_t ranks);

  int32_t layers() const { return static_cast<int32_t>(holders.size()); }
  bool holds(int32_t layer, int32_t expert, int32_t rank) const;
  /// The experts of `layer` rank `rank` holds a copy of, ascending.
  std::vector<int32_t> experts_on(int32_t layer, int32_t rank) const;
  /// The rank that runs expert `expert` of `layer` for token `token` of a step on rank
  /// `from`: the only holder, or with several copies holder[(from + token) % copies]
  /// (deterministic, spreads a hot expert's tokens over its copies).
  int32_t route(int32_t layer, int32_t expert, int32_t from, size_t token) const;
  /// Empty when well formed; else what is wrong (an expert with no holder, a rank out of
  /// range, unsorted or duplicate holders, a layer count that is not `layers`).
  std::string check(int32_t layers, int32_t experts) const;
};

}  // namespace conclave::gpu
