// Constrained tool calls over loopback: with tool_choice naming a function (or
// `required`), even the tiny random-weight model answers with a call whose arguments
// parse and have the schema's types; the conversation then goes on with the tool result.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

const char* weather_tools = R"([{"type":"function","function":{"name":"get_weather",
  "parameters":{"type":"object","required":["city","days","unit"],"properties":{
    "city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},
    "unit":{"type":"string","enum":["celsius","fahrenheit"]},"lat":{"type":"number"}}}}},
  {"type":"function","function":{"name":"echo","parameters":{"type":"object",
    "properties":{"text":{"type":"string"}}}}}])";

json::object request(const std::string& choice, bool stream, uint64_t seed) {
  json::object body{
      {"model", "tiny"},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Weather in Paris?"}}}},
      {"tools", json::parse(weather_tools)},
      {"max_tokens", 90},
      {"temperature", 1.0},
      {"seed", seed},
      {"stream", stream}};
  body["tool_choice"] =
      choice == "required"
          ? json::value("required")
          : json::value(json::object{{"type", "function"}, {"function", {{"name", choice}}}});
  return body;
}

void check_weather_args(const json::object& a) {
  REQUIRE(a.contains("city"));
  CHECK(a.at("city").is_string());
  REQUIRE(a.contains("days"));
  CHECK(a.at("days").is_int64());
  REQUIRE(a.contains("unit"));
  const std::string unit(a.at("unit").as_string());
  CHECK((unit == "celsius" || unit == "fahrenheit"));
  if (a.contains("metric")) CHECK(a.at("metric").is_bool());
  if (a.contains("lat")) CHECK(a.at("lat").is_number());
}

}  // namespace

TEST_CASE("tool_choice naming a function: the streamed call parses and is typed",
          "[server][tools]") {
  test_server s;
  for (uint64_t seed : {1, 2, 3}) {
    const auto r = post_json(s.port(), "/v1/chat/completions",
                             json::serialize(request("get_weather", true, seed)));
    REQUIRE(r.status == 200);
    std::string id, name, args, finish;
    for (const auto& ev : sse_events(r.body)) {
      if (ev == "[DONE]") break;
      const json::value v = json::parse(ev);
      const auto& choice = v.at("choices").at(0).as_object();
      if (!choice.at("finish_reason").is_null())
        finish = std::string(choice.at("finish_reason").as_string());
      const auto& delta = choice.at("delta").as_object();
      CHECK((!delta.contains("content") || delta.at("content").is_null() ||
             delta.at("content").as_string().empty()));
      if (!delta.contains("tool_calls")) continue;
      const auto& tc = delta.at("tool_calls").at(0).as_object();
      CHECK(tc.at("index").as_int64() == 0);
      if (tc.contains("id")) id = std::string(tc.at("id").as_string());
      const auto& fn = tc.at("function").as_object();
      if (fn.contains("name")) name = std::string(fn.at("name").as_string());
      if (fn.contains("arguments")) args += std::string(fn.at("arguments").as_string());
    }
    INFO("arguments: " << args);
    CHECK(finish == "tool_calls");
    CHECK(name == "get_weather");
    CHECK(id.rfind("call_", 0) == 0);
    const json::value a = json::parse(args);
    check_weather_args(a.as_object());

    // The follow-up with the tool's result is an ordinary request.
    json::object next = request("get_weather", false, seed);
    next.erase("tool_choice");
    auto& msgs = next["messages"].as_array();
    msgs.push_back(json::object{
        {"role", "assistant"},
        {"content", nullptr},
        {"tool_calls",
         json::array{json::object{{"id", id},
                                  {"type", "function"},
                                  {"function", {{"name", name}, {"arguments", args}}}}}}});
    msgs.push_back(json::object{{"role", "tool"}, {"tool_call_id", id}, {"content", "21 C"}});
    next["max_tokens"] = 8;
    const auto f = post_json(s.port(), "/v1/chat/completions", json::serialize(next));
    CHECK(f.status == 200);
  }
}

TEST_CASE("tool_choice required: non-streamed calls of the given tools", "[server][tools]") {
  test_server s;
  for (uint64_t seed : {5, 6}) {
    const auto r = post_json(s.port(), "/v1/chat/completions",
                             json::serialize(request("required", false, seed)));
    REQUIRE(r.status == 200);
    const json::value v = json::parse(r.body);
    const auto& choice = v.at("choices").at(0);
    CHECK(choice.at("finish_reason").as_string() == "tool_calls");
    const auto& calls = choice.at("message").at("tool_calls").as_array();
    REQUIRE(!calls.empty());
    for (const auto& c : calls) {
      const std::string name(c.at("function").at("name").as_string());
      const json::value a = json::parse(c.at("function").at("arguments").as_string());
      INFO(name << " " << a);
      if (name == "get_weather") {
        check_weather_args(a.as_object());
      } else {
        CHECK(name == "echo");
        if (a.as_object().contains("text")) CHECK(a.at("text").is_string());
      }
    }
  }
}
