// health_tracker: the verdict rule of a replica's health checks, without actors. A
// replica is declared unhealthy (and restarted) after `unhealthy_after` consecutive
// failed checks; any passing check resets the count, so a flapping replica (failing
// every other probe) is watched, not restarted.
#pragma once

#include <cstdint>

namespace conclave::serve {

class health_tracker {
 public:
  explicit health_tracker(int32_t unhealthy_after) : limit_(unhealthy_after) {}
  /// Records one check; true when this failure makes the replica unhealthy (the count
  /// then starts over, so a restart is asked for once per run of failures).
  bool record(bool ok) {
    if (ok) {
      consecutive_ = 0;
      return false;
    }
    if (++consecutive_ < limit_) return false;
    consecutive_ = 0;
    return true;
  }
  int32_t consecutive_failures() const { return consecutive_; }

 private:
  int32_t limit_;
  int32_t consecutive_ = 0;
};

}  // namespace conclave::serve
