// Telemetry frames (see the header).
#include "serve/telemetry.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <map>

#include "serve/process_memory.h"
#include "serve/server_metrics.h"

namespace conclave::serve {
namespace {

double per_second(uint64_t now, uint64_t before, double dt) {
  return dt > 0 && now >= before ? static_cast<double>(now - before) / dt : 0.0;
}

bool down(replica_state s) {
  return s == replica_state::restarting || s == replica_state::dead;
}

/// Events for replicas whose state changed or that restarted since `previous`.
void replica_events(const telemetry_frame& now, const telemetry_frame& previous, live_stats& live) {
  std::map<std::pair<std::string, int>, const replica_snapshot*> before;
  for (const auto& r : previous.replicas) before[{r.model, r.replica.id}] = &r.replica;
  for (const auto& r : now.replicas) {
    const auto it = before.find({r.model, r.replica.id});
    const auto& cur = r.replica;
    const std::string who = fmt::format("{} replica {}", r.model, cur.id);
    if (it == before.end()) {
      live.add_event("replica", fmt::format("{}: {}", who, to_string(cur.state)), now.time);
      continue;
    }
    const auto& old = *it->second;
    if (cur.restarts > old.restarts)
      live.add_event("replica",
                     fmt::format("{} restarted{}{}", who,
                                 cur.last_error.empty() ? "" : " after: ", cur.last_error),
                     now.time);
    if (cur.state != old.state)
      live.add_event("replica",
                     fmt::format("{}: {} -> {}", who, to_string(old.state), to_string(cur.state)),
                     now.time);
  }
}

}  // namespace

telemetry_sampler::telemetry_sampler(const service& svc, std::shared_ptr<server_metrics> metrics,
                                     std::shared_ptr<nvml_reader> nvml, double window_s)
    : svc_(svc), metrics_(std::move(metrics)), nvml_(std::move(nvml)), window_s_(window_s) {}

telemetry_frame telemetry_sampler::sample(const telemetry_frame* previous) {
  telemetry_frame f;
  f.time = std::chrono::system_clock::now();
  f.steady = std::chrono::steady_clock::now();
  f.uptime_s = std::chrono::duration<double>(f.steady - start_).count();
  f.window_s = window_s_;
  f.draining = svc_.draining();
  f.models = svc_.models();
  std::vector<std::pair<std::string, replica_state>> states;
  for (auto& [model, replicas] : svc_.replicas_by_model()) {
    for (auto& r : replicas) {
      r.history.clear();
      states.emplace_back(model, r.state);
      f.running += static_cast<int64_t>(r.running);
      f.waiting += static_cast<int64_t>(r.waiting);
      if (r.state == replica_state::up || r.state == replica_state::draining) {
        f.kv_total_blocks += r.kv_blocks_total;
        f.kv_used_blocks += r.kv_blocks_total - r.kv_blocks_free;
      }
      f.replicas.push_back({model, std::move(r)});
    }
  }
  const cluster_topology topo = svc_.topology();
  f.cluster_enabled = topo.enabled;
  f.nodes = topo.nodes;
  f.node_joins = topo.joins;
  f.node_losses = topo.losses;
  f.active_requests = svc_.active_requests();
  f.queued_requests = svc_.queued_requests();
  auto& live = metrics_->live();
  f.totals = live.totals();
  if (previous != nullptr) {
    const double dt = std::chrono::duration<double>(f.steady - previous->steady).count();
    f.interval_s = dt;
    const auto& a = f.totals;
    const auto& b = previous->totals;
    f.requests_per_s = per_second(a.requests, b.requests, dt);
    f.errors_per_s = per_second(a.errors, b.errors, dt);
    f.prompt_tokens_per_s = per_second(a.prompt_tokens, b.prompt_tokens, dt);
    f.completion_tokens_per_s = per_second(a.completion_tokens, b.completion_tokens, dt);
    f.tool_calls_per_s = per_second(a.tool_calls, b.tool_calls, dt);
    f.tool_failures_per_s = per_second(a.tool_failures, b.tool_failures, dt);
    replica_events(f, *previous, live);
    if (f.node_losses > previous->node_losses)
      live.add_event("node",
                     fmt::format("{} cluster node(s) lost", f.node_losses - previous->node_losses),
                     f.time);
    if (f.node_joins > previous->node_joins)
      live.add_event("node",
                     fmt::format("{} cluster node(s) joined", f.node_joins - previous->node_joins),
                     f.time);
  }
  const auto window = std::chrono::duration<double>(window_s_);
  f.ttft = live.window(latency_kind::ttft, window);
  f.tpot = live.window(latency_kind::tpot, window);
  f.e2e = live.window(latency_kind::e2e, window);
  if (nvml_) f.gpus = nvml_->devices();
  f.resident_bytes = resident_mib() * 1024.0 * 1024.0;
  f.events = live.events(50);
  metrics_->set_replicas(states);
  if (topo.enabled) metrics_->set_cluster(topo.nodes.size(), topo.losses);
  metrics_->set_gpus(f.gpus);
  return f;
}

std::optional<double> alert_value(const config::alert_rule_config& rule,
                                  const std::vector<const telemetry_frame*>& history,
                                  const live_stats& live) {
  if (history.empty()) return std::nullopt;
  const telemetry_frame& now = *history.back();
  // The oldest frame within the rule's window (the latest itself when it is the only one).
  const telemetry_frame* from = history.back();
  for (const auto* f : history) {
    if (std::chrono::duration<double>(now.steady - f->steady).count() <= rule.window_s) {
      from = f;
      break;
    }
  }
  const auto& k = rule.rule;
  if (k == "replica_down") {
    return static_cast<double>(std::count_if(now.replicas.begin(), now.replicas.end(),
                                             [](const auto& r) { return down(r.replica.state); }));
  }
  if (k == "error_rate" || k == "tool_failure_rate") {
    const bool tools = k == "tool_failure_rate";
    const uint64_t n = tools ? now.totals.tool_calls - from->totals.tool_calls
                             : now.totals.requests - from->totals.requests;
    const uint64_t bad = tools ? now.totals.tool_failures - from->totals.tool_failures
                               : now.totals.errors - from->totals.errors;
    if (n == 0) return std::nullopt;
    return static_cast<double>(bad) / static_cast<double>(n);
  }
  if (k == "ttft_p99")
    return live.window(latency_kind::ttft, std::chrono::duration<double>(rule.window_s)).p99;
  if (k == "kv_use") {
    if (now.kv_total_blocks <= 0) return std::nullopt;
    return static_cast<double>(now.kv_used_blocks) / static_cast<double>(now.kv_total_blocks);
  }
  if (k == "gpu_memory") {
    std::optional<double> fullest;
    for (const auto& g : now.gpus)
      if (g.memory_used_bytes && g.memory_total_bytes && *g.memory_total_bytes > 0)
        fullest = std::max(fullest.value_or(0.0), static_cast<double>(*g.memory_used_bytes) /
                                                      static_cast<double>(*g.memory_total_bytes));
    return fullest;
  }
  if (k == "node_lost") {
    if (!now.cluster_enabled) return std::nullopt;
    return static_cast<double>(now.node_losses - std::min(now.node_losses, from->node_losses));
  }
  return std::nullopt;
}

}  // namespace conclave::serve
