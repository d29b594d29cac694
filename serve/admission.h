// admission: whether a new request is let in, and the counters that decide it. Plain
// C++: the service applies the rule before it starts a request's session.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>

#include "serve/client_api.h"

namespace conclave::serve {

/// Counters the service keeps across requests (for 429 and draining).
struct session_counters {
  std::atomic<int64_t> active{0};     ///< sessions alive
  std::atomic<int64_t> queued{0};     ///< submitted, no token yet
  std::atomic<bool> stopping{false};  ///< the service shuts down: no failover

  /// A request starts: active, and queued until its first token.
  void enter() {
    ++active;
    ++queued;
  }
  /// A request ended; `counted`: whether it is still in the queue.
  void leave(std::atomic<bool>& counted) {
    --active;
    leave_queue(counted);
  }
  /// A request counted in `queued` (its `counted` flag set) leaves the queue: once.
  void leave_queue(std::atomic<bool>& counted) {
    if (counted.exchange(false)) --queued;
  }
};

/// The rule: nothing when the request is admitted, else the error it gets. Draining
/// comes first (503), then a model not yet loaded (503), then a full queue (429).
std::optional<client_event> admission_error(bool draining, bool accepting, int64_t queued,
                                            int64_t max_waiting);

}  // namespace conclave::serve
