// Replica failures under streaming load: requests move to another replica (or wait for
// theirs to restart) and continue after the tokens already streamed, token-identical to
// an undisturbed greedy run. Faults come through POST /admin/fault.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

constexpr int kTokens = 400;

std::string body_for(int i, bool stream) {
  json::object b{
      {"model", "tiny"},       {"prompt", "Request number " + std::to_string(i) + " says hello"},
      {"max_tokens", kTokens}, {"temperature", 0},
      {"ignore_eos", true},    {"stream", stream}};
  return json::serialize(b);
}

/// The streamed text and token count of one completion, or the error body.
struct outcome {
  int status = 0;
  std::string text;
  int64_t completion_tokens = 0;
  std::string finish_reason;
};

outcome stream_one(uint16_t port, int i) {
  const std::string body = body_for(i, true);
  const std::string with_usage =
      body.substr(0, body.size() - 1) + R"(,"stream_options":{"include_usage":true}})";
  const auto r = post_json(port, "/v1/completions", with_usage);
  outcome o;
  o.status = r.status;
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    if (v.as_object().contains("error")) {
      o.status = 500;
      o.text = ev;
      return o;
    }
    for (const auto& c : v.at("choices").as_array()) {
      o.text += std::string(c.at("text").as_string());
      if (!c.at("finish_reason").is_null())
        o.finish_reason = std::string(c.at("finish_reason").as_string());
    }
    if (v.as_object().contains("usage") && !v.at("usage").is_null())
      o.completion_tokens = v.at("usage").at("completion_tokens").as_int64();
  }
  return o;
}

std::vector<std::string> reference(uint16_t port, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    const auto r = post_json(port, "/v1/completions", body_for(i, false));
    REQUIRE(r.status == 200);
    out.emplace_back(json::parse(r.body).at("choices").at(0).at("text").as_string());
  }
  return out;
}

/// Runs `n` streams at once; calls `during` once every replica runs some of them and
/// `after_ms` more have passed (a fault then meets streams mid-way: each is 400 tokens).
std::vector<outcome> under_load(test_server& s, int n, int after_ms,
                                const std::function<void()>& during) {
  std::vector<outcome> results(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] { results[static_cast<size_t>(i)] = stream_one(s.port(), i); });
  }
  const auto all_busy = [&] {
    const json::value c = get_json(s.port(), "/admin/cluster");
    for (const auto& r : c.at("replicas").as_array()) {
      if (r.at("running").as_int64() < 1) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!all_busy() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(after_ms));
  during();
  for (auto& t : threads) t.join();
  return results;
}

void inject(uint16_t port, int replica, const std::string& fault) {
  json::object b{{"replica", replica}, {"fault", fault}};
  const auto r = post_json(port, "/admin/fault", json::serialize(b));
  REQUIRE(r.status == 200);
}

void check_identical(const std::vector<outcome>& got, const std::vector<std::string>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("request " << i << ": " << got[i].text);
    CHECK(got[i].status == 200);
    CHECK(got[i].finish_reason == "length");
    CHECK(got[i].completion_tokens == kTokens);
    CHECK(got[i].text == want[i]);
  }
}

void wait_all_up(uint16_t port, size_t replicas) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    size_t up = 0;
    const json::value c =
        get_json(port, "/admin/cluster");  // (a loop over a temporary's member dangles)
    for (const auto& r : c.at("replicas").as_array()) up += r.at("state").as_string() == "up";
    if (up == replicas || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

TEST_CASE("failover: a failed step moves its streams to the other replica, token-identical",
          "[server][failover]") {
  test_server s([](config::server_config& c) {
    c.replicas.count = 2;
    c.replicas.fault_injection = true;
  });
  wait_all_up(s.port(), 2);
  const auto want = reference(s.port(), 8);
  for (const std::string fault : {"fail_step", "crash_worker", "crash_engine"}) {
    INFO("fault " << fault);
    const double before = s.metric("conclave_failovers_total");
    const auto got = under_load(s, 8, 100, [&] { inject(s.port(), 0, fault); });
    check_identical(got, want);
    CHECK(s.metric("conclave_failovers_total") > before);  // streams did move mid-way
    wait_all_up(s.port(), 2);                              // replica 0 came back
  }
  const json::value c = get_json(s.port(), "/admin/cluster");
  const auto& r0 = c.at("replicas").at(0);
  CHECK(r0.at("restarts").as_int64() == 3);
  CHECK(r0.at("state").as_string() == "up");
  CHECK(c.at("replicas").at(1).at("restarts").as_int64() == 0);
}

TEST_CASE("failover: the watchdog ends a hung step and its streams resume elsewhere",
          "[server][failover]") {
  test_server s([](config::server_config& c) {
    c.replicas.count = 2;
    c.replicas.fault_injection = true;
    c.replicas.step_timeout_s = 0.5;
    c.replicas.hang_s = 1.5;
  });
  wait_all_up(s.port(), 2);
  const auto want = reference(s.port(), 4);
  const auto got = under_load(s, 4, 100, [&] { inject(s.port(), 1, "hang_step"); });
  check_identical(got, want);
  CHECK(s.metric("conclave_failovers_total") > 0);
  const std::string err(
      get_json(s.port(), "/admin/cluster").at("replicas").at(1).at("last_error").as_string());
  CHECK(err.find("watchdog") != std::string::npos);
}

TEST_CASE("failover: with one replica, streams wait for its restart and resume",
          "[server][failover]") {
  test_server s([](config::server_config& c) { c.replicas.fault_injection = true; });
  const auto want = reference(s.port(), 3);
  const auto got = under_load(s, 3, 100, [&] { inject(s.port(), 0, "crash_engine"); });
  check_identical(got, want);
  CHECK(s.metric("conclave_failovers_total") >= 1);
}

TEST_CASE("admin routes: cluster view, fault injection off by default, bad faults are 400",
          "[server][failover]") {
  {
    test_server s;
    const json::value c = get_json(s.port(), "/admin/cluster");
    REQUIRE(c.at("replicas").as_array().size() == 1);
    CHECK(c.at("replicas").at(0).at("backend").as_string() == "cpu");
    const auto r = post_json(s.port(), "/admin/fault", R"({"replica":0,"fault":"fail_step"})");
    CHECK(r.status == 404);
  }
  test_server s([](config::server_config& c) { c.replicas.fault_injection = true; });
  CHECK(post_json(s.port(), "/admin/fault", R"({"replica":5,"fault":"fail_step"})").status == 400);
  CHECK(post_json(s.port(), "/admin/fault", R"({"replica":0,"fault":"melt"})").status == 400);
  CHECK(post_json(s.port(), "/admin/fault", "nope").status == 400);
  http_client c(s.port());
  CHECK(c.call(http::verb::get, "/admin/fault").status == 405);
}
