// The benchmarks' clock and its conversions to seconds.
#pragma once

#include <chrono>

namespace conclave::bench {

using clock_type = std::chrono::steady_clock;

inline double seconds(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

inline double seconds_since(clock_type::time_point t0) {
  return seconds(clock_type::now() - t0);
}

}  // namespace conclave::bench
