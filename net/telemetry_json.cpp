// Telemetry as JSON (see the header).
#include "net/telemetry_json.h"

#include "net/json_log.h"

#include <boost/json.hpp>
#include <chrono>
#include <ctime>

#include <spdlog/fmt/fmt.h>

namespace conclave::net {
namespace json = boost::json;
namespace {

int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  return utc_timestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

template <class T>
json::value opt(const std::optional<T>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

json::object quantiles(const serve::latency_quantiles& q) {
  return {{"p50", opt(q.p50)}, {"p90", opt(q.p90)}, {"p99", opt(q.p99)}, {"count", q.count}};
}

json::object alert_object(const serve::alert_status& s) {
  json::object o{{"name", s.rule.name},         {"rule", s.rule.rule},
                 {"severity", s.rule.severity}, {"state", serve::to_string(s.state)},
                 {"value", opt(s.value)},       {"threshold", s.rule.threshold},
                 {"for_s", s.rule.for_s},       {"window_s", s.rule.window_s},
                 {"summary", s.summary},        {"fired", s.fired}};
  o["since_ms"] = s.state == serve::alert_state::inactive ? json::value(nullptr)
                                                          : json::value(unix_ms(s.since));
  o["last_fired_ms"] = s.last_fired ? json::value(unix_ms(*s.last_fired)) : json::value(nullptr);
  o["last_resolved_ms"] =
      s.last_resolved ? json::value(unix_ms(*s.last_resolved)) : json::value(nullptr);
  return o;
}

json::object frame_object(const serve::telemetry_frame& f) {
  json::array models, replicas, nodes, gpus, events, alerts;
  for (const auto& m : f.models)
    models.push_back(json::object{{"name", m.name}, {"state", m.state}});
  for (const auto& tr : f.replicas) {
    const auto& r = tr.replica;
    replicas.push_back(json::object{{"model", tr.model},
                                    {"id", r.id},
                                    {"state", serve::to_string(r.state)},
                                    {"healthy", r.healthy},
                                    {"backend", r.backend},
                                    {"running", r.running},
                                    {"waiting", r.waiting},
                                    {"kv_used", r.kv_blocks_total - r.kv_blocks_free},
                                    {"kv_total", r.kv_blocks_total},
                                    {"restarts", r.restarts},
                                    {"last_error", r.last_error}});
  }
  for (const auto& n : f.nodes) {
    json::array g;
    for (const auto& name : n.gpus) g.push_back(json::string(name));
    int64_t used = 0;
    for (int32_t s : n.slot_replica) used += s >= 0;
    nodes.push_back(json::object{{"id", n.id},
                                 {"host", n.host},
                                 {"ranks", n.slot_replica.size()},
                                 {"gpus", std::move(g)},
                                 {"slots_used", used}});
  }
  for (const auto& g : f.gpus) {
    gpus.push_back(json::object{{"index", g.index},
                                {"name", g.name},
                                {"utilization", opt(g.utilization)},
                                {"memory_used_bytes", opt(g.memory_used_bytes)},
                                {"memory_total_bytes", opt(g.memory_total_bytes)},
                                {"temperature_c", opt(g.temperature_c)},
                                {"power_w", opt(g.power_w)},
                                {"ecc_corrected", opt(g.ecc_corrected)},
                                {"ecc_uncorrected", opt(g.ecc_uncorrected)}});
  }
  for (const auto& e : f.events)
    events.push_back(
        json::object{{"time_ms", unix_ms(e.time)}, {"kind", e.kind}, {"text", e.text}});
  for (const auto& a : f.alerts) alerts.push_back(alert_object(a));
  const auto& t = f.totals;
  const double kv_fraction = f.kv_total_blocks > 0 ? static_cast<double>(f.kv_used_blocks) /
                                                         static_cast<double>(f.kv_total_blocks)
                                                   : 0.0;
  return {
      {"time_ms", unix_ms(f.time)},
      {"uptime_s", f.uptime_s},
      {"interval_s", f.interval_s},
      {"window_s", f.window_s},
      {"server", json::object{{"version", CONCLAVE_VERSION}, {"draining", f.draining}}},
      {"models", std::move(models)},
      {"replicas", std::move(replicas)},
      {"cluster", json::object{{"enabled", f.cluster_enabled},
                               {"nodes", std::move(nodes)},
                               {"joins", f.node_joins},
                               {"losses", f.node_losses}}},
      {"requests", json::object{{"active", f.active_requests},
                                {"queued", f.queued_requests},
                                {"per_s", f.requests_per_s},
                                {"errors_per_s", f.errors_per_s},
                                {"total", t.requests},
                                {"errors_total", t.errors}}},
      {"tokens", json::object{{"completion_per_s", f.completion_tokens_per_s},
                              {"prompt_per_s", f.prompt_tokens_per_s},
                              {"completion_total", t.completion_tokens},
                              {"prompt_total", t.prompt_tokens}}},
      {"latency",
       json::object{
           {"ttft", quantiles(f.ttft)}, {"tpot", quantiles(f.tpot)}, {"e2e", quantiles(f.e2e)}}},
      {"queue", json::object{{"running", f.running}, {"waiting", f.waiting}}},
      {"kv", json::object{{"used_blocks", f.kv_used_blocks},
                          {"total_blocks", f.kv_total_blocks},
                          {"fraction", kv_fraction}}},
      {"gpus", std::move(gpus)},
      {"process", json::object{{"resident_bytes", f.resident_bytes}}},
      {"tools", json::object{{"calls_per_s", f.tool_calls_per_s},
                             {"failures_per_s", f.tool_failures_per_s},
                             {"calls_total", t.tool_calls},
                             {"failures_total", t.tool_failures}}},
      {"events", std::move(events)},
      {"alerts", std::move(alerts)},
  };
}

}  // namespace

std::string frame_json(const serve::telemetry_frame& f) {
  return json::serialize(frame_object(f));
}

std::string history_json(const std::vector<std::shared_ptr<const serve::telemetry_frame>>& frames) {
  json::array a;
  for (const auto& f : frames) a.push_back(frame_object(*f));
  return json::serialize(json::object{{"frames", std::move(a)}});
}

std::string alerts_json(const std::vector<serve::alert_status>& rules,
                        const std::vector<webhook_stats>& webhooks) {
  json::array active, all, hooks;
  for (const auto& r : rules) {
    if (r.state != serve::alert_state::inactive) active.push_back(alert_object(r));
    all.push_back(alert_object(r));
  }
  for (const auto& w : webhooks)
    hooks.push_back(json::object{{"url", w.url},
                                 {"sent", w.sent},
                                 {"failed_attempts", w.failed_attempts},
                                 {"dropped", w.dropped},
                                 {"queued", w.queued},
                                 {"last_error", w.last_error}});
  return json::serialize(json::object{
      {"alerts", std::move(active)}, {"rules", std::move(all)}, {"webhooks", std::move(hooks)}});
}

std::string alert_webhook_json(const serve::alert_transition& t, const std::string& external_url) {
  const auto& s = t.status;
  const char* status = t.firing ? "firing" : "resolved";
  json::object labels{{"alertname", s.rule.name},
                      {"severity", s.rule.severity},
                      {"rule", s.rule.rule},
                      {"service", "conclave"}};
  json::object annotations{{"summary", s.summary},
                           {"value", s.value ? fmt::format("{}", *s.value) : "null"},
                           {"threshold", fmt::format("{}", s.rule.threshold)}};
  json::object alert{{"status", status},
                     {"labels", labels},
                     {"annotations", annotations},
                     {"startsAt", rfc3339(t.starts_at)},
                     {"endsAt", t.firing ? "0001-01-01T00:00:00Z" : rfc3339(t.at)},
                     {"generatorURL", external_url},
                     {"fingerprint", s.rule.name}};
  return json::serialize(json::object{{"version", "4"},
                                      {"groupKey", "conclave:" + s.rule.name},
                                      {"truncatedAlerts", 0},
                                      {"status", status},
                                      {"receiver", "conclave"},
                                      {"groupLabels", json::object{{"alertname", s.rule.name}}},
                                      {"commonLabels", labels},
                                      {"commonAnnotations", annotations},
                                      {"externalURL", external_url},
                                      {"alerts", json::array{std::move(alert)}}});
}

std::string alert_log_json(const serve::alert_transition& t) {
  const auto& s = t.status;
  return json::serialize(json::object{{"event", "alert"},
                                      {"alert", s.rule.name},
                                      {"rule", s.rule.rule},
                                      {"severity", s.rule.severity},
                                      {"state", t.firing ? "firing" : "resolved"},
                                      {"value", opt(s.value)},
                                      {"threshold", s.rule.threshold},
                                      {"summary", s.summary}});
}

}  // namespace conclave::net
