// Structured outputs over loopback: response_format json_schema / json_object make even
// the tiny random-weight model answer with JSON that parses and fits the schema; what the
// decoder cannot enforce is a 400 naming it.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

const char* person_schema = R"({"type":"object","properties":{
    "name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}},
    "role":{"type":"string","enum":["admin","user"]},"ok":{"type":"boolean"}},
    "required":["name","age","role"],"additionalProperties":false})";

json::object request(const json::value& response_format, bool stream, uint64_t seed) {
  return json::object{
      {"model", "tiny"},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Describe someone."}}}},
      {"response_format", response_format},
      {"max_tokens", 200},
      {"temperature", 1.0},
      {"seed", seed},
      {"stream", stream}};
}

json::value json_schema_format() {
  return json::object{
      {"type", "json_schema"},
      {"json_schema",
       json::object{{"name", "person"}, {"schema", json::parse(person_schema)}, {"strict", true}}}};
}

std::string text_of(const http_reply& r, bool stream) {
  if (!stream) {
    const json::value v = json::parse(r.body);
    return std::string(v.at("choices").at(0).at("message").at("content").as_string());
  }
  std::string text;
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    const auto& delta = v.at("choices").at(0).at("delta").as_object();
    if (const auto* c = delta.if_contains("content"); c && c->is_string()) text += c->as_string();
  }
  return text;
}

}  // namespace

TEST_CASE("response_format json_schema: every answer is JSON that fits the schema",
          "[server][structured]") {
  test_server s;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const bool stream = seed % 2 == 0;
    const auto r = post_json(s.port(), "/v1/chat/completions",
                             json::serialize(request(json_schema_format(), stream, seed)));
    REQUIRE(r.status == 200);
    const std::string text = text_of(r, stream);
    INFO("seed " << seed << ": " << text);
    boost::system::error_code ec;
    const json::value v = json::parse(text, ec);
    REQUIRE(!ec);
    const auto& o = v.as_object();
    CHECK(o.at("name").is_string());
    CHECK(o.at("age").is_int64());
    const std::string role(o.at("role").as_string());
    CHECK((role == "admin" || role == "user"));
    for (const auto& [k, x] : o) {
      const std::string key(k);
      CHECK((key == "name" || key == "age" || key == "tags" || key == "role" || key == "ok"));
      if (key == "tags")
        for (const auto& t : x.as_array()) CHECK(t.is_string());
      if (key == "ok") CHECK(x.is_bool());
    }
  }
}

TEST_CASE("response_format json_object: the answer is a JSON object", "[server][structured]") {
  test_server s;
  const auto r =
      post_json(s.port(), "/v1/chat/completions",
                json::serialize(request(json::object{{"type", "json_object"}}, false, 3)));
  REQUIRE(r.status == 200);
  boost::system::error_code ec;
  const json::value v = json::parse(text_of(r, false), ec);
  REQUIRE(!ec);
  CHECK(v.is_object());
}

TEST_CASE("response_format: what cannot be enforced is a 400 naming it", "[server][structured]") {
  test_server s;
  auto bad = json_schema_format();
  bad.at("json_schema").at("schema").at("properties").at("age").as_object()["minimum"] = 0;
  auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(request(bad, false, 1)));
  REQUIRE(r.status == 400);
  json::value e = json::parse(r.body).at("error");
  CHECK(e.at("param").as_string() == "response_format.json_schema.schema.properties.age");
  CHECK(std::string(e.at("message").as_string()).find("'minimum' cannot be enforced") !=
        std::string::npos);

  r = post_json(s.port(), "/v1/chat/completions",
                json::serialize(request(json::object{{"type", "yaml"}}, false, 1)));
  CHECK(r.status == 400);
  CHECK(json::parse(r.body).at("error").at("param").as_string() == "response_format.type");

  auto both = request(json_schema_format(), false, 1);
  both["tools"] = json::parse(
      R"([{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}])");
  both["tool_choice"] = "required";
  r = post_json(s.port(), "/v1/chat/completions", json::serialize(both));
  CHECK(r.status == 400);
  CHECK(json::parse(r.body).at("error").at("param").as_string() == "response_format");
}

TEST_CASE("logit_bias is applied: +100 on one token makes every sampled token that one",
          "[server][logit_bias]") {
  test_server s;
  json::object body{{"model", "tiny"}, {"prompt", "Hello"},
                    {"max_tokens", 6}, {"temperature", 1.0},
                    {"seed", 2},       {"ignore_eos", true},
                    {"logprobs", 0},   {"logit_bias", json::object{{"9707", 100}}}};
  const auto r = post_json(s.port(), "/v1/completions", json::serialize(body));
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  const auto& tokens = v.at("choices").at(0).at("logprobs").at("tokens").as_array();
  REQUIRE(tokens.size() == 6);
  for (const auto& t : tokens) CHECK(t == tokens[0]);
  body["logit_bias"] = json::object{{"x", 1}};
  CHECK(post_json(s.port(), "/v1/completions", json::serialize(body)).status == 400);
  body["logit_bias"] = json::object{{"5", 150}};
  CHECK(post_json(s.port(), "/v1/completions", json::serialize(body)).status == 400);
  body["logit_bias"] = json::object{{"999999999", 1}};
  const auto far = post_json(s.port(), "/v1/completions", json::serialize(body));
  CHECK(far.status == 400);
  CHECK(json::parse(far.body).at("error").at("param") == "logit_bias");
}

TEST_CASE("parallel_tool_calls false with tool_choice required: exactly one call",
          "[server][tools]") {
  test_server s;
  json::object body{
      {"model", "tiny"},
      {"messages", json::array{json::object{{"role", "user"}, {"content", "Weather?"}}}},
      {"tools", json::parse(R"([{"type":"function","function":{"name":"get_weather",
          "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])")},
      {"tool_choice", "required"},
      {"parallel_tool_calls", false},
      {"max_tokens", 200},
      {"temperature", 1.0}};
  for (uint64_t seed : {1, 2, 3, 4}) {
    body["seed"] = seed;
    const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(body));
    REQUIRE(r.status == 200);
    const json::value v = json::parse(r.body);
    CHECK(v.at("choices").at(0).at("message").at("tool_calls").as_array().size() == 1);
    CHECK(v.at("choices").at(0).at("finish_reason") == "tool_calls");
  }
}

TEST_CASE("fields that would change the answer but cannot be honoured are a 400 naming them",
          "[server][fields]") {
  test_server s;
  const auto param_of = [&](const std::string& route, json::object body) {
    body["model"] = "tiny";
    body["max_tokens"] = 2;
    const auto r = post_json(s.port(), route, json::serialize(body));
    if (r.status != 400) return std::to_string(r.status);
    return std::string(json::parse(r.body).at("error").at("param").as_string());
  };
  const json::array msgs{json::object{{"role", "user"}, {"content", "hi"}}};
  CHECK(param_of("/v1/chat/completions",
                 {{"messages", msgs}, {"functions", json::array{json::object{{"name", "f"}}}}}) ==
        "functions");
  CHECK(param_of("/v1/chat/completions", {{"messages", msgs}, {"function_call", "auto"}}) ==
        "function_call");
  CHECK(param_of("/v1/chat/completions",
                 {{"messages", msgs}, {"modalities", json::array{"text", "audio"}}}) ==
        "modalities");
  CHECK(param_of("/v1/chat/completions",
                 {{"messages", msgs}, {"web_search_options", json::object{}}}) ==
        "web_search_options");
  CHECK(param_of("/v1/completions", {{"prompt", "x"}, {"best_of", 3}}) == "best_of");
  // What changes nothing is accepted.
  CHECK(param_of("/v1/chat/completions", {{"messages", msgs},
                                          {"modalities", json::array{"text"}},
                                          {"store", false},
                                          {"metadata", json::object{{"k", "v"}}},
                                          {"user", "u1"}}) == "200");
}
