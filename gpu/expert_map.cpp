// expert_map: the contiguous initial placement and the lookups every rank makes.
#include "gpu/expert_map.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <memory>

namespace conclave::gpu {

expert_map expert_map::contiguous(std::span<const bool> moe_layer, int32_t experts, int32_t ranks) {
  expert_map m;
  m.ranks = ranks;
  m.holders.resize(moe_layer.size());
  for (size_t l = 0; l < moe_layer.size(); ++l) {
    if (!moe_layer[l]) continue;
    m.holders[l].resize(static_cast<size_t>(experts));
    for (int32_t e = 0; e < experts; ++e) {
      const auto r = static_cast<int32_t>(static_cast<int64_t>(e) * ranks / experts);
      m.holders[l][static_cast<size_t>(e)] = {r};
    }
  }
  return m;
}

expert_map expert_map::contiguous(const model::model_config& c, int32_t ranks) {
  std::unique_ptr<bool[]> moe(new bool[static_cast<size_t>(c.num_layers)]);
  for (int64_t l = 0; l < c.num_layers; ++l) moe[static_cast<size_t>(l)] = c.is_moe_layer(l);
  return contiguous({moe.get(), static_cast<size_t>(c.num_layers)},
                    static_cast<int32_t>(c.num_experts), ranks);
}

bool expert_map::holds(int32_t layer, int32_t expert, int32_t rank) const {
  const auto& h = holders[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
  return std::binary_search(h.begin(), h.end(), rank);
}

std::vector<int32_t> expert_map::experts_on(int32_t layer, int32_t rank) const {
  std::vector<int32_t> out;
  const auto& layer_holders = holders[static_cast<size_t>(layer)];
  for (size_t e = 0; e < layer_holders.size(); ++e) {
    if (std::binary_search(layer_holders[e].begin(), layer_holders[e].end(), rank))
      out.push_back(static_cast<int32_t>(e));
  }
  return out;
}

int32_t expert_map::route(int32_t layer, int32_t expert, int32_t from, size_t token) const {
  const auto& h = holders[static_cast<size_t>(layer)][static_cast<size_t>(expert)];
  if (h.size() == 1) return h[0];
  return h[(static_cast<size_t>(from) + token) % h.size()];
}

std::string expert_map::check(int32_t layers, int32_t experts) const {
  if (ranks < 1) return fmt::format("expert map has {} ranks", ranks);
  if (static_cast<int32_t>(holders.size()) != layers)
    return fmt::format("expert map has {} layers, the model {}", holders.size(), layers);
  for (size_t l = 0; l < holders.size(); ++l) {
    const auto& layer_holders = holders[l];
    if (layer_holders.empty()) continue;
    if (static_cast<int32_t>(layer_holders.size()) != experts)
      return fmt::format("layer {} places {} experts, the model has {}", l, layer_holders.size(),
                         experts);
    for (size_t e = 0; e < layer_holders.size(); ++e) {
      const auto& h = layer_holders[e];
      if (h.empty()) return fmt::format("expert {} of layer {} is on no rank", e, l);
      for (size_t i = 0; i < h.size(); ++i) {
        if (h[i] < 0 || h[i] >= ranks)
          return fmt::format("expert {} of layer {} is on rank {} of {}", e, l, h[i], ranks);
        if (i > 0 && h[i] <= h[i - 1])
          return fmt::format("expert {} of layer {}: holders not ascending and distinct", e, l);
      }
    }
  }
  return {};
}

}  // namespace conclave::gpu
