// Killing actors a request depends on, as a crash would (POST /admin/fault): a killed
// request session ends its own request with a clean error event and touches no other;
// a killed tool invocation is started again by its session and the request completes.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

constexpr int kKillTokens = 300;

std::string completion(int i, bool stream) {
  return json::serialize(
      json::object{{"model", "tiny"},
                   {"prompt", "Stream number " + std::to_string(i) + " says hello"},
                   {"max_tokens", kKillTokens},
                   {"temperature", 0},
                   {"ignore_eos", true},
                   {"stream", stream}});
}

/// One stream's text, or its error object.
struct stream_result {
  int status = 0;
  std::string text, id;
  json::object error;
  bool done = false;  ///< [DONE] came
};

stream_result stream(uint16_t port, int i) {
  const auto r = post_json(port, "/v1/completions", completion(i, true));
  stream_result o;
  o.status = r.status;
  if (r.status != 200) {
    o.error = json::parse(r.body).at("error").as_object();
    return o;
  }
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") {
      o.done = true;
      break;
    }
    const json::value v = json::parse(ev);
    if (v.as_object().contains("error")) {
      o.error = v.at("error").as_object();
      continue;
    }
    o.id = std::string(v.at("id").as_string());
    for (const auto& c : v.at("choices").as_array())
      o.text += std::string(c.at("text").as_string());
  }
  return o;
}

int64_t running(uint16_t port) {
  int64_t n = 0;
  const json::value c = get_json(port, "/admin/cluster");
  for (const auto& r : c.at("replicas").as_array()) n += r.at("running").as_int64();
  return n;
}

template <class F>
bool wait_for(F&& ready, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!ready()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

/// Webhook answers: {"stock": 12}, the first call never answered (stuck) or held until
/// `release` is set (held).
loopback_hook::handler stuck_first() {
  return [](int n, const std::string&, const std::atomic<bool>&) {
    return n == 0 ? std::pair<int, std::string>{0, ""}
                  : std::pair<int, std::string>{200, R"({"stock": 12})"};
  };
}
loopback_hook::handler held_first(const std::atomic<bool>& release) {
  return [&release](int n, const std::string&, const std::atomic<bool>& stopping) {
    while (n == 0 && !release && !stopping)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return std::pair<int, std::string>{200, R"({"stock": 12})"};
  };
}

json::object stock_request() {
  return {{"model", "tiny"},
          {"messages", json::array{json::object{{"role", "user"}, {"content", "Stock?"}}}},
          {"server_tools", json::array{"stock"}},
          {"tool_choice", {{"type", "function"}, {"function", {{"name", "stock"}}}}},
          {"server_tool_choices", json::array{"none"}},
          {"max_tokens", 30},
          {"seed", 1},
          {"stream", false}};
}

void add_stock_tool(config::server_config& c, const std::string& url) {
  c.tools.webhooks.push_back(
      {"stock", "Items in stock", url,
       R"({"type":"object","required":["sku"],"properties":{"sku":{"type":"integer"}}})", 30.0});
}

}  // namespace

TEST_CASE("killing a request's session ends that request with an error event, no other",
          "[server][failover]") {
  test_server s([](config::server_config& c) {
    c.replicas.count = 2;
    c.replicas.fault_injection = true;
  });
  // Nothing to kill yet: 409, and a named request that does not run is 409 too.
  CHECK(post_json(s.port(), "/admin/fault", R"({"fault":"kill_session"})").status == 409);
  CHECK(post_json(s.port(), "/admin/fault", R"({"fault":"kill_session","request":"cmpl-x"})")
            .status == 409);
  constexpr int n = 4;
  std::vector<std::string> want;
  for (int i = 0; i < n; ++i) {
    const auto r = post_json(s.port(), "/v1/completions", completion(i, false));
    REQUIRE(r.status == 200);
    want.emplace_back(json::parse(r.body).at("choices").at(0).at("text").as_string());
  }

  std::vector<stream_result> got(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] { got[static_cast<size_t>(i)] = stream(s.port(), i); });
  REQUIRE(wait_for([&] { return running(s.port()) == n; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // mid-stream
  const auto kill = post_json(s.port(), "/admin/fault", R"({"fault":"kill_session"})");
  for (auto& t : threads) t.join();
  REQUIRE(kill.status == 200);
  const std::string killed(json::parse(kill.body).at("id").as_string());

  int errors = 0;
  for (int i = 0; i < n; ++i) {
    const auto& g = got[static_cast<size_t>(i)];
    INFO("stream " << i << " (" << g.id << ")");
    CHECK(g.status == 200);
    CHECK(g.done);  // every stream ends properly, the killed one too
    if (!g.error.empty()) {
      ++errors;
      CHECK(g.id == killed);
      CHECK(g.error.at("code").as_string() == "session_stopped");
      CHECK(g.error.at("type").as_string() == "server_error");
      CHECK(want[static_cast<size_t>(i)].rfind(g.text, 0) == 0);  // a prefix, then the error
    } else {
      CHECK(g.text == want[static_cast<size_t>(i)]);
    }
  }
  CHECK(errors == 1);
  // The engine let go of the killed request's sequence; the replicas stay up.
  CHECK(wait_for([&] { return running(s.port()) == 0; }));
  const json::value c = get_json(s.port(), "/admin/cluster");
  for (const auto& r : c.at("replicas").as_array()) {
    CHECK(r.at("state").as_string() == "up");
    CHECK(r.at("restarts").as_int64() == 0);
    CHECK(r.at("kv_blocks_free").as_int64() == r.at("kv_blocks_total").as_int64());
  }
}

TEST_CASE("a killed tool invocation is started again by its session, the request completes",
          "[server][tools][failover]") {
  loopback_hook hook(stuck_first());
  test_server s([&](config::server_config& c) {
    c.replicas.fault_injection = true;
    add_stock_tool(c, hook.url());
  });
  CHECK(post_json(s.port(), "/admin/fault", R"({"fault":"kill_tool"})").status == 409);
  const json::object body = stock_request();
  http_reply r;
  std::thread client(
      [&] { r = post_json(s.port(), "/v1/chat/completions", json::serialize(body)); });
  // The first call hangs in the webhook: kill its invocation.
  const bool called = wait_for([&] { return hook.requests.load() == 1; });
  const auto kill = post_json(s.port(), "/admin/fault", R"({"fault":"kill_tool"})");
  client.join();
  REQUIRE(called);
  REQUIRE(kill.status == 200);
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  const auto& calls = v.at("conclave").at("tool_calls").as_array();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].at("id").as_string() == json::parse(kill.body).at("id").as_string());
  CHECK(calls[0].at("outcome").as_string() == "ok");
  CHECK(calls[0].at("content").as_string() == R"({"stock": 12})");
  CHECK(hook.requests == 2);  // the killed attempt, then the new invocation's
}

TEST_CASE("a replica that fails while a request's tools run does not replay the finished round",
          "[server][tools][failover]") {
  std::atomic<bool> release{false};
  loopback_hook hook(held_first(release));
  test_server s([&](config::server_config& c) {
    c.replicas.fault_injection = true;
    add_stock_tool(c, hook.url());
  });
  http_reply tool_reply;
  std::thread tool_client([&] {
    tool_reply = post_json(s.port(), "/v1/chat/completions", json::serialize(stock_request()));
  });
  REQUIRE(wait_for([&] { return hook.requests.load() == 1; }));  // round 1 done, tool held
  // Another request keeps the engine stepping, so the crash happens now, not in round 2.
  stream_result other;
  std::thread streamer([&] { other = stream(s.port(), 0); });
  REQUIRE(wait_for([&] { return running(s.port()) == 1; }));
  REQUIRE(post_json(s.port(), "/admin/fault", R"({"replica":0,"fault":"crash_engine"})").status ==
          200);
  streamer.join();  // it waited for the restart and resumed
  release = true;
  tool_client.join();
  CHECK(other.error.empty());
  CHECK(other.done);
  REQUIRE(tool_reply.status == 200);
  const json::value v = json::parse(tool_reply.body);
  const auto& calls = v.at("conclave").at("tool_calls").as_array();
  REQUIRE(calls.size() == 1);  // one round of calls, not a replayed one
  CHECK(calls[0].at("outcome").as_string() == "ok");
  CHECK(hook.requests == 1);
  CHECK(get_json(s.port(), "/admin/cluster").at("replicas").at(0).at("restarts").as_int64() == 1);
}
