#include "engine/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace conclave::engine {

token_logprobs compute_logprobs(std::span<const float> logits, int32_t chosen, int32_t top_n) {
  if (chosen < 0 || static_cast<size_t>(chosen) >= logits.size())
    throw std::invalid_argument("compute_logprobs: chosen token outside the logits");
  // log-sum-exp in double around the maximum: exact enough for 150k-entry rows.
  float max = -std::numeric_limits<float>::infinity();
  for (float v : logits) max = std::max(max, v);
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - static_cast<double>(max));
  const double lse = static_cast<double>(max) + std::log(sum);
  const auto lp = [&](size_t i) {
    return static_cast<float>(static_cast<double>(logits[i]) - lse);
  };

  token_logprobs r;
  r.logprob = lp(static_cast<size_t>(chosen));
  const size_t n = std::min(logits.size(), static_cast<size_t>(std::max(top_n, 0)));
  if (n == 0) return r;
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
                    [&](int32_t a, int32_t b) {
                      const float x = logits[static_cast<size_t>(a)];
                      const float y = logits[static_cast<size_t>(b)];
                      return x > y || (x == y && a < b);
                    });
  r.top.reserve(n);
  for (size_t i = 0; i < n; ++i) r.top.emplace_back(ids[i], lp(static_cast<size_t>(ids[i])));
  return r;
}

}  // namespace conclave::engine
