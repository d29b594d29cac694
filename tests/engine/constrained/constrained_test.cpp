// Constrained tool calls: the byte automaton, the tool-call grammar over Qwen3's real
// vocabulary, and the sampler hook. The oracle is the project's own tool-call parser:
// whatever the constraint lets through must parse into calls whose arguments have the
// schema's types.
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/constrained/byte_automaton.h"
#include "engine/constrained/schema_check.h"
#include "engine/constrained/token_constraint.h"
#include "engine/constrained/tool_grammar.h"
#include "engine/sampler.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tool_spec_json.h"
#include "model/toolcall/call_parser.h"
#include "model/toolcall/openai.h"
#include "tests/sanitized.h"

using namespace conclave::engine::constrained;
namespace json = boost::json;
namespace toolcall = conclave::toolcall;

namespace {

const conclave::tokenizer::tokenizer& qwen() {
  static const auto tok = conclave::tokenizer::tokenizer::from_file(
      std::filesystem::path(CONCLAVE_QWEN3_TOKENIZER_DIR) / "tokenizer.json");
  return tok;
}

std::shared_ptr<const vocabulary> qwen_vocab() {
  static const auto v = [] {
    const auto& tok = qwen();
    std::vector<std::string> bytes(tok.vocab_size());
    for (size_t i = 0; i < bytes.size(); ++i) {
      const auto id = static_cast<int32_t>(i);
      if (tok.contains(id) && !tok.is_special(id)) bytes[i] = std::string(tok.token_bytes(id));
    }
    return std::make_shared<const vocabulary>(bytes);
  }();
  return v;
}

const int32_t im_end = 151645;

std::vector<tool_spec> fixture_tools() {
  std::ifstream in(std::filesystem::path(CONCLAVE_TEST_DATA) / "tools" / "tools.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return toolcall::tools_from_openai(json::parse(ss.str()));
}

/// Whether `v` is a value of `schema` (the subset the grammar emits).
bool matches(const json::value& v, const json::value* schema) {
  if (!schema || !schema->is_object()) return true;
  const json::object& o = schema->get_object();
  if (const auto* e = o.if_contains("enum")) {
    for (const auto& x : e->get_array()) {
      if (x == v ||
          (x.is_number() && v.is_number() && x.to_number<double>() == v.to_number<double>()))
        return true;
    }
    return false;
  }
  for (const char* k : {"anyOf", "oneOf"}) {
    if (const auto* a = o.if_contains(k)) {
      for (const auto& b : a->get_array())
        if (matches(v, &b)) return true;
      return false;
    }
  }
  std::vector<std::string> types;
  if (const auto* t = o.if_contains("type")) {
    if (t->is_string()) types.emplace_back(t->get_string());
    if (t->is_array())
      for (const auto& x : t->get_array()) types.emplace_back(x.get_string());
  }
  if (types.empty()) return true;
  for (const auto& t : types) {
    if (t == "string" && v.is_string()) return true;
    if (t == "integer" && (v.is_int64() || v.is_uint64())) return true;
    if (t == "number" && v.is_number()) return true;
    if (t == "boolean" && v.is_bool()) return true;
    if (t == "null" && v.is_null()) return true;
    if (t == "array" && v.is_array()) {
      bool ok = true;
      for (const auto& x : v.get_array()) ok = ok && matches(x, o.if_contains("items"));
      if (ok) return true;
    }
    if (t == "object" && v.is_object()) {
      const auto* props = o.if_contains("properties");
      bool ok = true;
      for (const auto& [k, x] : v.get_object()) {
        const json::value* ps = props ? props->get_object().if_contains(k) : nullptr;
        ok = ok && matches(x, ps);
      }
      if (ok) return true;
    }
  }
  return false;
}

/// Checks that `text` parses into calls of `tools` (only `only` when given) whose
/// arguments match the schemas and name every required parameter.
void check_calls(const std::string& text, const std::vector<tool_spec>& tools,
                 const std::string& only, conclave::model::tool_call_format format) {
  INFO("text: " << text);
  const auto r = toolcall::parse_all(format, text, tools);
  REQUIRE(r.calls.size() >= 1);
  if (!only.empty()) CHECK(r.calls.size() == 1);
  CHECK(r.content.empty());
  for (const auto& c : r.calls) {
    if (!only.empty()) CHECK(c.name == only);
    const tool_spec* t = nullptr;
    for (const auto& x : tools)
      if (x.name == c.name) t = &x;
    REQUIRE(t != nullptr);
    const json::value args = json::parse(c.arguments);
    REQUIRE(args.is_object());
    const json::value schema(conclave::model::parameters_object(*t));
    CHECK(matches(args, &schema));
    if (const auto* req = schema.get_object().if_contains("required")) {
      for (const auto& k : req->get_array()) CHECK(args.get_object().contains(k.get_string()));
    }
  }
}

constexpr auto xml = conclave::model::tool_call_format::qwen3_coder_xml;
constexpr auto json_calls = conclave::model::tool_call_format::hermes_json;

struct walk_result {
  std::string text;
  size_t tokens = 0;
  bool ended = false;
};

/// Samples uniformly among the allowed tokens until an end token or `budget` tokens.
walk_result random_walk(const token_constraint& c, std::mt19937_64& rng, int64_t budget,
                        bool check_prefixes, const std::vector<tool_spec>& tools,
                        const std::string& only, conclave::model::tool_call_format format = xml) {
  walk_result w;
  matcher m(std::shared_ptr<const token_constraint>(&c, [](const token_constraint*) {}));
  for (int64_t left = budget; left > 0; --left) {
    const auto allowed = c.allowed(m.state(), left);
    REQUIRE(!allowed.empty());
    if (check_prefixes && m.state() >= 0) {
      // Any allowed token keeps a prefix the grammar can finish, and that finish parses.
      for (int i = 0; i < 3; ++i) {
        const int32_t t = allowed[rng() % allowed.size()];
        if (c.is_end_token(t)) continue;
        const int32_t s = c.advance(m.state(), t);
        REQUIRE(s >= 0);
        check_calls(w.text + std::string(c.vocab().bytes(t)) + c.grammar().shortest_completion(s),
                    tools, only, format);
      }
    }
    const int32_t t = allowed[rng() % allowed.size()];
    ++w.tokens;
    m.advance(t);
    REQUIRE(m.active());
    if (c.is_end_token(t)) {
      w.ended = true;
      break;
    }
    w.text += c.vocab().bytes(t);
  }
  return w;
}

}  // namespace

TEST_CASE("byte DFA: literals, alternatives, repetition and distances", "[constrained]") {
  nfa n;
  auto f =
      n.seq({n.literal("ab"), n.alt({n.literal("c"), n.literal("de")}), n.star(n.literal("x"))});
  const dfa d = dfa::from_nfa(n, f.begin, f.end);
  CHECK(d.distance(d.start()) == 3);
  CHECK(d.accepting(d.walk(d.start(), "abc")));
  CHECK(d.accepting(d.walk(d.start(), "abdexxx")));
  CHECK(d.walk(d.start(), "abx") == dfa::dead);
  CHECK_FALSE(d.accepting(d.walk(d.start(), "abd")));
  CHECK(d.shortest_completion(d.start()) == "abc");
  CHECK(d.shortest_completion(d.walk(d.start(), "abd")) == "e");
}

TEST_CASE("vocabulary walk finds exactly the tokens a DFA accepts a prefix of", "[constrained]") {
  nfa n;
  auto f = n.seq({n.literal("<a>"), n.star(n.bytes(byte_range('0', '9'))), n.literal("</a>")});
  const dfa d = dfa::from_nfa(n, f.begin, f.end);
  const auto v = std::make_shared<const vocabulary>(
      std::vector<std::string>{"<", "<a", "<a>1", "12", "x", "", "</a>", "</a>x", "3</", "a"});
  token_constraint c(v, d, {10});
  auto ids = c.allowed(c.start(), 100);
  CHECK(ids == std::vector<int32_t>{0, 1, 2});
  const int32_t in = c.advance(c.start(), 2);  // "<a>1"
  CHECK(c.allowed(in, 100) == std::vector<int32_t>{0, 3, 6, 8});
  const int32_t done = c.advance(in, 6);
  CHECK(c.allowed(done, 100) == std::vector<int32_t>{10});
  CHECK(c.advance(done, 10) == token_constraint::finished);
  CHECK(c.allowed(token_constraint::finished, 100) == std::vector<int32_t>{10});
  CHECK(c.advance(in, 4) == token_constraint::off);  // "x" is not allowed
  // A short budget allows only what can still be closed one byte a token: after "12"
  // "</a>" is 4 bytes, after "<" 3, after "3</" 2, after "</a>" none; one more token
  // is the end token.
  CHECK(c.allowed(in, 6) == std::vector<int32_t>{0, 3, 6, 8});
  CHECK(c.allowed(in, 5) == std::vector<int32_t>{0, 6, 8});
  CHECK(c.allowed(in, 4) == std::vector<int32_t>{6, 8});
  CHECK(c.allowed(in, 3) == std::vector<int32_t>{6});
  CHECK(c.allowed(in, 2) == std::vector<int32_t>{6});
}

TEST_CASE("named tool: random walks over Qwen3's vocabulary parse into typed calls",
          "[constrained]") {
  const auto tools = fixture_tools();
  for (const char* name : {"get_weather", "set_config", "list_files", "write_file"}) {
    SECTION(name) {
      token_constraint c(qwen_vocab(), tool_call_dfa(tools, name), {im_end});
      std::mt19937_64 rng(42);
      for (int i = 0; i < conclave::test::iterations(20); ++i) {
        const auto w = random_walk(c, rng, 150, i < 3, tools, name);
        REQUIRE(w.ended);
        CHECK(w.tokens <= 150);
        check_calls(w.text, tools, name, xml);
      }
    }
  }
}

TEST_CASE("required: one or more calls to any tool, short budgets still close the call",
          "[constrained]") {
  const auto tools = fixture_tools();
  token_constraint c(qwen_vocab(), tool_call_dfa(tools, ""), {im_end, 151643});
  std::mt19937_64 rng(7);
  for (int64_t budget : {40, 60, 300}) {
    for (int i = 0; i < conclave::test::iterations(15); ++i) {
      const auto w = random_walk(c, rng, budget, false, tools, "");
      INFO("budget " << budget << " text " << w.text);
      REQUIRE(w.ended);
      check_calls(w.text, tools, "", xml);
    }
  }
}

TEST_CASE(
    "JSON calls (Qwen3 / Hermes): random walks parse into typed calls, required ones "
    "always there",
    "[constrained]") {
  const auto tools = fixture_tools();
  for (const char* name : {"get_weather", "set_config", "list_files", "write_file", ""}) {
    SECTION(name[0] ? name : "required") {
      token_constraint c(qwen_vocab(), tool_call_dfa(tools, name, json_calls), {im_end});
      std::mt19937_64 rng(43);
      for (int i = 0; i < conclave::test::iterations(15); ++i) {
        const auto w = random_walk(c, rng, 200, i < 3, tools, name, json_calls);
        REQUIRE(w.ended);
        check_calls(w.text, tools, name, json_calls);
      }
    }
  }
  const dfa d = tool_call_dfa(tools, "get_weather", json_calls);
  CHECK(d.walk(d.start(), R"(<tool_call>
{"name": "get_weather", "arguments": {"city": "X", "days": 2}}
</tool_call>)") != dfa::dead);
  CHECK(d.walk(d.start(), R"(<tool_call>
{"name": "get_weather", "arguments": {"days": 2)") == dfa::dead);  // city is required
  CHECK(d.walk(d.start(), R"(<tool_call>
{"name": "get_weather", "arguments": {"city": "X", "days": 1.5)") == dfa::dead);
}

TEST_CASE("parallel_tool_calls false: the grammar allows exactly one call", "[constrained]") {
  const auto tools = fixture_tools();
  for (auto format : {xml, json_calls}) {
    const dfa d = tool_call_dfa(tools, "", format, true);
    token_constraint c(qwen_vocab(), tool_call_dfa(tools, "", format, true), {im_end});
    std::mt19937_64 rng(11);
    for (int i = 0; i < conclave::test::iterations(10); ++i) {
      const auto w = random_walk(c, rng, 200, false, tools, "", format);
      REQUIRE(w.ended);
      CHECK(toolcall::parse_all(format, w.text, tools).calls.size() == 1);
      CHECK(d.walk(d.start(), w.text + "\n<tool_call>") == dfa::dead);
    }
  }
}

TEST_CASE("tool grammar rejects what would break the parser", "[constrained]") {
  const auto tools = fixture_tools();
  const dfa d = tool_call_dfa(tools, "write_file");
  const std::string head = "<tool_call>\n<function=write_file>\n<parameter=path>\n";
  CHECK(d.walk(d.start(), head + "a<b c") != dfa::dead);
  CHECK(d.walk(d.start(), head + "a<") != dfa::dead);
  for (const char* bad : {"</", "<parameter=", "<function=", "<tool_call>", "<<p", "\xff",
                          "\xc0\x80", "\xed\xa0\x80", "\x01"}) {
    INFO(bad);
    CHECK(d.walk(d.start(), head + bad) == dfa::dead);
  }
  CHECK_THROWS_AS(tool_call_dfa(tools, "nope"), std::invalid_argument);
  CHECK_THROWS_AS(tool_call_dfa({}, ""), std::invalid_argument);
  // Types: an integer parameter takes digits only.
  const dfa w = tool_call_dfa(tools, "get_weather");
  const std::string city =
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nX\n</parameter>\n";
  CHECK(w.walk(w.start(), city + "<parameter=days>\n12\n") != dfa::dead);
  CHECK(w.walk(w.start(), city + "<parameter=days>\n1.5") == dfa::dead);
  CHECK(w.walk(w.start(), city + "<parameter=days>\n012") == dfa::dead);
  CHECK(w.walk(w.start(), city + "<parameter=units>\nkelvin") == dfa::dead);
  CHECK(w.walk(w.start(), city + "<parameter=metric>\ntrue\n") != dfa::dead);
  CHECK(w.walk(w.start(), "<tool_call>\n<function=get_weather>\n</function>") == dfa::dead);
}

TEST_CASE("constraint cache compiles a tool list once", "[constrained]") {
  const auto tools = fixture_tools();
  constraint_cache cache(2);
  auto a = cache.get(qwen_vocab(), tools, "get_weather", {im_end});
  auto b = cache.get(qwen_vocab(), tools, "get_weather", {im_end});
  CHECK(a == b);
  CHECK(cache.compiles() == 1);
  auto c = cache.get(qwen_vocab(), tools, "", {im_end});
  CHECK(c != a);
  cache.get(qwen_vocab(), tools, "write_file", {im_end});
  CHECK(cache.size() == 2);
  CHECK(cache.compiles() == 3);
}

TEST_CASE("sampler applies the constraint: random logits still give a valid call",
          "[constrained]") {
  const auto tools = fixture_tools();
  auto c = std::make_shared<const token_constraint>(
      qwen_vocab(), tool_call_dfa(tools, "get_weather"), std::vector<int32_t>{im_end});
  std::mt19937_64 rng(3);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  for (float temperature : {0.0f, 1.0f}) {
    conclave::engine::sampling_params p;
    p.temperature = temperature;
    p.top_p = 0.95f;
    p.seed = 11;
    p.max_tokens = 80;
    p.constraint = c;
    conclave::engine::sampler s(p);
    std::vector<int32_t> out;
    std::vector<float> logits(151936);
    while (static_cast<int32_t>(out.size()) < p.max_tokens) {
      for (float& x : logits) x = noise(rng);
      const int32_t t = s.sample(logits, std::vector<int32_t>{1, 2}, out);
      out.push_back(t);
      if (t == im_end) break;
    }
    REQUIRE(out.back() == im_end);
    out.pop_back();
    check_calls(qwen().decode(out), tools, "get_weather", xml);
  }
}

TEST_CASE("structured outputs: random walks give JSON valid under the schema, or any object",
          "[constrained][json]") {
  const std::string schema = R"({"type":"object","properties":{
      "name":{"type":"string"},"age":{"type":"integer"},"score":{"type":"number"},
      "tags":{"type":"array","items":{"type":"string","enum":["a","b","c"]}},
      "address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":["string","null"]}},
                 "required":["city"],"additionalProperties":false},
      "kind":{"anyOf":[{"type":"boolean"},{"const":"none"}]},"empty":{"type":"object","additionalProperties":false}},
      "required":["name","age"]})";
  const json::value parsed = json::parse(schema);
  for (const std::string& s : {schema, std::string()}) {
    token_constraint c(qwen_vocab(), json_value_dfa(s), {im_end});
    std::mt19937_64 rng(5);
    for (int i = 0; i < conclave::test::iterations(25); ++i) {
      matcher m(std::shared_ptr<const token_constraint>(&c, [](const token_constraint*) {}));
      std::string text;
      bool ended = false;
      for (int64_t left = 400; left > 0 && !ended; --left) {
        const auto allowed = c.allowed(m.state(), left);
        REQUIRE(!allowed.empty());
        const int32_t t = allowed[rng() % allowed.size()];
        m.advance(t);
        if (c.is_end_token(t))
          ended = true;
        else
          text += c.vocab().bytes(t);
      }
      INFO(text);
      REQUIRE(ended);
      boost::system::error_code ec;
      const json::value v = json::parse(text, ec);
      REQUIRE(!ec);
      CHECK(v.is_object());
      if (!s.empty()) {
        CHECK(matches(v, &parsed));
        CHECK(v.as_object().contains("name"));
        CHECK(v.as_object().contains("age"));
        CHECK(v.at("empty").as_object().empty());
      }
    }
  }
}

TEST_CASE("structured outputs: a keyword the grammar cannot enforce is refused, naming where",
          "[constrained][json]") {
  using conclave::engine::constrained::unsupported_schema;
  const auto path_of = [](const std::string& schema) -> std::string {
    try {
      json_value_dfa(schema);
    } catch (const unsupported_schema& e) {
      return e.path() + " | " + e.what();
    }
    return "";
  };
  CHECK(path_of(R"({"type":"object","properties":{"age":{"type":"integer","minimum":0}}})") ==
        "schema.properties.age | schema.properties.age: 'minimum' cannot be enforced by "
        "constrained decoding");
  CHECK(path_of(R"({"type":"string","pattern":"^a"})").rfind("schema | ", 0) == 0);
  CHECK(path_of(R"({"$ref":"#/$defs/x","$defs":{}})").rfind("schema | ", 0) == 0);
  CHECK(path_of(R"({"type":"array","items":[{"type":"string"}]})").rfind("schema.items | ", 0) ==
        0);
  CHECK(path_of(R"({"type":"object","required":["a"]})").rfind("schema.required | ", 0) == 0);
  CHECK(path_of(R"({"type":"object","additionalProperties":{"type":"string"}})")
            .rfind("schema.additionalProperties | ", 0) == 0);
  CHECK(path_of(R"({"type":"thing"})").rfind("schema.type | ", 0) == 0);
  CHECK(
      path_of(R"({"anyOf":[{"type":"string","format":"date"}]})").rfind("schema.anyOf[0] | ", 0) ==
      0);
  CHECK(
      path_of(
          R"({"type":"object","title":"T","description":"d","properties":{"a":{"type":"string","default":"x"}},"required":["a"],"additionalProperties":false})") ==
      "");
}
