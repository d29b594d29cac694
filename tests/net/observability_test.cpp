// Observability on a real server (docs/observability.md): the embedded dashboard and its
// SSE feed, GET /admin/telemetry and /admin/alerts, the replica gauges in /metrics, and
// alert rules that fire and resolve under an injected fault, with webhook delivery
// (Alertmanager's format) retried with backoff.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "net/json_log.h"
#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

template <class F>
bool wait_for(F&& ready, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

json::object get_object(uint16_t port, const std::string& target) {
  http_client c(port);
  const auto r = c.call(http::verb::get, target);
  REQUIRE(r.status == 200);
  return json::parse(r.body).as_object();
}

/// The rule named `name` in GET /admin/alerts.
json::object rule_of(uint16_t port, const std::string& name) {
  const auto alerts = get_object(port, "/admin/alerts");
  for (const auto& r : alerts.at("rules").as_array())
    if (r.at("name").as_string() == name) return r.as_object();
  FAIL("no rule " << name);
  return {};
}

std::string completion() {
  return R"({"model":"tiny","prompt":"Hello there","max_tokens":4,"temperature":0})";
}

}  // namespace

TEST_CASE("the dashboard page and its assets are served from the binary", "[server][dashboard]") {
  test_server s([](config::server_config& c) { c.api_keys = {"secret-key-1"}; });
  http_client c(s.port());
  for (const char* path : {"/dashboard", "/dashboard/"}) {
    const auto page = c.call(http::verb::get, path);
    CHECK(page.status == 200);  // no key needed: the page holds no data
    CHECK(page.headers.at("Content-Type").rfind("text/html", 0) == 0);
    CHECK(page.body.find("/dashboard/assets/dashboard.js") != std::string::npos);
  }
  for (const char* asset :
       {"dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css"}) {
    const auto r = c.call(http::verb::get, std::string("/dashboard/assets/") + asset);
    CHECK(r.status == 200);
    CHECK(r.body.size() > 100);
  }
  CHECK(c.call(http::verb::get, "/dashboard/assets/nothing.js").status == 404);
  CHECK(c.call(http::verb::get, "/dashboard/assets/../index.html").status == 404);
  CHECK(c.call(http::verb::post, "/dashboard").status == 405);
  // The data behind it needs the key.
  CHECK(c.call(http::verb::get, "/admin/telemetry").status == 401);
  CHECK(c.call(http::verb::get, "/admin/alerts").status == 401);
  CHECK(c.call(http::verb::get, "/dashboard/feed").status == 401);
  // The latest frame (at most an interval old): wait for one taken after the start.
  json::object frame;
  REQUIRE(wait_for(
      [&] {
        const auto t = c.call(http::verb::get, "/admin/telemetry", {},
                              {{"Authorization", "Bearer secret-key-1"}});
        REQUIRE(t.status == 200);
        frame = json::parse(t.body).as_object();
        return frame.at("replicas").at(0).at("state") == "up";
      },
      std::chrono::seconds(10)));
  REQUIRE(frame.at("replicas").as_array().size() == 1);
  CHECK(frame.at("replicas").at(0).at("model") == "tiny");
  CHECK(frame.at("replicas").at(0).at("state") == "up");
  for (const char* key : {"time_ms", "requests", "tokens", "latency", "queue", "kv", "gpus",
                          "process", "tools", "events", "alerts", "cluster", "models"})
    CHECK(frame.contains(key));
}

TEST_CASE("the dashboard feed streams its history, then a frame per interval",
          "[server][dashboard]") {
  test_server s([](config::server_config& c) { c.observability.sample_interval_s = 0.1; });
  REQUIRE(post_json(s.port(), "/v1/completions", completion()).status == 200);
  http_client c(s.port());
  REQUIRE(c.send_and_read_header("/dashboard/feed", "", http::verb::get) == 200);
  std::string body;
  REQUIRE(wait_for(
      [&] {
        body += c.read_some();
        size_t frames = 0;
        for (size_t at = 0; (at = body.find("event: frame\n", at)) != std::string::npos; ++at)
          ++frames;
        return body.find("event: history\n") != std::string::npos && frames >= 3;
      },
      std::chrono::seconds(20)));
  CHECK(body.find("event: history\n") < body.find("event: frame\n"));
  // Each frame is one JSON object on its data line; the request shows in the totals.
  const auto at = body.find("event: frame\ndata: ");
  const auto start = at + std::string("event: frame\ndata: ").size();
  const auto frame = json::parse(body.substr(start, body.find('\n', start) - start)).as_object();
  CHECK(frame.at("requests").at("total").to_number<int64_t>() >= 1);
  CHECK(frame.at("tokens").at("completion_total").to_number<int64_t>() >= 1);
  CHECK(frame.at("latency").at("ttft").at("count").to_number<int64_t>() >= 1);
}

TEST_CASE("replica states and GPU readings are Prometheus gauges", "[server][metrics]") {
  test_server s([](config::server_config& c) { c.observability.sample_interval_s = 0.1; });
  REQUIRE(wait_for([&] { return s.metric("conclave_replicas{model=\"tiny\",state=\"up\"}") == 1; },
                   std::chrono::seconds(10)));
  CHECK(s.metric("conclave_replicas{model=\"tiny\",state=\"dead\"}") == 0);
}

TEST_CASE("alert rules fire and resolve under an injected fault, webhooks get both",
          "[server][alerts][failover]") {
  std::mutex m;
  std::vector<std::string> bodies;
  // The webhook fails its first call (500): the notification is retried with backoff.
  loopback_hook hook([&](int n, const std::string& body, const std::atomic<bool>&) {
    if (n == 0) return std::pair<int, std::string>{500, "busy"};
    std::lock_guard lock(m);
    bodies.push_back(body);
    return std::pair<int, std::string>{200, "ok"};
  });
  test_server s([&](config::server_config& c) {
    c.replicas.fault_injection = true;
    c.replicas.restart_backoff_s = 1.5;  // down long enough to be seen
    c.observability.sample_interval_s = 0.1;
    c.observability.webhooks = {hook.url()};
    c.observability.webhook_backoff_s = 0.05;
    c.observability.alerts = {{"ReplicaDown", "replica_down", 0, 0, 60, "critical"},
                              {"Errors", "error_rate", 0.5, 0, 60, "warning"}};
  });
  const uint16_t port = s.port();
  CHECK(rule_of(port, "ReplicaDown").at("state") == "inactive");
  CHECK(get_object(port, "/admin/alerts").at("alerts").as_array().empty());

  REQUIRE(post_json(port, "/admin/fault", R"({"replica":0,"fault":"crash_engine"})").status == 200);
  // The crash shows on the replica's next step: send one.
  std::thread req([&] { post_json(port, "/v1/completions", completion()); });
  REQUIRE(wait_for([&] { return rule_of(port, "ReplicaDown").at("state") == "firing"; },
                   std::chrono::seconds(30)));
  const auto active = get_object(port, "/admin/alerts").at("alerts").as_array();
  REQUIRE(active.size() >= 1);
  CHECK(active.at(0).at("name") == "ReplicaDown");
  CHECK(active.at(0).at("summary").as_string().find("restarting or dead") != json::string::npos);
  // The replica restarts: the alert resolves.
  REQUIRE(wait_for([&] { return rule_of(port, "ReplicaDown").at("state") == "inactive"; },
                   std::chrono::seconds(60)));
  req.join();
  const auto r = rule_of(port, "ReplicaDown");
  CHECK(r.at("fired").to_number<int64_t>() == 1);
  CHECK(!r.at("last_resolved_ms").is_null());
  // Both transitions reach the webhook, in order, in Alertmanager's format.
  REQUIRE(wait_for(
      [&] {
        std::lock_guard lock(m);
        return bodies.size() >= 2;
      },
      std::chrono::seconds(20)));
  // The hook stores a body before its 200 reaches the sender, which counts the delivery
  // only then: wait for the count rather than read it once.
  REQUIRE(wait_for(
      [&] {
        const auto h = get_object(port, "/admin/alerts").at("webhooks").as_array();
        return h.size() == 1 && h.at(0).at("sent").to_number<int64_t>() >= 2;
      },
      std::chrono::seconds(10)));
  std::lock_guard lock(m);
  const auto firing = json::parse(bodies[0]).as_object();
  const auto resolved = json::parse(bodies[1]).as_object();
  CHECK(firing.at("version") == "4");
  CHECK(firing.at("status") == "firing");
  CHECK(firing.at("alerts").at(0).at("labels").at("alertname") == "ReplicaDown");
  CHECK(firing.at("alerts").at(0).at("labels").at("severity") == "critical");
  CHECK(resolved.at("status") == "resolved");
  CHECK(resolved.at("alerts").at(0).at("endsAt") != "0001-01-01T00:00:00Z");
  const auto hooks = get_object(port, "/admin/alerts").at("webhooks").as_array();
  REQUIRE(hooks.size() == 1);
  CHECK(hooks.at(0).at("failed_attempts").to_number<int64_t>() >= 1);
  CHECK(hooks.at(0).at("dropped").to_number<int64_t>() == 0);
  // The dashboard's event list has the replica's fall and the alert's transitions.
  const auto events = get_object(port, "/admin/telemetry").at("events").as_array();
  bool replica_event = false, alert_event = false;
  for (const auto& e : events) {
    replica_event |= e.at("kind") == "replica";
    alert_event |= e.at("kind") == "alert";
  }
  CHECK(replica_event);
  CHECK(alert_event);
}

TEST_CASE("JSON log lines: every key on every line, structured messages merged",
          "[observability][logs]") {
  const auto text = json::parse(net::json_log_line("info", "listening on http://x:1", 0));
  CHECK(text.at("timestamp") == "1970-01-01T00:00:00.000Z");
  CHECK(text.at("level") == "info");
  CHECK(text.at("message") == "listening on http://x:1");
  for (const char* key : {"request_id", "model", "tenant", "replica", "latency_ms", "prompt_tokens",
                          "completion_tokens", "status", "error"})
    CHECK(text.as_object().at(key).is_null());
  const auto req = json::parse(net::json_log_line(
      "warning", R"({"event":"request","request_id":"r1","status":503,"level":"x"})",
      1'500'000'000'123'000'000));
  CHECK(req.at("timestamp") == "2017-07-14T02:40:00.123Z");
  CHECK(req.at("level") == "warn");  // a field of the message cannot override it
  CHECK(req.at("message") == "request");
  CHECK(req.at("request_id") == "r1");
  CHECK(req.at("status") == 503);
  CHECK(req.at("tenant").is_null());
  // Text that merely looks like JSON stays text.
  const auto odd = json::parse(net::json_log_line("info", "{not json}", 0));
  CHECK(odd.at("message") == "{not json}");
  const auto quote = json::parse(net::json_log_line("error", "a \"quoted\"\nline", 0));
  CHECK(quote.at("message") == "a \"quoted\"\nline");
}
