// Token sequences first, first + 1, ... for the block-manager and scheduler tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

namespace conclave::test {

inline std::vector<int32_t> iota_tokens(size_t n, int32_t first = 1) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

}  // namespace conclave::test
