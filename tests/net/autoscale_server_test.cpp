// The autoscaler inside a running server: a queue builds and a replica is added; an
// idle cluster drains one, and GET /admin/cluster reports it. The decisions themselves
// are tested on the deterministic scheduler (tests/actors/autoscale_test.cpp); here the
// thresholds are set so the real clock only decides when, never whether.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

json::value cluster_view(uint16_t port) {
  http_client c(port);
  const auto r = c.call(http::verb::get, "/admin/cluster");
  REQUIRE(r.status == 200);
  return json::parse(r.body);
}

/// The replicas' states, by id.
std::vector<std::string> states(uint16_t port) {
  std::vector<std::string> out;
  const json::value c = cluster_view(port);
  for (const auto& r : c.at("replicas").as_array()) out.emplace_back(r.at("state").as_string());
  return out;
}

/// Polls /admin/cluster until `want` holds (20 s at most).
template <class F>
bool wait_for(uint16_t port, F want) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!want(states(port))) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string body(int i, int max_tokens) {
  return json::serialize(json::object{{"model", "tiny"},
                                      {"prompt", "Request " + std::to_string(i)},
                                      {"max_tokens", max_tokens},
                                      {"temperature", 0},
                                      {"ignore_eos", true}});
}

}  // namespace

TEST_CASE("autoscaler in a server: an idle replica is drained and shown as drained",
          "[server][autoscale]") {
  test_server s([](config::server_config& c) {
    c.replicas.count = 2;
    c.autoscale.enabled = true;
    c.autoscale.interval_s = 0.05;
    c.autoscale.sustain_intervals = 2;
    c.autoscale.cooldown_s = 0;
    c.autoscale.min_replicas = 1;
    c.autoscale.max_replicas = 2;
  });
  const auto one_drained = [](const std::vector<std::string>& st) {
    return st.size() == 2 &&
           ((st[0] == "drained" && st[1] == "up") || (st[0] == "up" && st[1] == "drained"));
  };
  REQUIRE(wait_for(s.port(), one_drained));
  // It stays at min_replicas, and the one left serves.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(one_drained(states(s.port())));
  const auto r = post_json(s.port(), "/v1/completions", body(0, 8));
  CHECK(r.status == 200);
  const json::value c = cluster_view(s.port());
  for (const auto& rep : c.at("replicas").as_array()) {
    if (rep.at("state").as_string() != "drained") continue;
    CHECK(rep.at("running").as_int64() == 0);
    CHECK(rep.at("last_error").as_string() == "");
  }
}

TEST_CASE("autoscaler in a server: a queue adds a replica", "[server][autoscale]") {
  test_server s([](config::server_config& c) {
    c.replicas.count = 1;
    c.engine.scheduler.max_num_seqs = 1;  // the rest of the requests wait
    c.autoscale.enabled = true;
    c.autoscale.interval_s = 0.05;
    c.autoscale.sustain_intervals = 1;
    c.autoscale.cooldown_s = 0;
    c.autoscale.scale_up_utilization = 0.01;  // any work at all...
    c.autoscale.scale_up_waiting = 2;         // ...with more than two requests waiting
    c.autoscale.scale_down_utilization = 0;   // never below 0: no scale-down here
    c.autoscale.min_replicas = 1;
    c.autoscale.max_replicas = 2;
  });
  REQUIRE(wait_for(s.port(), [](const auto& st) { return st.size() == 1 && st[0] == "up"; }));
  std::vector<int> status(8, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&, i] {
      status[static_cast<size_t>(i)] = post_json(s.port(), "/v1/completions", body(i, 200)).status;
    });
  }
  const bool added = wait_for(
      s.port(), [](const auto& st) { return st.size() == 2 && st[0] == "up" && st[1] == "up"; });
  for (auto& t : clients) t.join();
  CHECK(added);
  for (int st : status) CHECK(st == 200);
  // At max_replicas: no third one, however the load goes; and the cluster serves.
  CHECK(states(s.port()).size() == 2);
  // Replica 0 ran steps all along: its busy time (what utilisation is made of) shows.
  CHECK(cluster_view(s.port()).at("replicas").at(0).at("busy_seconds").as_double() > 0);
  CHECK(post_json(s.port(), "/v1/completions", body(9, 8)).status == 200);
  // The decision is one of the dashboard's events (docs/observability.md).
  bool noted = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!noted && std::chrono::steady_clock::now() < deadline) {
    http_client c(s.port());
    const auto frame = json::parse(c.call(http::verb::get, "/admin/telemetry").body);
    for (const auto& e : frame.at("events").as_array())
      noted |= e.at("kind") == "autoscaler" &&
               e.at("text").as_string().find("tiny: adding a replica") != json::string::npos;
    if (!noted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(noted);
}
