// rank_assign: which rank of a replica a sequence is admitted to when attention is
// data-parallel (each rank holds the KV cache of its own sequences). Plain rule, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace conclave::engine {

/// What admission looks at on one rank.
struct rank_load {
  int32_t free_blocks = 0;  ///< free KV blocks of the rank's cache
  size_t running = 0;       ///< sequences running there
};

/// The rank with the most free KV blocks, then the fewest running sequences, then the
/// lowest id. Throws std::invalid_argument for no ranks.
int32_t assign_rank(std::span<const rank_load> ranks);

}  // namespace conclave::engine
