// Admission's rank choice: free blocks first (a sequence grows into them), then the
// running count (spreads decode work when caches are equally full).
#include "engine/rank_assign.h"

#include <stdexcept>

namespace conclave::engine {

int32_t assign_rank(std::span<const rank_load> ranks) {
  if (ranks.empty()) throw std::invalid_argument("assign_rank: no ranks");
  size_t best = 0;
  for (size_t r = 1; r < ranks.size(); ++r) {
    const rank_load& a = ranks[r];
    const rank_load& b = ranks[best];
    if (a.free_blocks > b.free_blocks || (a.free_blocks == b.free_blocks && a.running < b.running))
      best = r;
  }
  return static_cast<int32_t>(best);
}

}  // namespace conclave::engine
