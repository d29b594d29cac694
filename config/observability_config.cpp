// Alert rule kinds, the default rules and validation (see the header).
#include "config/observability_config.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <set>

namespace conclave::config {

const std::vector<std::string>& alert_rule_kinds() {
  static const std::vector<std::string> kinds = {"replica_down", "error_rate", "ttft_p99",
                                                 "kv_use",       "gpu_memory", "tool_failure_rate",
                                                 "node_lost"};
  return kinds;
}

std::vector<alert_rule_config> default_alert_rules() {
  return {
      {"ConclaveReplicaDown", "replica_down", 0, 30, 300, "critical"},
      {"ConclaveHighErrorRate", "error_rate", 0.05, 120, 300, "critical"},
      {"ConclaveSlowFirstToken", "ttft_p99", 10.0, 300, 300, "warning"},
      {"ConclaveKVCacheFull", "kv_use", 0.95, 300, 300, "warning"},
      {"ConclaveGPUMemoryFull", "gpu_memory", 0.98, 300, 300, "warning"},
      {"ConclaveToolFailures", "tool_failure_rate", 0.2, 120, 300, "warning"},
      {"ConclaveNodeLost", "node_lost", 0, 0, 600, "critical"},
  };
}

std::string alert_rule_config::validate() const {
  if (name.empty() || name.size() > 128 || !std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      }))
    return fmt::format("name \"{}\" must be 1-128 letters, digits or _", name);
  const auto& kinds = alert_rule_kinds();
  if (std::find(kinds.begin(), kinds.end(), rule) == kinds.end()) {
    std::string list;
    for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
    return fmt::format("rule \"{}\" of alert {} must be one of {}", rule, name, list);
  }
  if (!(threshold >= 0)) return fmt::format("threshold of alert {} must be >= 0", name);
  if (!(for_s >= 0)) return fmt::format("for_s of alert {} must be >= 0", name);
  if (!(window_s > 0)) return fmt::format("window_s of alert {} must be > 0", name);
  if (severity != "info" && severity != "warning" && severity != "critical")
    return fmt::format("severity of alert {} must be info, warning or critical", name);
  return {};
}

std::vector<alert_rule_config> observability_config::rules() const {
  if (!alerts.empty() || !default_rules) return alerts;
  return default_alert_rules();
}

std::string observability_config::validate() const {
  if (!(sample_interval_s >= 0.05 && sample_interval_s <= 60))
    return "observability.sample_interval_s must be in [0.05, 60]";
  if (!(history_s >= 0 && history_s <= 86400))
    return "observability.history_s must be in [0, 86400]";
  if (!(window_s > 0)) return "observability.window_s must be > 0";
  if (log_format != "json" && log_format != "text")
    return "observability.log_format must be \"json\" or \"text\"";
  for (const auto& w : webhooks)
    if (w.rfind("http://", 0) != 0 && w.rfind("https://", 0) != 0)
      return fmt::format("alerting.webhooks: \"{}\" must be an http:// or https:// URL", w);
  if (!(webhook_timeout_s > 0)) return "alerting.webhook_timeout_s must be > 0";
  if (webhook_max_attempts < 1) return "alerting.webhook_max_attempts must be at least 1";
  if (!(webhook_backoff_s > 0) || !(webhook_backoff_max_s >= webhook_backoff_s))
    return "alerting.webhook_backoff_s must be > 0 and <= webhook_backoff_max_s";
  std::set<std::string> names;
  for (size_t i = 0; i < alerts.size(); ++i) {
    if (auto e = alerts[i].validate(); !e.empty()) return fmt::format("alerts[{}]: {}", i, e);
    if (!names.insert(alerts[i].name).second)
      return fmt::format("alerts[{}]: the name {} is used twice", i, alerts[i].name);
  }
  return {};
}

}  // namespace conclave::config
