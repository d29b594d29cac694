// telemetry: one frame of what a running server is doing (the dashboard's feed, `conclave
// top`, the alert rules' inputs), and the sampler that makes a frame from the service,
// the metrics' live stats and NVML. Plain C++; net/ writes frames as JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "serve/alerts.h"
#include "serve/cluster_topology.h"
#include "serve/live_stats.h"
#include "serve/nvml.h"
#include "serve/replica_status.h"
#include "serve/service.h"

namespace conclave::serve {

class server_metrics;

struct telemetry_replica {
  std::string model;
  replica_snapshot replica;  ///< without its health history
};

struct telemetry_frame {
  std::chrono::system_clock::time_point time;
  std::chrono::steady_clock::time_point steady;
  double uptime_s = 0, interval_s = 0, window_s = 0;
  bool draining = false;
  std::vector<model_status> models;
  std::vector<telemetry_replica> replicas;
  bool cluster_enabled = false;
  std::vector<cluster_node_info> nodes;
  uint64_t node_joins = 0, node_losses = 0;
  int64_t active_requests = 0, queued_requests = 0;
  live_totals totals;
  /// Rates over the interval since the previous frame (0 on the first).
  double requests_per_s = 0, errors_per_s = 0, prompt_tokens_per_s = 0, completion_tokens_per_s = 0,
         tool_calls_per_s = 0, tool_failures_per_s = 0;
  latency_quantiles ttft, tpot, e2e;  ///< over the last window_s
  int64_t running = 0, waiting = 0;   ///< sequences in the engines
  int64_t kv_used_blocks = 0, kv_total_blocks = 0;
  std::vector<gpu_reading> gpus;
  double resident_bytes = 0;
  std::vector<live_event> events;    ///< the newest 50
  std::vector<alert_status> alerts;  ///< pending and firing
};

class telemetry_sampler {
 public:
  /// `nvml` may be null (no GPU readings). `window_s` is the latency window.
  telemetry_sampler(const service& svc, std::shared_ptr<server_metrics> metrics,
                    std::shared_ptr<nvml_reader> nvml, double window_s);

  /// A frame now; rates against `previous` when given. Replica state changes and
  /// restarts since `previous` are added to the live stats' events first. Also sets the
  /// metrics' replica, cluster and GPU gauges.
  telemetry_frame sample(const telemetry_frame* previous);

 private:
  const service& svc_;
  std::shared_ptr<server_metrics> metrics_;
  std::shared_ptr<nvml_reader> nvml_;
  double window_s_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// An alert rule's value from the latest frame and the history (oldest first; the last is
/// the latest): the rates over the rule's window_s use the oldest frame inside it.
/// Empty when there is no data (no requests or tool calls in the window, no KV cache, no
/// GPU readings). ttft_p99 comes from `live`.
std::optional<double> alert_value(const config::alert_rule_config& rule,
                                  const std::vector<const telemetry_frame*>& history,
                                  const live_stats& live);

}  // namespace conclave::serve
