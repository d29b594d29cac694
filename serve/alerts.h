// alerts: the alert rules of [[alerts]] evaluated in-process, as Prometheus evaluates
// alerting rules: a rule whose value is above its threshold is pending, and fires once
// that has held for `for_s`; a firing alert resolves when the value drops back (or there
// is no data). Plain C++; the telemetry hub feeds it values and sends the transitions to
// the log, the event ring and the webhooks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/observability_config.h"

namespace conclave::serve {

enum class alert_state { inactive, pending, firing };
const char* to_string(alert_state s);

/// One rule and where it stands.
struct alert_status {
  config::alert_rule_config rule;
  alert_state state = alert_state::inactive;
  std::optional<double> value;                  ///< at the last evaluation; empty: no data
  std::chrono::system_clock::time_point since;  ///< pending or firing since
  std::optional<std::chrono::system_clock::time_point> last_fired, last_resolved;
  uint64_t fired = 0;   ///< times it fired
  std::string summary;  ///< what the value means, in words
};

/// An alert that fired or resolved at an evaluation.
struct alert_transition {
  alert_status status;  ///< after the change (state firing, or inactive when resolved)
  bool firing = false;
  std::chrono::system_clock::time_point starts_at, at;
};

/// "2 replica(s) restarting or dead", "error rate 7.1 % over 300 s (threshold 5 %)"...
std::string alert_summary(const config::alert_rule_config& rule, std::optional<double> value);

class alert_engine {
 public:
  using value_fn = std::function<std::optional<double>(const config::alert_rule_config&)>;

  explicit alert_engine(std::vector<config::alert_rule_config> rules);

  /// Evaluates every rule with the values `value_of` gives; returns the alerts that fired
  /// or resolved. `now` is the steady clock (for `for_s`), `wall` the time reported.
  std::vector<alert_transition> evaluate(const value_fn& value_of,
                                         std::chrono::steady_clock::time_point now,
                                         std::chrono::system_clock::time_point wall);
  std::vector<alert_status> statuses() const;
  /// The pending and firing ones.
  std::vector<alert_status> active() const;

 private:
  struct entry {
    alert_status status;
    std::chrono::steady_clock::time_point pending_since;
  };
  mutable std::mutex mutex_;
  std::vector<entry> entries_;
};

}  // namespace conclave::serve
