// The checks both tool-call parsers (XML: tool_parser, JSON: hermes_parser) are held to:
// the table's expected results, the same result for every chunking, and the streaming
// invariants event by event.
#pragma once

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "model/toolcall/json_text.h"
#include "model/toolcall/openai.h"
#include "model/toolcall/tool_parser.h"
#include "tests/fixture.h"
#include "tests/model/toolcall/toolcall_cases.h"

namespace conclave::test {

using namespace conclave::toolcall;
namespace json = boost::json;

inline std::vector<tool_spec> test_tools() {
  std::ifstream f(std::filesystem::path(CONCLAVE_TOOLS_DATA) / "tools.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return tools_from_openai(json::parse(ss.str()));
}

inline parser_options options_for(const tool_case& c) {
  parser_options o;
  o.unknown_tools = c.policy;
  o.random = [n = uint64_t{0}]() mutable { return 0x9e3779b97f4a7c15ull * ++n; };
  return o;
}

inline bool is_number(const json::value& v) {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

// Structural equality; numbers by value (2 == 2.0), object keys in any order.
inline bool same_json(const json::value& a, const json::value& b) {
  if (is_number(a) && is_number(b)) return a.to_number<double>() == b.to_number<double>();
  if (a.kind() != b.kind()) return false;
  if (a.is_object()) {
    const json::object &x = a.get_object(), &y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& kv : x) {
      const json::value* other = y.if_contains(kv.key());
      if (other == nullptr || !same_json(kv.value(), *other)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    const json::array &x = a.get_array(), &y = b.get_array();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!same_json(x[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

inline bool valid_id(const std::string& id) {
  if (id.size() != 29 || id.rfind("call_", 0) != 0) return false;
  return id.find_first_not_of("0123456789abcdef", 5) == std::string::npos;
}

// Feeds `text` cut at `cuts` and checks the invariants event by event; returns the
// result and, in `error`, the first invariant broken (empty when all hold).
template <class Parser>
parse_result stream(const std::string& text, const std::vector<size_t>& cuts,
                    const std::vector<tool_spec>& tools, const tool_case& c, std::string& error) {
  Parser parser(tools, options_for(c));
  parse_result r;
  long open = -1;  // index of the call between its start and end events
  auto check = [&](const std::vector<event>& events) {
    for (const event& e : events) {
      if (!error.empty()) return;
      switch (e.type) {
        case event::kind::content:
          if (e.text.empty() || !valid_utf8(e.text)) error = "empty or broken content delta";
          break;
        case event::kind::tool_call_start:
          if (open != -1 || e.index != r.calls.size() || !valid_id(e.id) || e.name.empty())
            error = "bad tool_call_start";
          open = static_cast<long>(e.index);
          break;
        case event::kind::tool_call_arguments:
          if (static_cast<long>(e.index) != open || e.text.empty() || !valid_utf8(e.text))
            error = "arguments delta outside its call, empty or broken";
          break;
        case event::kind::tool_call_end: {
          if (static_cast<long>(e.index) != open)
            error = "tool_call_end of a call that is not open";
          boost::system::error_code ec;
          const json::value v = json::parse(r.calls.at(e.index).arguments, ec);
          if (ec || !v.is_object())
            error = "arguments are not a JSON object: " + r.calls[e.index].arguments;
          open = -1;
          break;
        }
        case event::kind::rejected_tool:
          break;
      }
      apply_event(r, e);
    }
  };
  size_t from = 0;
  for (size_t cut : cuts) {
    check(parser.feed(std::string_view(text).substr(from, cut - from)));
    from = cut;
  }
  check(parser.feed(std::string_view(text).substr(from)));
  check(parser.finish());
  if (error.empty() && open != -1) error = "a call was left open after finish()";
  if (error.empty() && parser.any_calls() != r.has_calls()) error = "any_calls() disagrees";
  return r;
}

inline std::string differences(const parse_result& a, const parse_result& b) {
  if (a.content != b.content) return "content \"" + a.content + "\" vs \"" + b.content + "\"";
  if (a.calls.size() != b.calls.size()) return "call count differs";
  for (size_t i = 0; i < a.calls.size(); ++i) {
    const parsed_call &x = a.calls[i], &y = b.calls[i];
    if (x.id != y.id || x.name != y.name || x.arguments != y.arguments) {
      return "call " + std::to_string(i) + ": " + x.name + " " + x.arguments + " vs " + y.name +
             " " + y.arguments;
    }
  }
  if (a.rejected_tools != b.rejected_tools) return "rejected tools differ";
  return "";
}

/// The whole text through a fresh parser (what a non-streaming response gets).
template <class Parser>
parse_result parse_whole(std::string_view text, const std::vector<tool_spec>& tools,
                         const tool_case& c) {
  Parser parser(tools, options_for(c));
  parse_result r;
  for (const event& e : parser.feed(text)) apply_event(r, e);
  for (const event& e : parser.finish()) apply_event(r, e);
  return r;
}

/// Each case parses to its expected content and calls.
template <class Parser>
void check_expected(const std::vector<tool_case>& cases) {
  const std::vector<tool_spec> tools = test_tools();
  for (const tool_case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      const parse_result r = parse_whole<Parser>(c.text, tools, c);
      CHECK(r.content == c.content);
      CHECK(r.rejected_tools == c.rejected);
      CHECK(r.has_calls() == !c.calls.empty());
      REQUIRE(r.calls.size() == c.calls.size());
      for (size_t i = 0; i < c.calls.size(); ++i) {
        INFO("call " << i << ": " << r.calls[i].arguments);
        CHECK(r.calls[i].name == c.calls[i].name);
        CHECK(valid_id(r.calls[i].id));
        boost::system::error_code ec;
        const json::value got = json::parse(r.calls[i].arguments, ec);
        REQUIRE(!ec);
        CHECK(got.is_object());
        CHECK(same_json(got, json::parse(c.calls[i].arguments)));
      }
    }
  }
}

/// Every chunking (each fixed size up to the whole text, and 20 seeded random ones)
/// gives the whole text's result and keeps the invariants.
template <class Parser>
void check_chunkings(const std::vector<tool_case>& cases) {
  const std::vector<tool_spec> tools = test_tools();
  for (const tool_case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      const parse_result whole = parse_whole<Parser>(c.text, tools, c);
      const size_t n = c.text.size();
      std::vector<std::vector<size_t>> chunkings;
      for (size_t size = 1; size <= std::max<size_t>(n, 1); ++size) {
        std::vector<size_t> cuts;
        for (size_t at = size; at < n; at += size) cuts.push_back(at);
        chunkings.push_back(std::move(cuts));
      }
      std::mt19937 rng(1234);
      std::uniform_int_distribution<size_t> step(1, 9);
      for (int k = 0; k < 20; ++k) {
        std::vector<size_t> cuts;
        for (size_t at = step(rng); at < n; at += step(rng)) cuts.push_back(at);
        chunkings.push_back(std::move(cuts));
      }
      for (size_t k = 0; k < chunkings.size(); ++k) {
        std::string error;
        const parse_result r = stream<Parser>(c.text, chunkings[k], tools, c, error);
        INFO("chunking " << k << " (fixed size " << k + 1 << " when below "
                         << std::max<size_t>(n, 1) << ")");
        CHECK(error == "");
        CHECK(differences(r, whole) == "");
      }
    }
  }
}

/// One soup text: its whole parse has JSON-object arguments, and chunks of 1, 2, 3 and 7
/// bytes plus four random chunkings give the same result with the invariants kept.
/// Returns how many of these checks failed (each failure noted with UNSCOPED_INFO).
template <class Parser>
size_t check_soup(const std::string& text, const std::vector<tool_spec>& tools, const tool_case& c,
                  std::mt19937& rng) {
  size_t failures = 0;
  const parse_result whole = parse_whole<Parser>(text, tools, c);
  for (const auto& call : whole.calls) {
    boost::system::error_code ec;
    const json::value v = json::parse(call.arguments, ec);
    if (ec || !v.is_object()) {
      ++failures;
      UNSCOPED_INFO("text: " << text << "\nbad arguments: " << call.arguments);
    }
  }
  std::uniform_int_distribution<size_t> step(1, 11);
  std::vector<std::vector<size_t>> chunkings;
  for (size_t size : {1, 2, 3, 7}) {
    std::vector<size_t> cuts;
    for (size_t at = size; at < text.size(); at += size) cuts.push_back(at);
    chunkings.push_back(std::move(cuts));
  }
  for (int k = 0; k < 4; ++k) {
    std::vector<size_t> cuts;
    for (size_t at = step(rng); at < text.size(); at += step(rng)) cuts.push_back(at);
    chunkings.push_back(std::move(cuts));
  }
  for (const auto& cuts : chunkings) {
    std::string error;
    const parse_result r = stream<Parser>(text, cuts, tools, c, error);
    if (!error.empty() || !differences(r, whole).empty()) {
      ++failures;
      UNSCOPED_INFO("text: " << text << "\nerror: " << error
                             << "\ndiff: " << differences(r, whole));
    }
  }
  return failures;
}

}  // namespace conclave::test
