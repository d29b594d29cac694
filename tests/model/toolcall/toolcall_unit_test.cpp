// Pieces of the tool-call parser on their own: numbers, Python literals, schema typing,
// JSON text, the OpenAI shapes, and streaming behaviour a final result cannot show
// (what is sent early, what is held back).
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <stdexcept>

#include "model/toolcall/json_text.h"
#include "model/toolcall/openai.h"
#include "model/toolcall/tool_parser.h"
#include "model/toolcall/value_convert.h"

using namespace conclave::toolcall;
namespace json = boost::json;

namespace {

std::string as_text(const json::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::string convert(std::string_view text, std::string_view schema) {
  const json::object s = json::parse(schema).as_object();
  return as_text(convert_value(text, &s));
}

std::string python(std::string_view text) {
  const auto v = parse_python_literal(text);
  return v ? as_text(*v) : "<none>";
}

std::vector<tool_spec> weather_tool() {
  return {
      {"get_weather", std::nullopt, R"({"type": "object", "properties": {"city": {"type": "string"},
            "days": {"type": "integer"}}})"}};
}

parser_options counting_ids() {
  parser_options o;
  o.random = [n = uint64_t{0}]() mutable { return ++n; };
  return o;
}

std::string joined(const std::vector<event>& events, event::kind k) {
  std::string s;
  for (const auto& e : events) {
    if (e.type == k) s += e.text;
  }
  return s;
}

}  // namespace

TEST_CASE("parse_number reads JSON and Python numbers only", "[toolcall]") {
  CHECK(as_text(*parse_number("42")) == "42");
  CHECK(parse_number("42")->is_int64());
  CHECK(as_text(*parse_number("-7")) == "-7");
  CHECK(as_text(*parse_number("+7")) == "7");
  CHECK(as_text(*parse_number("2.5")) == "2.5");
  CHECK(as_text(*parse_number(".5")) == "0.5");
  CHECK(as_text(*parse_number("5.")) == "5");
  CHECK(parse_number("5.")->is_double());
  CHECK(as_text(*parse_number("1e3")) == "1000");
  CHECK(parse_number("18446744073709551615")->is_uint64());
  CHECK(parse_number("99999999999999999999999")->is_double());
  for (const char* bad :
       {"", "-", "1e", "1.2.3", "0x10", "nan", "inf", "1e999", " 1", "1,000", "e5"}) {
    INFO(bad);
    CHECK_FALSE(parse_number(bad).has_value());
  }
}

TEST_CASE("parse_python_literal reads Python syntax into JSON", "[toolcall]") {
  CHECK(python("{'a': 1, \"b\": [True, False, None], 'c': (1, 2), 'd': (3,), 'e': ()}") ==
        R"({"a": 1, "b": [true, false, null], "c": [1, 2], "d": [3], "e": []})");
  CHECK(python("(5)") == "5");
  CHECK(python("{1, 2}") == "[1, 2]");
  CHECK(python("{1: 'x', True: 'y'}") == R"({"1": "x", "true": "y"})");
  CHECK(python("['it\\'s', \"q\\\"\", '\\x41\\u00e9\\U0001F600', '\\ud83d\\ude00', r'\\n']") ==
        R"(["it's", "q\"", "Aé😀", "😀", "\\n"])");
  CHECK(python("'''multi\nline'''") == R"("multi\nline")");
  CHECK(python("[1_000, -2.5e1, +3,]") == "[1000, -25, 3]");
  CHECK(python("{'a': 1,}") == R"({"a": 1})");
  for (const char* bad :
       {"", "[1, 2", "{'a' 1}", "foo", "[1] [2]", "'open", "{'a': }", "(1 2)", "\"\\x4\""}) {
    INFO(bad);
    CHECK(python(bad) == "<none>");
  }
  // Deep nesting is refused, not a crash.
  CHECK(python(std::string(100000, '[') + std::string(100000, ']')) == "<none>");
  CHECK(python(std::string(50, '[') + std::string(50, ']')) != "<none>");
}

TEST_CASE("convert_value types text by the schema", "[toolcall]") {
  CHECK(convert("230.0", R"({"type": "integer"})") == "230");
  CHECK(convert("1e3", R"({"type": "integer"})") == "1000");
  CHECK(convert("1.5", R"({"type": "integer"})") == R"("1.5")");
  CHECK(convert("1e300", R"({"type": "integer"})") == R"("1e300")");
  CHECK(convert(" 3 ", R"({"type": "number"})") == "3");
  CHECK(convert("0.1", R"({"type": "number"})") == "0.1");
  CHECK(convert("TRUE", R"({"type": "boolean"})") == "true");
  CHECK(convert("0", R"({"type": "boolean"})") == "false");
  CHECK(convert("maybe", R"({"type": "boolean"})") == R"("maybe")");
  CHECK(convert("None", R"({"type": "null"})") == "null");
  CHECK(convert("NULL", R"({"type": ["integer", "null"]})") == "null");
  CHECK(convert("7", R"({"type": ["string", "integer"]})") == "7");
  CHECK(convert("seven", R"({"type": ["string", "integer"]})") == R"("seven")");
  CHECK(convert("[1, 2]", R"({"type": "array", "items": {"type": "string"}})") == R"([1, 2])");
  CHECK(convert("['1', 2]", R"({"type": "array", "items": {"type": "integer"}})") == "[1, 2]");
  CHECK(convert("[1, 2]", R"({"type": "object"})") == R"("[1, 2]")");
  CHECK(
      convert(
          R"({"a": {"b": "2.0"}})",
          R"({"type": "object", "properties": {"a": {"properties": {"b": {"type": "integer"}}}}})") ==
      R"({"a": {"b": 2}})");
  CHECK(convert(R"({"x": "1", "y": "2"})",
                R"({"type": "object", "additionalProperties": {"type": "integer"}})") ==
        R"({"x": 1, "y": 2})");
  CHECK(convert("3", R"({"oneOf": [{"type": "string"}, {"type": "number"}]})") == "3");
  CHECK(convert("x", R"({"oneOf": [{"type": "number"}, {"type": "boolean"}]})") == R"("x")");
  CHECK(convert("2.0", R"({"type": "integer", "enum": [1, 2]})") == "2");
  CHECK(convert("9", R"({"type": "integer", "enum": [1, 2]})") == "9");
  CHECK(convert(" red ", R"({"enum": ["red", 1]})") == R"("red")");
  CHECK(convert(" red ", R"({"enum": ["red", "green"]})") == R"(" red ")");  // streams as is
  CHECK(convert("True", R"({"enum": [true, "maybe"]})") == "true");
  CHECK(convert("5", R"({"type": "int"})") == "5");  // Python type names
  CHECK(convert("5", R"({"type": "weird"})") == R"("5")");
  CHECK(convert("5", R"({"description": "untyped"})") == R"("5")");
  CHECK(convert_value("5", nullptr) == json::value("5"));
  // null for a non-string type is JSON null; a quoted object or array is read inside.
  CHECK(convert("null", R"({"type": "number"})") == "null");
  CHECK(convert(" None ", R"({"type": "object"})") == "null");
  CHECK(convert("null", R"({"type": "string"})") == R"("null")");
  CHECK(convert(R"("{'a': 1, 'b': [True]}")", R"({"type": "object"})") ==
        R"({"a": 1, "b": [true]})");
  CHECK(convert(R"('["x", 2]')", R"({"type": "array"})") == R"(["x", 2])");
  CHECK(convert(R"("not an object")", R"({"type": "object"})") == R"("\"not an object\"")");
}

TEST_CASE("is_string_schema decides which values stream", "[toolcall]") {
  auto check = [](std::string_view schema) {
    const json::object s = json::parse(schema).as_object();
    return is_string_schema(&s);
  };
  CHECK(is_string_schema(nullptr));
  CHECK(check(R"({"type": "string"})"));
  CHECK(check(R"({"type": "string", "enum": ["a", "b"]})"));
  CHECK(check(R"({"description": "no type"})"));
  CHECK_FALSE(check(R"({"type": ["string", "null"]})"));
  CHECK_FALSE(check(R"({"enum": [1, "a"]})"));
  CHECK_FALSE(check(R"({"anyOf": [{"type": "string"}]})"));
  CHECK_FALSE(check(R"({"properties": {}})"));
}

TEST_CASE("JSON text: escaping, numbers and UTF-8 boundaries", "[toolcall]") {
  CHECK(json_quote("a\"b\\c\n\t\x01\x7f") == R"("a\"b\\c\n\t\u0001\u007f")");
  CHECK(json_quote("é\xc3") == "\"é\\ufffd\"");
  CHECK(as_text(json::parse(R"({"a": [1, 2.5, -1e+20, true, null, "x"], "b": {}})")) ==
        R"({"a": [1, 2.5, -1e+20, true, null, "x"], "b": {}})");
  CHECK(incomplete_utf8_tail("abc") == 0);
  CHECK(incomplete_utf8_tail("a\xc3") == 1);
  CHECK(incomplete_utf8_tail("a\xe2\x82") == 2);
  CHECK(incomplete_utf8_tail("a\xf0\x9f\x98") == 3);
  CHECK(incomplete_utf8_tail("a\xf0\x9f\x98\x80") == 0);
  CHECK(incomplete_utf8_tail("a\xe2\x41") == 0);  // can never complete
  CHECK(incomplete_utf8_tail("\x80\x80\x80") == 0);
}

TEST_CASE("OpenAI shapes: tools in, message and deltas out", "[toolcall]") {
  const auto tools = tools_from_openai(json::parse(
      R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
          {"type": "function", "function": {"name": "g"}}])"));
  REQUIRE(tools.size() == 2);
  CHECK(tools[0].name == "f");
  CHECK(tools[1].parameters == "{}");
  auto bad = [](std::string_view text) { return tools_from_openai(json::parse(text)); };
  CHECK_THROWS_WITH(bad(R"({})"), Catch::Contains("expected a JSON array"));
  CHECK_THROWS_WITH(bad(R"([1])"), Catch::Contains("tools[0]: expected an object"));
  CHECK_THROWS_WITH(bad(R"([{"type": "code"}])"), Catch::Contains("\"type\" must be \"function\""));
  CHECK_THROWS_WITH(bad(R"([{"type": "function", "function": {}}])"),
                    Catch::Contains("function.name"));
  CHECK_THROWS_WITH(bad(R"([{"type": "function", "function": {"name": "f", "parameters": 3}}])"),
                    Catch::Contains("function.parameters"));
  CHECK_THROWS_AS(bad(R"([1])"), std::invalid_argument);

  parse_result r;
  CHECK(json::serialize(to_openai_message(r)) == R"({"content":null,"tool_calls":[]})");
  r.content = "hi";
  r.calls.push_back({"call_1", "f", "{}"});
  CHECK(
      json::serialize(to_openai_message(r)) ==
      R"({"content":"hi","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]})");

  event start{event::kind::tool_call_start, 2, "call_x", "f", ""};
  CHECK(
      json::serialize(*to_openai_delta(start)) ==
      R"({"tool_calls":[{"index":2,"id":"call_x","type":"function","function":{"name":"f","arguments":""}}]})");
  event args{event::kind::tool_call_arguments, 2, "", "", "{\"a\""};
  CHECK(json::serialize(*to_openai_delta(args)) ==
        R"({"tool_calls":[{"index":2,"function":{"arguments":"{\"a\""}}]})");
  CHECK(json::serialize(*to_openai_delta({event::kind::content, 0, "", "", "x"})) ==
        R"({"content":"x"})");
  CHECK_FALSE(to_openai_delta({event::kind::tool_call_end, 2, "", "", ""}).has_value());
  CHECK_FALSE(to_openai_delta({event::kind::rejected_tool, 0, "", "nope", ""}).has_value());
}

TEST_CASE("tool_parser: construction and lifecycle errors", "[toolcall]") {
  const std::vector<tool_spec> unnamed{{"", std::nullopt}};
  const std::vector<tool_spec> twice{{"f", std::nullopt}, {"f", std::nullopt}};
  const std::vector<tool_spec> not_a_schema{{"f", std::nullopt, "[1]"}};
  CHECK_THROWS_AS(tool_parser(unnamed), std::invalid_argument);
  CHECK_THROWS_WITH(tool_parser(twice), Catch::Contains("\"f\" is given twice"));
  CHECK_THROWS_WITH(tool_parser(not_a_schema), Catch::Contains("not a JSON object"));
  tool_parser p(weather_tool());
  CHECK_FALSE(p.any_calls());
  p.finish();
  CHECK_THROWS_AS(p.feed("x"), std::logic_error);
  CHECK_THROWS_AS(p.finish(), std::logic_error);
}

TEST_CASE("tool_parser: ids are call_ + 24 hex from the random source", "[toolcall]") {
  const std::string text = "<function=get_weather>\n</function>";
  const auto a = parse_all(text, weather_tool(), counting_ids());
  REQUIRE(a.calls.size() == 1);
  CHECK(a.calls[0].id == "call_000000000000000100000000");  // draws 1 and 2 (its top 32 bits)
  const auto b = parse_all(text, weather_tool());
  const auto c = parse_all(text, weather_tool());
  REQUIRE(b.calls.size() == 1);
  CHECK(b.calls[0].id.size() == 29);
  CHECK(b.calls[0].id.find_first_not_of("0123456789abcdef", 5) == std::string::npos);
  CHECK(b.calls[0].id != c.calls[0].id);
}

TEST_CASE("tool_parser: string values stream before they end, typed values wait", "[toolcall]") {
  tool_parser p(weather_tool(), counting_ids());
  auto e1 = p.feed("Sure.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nSan Fr");
  CHECK(joined(e1, event::kind::content) == "Sure.");
  REQUIRE(!e1.empty());
  CHECK(p.any_calls());
  CHECK(joined(e1, event::kind::tool_call_arguments) == R"({"city": "San Fr)");
  // The trailing newline and a partial closer are held back: they may end the value.
  auto e2 = p.feed("ancisco\n</param");
  CHECK(joined(e2, event::kind::tool_call_arguments) == "ancisco");
  auto e3 = p.feed("eter>\n<parameter=days>\n1");
  CHECK(joined(e3, event::kind::tool_call_arguments) == R"(")");
  auto e4 = p.feed("4\n");
  CHECK(e4.empty());  // "14" could still grow
  auto e5 = p.feed("</parameter>\n</function>\n</tool_call>\nBye");
  CHECK(joined(e5, event::kind::tool_call_arguments) == R"(, "days": 14})");
  CHECK(joined(e5, event::kind::content) == "\n\nBye");
  CHECK(e5.back().type == event::kind::content);
  auto e6 = p.finish();
  CHECK(e6.empty());
}

TEST_CASE("tool_parser: a possible tag is held back, then released as content", "[toolcall]") {
  tool_parser p(weather_tool());
  CHECK(joined(p.feed("Hello <tool_"), event::kind::content) == "Hello");
  CHECK(joined(p.feed("call> is a tag"), event::kind::content) == " <tool_call> is a tag");
  CHECK(joined(p.feed(" <functi"), event::kind::content) == "");
  CHECK(joined(p.feed("onal> x"), event::kind::content) == " <functional> x");
  CHECK(joined(p.feed(" caf\xc3"), event::kind::content) == " caf");  // half a character
  CHECK(joined(p.feed("\xa9"), event::kind::content) == "\xc3\xa9");
  // <tool_call> followed by whitespace waits; once something other than a call follows, it goes.
  CHECK(joined(p.feed(" <tool_call>\n\n"), event::kind::content) == "");
  CHECK(joined(p.feed("plain"), event::kind::content) == " <tool_call>\n\nplain");
  CHECK_FALSE(p.any_calls());
}

TEST_CASE("tool_parser: the rejected policy reports unknown tools and keeps the text",
          "[toolcall]") {
  parser_options o;
  o.unknown_tools = unknown_tool_policy::reject;
  const std::string text =
      "<tool_call>\n<function=rm>\n<parameter=path>\n/\n</parameter>\n</function>\n</tool_call>";
  const auto r = parse_all(text, weather_tool(), o);
  CHECK(r.content == text);
  CHECK(r.rejected_tools == std::vector<std::string>{"rm"});
  CHECK_FALSE(r.has_calls());
  const auto k = parse_all(text, weather_tool());
  CHECK(k.content == text);
  CHECK(k.rejected_tools.empty());
}
