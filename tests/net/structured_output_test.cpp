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
