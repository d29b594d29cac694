// The request text pipeline on the real Qwen3 tokenizer, without actors: stop strings
// across token boundaries, UTF-8 split across tokens, tool-call events, and logprobs
// that stay aligned with the text they belong to.
#include "serve/text_pipeline.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <filesystem>
#include <string>

using namespace conclave;
using serve::client_event;

namespace {

/// Collects what the pipeline sends.
struct collector : serve::client_sink {
  std::vector<client_event> events;
  void push(client_event e) override { events.push_back(std::move(e)); }
};

std::shared_ptr<const tokenizer::tokenizer> qwen3() {
  static const auto tok =
      std::make_shared<const tokenizer::tokenizer>(tokenizer::tokenizer::from_file(
          std::filesystem::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json"));
  return tok;
}

struct run : collector {
  std::string reason;
  int stopped_at = -1;  ///< index of the token whose push reported a stop
  std::vector<serve::logprob_entry> leftover;
};

/// Pushes `ids` one at a time (each with a logprob of -index when `logprobs`); stops
/// where the pipeline says so, then finishes with `reason`.
run feed(serve::text_pipeline& p, const std::vector<int32_t>& ids, bool logprobs = false,
         std::string reason = "stop") {
  run r;
  for (size_t i = 0; i < ids.size(); ++i) {
    engine::token_logprobs lp{-static_cast<float>(i), {}};
    if (p.push(ids[i], false, logprobs ? &lp : nullptr, r)) {
      r.stopped_at = static_cast<int>(i);
      break;
    }
  }
  r.reason = p.finish(std::move(reason), r);
  r.leftover = p.take_logprobs();
  return r;
}

std::string content(const run& r) {
  std::string s;
  for (const auto& e : r.events)
    if (e.type == client_event::kind::content) s += e.text;
  return s;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

}  // namespace

TEST_CASE("text pipeline: a stop string split across tokens ends the text before it",
          "[serve][text]") {
  auto tok = qwen3();
  const std::string text = "alpha beta END_OF_IT gamma";
  const auto ids = tok->encode(text, false);
  serve::text_pipeline p(tok, "t1");
  p.begin({}, false, {"END_OF"}, nullptr);
  const auto r = feed(p, ids);
  CHECK(content(r) == "alpha beta ");
  REQUIRE(r.stopped_at >= 0);
  // The stop string spans more than one token, and the pipeline stopped on its last one.
  std::string upto;
  for (int i = 0; i <= r.stopped_at; ++i) upto += std::string(tok->token_bytes(ids[i]));
  CHECK(upto.find("END_OF") != std::string::npos);
  std::string before;
  for (int i = 0; i < r.stopped_at; ++i) before += std::string(tok->token_bytes(ids[i]));
  CHECK(before.find("END_OF") == std::string::npos);
  CHECK(r.reason == "stop");
}

TEST_CASE("text pipeline: text that only looks like a stop string's start is released",
          "[serve][text]") {
  auto tok = qwen3();
  serve::text_pipeline p(tok, "t2");
  p.begin({}, false, {"STOPWORD"}, nullptr);
  const auto r = feed(p, tok->encode("a STOP sign, then STOPWOR", false), false, "length");
  CHECK(r.stopped_at == -1);
  CHECK(content(r) == "a STOP sign, then STOPWOR");  // the held-back tail comes out at the end
  CHECK(r.reason == "length");
}

TEST_CASE("text pipeline: a UTF-8 character split across tokens never leaves in pieces",
          "[serve][text]") {
  auto tok = qwen3();
  const std::string text = "naïve café 🚀🚀 漢字テスト ok";
  const auto ids = tok->encode(text, false);
  // At least one token of this text is a fragment of a character on its own.
  bool split = false;
  for (auto id : ids) split = split || !valid_utf8(std::string(tok->token_bytes(id)));
  REQUIRE(split);
  serve::text_pipeline p(tok, "t3");
  p.begin({}, false, {}, nullptr);
  const auto r = feed(p, ids);
  for (const auto& e : r.events) {
    INFO(e.text);
    CHECK(valid_utf8(e.text));
  }
  CHECK(content(r) == text);
}

TEST_CASE("text pipeline: tool calls become call events and finish with tool_calls",
          "[serve][text]") {
  auto tok = qwen3();
  model::tool_spec weather;
  weather.name = "get_weather";
  weather.parameters =
      R"({"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}})";
  const std::string text =
      "Let me check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n"
      "</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>";
  serve::text_pipeline p(tok, "t4");
  p.begin({weather}, true, {}, nullptr);
  const auto r = feed(p, tok->encode(text, false));
  CHECK(r.reason == "tool_calls");
  CHECK(content(r) == "Let me check.");  // the newline before the call is markup
  std::string name, args;
  int starts = 0, ends = 0;
  for (const auto& e : r.events) {
    if (e.type == client_event::kind::tool_call_start) {
      ++starts;
      name = e.name;
      CHECK(e.index == 0);
      CHECK_FALSE(e.call_id.empty());
    }
    if (e.type == client_event::kind::tool_call_arguments) args += e.text;
    if (e.type == client_event::kind::tool_call_end) ++ends;
  }
  CHECK(starts == 1);
  CHECK(ends == 1);
  CHECK(name == "get_weather");
  CHECK(boost::json::parse(args) == boost::json::parse(R"({"city":"Paris","days":3})"));
}

TEST_CASE("text pipeline: without tool parsing the markup is content", "[serve][text]") {
  auto tok = qwen3();
  const std::string text = "<tool_call>\n<function=f>\n</function>\n</tool_call>";
  serve::text_pipeline p(tok, "t5");
  p.begin({}, false, {}, nullptr);
  const auto r = feed(p, tok->encode(text, false));
  CHECK(content(r) == text);
  CHECK(r.reason == "stop");
}

TEST_CASE("text pipeline: logprobs ride with the text of their tokens, in order", "[serve][text]") {
  auto tok = qwen3();
  // Held-back text (a possible stop string, a split character) keeps its tokens'
  // logprobs until it is released: each content event carries exactly the entries of the
  // tokens whose text it completes, and every token's entry goes out once.
  const std::string text = "one two ST three 🚀 four ST";
  const auto ids = tok->encode(text, false);
  serve::text_pipeline p(tok, "t6");
  p.begin({}, false, {"STOP"}, nullptr);
  const auto r = feed(p, ids, true);
  std::vector<float> seen;
  std::string joined;
  for (const auto& e : r.events) {
    for (const auto& lp : e.logprobs) {
      seen.push_back(lp.logprob);
      joined += lp.token;
    }
  }
  for (const auto& lp : r.leftover) {
    seen.push_back(lp.logprob);
    joined += lp.token;
  }
  REQUIRE(seen.size() == ids.size());
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == -static_cast<float>(i));
  CHECK(joined == text);  // the entries' bytes are the tokens', in order
  CHECK(content(r) == text);
  // The trailing "ST" was held back (it may start "STOP") and comes out at the end,
  // with its entries: none is left over.
  CHECK(r.leftover.empty());
}

TEST_CASE("text pipeline: the end token's logprob is left for the finished event",
          "[serve][text]") {
  auto tok = qwen3();
  const auto eos = tok->encode("<|im_end|>", true);
  REQUIRE(eos.size() == 1);
  serve::text_pipeline p(tok, "t7");
  p.begin({}, false, {}, nullptr);
  collector out;
  engine::token_logprobs lp{-0.5f, {}};
  for (auto id : tok->encode("Hi", false)) p.push(id, false, &lp, out);
  engine::token_logprobs end_lp{-0.25f, {}};
  CHECK_FALSE(p.push(eos[0], true, &end_lp, out));
  CHECK(p.finish("stop", out) == "stop");
  std::string text;
  for (const auto& e : out.events) text += e.text;
  CHECK(text == "Hi");
  const auto left = p.take_logprobs();
  REQUIRE(left.size() == 1);
  CHECK(left[0].logprob == -0.25f);
}

TEST_CASE(
    "text pipeline: a thinking model's reasoning is its own events, calls are parsed in "
    "the answer only, in the template's JSON format",
    "[serve][text][reasoning]") {
  auto tok = qwen3();
  const std::string text =
      "<think>\nI should call <tool_call>{\"name\": \"get_weather\"}</tool_call> "
      "maybe.\n</think>\n\n"
      "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n"
      "</tool_call>";
  const std::vector<model::tool_spec> tools{
      {"get_weather", std::nullopt,
       R"({"type":"object","properties":{"city":{"type":"string"}}})"}};
  serve::text_pipeline p(tok, "t-think");
  p.begin(tools, true, {}, nullptr,
          {model::tool_call_format::hermes_json, serve::reasoning_mode::detect});
  const run r = feed(p, tok->encode(text, false));
  std::string reasoning, args;
  size_t starts = 0;
  for (const auto& e : r.events) {
    if (e.type == client_event::kind::reasoning) reasoning += e.text;
    if (e.type == client_event::kind::tool_call_start) ++starts;
    if (e.type == client_event::kind::tool_call_arguments) args += e.text;
  }
  CHECK(reasoning == "I should call <tool_call>{\"name\": \"get_weather\"}</tool_call> maybe.");
  CHECK(content(r) == "Checking.");
  CHECK(starts == 1);
  CHECK(args == R"({"city": "Oslo"})");
  CHECK(r.reason == "tool_calls");
}

TEST_CASE(
    "text pipeline: with the block opened by the prompt the output starts as reasoning, "
    "cut off mid-thought it is all reasoning",
    "[serve][text][reasoning]") {
  auto tok = qwen3();
  serve::text_pipeline p(tok, "t-open");
  p.begin({}, false, {}, nullptr,
          {model::tool_call_format::hermes_json, serve::reasoning_mode::open});
  run r = feed(p, tok->encode("thinking hard\n</think>\n\nAnswer.", false));
  std::string reasoning;
  for (const auto& e : r.events)
    if (e.type == client_event::kind::reasoning) reasoning += e.text;
  CHECK(reasoning == "thinking hard");
  CHECK(content(r) == "Answer.");

  p.begin({}, false, {}, nullptr,
          {model::tool_call_format::hermes_json, serve::reasoning_mode::detect});
  r = feed(p, tok->encode("<think>\nstill going", false), false, "length");
  reasoning.clear();
  for (const auto& e : r.events)
    if (e.type == client_event::kind::reasoning) reasoning += e.text;
  CHECK(reasoning == "still going");
  CHECK(content(r).empty());
  CHECK(r.reason == "length");
}

TEST_CASE(
    "text pipeline: parallel_tool_calls false ends generation once the first call is "
    "complete",
    "[serve][text]") {
  auto tok = qwen3();
  const std::vector<model::tool_spec> tools{
      {"get_weather", std::nullopt,
       R"({"type":"object","properties":{"city":{"type":"string"}}})"}};
  const std::string call =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"A\"}}\n</tool_call>";
  const auto ids = tok->encode(call + "\n" + call + "\nmore text", false);
  serve::text_pipeline p(tok, "t-one");
  serve::output_format one{model::tool_call_format::hermes_json, serve::reasoning_mode::off, true};
  p.begin(tools, true, {}, nullptr, one);
  const run r = feed(p, ids);
  size_t starts = 0;
  for (const auto& e : r.events) starts += e.type == client_event::kind::tool_call_start;
  CHECK(starts == 1);
  CHECK(r.stopped_at >= 0);
  CHECK(r.stopped_at < static_cast<int>(ids.size()) - 1);
  CHECK(r.reason == "tool_calls");
  CHECK(content(r).empty());
}
