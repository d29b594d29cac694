// Running one tool call: check the arguments against the schema, then attempt it up to
// `max_attempts` times, waiting base × 2^attempt (jittered) between attempts that failed
// in a retryable way (timeout, crash, 5xx). Invalid arguments and definite errors are
// never retried; both become a tool error message for the model, never an exception.
// Sleeping and randomness are injected so the schedule is testable without timing.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "toolkit/tool.h"

namespace conclave::toolkit {

struct retry_policy {
  int max_attempts = 5;
  std::chrono::milliseconds base{200};
  double jitter = 0.25;  ///< each delay is scaled by a factor in [1 - jitter, 1 + jitter]

  /// The wait after failed attempt `attempt` (0-based), for a uniform draw `u` in [0, 1).
  std::chrono::milliseconds delay(int attempt, double u) const;
  /// Empty when valid, else one line naming the field.
  std::string validate() const;
};

/// Waits `d` unless cancelled first; returns false when cancelled.
using sleeper = std::function<bool(std::chrono::milliseconds d, const cancel_flag& cancel)>;
/// A sleeper on the real clock that wakes early (in steps of 10 ms) when cancelled.
sleeper real_sleeper();

struct invocation {
  tool_result result;  ///< the last attempt's result (errors prefixed for the model)
  int attempts = 0;    ///< attempts run (0: the arguments were refused)
  int retries = 0;
  std::vector<std::chrono::milliseconds> delays;  ///< the waits between attempts
  std::chrono::duration<double> elapsed{};
};

/// Runs `t` on `arguments` (the JSON text the model produced). `random` gives uniform
/// draws in [0, 1) for the jitter.
invocation invoke(tool& t, const std::string& arguments, const retry_policy& policy,
                  const sleeper& sleep, const std::function<double()>& random,
                  const std::shared_ptr<const cancel_flag>& cancel);

}  // namespace conclave::toolkit
