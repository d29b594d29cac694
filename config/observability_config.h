// observability_config: the dashboard feed's sampling, the log format, and alerting
// ([observability], [alerting] and [[alerts]] in the config; docs/observability.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::config {

/// One alert rule: fires when the rule's value stays above `threshold` for `for_s`.
struct alert_rule_config {
  std::string name;  ///< unique; letters, digits and _ (a Prometheus alert name)
  /// replica_down (replicas restarting or dead), error_rate (5xx share of the requests
  /// finished in window_s), ttft_p99 (seconds, over window_s), kv_use (used share of the
  /// KV cache), gpu_memory (the fullest GPU's used share), tool_failure_rate (failed
  /// share of the tool calls finished in window_s), node_lost (cluster nodes lost in
  /// window_s).
  std::string rule;
  double threshold = 0;
  double for_s = 0;  ///< how long the condition must hold before the alert fires
  double window_s = 300;
  std::string severity = "warning";  ///< "info", "warning" or "critical"
  std::string validate() const;
};

/// The rule kinds alert_rule_config::rule may name.
const std::vector<std::string>& alert_rule_kinds();
/// The rules a server runs when its config names none (docs/alerts/conclave-alerts.yml is
/// the same set for Prometheus).
std::vector<alert_rule_config> default_alert_rules();

struct observability_config {
  double sample_interval_s = 1.0;   ///< dashboard frames and alert evaluation
  double history_s = 300.0;         ///< frames a new dashboard receives at once
  double window_s = 10.0;           ///< the dashboard's latency percentile window
  bool nvml = true;                 ///< GPU readings from NVML where the driver has it
  std::string log_format = "json";  ///< "json" (one object per line) or "text"

  // [alerting]
  std::vector<std::string> webhooks;  ///< http(s)://host[:port][/path]; alerts are POSTed there
  double webhook_timeout_s = 5.0;
  int32_t webhook_max_attempts = 8;  ///< then the notification is dropped (logged)
  double webhook_backoff_s = 1.0;    ///< the first retry's delay; doubles per attempt
  double webhook_backoff_max_s = 60.0;
  bool default_rules = true;  ///< run default_alert_rules() when [[alerts]] names none

  // [[alerts]]
  std::vector<alert_rule_config> alerts;

  /// The rules in force: `alerts`, or the defaults when it is empty and default_rules.
  std::vector<alert_rule_config> rules() const;
  /// Empty when valid, else one line naming the key.
  std::string validate() const;
};

}  // namespace conclave::config
