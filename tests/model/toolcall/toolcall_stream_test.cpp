// The case table through the tool-call parser: the whole-text result must match the
// expectation, and every chunking (each fixed size from 1 byte to the whole text, plus
// seeded random ones) must give the same result while keeping the streaming invariants.
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

using namespace conclave::toolcall;
using conclave::test::tool_case;
namespace json = boost::json;

namespace {

std::vector<tool_spec> test_tools() {
  std::ifstream f(std::filesystem::path(CONCLAVE_TOOLS_DATA) / "tools.json");
  std::stringstream ss;
  ss << f.rdbuf();
  return tools_from_openai(json::parse(ss.str()));
}

parser_options options_for(const tool_case& c) {
  parser_options o;
  o.unknown_tools = c.policy;
  o.random = [n = uint64_t{0}]() mutable { return 0x9e3779b97f4a7c15ull * ++n; };
  return o;
}

bool is_number(const json::value& v) {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

// Structural equality; numbers by value (2 == 2.0), object keys in any order.
bool same_json(const json::value& a, const json::value& b) {
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

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_char_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool valid_id(const std::string& id) {
  if (id.size() != 29 || id.rfind("call_", 0) != 0) return false;
  return id.find_first_not_of("0123456789abcdef", 5) == std::string::npos;
}

// Feeds `text` cut at `cuts` and checks the invariants event by event; returns the
// result and, in `error`, the first invariant broken (empty when all hold).
parse_result stream(const std::string& text, const std::vector<size_t>& cuts,
                    const std::vector<tool_spec>& tools, const tool_case& c, std::string& error) {
  tool_parser parser(tools, options_for(c));
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

std::string differences(const parse_result& a, const parse_result& b) {
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

}  // namespace

TEST_CASE("the tool-call table has at least 40 model outputs", "[toolcall]") {
  CHECK(conclave::test::tool_cases().size() >= 40);
}

TEST_CASE("tool-call table: each output parses to its expected content and calls", "[toolcall]") {
  const std::vector<tool_spec> tools = test_tools();
  for (const tool_case& c : conclave::test::tool_cases()) {
    DYNAMIC_SECTION(c.name) {
      const parse_result r = parse_all(c.text, tools, options_for(c));
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

TEST_CASE("tool-call table: every chunking gives the same result and keeps the invariants",
          "[toolcall]") {
  const std::vector<tool_spec> tools = test_tools();
  for (const tool_case& c : conclave::test::tool_cases()) {
    DYNAMIC_SECTION(c.name) {
      const parse_result whole = parse_all(c.text, tools, options_for(c));
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
        const parse_result r = stream(c.text, chunkings[k], tools, c, error);
        INFO("chunking " << k << " (fixed size " << k + 1 << " when below "
                         << std::max<size_t>(n, 1) << ")");
        CHECK(error == "");
        CHECK(differences(r, whole) == "");
      }
    }
  }
}

TEST_CASE("random tag soup: same result for every chunking, invariants hold", "[toolcall]") {
  // Fragments of well-formed and broken calls glued at random: no crash, no lost or
  // repeated text, valid JSON arguments, and chunking never changes the outcome.
  static const std::vector<std::string> pieces = {"<tool_call>",
                                                  "</tool_call>",
                                                  "<function=get_weather>",
                                                  "<function=write_file>",
                                                  "<function=nope>",
                                                  "<function=set_config>",
                                                  "</function>",
                                                  "<parameter=city>",
                                                  "<parameter=days>",
                                                  "<parameter=content>",
                                                  "<parameter=config>",
                                                  "<parameter=tags>",
                                                  "<parameter=x>",
                                                  "</parameter>",
                                                  "\n",
                                                  "\n",
                                                  " ",
                                                  "Paris",
                                                  "3",
                                                  "1.5",
                                                  "{'a': (1,)}",
                                                  "[1, \"b\"]",
                                                  "None",
                                                  "é",
                                                  "😀",
                                                  "<",
                                                  "</",
                                                  "<tool",
                                                  "</para",
                                                  "text",
                                                  "\t"};
  const std::vector<tool_spec> tools = test_tools();
  std::mt19937 rng(99);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1), count(1, 40), step(1, 11);
  size_t failures = 0;
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    if (round % 4 < 2) {
      for (size_t k = count(rng); k > 0; --k) text += pieces[pick(rng)];
    } else {
      // Well-formed calls, then some tags dropped and fragments inserted.
      text = round % 3 == 0 ? "Sure.\n" : "";
      for (size_t k = step(rng) % 3; k > 0; --k) {
        text += conclave::test::well_formed(k % 2 ? "get_weather" : "write_file",
                                            {{k % 2 ? "city" : "path", "Zürich"},
                                             {k % 2 ? "days" : "content", "2\n</parameter>"}}) +
                "\n";
      }
      for (size_t m = step(rng) % 4; m > 0; --m) {
        const size_t at = text.empty() ? 0 : pick(rng) * text.size() / pieces.size();
        const size_t lt = text.find('<', at);
        if (m % 2 == 0 && lt != std::string::npos) {
          text.erase(lt, text.find('>', lt) - lt + 1);
        } else if ((at >= text.size() || (static_cast<unsigned char>(text[at]) & 0xC0) != 0x80)) {
          text.insert(std::min(at, text.size()), pieces[pick(rng)]);
        }
      }
    }
    tool_case c{"soup", text, "", {}};
    if (round % 2 == 1) c.policy = unknown_tool_policy::reject;
    const parse_result whole = parse_all(text, tools, options_for(c));
    for (const auto& call : whole.calls) {
      boost::system::error_code ec;
      const json::value v = json::parse(call.arguments, ec);
      if (ec || !v.is_object()) ++failures;
    }
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
      const parse_result r = stream(text, cuts, tools, c, error);
      if (!error.empty() || !differences(r, whole).empty()) {
        ++failures;
        UNSCOPED_INFO("text: " << text << "\nerror: " << error
                               << "\ndiff: " << differences(r, whole));
      }
    }
  }
  CHECK(failures == 0);
}
