// Alert rule evaluation (see the header).
#include "serve/alerts.h"

#include <spdlog/fmt/fmt.h>

namespace conclave::serve {

const char* to_string(alert_state s) {
  switch (s) {
    case alert_state::inactive:
      return "inactive";
    case alert_state::pending:
      return "pending";
    case alert_state::firing:
      return "firing";
  }
  return "inactive";
}

std::string alert_summary(const config::alert_rule_config& r, std::optional<double> value) {
  if (!value) return fmt::format("{}: no data", r.rule);
  const double v = *value;
  const auto& k = r.rule;
  if (k == "replica_down")
    return fmt::format("{:.0f} replica(s) restarting or dead (threshold {:g})", v, r.threshold);
  if (k == "error_rate")
    return fmt::format("{:.1f} % of requests failed with 5xx over {:g} s (threshold {:g} %)",
                       v * 100, r.window_s, r.threshold * 100);
  if (k == "ttft_p99")
    return fmt::format("p99 time to first token {:.3f} s over {:g} s (threshold {:g} s)", v,
                       r.window_s, r.threshold);
  if (k == "kv_use")
    return fmt::format("KV cache {:.1f} % used (threshold {:g} %)", v * 100, r.threshold * 100);
  if (k == "gpu_memory")
    return fmt::format("GPU memory {:.1f} % used on the fullest device (threshold {:g} %)", v * 100,
                       r.threshold * 100);
  if (k == "tool_failure_rate")
    return fmt::format("{:.1f} % of tool calls failed over {:g} s (threshold {:g} %)", v * 100,
                       r.window_s, r.threshold * 100);
  if (k == "node_lost")
    return fmt::format("{:.0f} cluster node(s) lost in the last {:g} s (threshold {:g})", v,
                       r.window_s, r.threshold);
  return fmt::format("{} = {:g} (threshold {:g})", k, v, r.threshold);
}

alert_engine::alert_engine(std::vector<config::alert_rule_config> rules) {
  for (auto& r : rules) {
    entry e;
    e.status.rule = std::move(r);
    entries_.push_back(std::move(e));
  }
}

std::vector<alert_transition> alert_engine::evaluate(const value_fn& value_of,
                                                     std::chrono::steady_clock::time_point now,
                                                     std::chrono::system_clock::time_point wall) {
  std::vector<alert_transition> out;
  std::lock_guard lock(mutex_);
  for (auto& e : entries_) {
    auto& s = e.status;
    s.value = value_of(s.rule);
    s.summary = alert_summary(s.rule, s.value);
    const bool breached = s.value && *s.value > s.rule.threshold;
    if (!breached) {
      if (s.state == alert_state::firing) {
        s.state = alert_state::inactive;
        s.last_resolved = wall;
        out.push_back({s, false, s.since, wall});
      }
      s.state = alert_state::inactive;
      continue;
    }
    if (s.state == alert_state::inactive) {
      s.state = alert_state::pending;
      s.since = wall;
      e.pending_since = now;
    }
    if (s.state == alert_state::pending &&
        std::chrono::duration<double>(now - e.pending_since).count() >= s.rule.for_s) {
      s.state = alert_state::firing;
      s.last_fired = wall;
      ++s.fired;
      out.push_back({s, true, s.since, wall});
    }
  }
  return out;
}

std::vector<alert_status> alert_engine::statuses() const {
  std::lock_guard lock(mutex_);
  std::vector<alert_status> out;
  for (const auto& e : entries_) out.push_back(e.status);
  return out;
}

std::vector<alert_status> alert_engine::active() const {
  std::lock_guard lock(mutex_);
  std::vector<alert_status> out;
  for (const auto& e : entries_)
    if (e.status.state != alert_state::inactive) out.push_back(e.status);
  return out;
}

}  // namespace conclave::serve
