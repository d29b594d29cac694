// Server-side tool rounds over loopback: the request enables the built-in `math` and
// `code_interpreter`, tool_choice forces `math` in the first round and
// server_tool_choices forces `code_interpreter` in the second; the server runs both
// (even the random model's calls are valid, by constrained decoding), feeds the results
// back, and the stream shows both calls and both results in extension fields that plain
// OpenAI clients ignore, then the final round's answer.
#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

json::object rounds_request(bool stream) {
  return {{"model", "tiny"},
          {"messages", json::array{json::object{{"role", "user"}, {"content", "Compute things"}}}},
          {"server_tools", json::array{"math", "code_interpreter"}},
          {"tool_choice", {{"type", "function"}, {"function", {{"name", "math"}}}}},
          {"server_tool_choices", json::array{"code_interpreter", "none"}},
          {"max_tokens", 40},
          {"temperature", 1.0},
          {"seed", 3},
          {"stream", stream}};
}

}  // namespace

TEST_CASE("server-side rounds: math then code_interpreter run on the server, the stream shows both",
          "[server][tools]") {
  test_server s;
  const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(rounds_request(true)));
  REQUIRE(r.status == 200);
  std::vector<std::string> seen;  // "call:NAME" / "result:NAME:OUTCOME" in order
  std::string finish;
  bool standard_tool_calls = false;
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    const auto& choice = v.at("choices").at(0).as_object();
    if (!choice.at("finish_reason").is_null())
      finish = std::string(choice.at("finish_reason").as_string());
    if (choice.at("delta").as_object().contains("tool_calls")) standard_tool_calls = true;
    if (!v.as_object().contains("conclave")) continue;
    const auto& ext = v.at("conclave").as_object();
    if (ext.contains("tool_call")) {
      const auto& c = ext.at("tool_call").as_object();
      seen.push_back("call:" + std::string(c.at("name").as_string()));
      CHECK(json::parse(c.at("arguments").as_string()).is_object());
    }
    if (ext.contains("tool_result")) {
      const auto& t = ext.at("tool_result").as_object();
      const std::string outcome(t.at("outcome").as_string());
      seen.push_back("result:" + std::string(t.at("name").as_string()));
      CHECK((outcome == "ok" || outcome == "error"));
      CHECK(!t.at("content").as_string().empty());
      if (t.at("name").as_string() == "code_interpreter" && outcome == "ok") {
        // The random model's program ran in the sandbox and its status came back.
        const std::string content(t.at("content").as_string());
        CHECK((content.rfind("exit status", 0) == 0 || content.rfind("killed", 0) == 0));
      }
    }
  }
  CHECK(seen == std::vector<std::string>{"call:math", "result:math", "call:code_interpreter",
                                         "result:code_interpreter"});
  CHECK_FALSE(standard_tool_calls);  // plain clients see no calls to run
  CHECK((finish == "stop" || finish == "length"));

  // Not streamed: the same rounds listed under "conclave"; the message has no tool_calls.
  const auto full =
      post_json(s.port(), "/v1/chat/completions", json::serialize(rounds_request(false)));
  REQUIRE(full.status == 200);
  const json::value v = json::parse(full.body);
  CHECK_FALSE(v.at("choices").at(0).at("message").as_object().contains("tool_calls"));
  const auto& calls = v.at("conclave").at("tool_calls").as_array();
  REQUIRE(calls.size() == 2);
  CHECK(calls[0].at("name").as_string() == "math");
  CHECK(calls[1].at("name").as_string() == "code_interpreter");

  const auto metrics = http_client(s.port()).call(http::verb::get, "/metrics").body;
  CHECK(metrics.find(R"(conclave_tool_call_duration_seconds_count{tool="math"} 2)") !=
        std::string::npos);
  CHECK(metrics.find("conclave_tool_calls_total{") != std::string::npos);
}

TEST_CASE("server_tools errors are 400s naming the field", "[server][tools]") {
  test_server s;
  json::object body = rounds_request(false);
  body["server_tools"] = json::array{"nope"};
  body.erase("tool_choice");
  const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(body));
  CHECK(r.status == 400);
  CHECK(json::parse(r.body).at("error").at("param").as_string() == "server_tools[0]");
  body["server_tools"] = json::array{"math"};
  body["server_tool_choices"] = json::array{"other"};
  const auto r2 = post_json(s.port(), "/v1/chat/completions", json::serialize(body));
  CHECK(r2.status == 400);
  CHECK(json::parse(r2.body).at("error").at("param").as_string() == "server_tool_choices[0]");
}

namespace {

/// A webhook that answers 503 to its first request, then 200 with `{"stock": 12}`; keeps
/// the last body it got.
struct flaky_hook {
  std::string last_body;
  loopback_hook hook{[this](int n, const std::string& body, const std::atomic<bool>&) {
    last_body = body;
    return n == 0 ? std::pair<int, std::string>{503, "busy"}
                  : std::pair<int, std::string>{200, R"({"stock": 12})"};
  }};
  std::string url() const { return hook.url(); }
};

}  // namespace

TEST_CASE("a webhook tool from [tools] config runs server-side, retried after a 503",
          "[server][tools]") {
  flaky_hook hook;
  test_server s([&](config::server_config& c) {
    c.tools.retry_base_ms = 10;
    c.tools.webhooks.push_back(
        {"stock", "Items in stock", hook.url(),
         R"({"type":"object","required":["sku"],"properties":{"sku":{"type":"integer"}}})", 5.0});
  });
  json::object body{
      {"model", "tiny"},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Stock?"}}}},
      {"server_tools", json::array{"stock"}},
      {"tool_choice", {{"type", "function"}, {"function", {{"name", "stock"}}}}},
      {"server_tool_choices", json::array{"none"}},
      {"max_tokens", 30},
      {"seed", 1},
      {"stream", false}};
  const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(body));
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  const auto& calls = v.at("conclave").at("tool_calls").as_array();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].at("name").as_string() == "stock");
  CHECK(calls[0].at("outcome").as_string() == "ok");
  CHECK(calls[0].at("content").as_string() == R"({"stock": 12})");
  CHECK(hook.hook.requests == 2);
  CHECK(json::parse(hook.last_body).at("sku").is_int64());  // typed by constrained decoding
  const auto metrics = http_client(s.port()).call(http::verb::get, "/metrics").body;
  CHECK(metrics.find(R"(conclave_tool_retries_total{tool="stock"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(conclave_tool_calls_total{outcome="ok",tool="stock"} 1)") !=
        std::string::npos);
}
