// Least outstanding tokens, prefix affinity among equals (see the header).
#include "serve/placement.h"

#include <xxhash.h>

#include <algorithm>
#include <vector>

namespace conclave::serve {

size_t pick_engine(std::span<const int64_t> outstanding, std::span<const int32_t> prompt,
                   int64_t skip) {
  std::vector<size_t> best;
  int64_t least = INT64_MAX;
  for (size_t i = 0; i < outstanding.size(); ++i) {
    if (static_cast<int64_t>(i) == skip && outstanding.size() > 1) continue;
    if (outstanding[i] < least) {
      least = outstanding[i];
      best.clear();
    }
    if (outstanding[i] == least) best.push_back(i);
  }
  if (best.size() == 1) return best[0];
  // Affinity: the first 64 tokens (four 16-token KV blocks) choose among the equals.
  const size_t n = std::min<size_t>(prompt.size(), 64);
  const uint64_t h = XXH3_64bits(prompt.data(), n * sizeof(int32_t));
  return best[h % best.size()];
}

}  // namespace conclave::serve
