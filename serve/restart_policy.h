// restart_policy: how long a replica's supervisor waits before bringing a failed replica
// up again (exponential backoff), as a plain rule.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

namespace conclave::serve {

/// Delay before restart number `attempt` (0-based): `base_s` doubling to at most `max_s`
/// (by default 0.5 s doubling to at most 30 s).
inline std::chrono::milliseconds restart_backoff(int attempt, double base_s = 0.5,
                                                 double max_s = 30.0) {
  const double s = std::min(max_s, base_s * std::ldexp(1.0, std::clamp(attempt, 0, 30)));
  return std::chrono::milliseconds(std::llround(s * 1000.0));
}

}  // namespace conclave::serve
