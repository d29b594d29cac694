// logprobs / top_logprobs over HTTP: OpenAI's chat and completions shapes, the same values
// streamed and not, and the request errors.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cmath>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

const std::string logprobs_chat_body =
    R"({"model":"tiny","messages":[{"role":"user","content":"Count to ten"}],"max_tokens":6,"temperature":0,"ignore_eos":true,"logprobs":true,"top_logprobs":3)";

bool is_special(std::string_view t) {
  return t.size() > 4 && t.substr(0, 2) == "<|" && t.substr(t.size() - 2) == "|>";
}

std::string bytes_of(const json::value& entry) {
  std::string s;
  for (const auto& b : entry.at("bytes").as_array()) s += static_cast<char>(b.as_int64());
  return s;
}

void check_entry(const json::value& e, size_t top_n) {
  const auto& top = e.at("top_logprobs").as_array();
  REQUIRE(top.size() == top_n);
  double total = 0;
  for (size_t i = 0; i < top.size(); ++i) {
    const double lp = top[i].at("logprob").to_number<double>();
    CHECK(lp <= 0.0);
    if (i > 0) CHECK(lp <= top[i - 1].at("logprob").to_number<double>());
    total += std::exp(lp);
  }
  CHECK(total <= 1.0 + 1e-6);
  // Greedy picks the argmax, which is the first alternative.
  CHECK(e.at("logprob").to_number<double>() == top[0].at("logprob").to_number<double>());
  CHECK(bytes_of(e) == bytes_of(top[0]));
}

}  // namespace

TEST_CASE("chat logprobs: one entry per token, top alternatives sorted, stream = non-stream",
          "[server][logprobs]") {
  test_server s;
  const auto full = post_json(s.port(), "/v1/chat/completions", logprobs_chat_body + "}");
  REQUIRE(full.status == 200);
  const json::value v = json::parse(full.body);
  const auto& choice = v.at("choices").at(0);
  const auto& content = choice.at("logprobs").at("content").as_array();
  CHECK(choice.at("logprobs").at("refusal").is_null());
  REQUIRE(content.size() == 6);
  CHECK(v.at("usage").at("completion_tokens").as_int64() == 6);
  std::string text;
  for (const auto& e : content) {
    check_entry(e, 3);
    if (!is_special(std::string(e.at("token").as_string()))) text += bytes_of(e);
  }
  CHECK(text == std::string(choice.at("message").at("content").as_string()));

  const auto streamed =
      post_json(s.port(), "/v1/chat/completions", logprobs_chat_body + R"(,"stream":true})");
  REQUIRE(streamed.status == 200);
  json::array seen;
  for (const auto& ev : sse_events(streamed.body)) {
    if (ev == "[DONE]") break;
    const json::value c = json::parse(ev);
    const auto& lp = c.at("choices").at(0).at("logprobs");
    if (lp.is_null()) continue;
    for (const auto& e : lp.at("content").as_array()) seen.push_back(e);
  }
  CHECK(json::value(seen) == json::value(content));
}

TEST_CASE("completions logprobs: tokens, token_logprobs, top_logprobs and text_offset",
          "[server][logprobs]") {
  test_server s;
  const auto r = post_json(
      s.port(), "/v1/completions",
      R"({"model":"tiny","prompt":"Hello, world","max_tokens":5,"temperature":0,"ignore_eos":true,"logprobs":2})");
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  const auto& lp = v.at("choices").at(0).at("logprobs");
  const auto& tokens = lp.at("tokens").as_array();
  REQUIRE(tokens.size() == 5);
  REQUIRE(lp.at("token_logprobs").as_array().size() == 5);
  REQUIRE(lp.at("top_logprobs").as_array().size() == 5);
  const auto& offsets = lp.at("text_offset").as_array();
  REQUIRE(offsets.size() == 5);
  CHECK(offsets[0].as_int64() == 0);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(lp.at("token_logprobs").at(i).to_number<double>() <= 0.0);
    const auto& top = lp.at("top_logprobs").at(i).as_object();
    CHECK(!top.empty());
    CHECK(top.size() <= 2);  // two alternatives may print as the same string
    if (i > 0) CHECK(offsets[i].as_int64() >= offsets[i - 1].as_int64());
  }
  // Without logprobs the field stays null.
  const auto plain =
      post_json(s.port(), "/v1/completions", R"({"model":"tiny","prompt":"Hello","max_tokens":2})");
  CHECK(json::parse(plain.body).at("choices").at(0).at("logprobs").is_null());
}

TEST_CASE("logprobs request errors name the parameter", "[server][logprobs]") {
  test_server s;
  const auto param_of = [&](const std::string& path, const std::string& body) {
    const auto r = post_json(s.port(), path, body);
    CHECK(r.status == 400);
    const json::value v = json::parse(r.body);
    return std::string(v.at("error").at("param").as_string());
  };
  const std::string msgs = R"("model":"tiny","messages":[{"role":"user","content":"x"}])";
  CHECK(param_of("/v1/chat/completions", "{" + msgs + R"(,"top_logprobs":2})") == "top_logprobs");
  CHECK(param_of("/v1/chat/completions", "{" + msgs + R"(,"logprobs":true,"top_logprobs":21})") ==
        "top_logprobs");
  CHECK(param_of("/v1/chat/completions", "{" + msgs + R"(,"logprobs":"yes"})") == "logprobs");
  CHECK(param_of("/v1/completions", R"({"model":"tiny","prompt":"x","logprobs":-1})") ==
        "logprobs");
}
