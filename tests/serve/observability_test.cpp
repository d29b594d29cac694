// The dashboard's and the alerts' plain parts: sliding-window latencies, totals and
// events (serve/live_stats.h), alert rule states (serve/alerts.h) and rule values from a
// frame history (serve/telemetry.h).
#include <catch2/catch.hpp>

#include "serve/alerts.h"
#include "serve/live_stats.h"
#include "serve/telemetry.h"

using namespace conclave;
using namespace conclave::serve;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("live stats: percentiles over a sliding window, nearest rank", "[observability]") {
  live_stats live(seconds(60));
  const auto t0 = live_stats::clock_type::now();
  for (int i = 1; i <= 100; ++i) live.observe(latency_kind::ttft, i / 1000.0, t0);
  auto q = live.window(latency_kind::ttft, seconds(10), t0 + seconds(1));
  REQUIRE(q.count == 100);
  CHECK(*q.p50 == Approx(0.050));
  CHECK(*q.p90 == Approx(0.090));
  CHECK(*q.p99 == Approx(0.099));
  // Newer observations only, once the old ones left the window.
  live.observe(latency_kind::ttft, 5.0, t0 + seconds(20));
  q = live.window(latency_kind::ttft, seconds(10), t0 + seconds(21));
  REQUIRE(q.count == 1);
  CHECK(*q.p99 == 5.0);
  // Other kinds are kept apart; no observations: no percentiles.
  const auto none = live.window(latency_kind::tpot, seconds(10), t0 + seconds(21));
  CHECK(none.count == 0);
  CHECK_FALSE(none.p50.has_value());
  // Bad values are ignored.
  live.observe(latency_kind::e2e, -1.0, t0);
  live.observe(latency_kind::e2e, std::nan(""), t0);
  CHECK(live.window(latency_kind::e2e, seconds(10), t0).count == 0);
}

TEST_CASE(
    "live stats: memory stays bounded (samples older than keep, a sample cap, an event "
    "ring)",
    "[observability]") {
  live_stats live(seconds(5), 10, 3);
  const auto t0 = live_stats::clock_type::now();
  for (int i = 0; i < 50; ++i) live.observe(latency_kind::tpot, 0.01 * i, t0);
  CHECK(live.window(latency_kind::tpot, seconds(60), t0).count == 10);
  live.observe(latency_kind::tpot, 1.0, t0 + seconds(10));  // the rest are older than keep
  CHECK(live.window(latency_kind::tpot, seconds(60), t0 + seconds(10)).count == 1);
  for (int i = 0; i < 5; ++i) live.add_event("replica", "e" + std::to_string(i));
  const auto ev = live.events(10);
  REQUIRE(ev.size() == 3);
  CHECK(ev.front().text == "e2");
  CHECK(ev.back().text == "e4");
  CHECK(live.events(1).front().text == "e4");
}

TEST_CASE("live stats: totals count requests, 5xx errors, tokens and tool calls",
          "[observability]") {
  live_stats live;
  live.count_request(200);
  live.count_request(400);
  live.count_request(503);
  live.count_tokens(10, 5);
  live.count_tokens(-3, 2);  // never negative
  live.count_tool_call(false);
  live.count_tool_call(true);
  const auto t = live.totals();
  CHECK(t.requests == 3);
  CHECK(t.errors == 1);
  CHECK(t.prompt_tokens == 10);
  CHECK(t.completion_tokens == 7);
  CHECK(t.tool_calls == 2);
  CHECK(t.tool_failures == 1);
}

namespace {

config::alert_rule_config rule(std::string kind, double threshold, double for_s,
                               double window_s = 60) {
  return {"A_" + kind, std::move(kind), threshold, for_s, window_s, "critical"};
}

}  // namespace

TEST_CASE("alert rules: pending, firing after for_s, resolved when the value drops",
          "[observability]") {
  alert_engine engine({rule("kv_use", 0.9, 10)});
  std::optional<double> value = 0.5;
  const auto fn = [&](const config::alert_rule_config&) { return value; };
  const auto t0 = std::chrono::steady_clock::now();
  const auto w0 = std::chrono::system_clock::now();
  CHECK(engine.evaluate(fn, t0, w0).empty());
  CHECK(engine.statuses()[0].state == alert_state::inactive);
  value = 0.95;
  CHECK(engine.evaluate(fn, t0 + seconds(1), w0 + seconds(1)).empty());
  CHECK(engine.statuses()[0].state == alert_state::pending);
  CHECK(engine.active().size() == 1);
  CHECK(engine.evaluate(fn, t0 + seconds(10), w0 + seconds(10)).empty());  // 9 s < for_s
  auto fired = engine.evaluate(fn, t0 + seconds(11), w0 + seconds(11));
  REQUIRE(fired.size() == 1);
  CHECK(fired[0].firing);
  CHECK(fired[0].starts_at == w0 + seconds(1));
  CHECK(fired[0].status.summary == "KV cache 95.0 % used (threshold 90 %)");
  CHECK(engine.statuses()[0].fired == 1);
  // Still breached: no new transition.
  CHECK(engine.evaluate(fn, t0 + seconds(12), w0 + seconds(12)).empty());
  value = std::nullopt;  // no data resolves it
  auto resolved = engine.evaluate(fn, t0 + seconds(13), w0 + seconds(13));
  REQUIRE(resolved.size() == 1);
  CHECK_FALSE(resolved[0].firing);
  CHECK(engine.statuses()[0].state == alert_state::inactive);
  CHECK(engine.statuses()[0].last_resolved == w0 + seconds(13));
  CHECK(engine.active().empty());
  // A breach that ends while pending never fires.
  value = 1.0;
  engine.evaluate(fn, t0 + seconds(20), w0 + seconds(20));
  value = 0.1;
  CHECK(engine.evaluate(fn, t0 + seconds(25), w0 + seconds(25)).empty());
  CHECK(engine.statuses()[0].fired == 1);
}

TEST_CASE("alert rules: for_s 0 fires at the first breach, equal to the threshold is no breach",
          "[observability]") {
  alert_engine engine({rule("replica_down", 0, 0), rule("error_rate", 0.05, 0)});
  const auto now = std::chrono::steady_clock::now();
  const auto wall = std::chrono::system_clock::now();
  auto t = engine.evaluate(
      [](const config::alert_rule_config& r) -> std::optional<double> {
        return r.rule == "replica_down" ? 1.0 : 0.05;
      },
      now, wall);
  REQUIRE(t.size() == 1);
  CHECK(t[0].status.rule.rule == "replica_down");
  CHECK(t[0].status.summary == "1 replica(s) restarting or dead (threshold 0)");
}

namespace {

telemetry_frame frame(double at_s, uint64_t requests, uint64_t errors) {
  static const auto base = std::chrono::steady_clock::now();
  telemetry_frame f;
  f.steady = base + milliseconds(static_cast<int64_t>(at_s * 1000));
  f.totals.requests = requests;
  f.totals.errors = errors;
  return f;
}

}  // namespace

TEST_CASE("alert values: rates over the rule's window, counts and fractions of the latest frame",
          "[observability]") {
  live_stats live;
  std::vector<telemetry_frame> frames = {frame(0, 0, 0), frame(30, 100, 0), frame(60, 200, 10),
                                         frame(90, 300, 30)};
  std::vector<const telemetry_frame*> h;
  for (const auto& f : frames) h.push_back(&f);
  // Window 60 s: from the frame at 30 s to the one at 90 s: 30 errors of 200 requests.
  CHECK(*alert_value(rule("error_rate", 0.05, 0, 60), h, live) == Approx(0.15));
  // Window 10 s: only the latest frame is inside: no requests in the window, no data.
  CHECK_FALSE(alert_value(rule("error_rate", 0.05, 0, 10), h, live).has_value());
  CHECK_FALSE(alert_value(rule("tool_failure_rate", 0.2, 0, 60), h, live).has_value());

  auto& last = frames.back();
  last.replicas.push_back({"m", {}});
  last.replicas.back().replica.state = replica_state::restarting;
  last.replicas.push_back({"m", {}});
  last.replicas.back().replica.state = replica_state::up;
  last.replicas.push_back({"m", {}});
  last.replicas.back().replica.state = replica_state::dead;
  last.replicas.push_back({"m", {}});
  last.replicas.back().replica.state = replica_state::drained;  // removed on purpose: not down
  CHECK(*alert_value(rule("replica_down", 0, 0), h, live) == 2);
  CHECK_FALSE(alert_value(rule("kv_use", 0.9, 0), h, live).has_value());
  last.kv_total_blocks = 200;
  last.kv_used_blocks = 150;
  CHECK(*alert_value(rule("kv_use", 0.9, 0), h, live) == Approx(0.75));
  CHECK_FALSE(alert_value(rule("gpu_memory", 0.9, 0), h, live).has_value());
  gpu_reading a, b;
  a.memory_used_bytes = 10;
  a.memory_total_bytes = 100;
  b.memory_used_bytes = 90;
  b.memory_total_bytes = 100;
  last.gpus = {a, b};
  CHECK(*alert_value(rule("gpu_memory", 0.9, 0), h, live) == Approx(0.9));
  // node_lost: losses within the window; no data without a cluster.
  CHECK_FALSE(alert_value(rule("node_lost", 0, 0, 60), h, live).has_value());
  for (auto& f : frames) f.cluster_enabled = true;
  frames[1].node_losses = 1;
  frames[2].node_losses = 1;
  last.node_losses = 3;
  CHECK(*alert_value(rule("node_lost", 0, 0, 60), h, live) == 2);
  // ttft_p99 from the live stats' window.
  CHECK_FALSE(alert_value(rule("ttft_p99", 1, 0, 60), h, live).has_value());
  live.observe(latency_kind::ttft, 2.5);
  CHECK(*alert_value(rule("ttft_p99", 1, 0, 60), h, live) == 2.5);
}
