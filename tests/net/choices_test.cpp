// n > 1 over loopback: n choices of one prompt, prefilled once (the prefix cache's
// counters in /metrics show the other choices found the prompt cached), each with its
// own seed stream, streamed with their index, and the same choices whether streamed or
// not; choice 0 is what n = 1 gives for the seed.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "tests/net/test_client.h"

using namespace conclave;
using namespace conclave::test;
namespace json = boost::json;

namespace {

constexpr int32_t block = 4;

json::object chat_body(int n, bool stream) {
  return json::object{
      {"model", "tiny"},
      {"messages",
       json::array{json::object{{"role", "user"},
                                {"content", "Tell me a long story about a dragon and a knight."}}}},
      {"max_tokens", 12},
      {"ignore_eos", true},
      {"temperature", 1.0},
      {"seed", 2024},
      {"n", n},
      {"stream", stream},
      {"stream_options", json::object{{"include_usage", true}}}};
}

/// Each choice's text from a streamed body, with its finish reason; usage from the last
/// chunk.
struct streamed {
  std::map<int64_t, std::string> text, finish;
  int64_t prompt_tokens = -1, completion_tokens = -1;
};

streamed read_stream(const http_reply& r) {
  streamed s;
  for (const auto& ev : sse_events(r.body)) {
    if (ev == "[DONE]") break;
    const json::value v = json::parse(ev);
    if (const auto* u = v.as_object().if_contains("usage"); u && u->is_object()) {
      s.prompt_tokens = u->at("prompt_tokens").as_int64();
      s.completion_tokens = u->at("completion_tokens").as_int64();
    }
    for (const auto& c : v.at("choices").as_array()) {
      const int64_t i = c.at("index").as_int64();
      const auto& delta = c.at("delta").as_object();
      if (const auto* t = delta.if_contains("content"); t && t->is_string())
        s.text[i] += std::string(t->as_string());
      if (c.at("finish_reason").is_string()) {
        CHECK(s.finish.count(i) == 0);  // one finish chunk per choice
        s.finish[i] = std::string(c.at("finish_reason").as_string());
      }
    }
  }
  return s;
}

}  // namespace

TEST_CASE("n = 4: four choices, one prefill, the same choices streamed and not",
          "[server][choices]") {
  test_server s([](config::server_config& c) {
    c.engine.backend.block_size = block;
    c.replicas.probe_interval_s = 0;  // no health probe's prompt in the counters
  });
  const auto metric = [&](const char* source) {
    return s.metric(std::string("conclave_prompt_tokens_total{source=\"") + source + "\"}");
  };
  const double computed0 = std::max(0.0, metric("computed"));
  const double cached0 = std::max(0.0, metric("cached"));

  const auto full =
      post_json(s.port(), "/v1/chat/completions", json::serialize(chat_body(4, false)));
  REQUIRE(full.status == 200);
  const json::value v = json::parse(full.body);
  const auto& choices = v.at("choices").as_array();
  REQUIRE(choices.size() == 4);
  std::vector<std::string> texts;
  for (size_t i = 0; i < 4; ++i) {
    CHECK(choices[i].at("index").as_int64() == static_cast<int64_t>(i));
    CHECK(choices[i].at("finish_reason").as_string() == "length");
    texts.emplace_back(choices[i].at("message").at("content").as_string());
  }
  CHECK(std::set<std::string>(texts.begin(), texts.end()).size() > 1);  // own seed streams
  const int64_t prompt = v.at("usage").at("prompt_tokens").as_int64();
  CHECK(v.at("usage").at("completion_tokens").as_int64() == 4 * 12);

  // One prefill: the first choice computed the prompt; the other three found every full
  // block of it cached and computed only their last block's tokens.
  const double computed = metric("computed") - computed0;
  const double cached = metric("cached") - cached0;
  INFO("prompt " << prompt << " tokens: computed " << computed << ", cached " << cached);
  const int64_t tail = (prompt - 1) % block + 1;  // the block holding the last token
  CHECK(cached == 3.0 * static_cast<double>(prompt - tail));
  CHECK(computed == static_cast<double>(prompt + 3 * tail));

  // Streamed: every choice's deltas carry its index and add up to the same text.
  const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(chat_body(4, true)));
  REQUIRE(r.status == 200);
  const streamed st = read_stream(r);
  REQUIRE(st.text.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(st.text.at(static_cast<int64_t>(i)) == texts[i]);
    CHECK(st.finish.at(static_cast<int64_t>(i)) == "length");
  }
  CHECK(st.prompt_tokens == prompt);
  CHECK(st.completion_tokens == 4 * 12);

  // Choice 0 is what the same seed gives with n = 1.
  const auto one =
      post_json(s.port(), "/v1/chat/completions", json::serialize(chat_body(1, false)));
  REQUIRE(one.status == 200);
  CHECK(json::parse(one.body).at("choices").at(0).at("message").at("content").as_string() ==
        texts[0]);
}

TEST_CASE("n on /v1/completions, with logprobs per choice", "[server][choices]") {
  test_server s;
  const json::object body{{"model", "tiny"},
                          {"prompt", "Once upon a time"},
                          {"max_tokens", 5},
                          {"ignore_eos", true},
                          {"n", 3},
                          {"seed", 7},
                          {"temperature", 1.0},
                          {"logprobs", 2}};
  const auto r = post_json(s.port(), "/v1/completions", json::serialize(body));
  REQUIRE(r.status == 200);
  const json::value v = json::parse(r.body);
  const auto& choices = v.at("choices").as_array();
  REQUIRE(choices.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(choices[i].at("index").as_int64() == static_cast<int64_t>(i));
    const auto& lp = choices[i].at("logprobs");
    CHECK(lp.at("tokens").as_array().size() == 5);
    CHECK(lp.at("text_offset").at(0).as_int64() == 0);  // each choice counts its own text
  }
  CHECK(v.at("usage").at("completion_tokens").as_int64() == 15);
}

TEST_CASE("n out of range is a 400 naming it", "[server][choices]") {
  test_server s;
  for (int n : {0, 129}) {
    auto body = chat_body(1, false);
    body["n"] = n;
    const auto r = post_json(s.port(), "/v1/chat/completions", json::serialize(body));
    CHECK(r.status == 400);
    CHECK(json::parse(r.body).at("error").at("param").as_string() == "n");
  }
}
