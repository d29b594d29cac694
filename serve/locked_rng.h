// A 64-bit random draw that threads share (the service's fault-injection draws and its
// prefill group ids), seeded from std::random_device.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>

namespace conclave::serve {

class locked_rng {
 public:
  uint64_t next() {
    std::lock_guard lock(mutex_);
    return rng_();
  }
  /// A draw that is never 0 (0 means "none" where ids are drawn).
  uint64_t next_nonzero() {
    for (;;)
      if (const uint64_t v = next(); v != 0) return v;
  }

 private:
  std::mutex mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace conclave::serve
