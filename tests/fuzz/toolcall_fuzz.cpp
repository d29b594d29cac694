// libFuzzer target: the streaming tool-call parser (XML; hermes_fuzz.cpp builds this file for
// the JSON one with CONCLAVE_FUZZ_JSON_CALLS). The first byte picks a chunk size,
// the rest is model output. Invariants: feeding it in chunks gives the same result as
// feeding it whole; every call's argument deltas concatenate to one JSON object; content
// deltas concatenate to the final content.
#include <boost/json.hpp>
#include <cstdint>
#include <string>

#include "model/toolcall/call_parser.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

std::vector<conclave::toolcall::tool_spec> schemas() {
  const std::string weather = R"({"type":"object","properties":{"city":{"type":"string"},
      "days":{"type":"integer"},"metric":{"type":"boolean"},"tags":{"type":"array","items":{"type":"string"}},
      "opts":{"type":"object","properties":{"x":{"type":"number"}}},"unit":{"enum":["c","f"]}}})";
  const std::string write = R"({"type":"object","properties":{"path":{"type":"string"},
      "content":{"type":"string"}}})";
  return {{"get_weather", std::nullopt, weather}, {"write_file", std::nullopt, write}};
}

conclave::toolcall::parse_result run(std::string_view text, size_t chunk) {
  uint64_t n = 0;
  conclave::toolcall::parser_options o;
  o.random = [&n] { return ++n; };
#ifdef CONCLAVE_FUZZ_JSON_CALLS
  conclave::toolcall::call_parser p(conclave::model::tool_call_format::hermes_json, schemas(), o);
#else
  conclave::toolcall::call_parser p(conclave::model::tool_call_format::qwen3_coder_xml, schemas(),
                                    o);
#endif
  conclave::toolcall::parse_result r;
  std::vector<std::string> args;
  std::string content;
  const auto apply = [&](const std::vector<conclave::toolcall::event>& evs) {
    for (const auto& e : evs) {
      conclave::toolcall::apply_event(r, e);
      if (e.type == conclave::toolcall::event::kind::content) content += e.text;
      if (e.type == conclave::toolcall::event::kind::tool_call_start) args.resize(e.index + 1);
      if (e.type == conclave::toolcall::event::kind::tool_call_arguments)
        args.at(e.index) += e.text;
    }
  };
  for (size_t i = 0; i < text.size(); i += chunk) apply(p.feed(text.substr(i, chunk)));
  apply(p.finish());
  FUZZ_CHECK(content == r.content);
  FUZZ_CHECK(args.size() == r.calls.size());
  for (size_t i = 0; i < args.size(); ++i) {
    FUZZ_CHECK(args[i] == r.calls[i].arguments);
    boost::system::error_code ec;
    const auto v = boost::json::parse(args[i], ec);
    FUZZ_CHECK(!ec && v.is_object());
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 16;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto whole = run(text, text.size() + 1);
  const auto chunked = run(text, chunk);
  FUZZ_CHECK(whole.content == chunked.content);
  FUZZ_CHECK(whole.calls.size() == chunked.calls.size());
  for (size_t i = 0; i < whole.calls.size() && i < chunked.calls.size(); ++i) {
    FUZZ_CHECK(whole.calls[i].name == chunked.calls[i].name);
    FUZZ_CHECK(whole.calls[i].arguments == chunked.calls[i].arguments);
  }
  return 0;
}
